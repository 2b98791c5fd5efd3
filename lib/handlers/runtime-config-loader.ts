import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DEFAULT_ELB_CALL_BUDGET } from '../core/elb-call-budget';
import { ConfigError } from '../core/errors';
import { completeRuntimeConfig, CONFIG_ENV, parseRuntimeSettings, RuntimeConfig } from '../core/runtime-config';
import { CapabilityRoute } from '../core/lease-schema';
import { discoverCapabilityGroups, loadBalancerOfListener, targetPortsOf } from '../aws/target-groups';

/**
 * The handlers' configuration from the `AGENT_LB_CONFIG` text (format and validation:
 * lib/core/runtime-config.ts), with the target groups of a names-only configuration found on its
 * load balancer (lib/aws/target-groups.ts).
 */
export async function resolveRuntimeConfig(text: string | undefined, client: ElasticLoadBalancingV2Client): Promise<RuntimeConfig> {
  const parsed = parseRuntimeSettings(text);
  // A deployed registry always spends within a budget: the default share when the stack sets none.
  const settings = { ...parsed, elbBudget: parsed.elbBudget ?? DEFAULT_ELB_CALL_BUDGET };
  const discover = settings.discover;
  if (!discover) {
    // Named groups whose ports the configuration does not declare take their own port, as discovered ones do.
    const undeclared = Object.entries(settings.capabilities).filter(([name, route]) => route.ports === undefined && !Object.hasOwn(settings.ports, name));
    if (undeclared.length === 0) return completeRuntimeConfig(settings);
    const ports = await targetPortsOf(client, undeclared.map(([, route]) => route.targetGroupArn));
    const found: Record<string, CapabilityRoute> = {};
    for (const [name, route] of undeclared) {
      const port = ports[route.targetGroupArn];
      if (port !== undefined) found[name] = { ...route, ports: [{ from: port, to: port }] };
    }
    return completeRuntimeConfig(settings, found);
  }
  const loadBalancerArn = discover.loadBalancerArn ?? (await loadBalancerOfListener(client, discover.listenerArn!));
  const more = discover.moreLoadBalancerArns ?? [];
  if (more.length === 0) {
    const { routes, tagged } = await discoverCapabilityGroups(client, loadBalancerArn, discover.capabilities);
    return completeRuntimeConfig(settings, routes, tagged);
  }
  // Several load balancers: each capability on one of them (completeRuntimeConfig names any found on none).
  const found = await Promise.all([loadBalancerArn, ...more].map((arn) => discoverCapabilityGroups(client, arn, discover.capabilities, false)));
  const routes: Record<string, CapabilityRoute> = {};
  for (const [i, { routes: on }] of found.entries()) {
    for (const [name, route] of Object.entries(on)) {
      if (Object.hasOwn(routes, name)) throw new ConfigError(`capability "${name}" has a target group on two load balancers (${[loadBalancerArn, ...more][i]} and another); it must be on one`);
      routes[name] = route;
    }
  }
  return completeRuntimeConfig(settings, routes, found.flatMap((f) => f.tagged));
}

/**
 * What a handler builds from its configuration, made once per container: from `explicit` when a
 * caller gives one (local mode, tests), else from `AGENT_LB_CONFIG` resolved. A failed resolution
 * is not remembered, so the next invocation tries again.
 */
export function runtimeOnce<T>(explicit: RuntimeConfig | undefined, client: ElasticLoadBalancingV2Client, build: (config: RuntimeConfig) => T): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () =>
    (made ??= (explicit ? Promise.resolve(explicit) : resolveRuntimeConfig(process.env[CONFIG_ENV], client)).then(build, (error: unknown) => {
      made = undefined;
      throw error;
    }));
}

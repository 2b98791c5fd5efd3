import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { CapabilityPlacement, catalogHosts, placementLoadBalancers } from '../core/catalog-hosts';
import { DEFAULT_ELB_CALL_BUDGET } from '../core/elb-call-budget';
import { ConfigError, RegistryStateError } from '../core/errors';
import { completeRuntimeConfig, CONFIG_ENV, parseRuntimeSettings, RuntimeConfig } from '../core/runtime-config';
import { CapabilityRoute } from '../core/lease-schema';
import { loadBalancerDnsNames } from '../aws/load-balancers';
import { discoverCapabilityGroups, groupPlacements, loadBalancerOfListener } from '../aws/target-groups';

/** What resolving a configuration may report besides its result. */
export interface ResolveOptions {
  /**
   * The catalog's hosts could not be looked up (DescribeLoadBalancers, or the named groups'
   * DescribeTargetGroups, failed): the configuration resolves without them, since the catalog
   * must not hold up routing, and its entries keep the hosts the document already shows.
   * @default - not reported
   */
  readonly onCatalogHostsUnknown?: (error: RegistryStateError) => void;
}

/**
 * The handlers' configuration from the `AGENT_LB_CONFIG` text (format and validation:
 * lib/core/runtime-config.ts), with the target groups of a names-only configuration found on its
 * load balancer (lib/aws/target-groups.ts) and, with a catalog, the DNS name of the load balancer
 * serving each capability (lib/core/catalog-hosts.ts): one DescribeLoadBalancers call per 20 of
 * the deployment's load balancers, plus, for groups named by ARN, one DescribeTargetGroups per 20
 * groups whose ports did not already need it.
 */
export async function resolveRuntimeConfig(text: string | undefined, client: ElasticLoadBalancingV2Client, options: ResolveOptions = {}): Promise<RuntimeConfig> {
  const parsed = parseRuntimeSettings(text);
  // A deployed registry always spends within a budget: the default share when the stack sets none.
  const settings = { ...parsed, elbBudget: parsed.elbBudget ?? DEFAULT_ELB_CALL_BUDGET };
  const hostsOf = async (place: () => Promise<CapabilityPlacement>): Promise<Record<string, string> | undefined> => {
    // Capabilities with DNS names of their own need no load balancer's (catalogConfigOf names them).
    if (!settings.catalog || settings.catalog.dnsDomain !== undefined) return undefined;
    try {
      const placement = await place();
      const arns = placementLoadBalancers(placement);
      return catalogHosts(placement, arns.length === 0 ? new Map() : await loadBalancerDnsNames(client, arns));
    } catch (cause) {
      const e = cause as { name?: string; message?: string };
      options.onCatalogHostsUnknown?.(
        new RegistryStateError(`the catalog cannot name the load balancers serving its capabilities (${e?.name ?? 'Error'}: ${e?.message ?? String(cause)}); it keeps the hosts it shows`, { cause }),
      );
      return undefined;
    }
  };
  const discover = settings.discover;
  if (!discover) {
    // Named groups whose ports the configuration does not declare take their own port, as discovered ones do.
    const undeclared = Object.entries(settings.capabilities).filter(([name, route]) => route.ports === undefined && !Object.hasOwn(settings.ports, name));
    const placed = undeclared.length === 0 ? {} : await groupPlacements(client, undeclared.map(([, route]) => route.targetGroupArn));
    const found: Record<string, CapabilityRoute> = {};
    for (const [name, route] of undeclared) {
      const port = placed[route.targetGroupArn]?.port;
      if (port !== undefined) found[name] = { ...route, ports: [{ from: port, to: port }] };
    }
    const hosts = await hostsOf(async () => {
      // The same answers say where the groups are; the rest are asked for the catalog alone.
      const rest = Object.values(settings.capabilities).map((r) => r.targetGroupArn).filter((arn) => !Object.hasOwn(placed, arn));
      const all = { ...placed, ...(rest.length === 0 ? {} : await groupPlacements(client, rest)) };
      return Object.fromEntries(Object.entries(settings.capabilities).map(([name, r]) => [name, all[r.targetGroupArn]?.loadBalancerArns ?? []]));
    });
    return completeRuntimeConfig(settings, found, [], hosts);
  }
  const loadBalancerArn = discover.loadBalancerArn ?? (await loadBalancerOfListener(client, discover.listenerArn!));
  const more = discover.moreLoadBalancerArns ?? [];
  if (more.length === 0) {
    const { routes, tagged } = await discoverCapabilityGroups(client, loadBalancerArn, discover.capabilities);
    const hosts = await hostsOf(async () => Object.fromEntries(Object.keys(routes).map((name) => [name, [loadBalancerArn]])));
    return completeRuntimeConfig(settings, routes, tagged, hosts);
  }
  // Several load balancers: each capability on one of them (completeRuntimeConfig names any found on none).
  const arns = [loadBalancerArn, ...more];
  const found = await Promise.all(arns.map((arn) => discoverCapabilityGroups(client, arn, discover.capabilities, false)));
  const routes: Record<string, CapabilityRoute> = {};
  const placement: Record<string, string[]> = {};
  for (const [i, { routes: on }] of found.entries()) {
    for (const [name, route] of Object.entries(on)) {
      if (Object.hasOwn(routes, name)) throw new ConfigError(`capability "${name}" has a target group on two load balancers (${arns[i]} and another); it must be on one`);
      routes[name] = route;
      placement[name] = [arns[i]];
    }
  }
  const hosts = await hostsOf(async () => placement);
  // The target quota holds on each load balancer: the registry counts each group on its own.
  const loadBalancers = Object.fromEntries(Object.entries(placement).map(([name, [arn]]) => [name, arn]));
  return completeRuntimeConfig(settings, routes, found.flatMap((f) => f.tagged), hosts, loadBalancers);
}

/**
 * What a handler builds from its configuration, made once per container: from `explicit` when a
 * caller gives one (local mode, tests), else from `AGENT_LB_CONFIG` resolved. A failed resolution
 * is not remembered, so the next invocation tries again.
 */
export function runtimeOnce<T>(explicit: RuntimeConfig | undefined, client: ElasticLoadBalancingV2Client, build: (config: RuntimeConfig) => T, options: ResolveOptions = {}): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () =>
    (made ??= (explicit ? Promise.resolve(explicit) : resolveRuntimeConfig(process.env[CONFIG_ENV], client, options)).then(build, (error: unknown) => {
      made = undefined;
      throw error;
    }));
}

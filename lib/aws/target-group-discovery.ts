import { DescribeListenersCommand, DescribeTagsCommand, DescribeTargetGroupsCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ConfigError } from '../core/errors';
import { CAPABILITY_TAG, CapabilityRoute } from '../core/lease-schema';
import { completeRuntimeConfig, parseRuntimeSettings, RuntimeConfig, RuntimeSettings } from '../core/runtime-config';

/** DescribeTags takes at most 20 resource ARNs per call. */
const TAGS_PER_CALL = 20;

/**
 * Finds each named capability's target group among those the load balancer routes to, by the
 * `agent-lb:capability` tag the stack puts on them. Target groups of other capabilities (one
 * being removed by a stack update, say) are ignored; a name with no group, or with two, is a
 * configuration error that names them.
 */
export async function discoverTargetGroups(
  client: ElasticLoadBalancingV2Client,
  loadBalancerArn: string,
  capabilities: readonly string[],
): Promise<Record<string, CapabilityRoute>> {
  const groups = new Map<string, CapabilityRoute>();
  let marker: string | undefined;
  do {
    const page = await client.send(new DescribeTargetGroupsCommand({ LoadBalancerArn: loadBalancerArn, PageSize: 400, ...(marker ? { Marker: marker } : {}) }));
    for (const g of page.TargetGroups ?? []) {
      if (g.TargetGroupArn) groups.set(g.TargetGroupArn, { targetGroupArn: g.TargetGroupArn, targetType: g.TargetType === 'instance' ? 'instance' : 'ip' });
    }
    marker = page.NextMarker;
  } while (marker);

  const wanted = new Set(capabilities);
  const found: Record<string, CapabilityRoute> = {};
  const arns = [...groups.keys()];
  for (let i = 0; i < arns.length; i += TAGS_PER_CALL) {
    const { TagDescriptions = [] } = await client.send(new DescribeTagsCommand({ ResourceArns: arns.slice(i, i + TAGS_PER_CALL) }));
    for (const d of TagDescriptions) {
      const capability = d.Tags?.find((t) => t.Key === CAPABILITY_TAG)?.Value;
      if (!capability || !wanted.has(capability) || !d.ResourceArn) continue;
      if (Object.hasOwn(found, capability)) {
        throw new ConfigError(
          `load balancer ${loadBalancerArn} routes to two target groups tagged ${CAPABILITY_TAG}=${capability}: ${found[capability].targetGroupArn} and ${d.ResourceArn}`,
        );
      }
      found[capability] = groups.get(d.ResourceArn)!;
    }
  }
  const missing = capabilities.filter((c) => !Object.hasOwn(found, c));
  if (missing.length > 0) {
    throw new ConfigError(
      `load balancer ${loadBalancerArn} routes to no target group tagged ${CAPABILITY_TAG} = ${missing.map((c) => JSON.stringify(c)).join(', ')} ` +
        `(${groups.size} target groups seen); are its listener rules deployed?`,
    );
  }
  return found;
}

/**
 * The load balancer a listener belongs to (one DescribeListeners call): how the functions of a
 * stack that only imported the listener find their target groups.
 */
export async function loadBalancerOfListener(client: ElasticLoadBalancingV2Client, listenerArn: string): Promise<string> {
  let arn: string | undefined;
  try {
    const { Listeners = [] } = await client.send(new DescribeListenersCommand({ ListenerArns: [listenerArn] }));
    arn = Listeners[0]?.LoadBalancerArn;
  } catch (cause) {
    if ((cause as { name?: string })?.name !== 'ListenerNotFoundException') throw cause;
    throw new ConfigError(`listener ${listenerArn} does not exist`, { cause });
  }
  if (!arn) throw new ConfigError(`listener ${listenerArn} does not exist`);
  return arn;
}

/** The handlers' configuration from `AGENT_LB_CONFIG`, with discovered target groups filled in. */
export async function resolveRuntimeConfig(text: string | undefined, client: ElasticLoadBalancingV2Client): Promise<RuntimeConfig> {
  const settings: RuntimeSettings = parseRuntimeSettings(text);
  const discover = settings.discover;
  if (!discover) return completeRuntimeConfig(settings);
  const loadBalancerArn = discover.loadBalancerArn ?? (await loadBalancerOfListener(client, discover.listenerArn!));
  return completeRuntimeConfig(settings, await discoverTargetGroups(client, loadBalancerArn, discover.capabilities));
}

/**
 * What a handler builds from its configuration, made once per container: from `explicit` when a
 * caller gives one (local mode, tests), else from `AGENT_LB_CONFIG` resolved. A failed discovery
 * is not remembered, so the next invocation tries again.
 */
export function runtimeOnce<T>(explicit: RuntimeConfig | undefined, client: ElasticLoadBalancingV2Client, build: (config: RuntimeConfig) => T): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () =>
    (made ??= (explicit ? Promise.resolve(explicit) : resolveRuntimeConfig(process.env.AGENT_LB_CONFIG, client)).then(build, (error: unknown) => {
      made = undefined;
      throw error;
    }));
}

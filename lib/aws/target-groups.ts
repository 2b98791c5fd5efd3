import type { HealthCheckView } from '../core/target-explain';
import {
  DescribeListenersCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
  TargetGroup,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { TaggedGroup } from '../core/catalog-document';
import { ConfigError } from '../core/errors';
import { CAPABILITY_TAG, CapabilityRoute, MAX_REQUEST_SECONDS_TAG, TargetType, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG } from '../core/lease-schema';

/**
 * The one place agent-lb finds target groups on ELB: by the `agent-lb:capability` tag the stack
 * puts on each capability's group, and their target types. The handlers use it at cold start
 * (a configuration that names capabilities only), the CLI to describe a stack, local mode and
 * tests to check what was provisioned. Everywhere, two groups tagged with one capability are a
 * configuration error that names both: which of them the listener rules route to cannot be
 * told from the tags, and registering into the wrong one would be silent.
 */

/** DescribeTags takes at most 20 resource ARNs per call. */
const TAGS_PER_CALL = 20;
/** DescribeTargetGroups by ARN: 20 per call, as with tags. */
const GROUPS_PER_CALL = 20;

/** A group's route; its own port is the one port its agents may use unless the configuration declares others. */
function routeOf(group: TargetGroup): CapabilityRoute {
  return { targetGroupArn: group.TargetGroupArn!, targetType: targetTypeOf(group), ...(group.Port === undefined ? {} : { ports: [{ from: group.Port, to: group.Port }] }) };
}

function targetTypeOf(group: TargetGroup): TargetType {
  return group.TargetType === 'instance' ? 'instance' : 'ip';
}

/** Every tag of each group among `arns` (DescribeTags, 20 groups per call), by group ARN. */
export async function tagsOf(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Map<string, Readonly<Record<string, string>>>> {
  const out = new Map<string, Readonly<Record<string, string>>>();
  for (let i = 0; i < arns.length; i += TAGS_PER_CALL) {
    const { TagDescriptions = [] } = await client.send(new DescribeTagsCommand({ ResourceArns: arns.slice(i, i + TAGS_PER_CALL) }));
    for (const d of TagDescriptions) {
      if (d.ResourceArn) out.set(d.ResourceArn, Object.fromEntries((d.Tags ?? []).flatMap((t) => (t.Key !== undefined ? [[t.Key, t.Value ?? '']] : []))));
    }
  }
  return out;
}

/**
 * Capability → target group ARN for the groups tagged `agent-lb:capability` in `tags` (those of
 * `wanted` only, when given). `where` names the groups' owner in the error.
 * @throws ConfigError when two groups carry one capability
 */
export function capabilitiesFromTags(tags: ReadonlyMap<string, Readonly<Record<string, string>>>, where: string, wanted?: ReadonlySet<string>): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [arn, groupTags] of tags) {
    const capability = groupTags[CAPABILITY_TAG];
    if (!capability || (wanted && !wanted.has(capability))) continue;
    if (Object.hasOwn(found, capability)) {
      throw new ConfigError(`${where} routes to two target groups tagged ${CAPABILITY_TAG}=${capability}: ${found[capability]} and ${arn}`);
    }
    found[capability] = arn;
  }
  return found;
}

/**
 * Capability → target group ARN for the groups among `arns` tagged `agent-lb:capability`
 * (those of `wanted` only, when given). `where` names the groups' owner in the error.
 * @throws ConfigError when two groups carry one capability
 */
export async function capabilityTags(
  client: ElasticLoadBalancingV2Client,
  arns: readonly string[],
  where: string,
  wanted?: ReadonlySet<string>,
): Promise<Record<string, string>> {
  return capabilitiesFromTags(await tagsOf(client, arns), where, wanted);
}

/** Like {@link capabilityTags}, with every tag of each group (the catalog reads its policy tags from the same call). */
async function taggedCapabilityGroups(
  client: ElasticLoadBalancingV2Client,
  arns: readonly string[],
  where: string,
  wanted?: ReadonlySet<string>,
): Promise<Record<string, { arn: string; tags: Record<string, string> }>> {
  const tags = await tagsOf(client, arns);
  const capabilities = capabilitiesFromTags(tags, where, wanted);
  return Object.fromEntries(Object.entries(capabilities).map(([capability, arn]) => [capability, { arn, tags: { ...tags.get(arn) } }]));
}

/** Capability → its longest request in seconds, from the `agent-lb:max-request-seconds` tag of its group (groups without it are left out). */
export function maxRequestSecondsFromTags(tags: ReadonlyMap<string, Readonly<Record<string, string>>>, capabilities: Readonly<Record<string, string>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [capability, arn] of Object.entries(capabilities)) {
    const seconds = Number(tags.get(arn)?.[MAX_REQUEST_SECONDS_TAG]);
    if (seconds > 0) out[capability] = seconds;
  }
  return out;
}

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
  return (await discoverCapabilityGroups(client, loadBalancerArn, capabilities)).routes;
}

/** {@link discoverTargetGroups}, with each group's tags (its routing policy and variant tags, for the catalog), from the same calls. */
export async function discoverCapabilityGroups(
  client: ElasticLoadBalancingV2Client,
  loadBalancerArn: string,
  capabilities: readonly string[],
  /** Whether every capability must be on this load balancer (false: a deployment of several, the rest are on the others). */
  requireAll = true,
): Promise<{ routes: Record<string, CapabilityRoute>; tagged: TaggedGroup[] }> {
  const groups = new Map<string, CapabilityRoute>();
  let marker: string | undefined;
  do {
    const page = await client.send(new DescribeTargetGroupsCommand({ LoadBalancerArn: loadBalancerArn, PageSize: 400, ...(marker ? { Marker: marker } : {}) }));
    for (const g of page.TargetGroups ?? []) if (g.TargetGroupArn) groups.set(g.TargetGroupArn, routeOf(g));
    marker = page.NextMarker;
  } while (marker);

  const tagged = await taggedCapabilityGroups(client, [...groups.keys()], `load balancer ${loadBalancerArn}`, new Set(capabilities));
  const found: Record<string, CapabilityRoute> = {};
  for (const [capability, g] of Object.entries(tagged)) found[capability] = groups.get(g.arn)!;
  const missing = capabilities.filter((c) => !Object.hasOwn(found, c));
  if (requireAll && missing.length > 0) {
    throw new ConfigError(
      `load balancer ${loadBalancerArn} routes to no target group tagged ${CAPABILITY_TAG} = ${missing.map((c) => JSON.stringify(c)).join(', ')} ` +
        `(${groups.size} target groups seen); are its listener rules deployed?`,
    );
  }
  return { routes: found, tagged: Object.entries(tagged).map(([capability, g]) => ({ capability, tags: g.tags })) };
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

/** What one DescribeTargetGroups answer says of a group named by ARN: its own port and the load balancers that route to it. */
export interface GroupPlacement {
  readonly port?: number;
  /** Empty for a group no listener rule forwards to yet. */
  readonly loadBalancerArns: readonly string[];
}

/** Target group ARN → its port and load balancers, for the given ARNs (one call per 20; groups that do not exist are left out). */
export async function groupPlacements(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Record<string, GroupPlacement>> {
  const out: Record<string, GroupPlacement> = {};
  for (let i = 0; i < arns.length; i += GROUPS_PER_CALL) {
    const res = await client.send(new DescribeTargetGroupsCommand({ TargetGroupArns: arns.slice(i, i + GROUPS_PER_CALL) }));
    for (const g of res.TargetGroups ?? []) {
      if (g.TargetGroupArn) out[g.TargetGroupArn] = { ...(g.Port === undefined ? {} : { port: g.Port }), loadBalancerArns: g.LoadBalancerArns ?? [] };
    }
  }
  return out;
}

/** Target group ARN → its own port, for the given ARNs (groups that do not exist, or have no port, are left out). */
export async function targetPortsOf(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [arn, g] of Object.entries(await groupPlacements(client, arns))) if (g.port !== undefined) out[arn] = g.port;
  return out;
}

/** Target group ARN → target type, for the given ARNs (groups that do not exist are left out). */
export async function targetTypesOf(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Record<string, TargetType>> {
  const out: Record<string, TargetType> = {};
  for (let i = 0; i < arns.length; i += GROUPS_PER_CALL) {
    const res = await client.send(new DescribeTargetGroupsCommand({ TargetGroupArns: arns.slice(i, i + GROUPS_PER_CALL) }));
    for (const g of res.TargetGroups ?? []) if (g.TargetGroupArn) out[g.TargetGroupArn] = targetTypeOf(g);
  }
  return out;
}

/** Target group ARN → its health check (what an agent must answer), for the given ARNs. */
export async function healthChecksOf(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Record<string, HealthCheckView>> {
  const out: Record<string, HealthCheckView> = {};
  for (let i = 0; i < arns.length; i += GROUPS_PER_CALL) {
    const res = await client.send(new DescribeTargetGroupsCommand({ TargetGroupArns: arns.slice(i, i + GROUPS_PER_CALL) }));
    for (const g of res.TargetGroups ?? []) {
      if (!g.TargetGroupArn) continue;
      out[g.TargetGroupArn] = {
        ...(g.HealthCheckProtocol ? { protocol: g.HealthCheckProtocol } : {}),
        ...(g.HealthCheckPath ? { path: g.HealthCheckPath } : {}),
        ...(g.HealthCheckPort ? { port: g.HealthCheckPort } : {}),
        ...(g.Matcher?.HttpCode ? { codes: g.Matcher.HttpCode } : {}),
        ...(g.HealthCheckIntervalSeconds ? { intervalSeconds: g.HealthCheckIntervalSeconds } : {}),
        ...(g.HealthyThresholdCount ? { healthyThreshold: g.HealthyThresholdCount } : {}),
        ...(g.UnhealthyThresholdCount ? { unhealthyThreshold: g.UnhealthyThresholdCount } : {}),
      };
    }
  }
  return out;
}

/** A weighted variant's group as its tags describe it: the capability it belongs to and its configured weight. */
export interface VariantTags {
  readonly variantOf: string;
  /** Percent of the capability's requests, as configured (the reconcile pass may hold it at 0). */
  readonly weight: number;
}

/** Target group ARN → its variant tags, for the groups among `arns` that are weighted variants (`agent-lb:variant-of`). */
export async function variantTagsOf(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Record<string, VariantTags>> {
  const out: Record<string, VariantTags> = {};
  for (let i = 0; i < arns.length; i += TAGS_PER_CALL) {
    const { TagDescriptions = [] } = await client.send(new DescribeTagsCommand({ ResourceArns: arns.slice(i, i + TAGS_PER_CALL) }));
    for (const d of TagDescriptions) {
      const tag = (key: string) => d.Tags?.find((t) => t.Key === key)?.Value;
      const variantOf = tag(VARIANT_OF_TAG);
      const weight = Number(tag(VARIANT_WEIGHT_TAG));
      if (d.ResourceArn && variantOf && Number.isInteger(weight)) out[d.ResourceArn] = { variantOf, weight };
    }
  }
  return out;
}


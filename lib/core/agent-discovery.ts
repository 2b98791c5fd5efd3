import { ConfigError } from './errors';
import { RawAttributeValue, RotationState } from './lease-schema';
import { CatalogMember } from './registry-state';

/**
 * Trusted discovery (`discoverAgents`, `agent-lb agents`): a capability's agents with their
 * address, port, rotation state and metadata, for callers IAM lets read the registry's member
 * index. The health filters are Cloud Map's (`DiscoverInstances`): `healthy`, `all`, and
 * `healthy-or-else-all` (the healthy ones, or every one when none is healthy, so a caller always
 * has somewhere to go). Metadata filters are equalities, all of which must hold. Pure.
 */

export const HEALTH_FILTERS = ['healthy', 'all', 'healthy-or-else-all'] as const;
export type HealthFilter = (typeof HEALTH_FILTERS)[number];

export interface DiscoveryFilter {
  /** @default 'healthy' */
  readonly health?: HealthFilter;
  /** Metadata key → value each agent's metadata must equal (strings; numbers and booleans compare by their text). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** One agent as discovery returns it. Never its lease token. */
export interface DiscoveredAgent {
  readonly capability: string;
  readonly target: string;
  readonly address: string;
  readonly port: number;
  readonly agentId: string;
  readonly status: 'active' | 'draining';
  /** Its state in the capability's target group, as the registry last wrote it into the lease; absent before the first write. */
  readonly state?: RotationState;
  /** Epoch ms since when it is in `state`. */
  readonly since?: number;
  readonly availabilityZone?: string;
  /** The lease's metadata as plain values (strings, numbers, booleans, lists, maps). */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Whether the registry has registered a member's target: it wrote a rotation state other than `absent` (agents cannot write one). */
function inGroup(member: CatalogMember): boolean {
  return member.state !== undefined && member.state !== 'absent';
}

/** Whether a member serves: its lease is active and its target healthy. */
export function isHealthyMember(member: CatalogMember): boolean {
  return member.status === 'active' && member.state === 'healthy';
}

/** A DynamoDB attribute value as a plain value (binary and sets of binary as their length). */
export function plainValue(value: RawAttributeValue): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.NULL !== undefined) return null;
  if (value.SS !== undefined) return [...value.SS];
  if (value.NS !== undefined) return value.NS.map(Number);
  if (value.L !== undefined) return value.L.map(plainValue);
  if (value.M !== undefined) return Object.fromEntries(Object.entries(value.M).map(([k, v]) => [k, plainValue(v)]));
  return null;
}

function metadataText(value: RawAttributeValue | undefined): string | undefined {
  return value?.S ?? value?.N ?? (value?.BOOL !== undefined ? String(value.BOOL) : undefined);
}

/** The members that pass `filter`, as agents, by target. */
export function discoverFrom(members: readonly CatalogMember[], filter: DiscoveryFilter = {}): DiscoveredAgent[] {
  const wanted = Object.entries(filter.metadata ?? {});
  // Only targets the registry has put into their group (a rotation state it wrote, not `absent`):
  // a lease EC2 did not admit, or one past the target quota, is never registered, and its
  // address (anything its writer chose) must not reach a caller through discovery either.
  const matching = members.filter((m) => inGroup(m) && wanted.every(([k, v]) => m.metadata !== undefined && Object.hasOwn(m.metadata, k) && metadataText(m.metadata[k]) === v));
  const health = filter.health ?? 'healthy';
  const healthy = matching.filter(isHealthyMember);
  const chosen = health === 'all' || (health === 'healthy-or-else-all' && healthy.length === 0) ? matching : healthy;
  return chosen
    .map((m) => ({
      capability: m.capability,
      target: m.target,
      address: m.address,
      port: m.port,
      agentId: m.agentId,
      status: m.status,
      ...(m.state !== undefined ? { state: m.state } : {}),
      ...(m.since !== undefined ? { since: m.since } : {}),
      ...(m.availabilityZone !== undefined ? { availabilityZone: m.availabilityZone } : {}),
      metadata: m.metadata ? (plainValue({ M: m.metadata }) as Record<string, unknown>) : {},
    }))
    .sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
}

/** A health filter from text (a flag, an option), refused with the allowed values. */
export function parseHealthFilter(text: string): HealthFilter {
  if ((HEALTH_FILTERS as readonly string[]).includes(text)) return text as HealthFilter;
  throw new ConfigError(`health filter ${JSON.stringify(text)} must be one of ${HEALTH_FILTERS.join(', ')}`);
}

/** `key=value` pairs (a flag given several times) as a metadata filter; a pair without `=` or with an empty key is refused. */
export function parseMetadataFilter(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError(`metadata filter ${JSON.stringify(pair)} must be key=value`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

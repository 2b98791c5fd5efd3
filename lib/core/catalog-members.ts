import { AddressPolicy } from './address-policy';
import { decodeLease, leaseKeyOf, rotationEntry } from './lease-codec';
import { routeLease } from './lease-routing';
import { LEASE_ATTR, Lease, RawItem, RoutingConfig } from './lease-schema';
import { CatalogMember, sameMember } from './registry-state';
import type { LeaseChangeRecord, RecordKind } from './stream-planner';

/**
 * The member index (registry-state.ts) as a function of the lease table: which entries a lease
 * wants, which leases a stream batch may have changed, and what a reconcile pass must repair.
 * Pure: the registry reads and writes, this decides.
 */

/**
 * The member index entries of a lease: one per group it is routed to, while it is held
 * (`expiresAt` > now; a draining lease too). An expired lease has none, so a crashed agent leaves
 * the index once a reconcile pass sees it expired, if its release did not take it out before.
 */
export function membersOfLease(lease: Lease, routing: RoutingConfig, nowSeconds: number): CatalogMember[] {
  if (lease.expiresAt <= nowSeconds) return [];
  return routeLease(lease, routing).memberships.map((m) => {
    const entry = rotationEntry(lease.rotation, m.capability);
    return {
      capability: m.capability,
      target: lease.target,
      address: lease.address,
      port: lease.port,
      agentId: lease.agentId,
      status: lease.status,
      registeredAt: lease.registeredAt,
      ...(entry ? { state: entry.state, since: entry.since } : {}),
      ...(lease.availabilityZone !== undefined ? { availabilityZone: lease.availabilityZone } : {}),
      ...(lease.metadata !== undefined ? { metadata: lease.metadata } : {}),
    };
  });
}

/** The entries an item (as read from the lease table; `undefined`: no item) wants; an invalid item wants none. */
export function membersOfItem(item: RawItem | undefined, policy: AddressPolicy, routing: RoutingConfig, nowSeconds: number): CatalogMember[] {
  if (item === undefined) return [];
  const decoded = decodeLease(item, policy);
  return decoded.ok ? membersOfLease(decoded.lease, routing, nowSeconds) : [];
}

/**
 * The leases a stream batch may have changed in the member index, each with the routed groups its
 * images named (where an entry may have to go). Heartbeats change nothing the index holds and are
 * left out: that is what keeps the index's cost to lease changes, never to renewals.
 */
export function catalogChanges(records: readonly LeaseChangeRecord[], kinds: readonly RecordKind[], routing: RoutingConfig): Map<string, Set<string>> {
  const changes = new Map<string, Set<string>>();
  records.forEach((record, i) => {
    if (kinds[i] === 'heartbeat') return;
    const key = record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
    if (key === undefined) return;
    const groups = changes.get(key) ?? new Set<string>();
    for (const image of [record.oldImage, record.newImage]) {
      for (const c of image?.[LEASE_ATTR.capabilities]?.SS ?? []) if (Object.hasOwn(routing.capabilities, c)) groups.add(c);
    }
    changes.set(key, groups);
  });
  return changes;
}

/** Index writes for one lease: entries to put (as the lease wants them) and groups whose entry goes. */
export interface MemberWrites {
  readonly puts: readonly CatalogMember[];
  readonly deletes: readonly { readonly capability: string; readonly target: string }[];
}

/** The writes that make a lease's entries what `wanted` says, given the groups an entry may be in (`known`). */
export function memberWrites(target: string, wanted: readonly CatalogMember[], known: Iterable<string>): MemberWrites {
  const keep = new Set(wanted.map((m) => m.capability));
  return { puts: wanted, deletes: [...new Set(known)].filter((c) => !keep.has(c)).map((capability) => ({ capability, target })) };
}

/** Every routed group's entries, as the leases of a scan want them. */
export function membersByGroup(items: readonly RawItem[], policy: AddressPolicy, routing: RoutingConfig, nowSeconds: number): Map<string, Map<string, CatalogMember>> {
  const out = new Map<string, Map<string, CatalogMember>>(Object.keys(routing.capabilities).map((c) => [c, new Map()]));
  for (const item of items) for (const m of membersOfItem(item, policy, routing, nowSeconds)) out.get(m.capability)?.set(m.target, m);
  return out;
}

/** One group's index as read, with when each entry's lease was read. */
export interface IndexedGroup {
  readonly members: readonly CatalogMember[];
  readonly readAt: ReadonlyMap<string, number>;
}

/**
 * The lease keys whose entries in `group` disagree with what a scan read at `scanReadAt` wants
 * (missing, different, or there without a lease that wants them), leaving out entries the index
 * holds from a read newer than the scan: the stream already brought those up to date.
 */
export function indexDrift(wanted: ReadonlyMap<string, CatalogMember>, indexed: IndexedGroup, scanReadAt: number): string[] {
  const have = new Map(indexed.members.map((m) => [m.target, m]));
  const newer = (target: string) => (indexed.readAt.get(target) ?? 0) > scanReadAt;
  const drift = new Set<string>();
  for (const [target, m] of wanted) {
    const h = have.get(target);
    if ((h === undefined || !sameMember(h, m)) && !newer(target)) drift.add(target);
  }
  for (const target of have.keys()) if (!wanted.has(target) && !newer(target)) drift.add(target);
  return [...drift].sort();
}

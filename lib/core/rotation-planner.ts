import { AddressPolicy, formatTarget } from './address-policy';
import { decodeLease, decodeRotation, leaseKeyOf, plausibleRotation, rotationEntry } from './lease-codec';
import { routeLease } from './lease-routing';
import { LEASE_ATTR, LeaseRotation, RawItem, RotationEntry, RotationState, ROTATION_STATES, RoutingConfig } from './lease-schema';
import type { TargetAction } from './lease-confirmation';
import { ObservedGroup, ObservedTarget, presenceOf } from './reconcile-planner';
import type { LeaseChangeRecord } from './stream-planner';

/**
 * The registry's `rotation` feedback (docs/lease-contract.md): which state each lease's target
 * is in, per capability's target group, and since when. Pure: from what the registry saw (its
 * own calls, its group reads, the stream's images) to the writes it should make. Every write is
 * made on change only and is conditional on the lease token it was planned from, so the lease
 * store turns a plan into `UpdateItem`s that never resurrect a released lease and never replace
 * a newer entry (`since` only moves forward).
 */

/** One `SET rotation.<capability>` the registry makes. */
export interface RotationWrite {
  /** The lease key. */
  readonly target: string;
  /** The token of the lease the write was planned from; the write is conditional on it. */
  readonly leaseToken: string;
  readonly capability: string;
  readonly entry: RotationEntry;
  /**
   * - `call`: what the registry's own Register/DeregisterTargets did (`initial`, `draining`);
   * - `observed`: a state a group read (DescribeTargetHealth) showed;
   * - `restored`: an entry the agent's PutItem dropped (re-acquire, takeover), written back.
   */
  readonly cause: 'call' | 'observed' | 'restored';
}

/** States in which a target is still registered in its group, whatever its health. */
const REGISTERED_STATES: readonly RotationState[] = ['initial', 'healthy', 'unhealthy', 'unused', 'unavailable'];

/**
 * The rotation state of a target as a group read reports it: ELB's own state, `absent` when the
 * target is not in the read (it left, or never joined) or reported not registered; `undefined`
 * for a state outside the contract (a future ELB state is not guessed at).
 */
export function rotationStateOf(target: Pick<ObservedTarget, 'state' | 'reason'> | undefined): RotationState | undefined {
  if (target === undefined || presenceOf(target) === 'absent') return 'absent';
  return (ROTATION_STATES as readonly string[]).includes(target.state) ? (target.state as RotationState) : undefined;
}

/** The lease's token and its well-formed `rotation`, when `item` is a valid lease held at `nowSeconds` (not expired). */
interface HeldLease {
  readonly target: string;
  readonly leaseToken: string;
  readonly rotation?: LeaseRotation;
  readonly capabilities: readonly { readonly capability: string; readonly targetGroupArn: string }[];
}

function heldLease(item: RawItem | undefined, nowMs: number, policy: AddressPolicy, routing: RoutingConfig): HeldLease | undefined {
  if (item === undefined) return undefined;
  const nowSeconds = Math.floor(nowMs / 1000);
  const decoded = decodeLease(item, policy);
  // An expired lease's holder is gone (or will write a new item): nothing to tell it.
  if (!decoded.ok || decoded.lease.expiresAt <= nowSeconds) return undefined;
  const lease = decoded.lease;
  // An entry dated in the future was not written by the registry's clock: unknown, so it is overwritten.
  const rotation = plausibleRotation(lease.rotation, nowMs);
  return {
    target: lease.target,
    leaseToken: lease.leaseToken,
    ...(rotation ? { rotation } : {}),
    capabilities: routeLease(lease, routing, nowSeconds).memberships.map((m) => ({ capability: m.capability, targetGroupArn: m.targetGroupArn })),
  };
}

/** Whether `entry` (what the lease says now) should be replaced by `state` observed at `atMs`. */
function isChange(entry: RotationEntry | undefined, state: RotationState, atMs: number): boolean {
  if (entry === undefined) return true;
  // A newer entry (another writer saw later) wins; the same state needs no write.
  return entry.state !== state && entry.since < atMs;
}

export interface ObservedRotationInput {
  /** Group reads, made at `observedAtMs` (before `items` were read). */
  readonly groups: readonly ObservedGroup[];
  /** Lease items read after the groups (a scan, or the leases of targets whose state changed). */
  readonly items: readonly RawItem[];
  /** Epoch ms the group reads started: the `since` of every state they show. */
  readonly observedAtMs: number;
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
}

/**
 * Reconcile and its rotation poll: for every lease held (active or draining, not expired), in
 * every routed group that was read, the state the read shows — `absent` when the target is not
 * in it — written when the lease says otherwise (or nothing) and its entry is older than the read.
 */
export function planObservedRotation(input: ObservedRotationInput): RotationWrite[] {
  const byGroup = new Map<string, Map<string, ObservedTarget>>();
  for (const g of input.groups) byGroup.set(g.targetGroupArn, new Map(g.targets.map((t) => [formatTarget(t.id, t.port), t])));
  const writes: RotationWrite[] = [];
  for (const item of input.items) {
    const lease = heldLease(item, input.observedAtMs, input.policy, input.routing);
    if (lease === undefined) continue;
    for (const { capability, targetGroupArn } of lease.capabilities) {
      const group = byGroup.get(targetGroupArn);
      if (group === undefined) continue; // not read: nothing known
      const state = rotationStateOf(group.get(lease.target));
      if (state === undefined || !isChange(rotationEntry(lease.rotation, capability), state, input.observedAtMs)) continue;
      writes.push({ target: lease.target, leaseToken: lease.leaseToken, capability, entry: { state, since: input.observedAtMs }, cause: 'observed' });
    }
  }
  return writes;
}

/** A Register/DeregisterTargets the registry made that landed, with the lease read that confirmed it. */
export interface LandedCall {
  readonly action: TargetAction;
  readonly targetGroupArn: string;
  readonly target: string;
  /** The consistent read the call was confirmed (or undone) with; `undefined` = no item. */
  readonly item: RawItem | undefined;
}

/**
 * Sync and reconcile record what their own calls did, at `atMs` (after the calls returned): a
 * registration leaves the target `initial` (health checks start) unless the lease already shows
 * it registered — RegisterTargets leaves a registered target as it is; a deregistration leaves
 * it `draining` unless the lease already shows it draining or absent.
 */
export function planCallRotation(calls: readonly LandedCall[], atMs: number, policy: AddressPolicy, routing: RoutingConfig): RotationWrite[] {
  const writes: RotationWrite[] = [];
  for (const call of calls) {
    const lease = heldLease(call.item, atMs, policy, routing);
    const group = lease?.capabilities.find((c) => c.targetGroupArn === call.targetGroupArn);
    if (lease === undefined || group === undefined || lease.target !== call.target) continue;
    const entry = rotationEntry(lease.rotation, group.capability);
    const state: RotationState = call.action === 'register' ? 'initial' : 'draining';
    const already = call.action === 'register' ? REGISTERED_STATES : (['draining', 'absent'] as const);
    if (entry !== undefined && (already as readonly RotationState[]).includes(entry.state)) continue;
    if (entry !== undefined && entry.since >= atMs) continue;
    writes.push({ target: lease.target, leaseToken: lease.leaseToken, capability: group.capability, entry: { state, since: atMs }, cause: 'call' });
  }
  return writes;
}

/**
 * Sync: an agent's acquire is a PutItem that replaces the whole item, so after a re-acquire or
 * a takeover the lease has lost the registry's entries while its target is where it was. For
 * each target whose last new image in the batch lacks an entry some image of the batch had
 * (for a capability the lease still lists), that entry is written back into the new lease.
 */
export function planRestoredRotation(records: readonly LeaseChangeRecord[], policy: AddressPolicy, routing: RoutingConfig): RotationWrite[] {
  const perTarget = new Map<string, { known: Map<string, RotationEntry>; last: RawItem | undefined; writtenAt?: number }>();
  for (const record of records) {
    const key = record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
    if (key === undefined) continue;
    let seen = perTarget.get(key);
    if (seen === undefined) perTarget.set(key, (seen = { known: new Map(), last: undefined }));
    // Entries dated after the record was written were not written by the registry: never restored.
    const writtenAtMs = record.writtenAtSeconds === undefined ? Infinity : (record.writtenAtSeconds + 1) * 1000;
    for (const image of [record.oldImage, record.newImage]) {
      for (const [capability, entry] of Object.entries(plausibleRotation(decodeRotation(image?.[LEASE_ATTR.rotation]).rotation, writtenAtMs) ?? {})) {
        const known = seen.known.get(capability);
        if (known === undefined || entry.since > known.since) seen.known.set(capability, entry);
      }
    }
    seen.last = record.newImage;
    seen.writtenAt = record.writtenAtSeconds;
  }
  const writes: RotationWrite[] = [];
  for (const { known, last, writtenAt } of perTarget.values()) {
    if (last === undefined || known.size === 0) continue;
    // Judged when the image was written: a record read late must not skip a lease that was held then.
    const lease = heldLease(last, (writtenAt ?? 0) * 1000, policy, routing);
    if (lease === undefined) continue;
    for (const { capability } of lease.capabilities) {
      const entry = known.get(capability);
      if (entry === undefined || rotationEntry(lease.rotation, capability) !== undefined) continue;
      writes.push({ target: lease.target, leaseToken: lease.leaseToken, capability, entry, cause: 'restored' });
    }
  }
  return writes;
}

/** One write per (lease, token, capability): the one with the newest `since` (a call's state beats an older restored one). */
export function mergeRotationWrites(...lists: readonly (readonly RotationWrite[])[]): RotationWrite[] {
  const best = new Map<string, RotationWrite>();
  for (const w of lists.flat()) {
    const id = `${w.target} ${w.leaseToken} ${w.capability}`;
    const known = best.get(id);
    if (known === undefined || w.entry.since > known.entry.since) best.set(id, w);
  }
  return [...best.values()];
}

/** Each (group, target key) a read lists, with its ELB state: what a rotation poll compares between reads. */
export function groupStates(groups: readonly ObservedGroup[]): Map<string, string> {
  const states = new Map<string, string>();
  for (const g of groups) for (const t of g.targets) states.set(`${g.targetGroupArn} ${formatTarget(t.id, t.port)}`, t.state);
  return states;
}

/**
 * Lease keys whose state changed between two reads of the same groups (a new state, joined, or
 * left), in groups read both times: only their leases need reading. `previous` undefined (the
 * first poll) counts every target listed now.
 */
export function changedTargets(previous: ReadonlyMap<string, string> | undefined, current: ReadonlyMap<string, string>, groupsRead: ReadonlySet<string>): Set<string> {
  const changed = new Set<string>();
  const keyOf = (member: string) => member.slice(member.indexOf(' ') + 1);
  for (const [member, state] of current) if (previous?.get(member) !== state) changed.add(keyOf(member));
  for (const member of previous?.keys() ?? []) {
    if (!current.has(member) && groupsRead.has(member.slice(0, member.indexOf(' ')))) changed.add(keyOf(member));
  }
  return changed;
}

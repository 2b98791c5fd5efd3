import { AddressPolicy, formatTarget } from './address-policy';
import { decodeLease, decodeRotation, encodeRotationEntry, leaseKeyOf, plausibleRotation, rotationEntry } from './lease-codec';
import { routeLease } from './lease-routing';
import { LEASE_ATTR, LeaseRotation, RawItem, RotationEntry, RotationState, ROTATION_STATES, RoutingConfig } from './lease-schema';
import type { TargetAction } from './lease-confirmation';
import { ObservedGroup, ObservedTarget, presenceOf } from './reconcile-planner';
import type { PlannedEntry } from './registry-writes';
import { LeaseChangeRecord, membershipsAt } from './stream-planner';

/**
 * The registry's `rotation` feedback (docs/lease-contract.md): which state each lease's target
 * is in, per capability's target group, and since when. Pure: from what the registry saw (its
 * own calls, its group reads, the stream's images) to the entries it should write. Every entry
 * is written on change only and conditional on the lease token it was planned from; all the
 * entries of one lease go out in one UpdateItem (lib/core/registry-writes.ts), which never
 * resurrects a released lease and never replaces a newer entry (`since` only moves forward).
 */

/** One `rotation` entry the registry plans for a lease (written with the lease's other entries in one UpdateItem). */
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
  /** Whether the item it was planned from held `rotation` as a map (see `PlannedEntry.mapPresent`). @default true */
  readonly mapPresent?: boolean;
}

/** States that say the target is out of its group: what a registration makes untrue. */
const OUT_STATES: readonly RotationState[] = ['draining', 'absent'];

/** Whether `item` carries a `rotation` map (looked at without decoding). */
const hasRotationMap = (item: RawItem | undefined): boolean => item?.[LEASE_ATTR.rotation]?.M !== undefined;

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
  readonly status: 'active' | 'draining';
  readonly rotation?: LeaseRotation;
  /** Whether the stored `rotation` held entries dated in the future (left out of `rotation`): they are overwritten. */
  readonly forged?: true;
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
    status: lease.status,
    ...(rotation ? { rotation } : {}),
    ...(rotation === lease.rotation ? {} : { forged: true }),
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
 * Except `absent` into an active lease without an entry for that group: its target has not left,
 * it has not joined yet (its registration is usually under way, a batch behind the read), and no
 * entry already reads "not serving"; that write would be a write and a stream record per new
 * lease, followed by another once the target shows up. A draining lease does get it: its agent
 * waits for an out-of-rotation entry before it stops.
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
      const entry = rotationEntry(lease.rotation, capability);
      if (state === undefined || !isChange(entry, state, input.observedAtMs)) continue;
      if (state === 'absent' && entry === undefined && lease.status === 'active' && lease.forged !== true) continue;
      writes.push({ target: lease.target, leaseToken: lease.leaseToken, capability, entry: { state, since: input.observedAtMs }, cause: 'observed', mapPresent: hasRotationMap(item) });
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
 * Sync and reconcile record what their own calls did, at `atMs` (after the calls returned), where
 * the lease would otherwise say the opposite:
 * - a deregistration leaves the target `draining`, unless the lease already says `draining` or
 *   `absent` — how an agent that drained learns at once that it is out of rotation;
 * - a registration leaves it `initial` only over an entry that says the target is out (`draining`,
 *   `absent`: a lease drained and made active again, a target reconcile put back). A lease with
 *   no entry (every fresh acquire) gets nothing: its first entry comes from the first group read
 *   that sees it, usually already `healthy`, so registering costs no write.
 * `planned` are the entries the same pass writes anyway (what its reads showed, what it restores):
 * the lease's entry is judged as it will be after them. Merge the result in first
 * (`mergeRotationWrites(calls, planned)`): a call's entry replaces a read of the same instant.
 */
export function planCallRotation(
  calls: readonly LandedCall[],
  atMs: number,
  policy: AddressPolicy,
  routing: RoutingConfig,
  planned: readonly RotationWrite[] = [],
): RotationWrite[] {
  const plannedFor = new Map<string, RotationWrite>();
  for (const w of planned) {
    const id = `${w.target} ${w.leaseToken} ${w.capability}`;
    const known = plannedFor.get(id);
    if (known === undefined || w.entry.since > known.entry.since) plannedFor.set(id, w);
  }
  const plannedTargets = new Set(planned.map((w) => w.target));
  const writes: RotationWrite[] = [];
  for (const call of calls) {
    // The common case, cheaply: a registration into a lease with no entry (and none planned) needs nothing.
    if (call.action === 'register' && !hasRotationMap(call.item) && !plannedTargets.has(call.target)) continue;
    const lease = heldLease(call.item, atMs, policy, routing);
    const group = lease?.capabilities.find((c) => c.targetGroupArn === call.targetGroupArn);
    if (lease === undefined || group === undefined || lease.target !== call.target) continue;
    const stored = rotationEntry(lease.rotation, group.capability);
    // Another writer saw the target after the call returned: its entry stands.
    if (stored !== undefined && stored.since >= atMs) continue;
    // This pass's own reads came before its calls: the call's state replaces what they showed.
    const next = plannedFor.get(`${lease.target} ${lease.leaseToken} ${group.capability}`)?.entry;
    const entry = next !== undefined && (stored === undefined || next.since >= stored.since) ? next : stored;
    const out = entry !== undefined && OUT_STATES.includes(entry.state);
    if (call.action === 'register' ? !out : out) continue;
    const state: RotationState = call.action === 'register' ? 'initial' : 'draining';
    writes.push({ target: lease.target, leaseToken: lease.leaseToken, capability: group.capability, entry: { state, since: atMs }, cause: 'call', mapPresent: hasRotationMap(call.item) });
  }
  return writes;
}

/**
 * Sync: an agent's acquire is a PutItem that replaces the whole item, so after a re-acquire or
 * a takeover the lease has lost the registry's entries while its target is where it was. For
 * each target whose last new image in the batch has no `rotation` while an earlier image of the
 * batch had one, the newest entry of each capability the lease still lists and whose group
 * membership the batch did not change is written back into the new lease (a group the target
 * joined or left gets what its call or the next group read says). Records are looked at without
 * decoding; only those few targets' images are decoded.
 */
export function planRestoredRotation(records: readonly LeaseChangeRecord[], policy: AddressPolicy, routing: RoutingConfig): RotationWrite[] {
  const keyOf = (record: LeaseChangeRecord) => record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
  // Candidates, cheaply: a record whose new image has no `rotation` where its old image had one,
  // or a new image without one after an earlier record of the key had one (released, then acquired).
  const hadRotation = new Set<string>();
  const candidates = new Set<string>();
  for (const record of records) {
    const oldHas = record.oldImage?.[LEASE_ATTR.rotation] !== undefined;
    const newHas = record.newImage?.[LEASE_ATTR.rotation] !== undefined;
    if (!oldHas && !newHas && (record.newImage === undefined || hadRotation.size === 0)) continue;
    const key = keyOf(record);
    if (key === undefined) continue;
    if (record.newImage !== undefined && !newHas && (oldHas || hadRotation.has(key))) candidates.add(key);
    if (oldHas || newHas) hadRotation.add(key);
  }
  if (candidates.size === 0) return [];
  const perTarget = new Map<string, { first: LeaseChangeRecord; last: LeaseChangeRecord; images: { item: RawItem; writtenAtMs: number }[] }>();
  for (const record of records) {
    const key = keyOf(record);
    if (key === undefined || !candidates.has(key)) continue;
    const seen = perTarget.get(key);
    // Entries dated after the record was written were not written by the registry: never restored.
    const writtenAtMs = record.writtenAtSeconds === undefined ? Infinity : (record.writtenAtSeconds + 1) * 1000;
    const images = [record.oldImage, record.newImage].filter((i): i is RawItem => i?.[LEASE_ATTR.rotation] !== undefined).map((item) => ({ item, writtenAtMs }));
    if (seen === undefined) perTarget.set(key, { first: record, last: record, images });
    else {
      seen.last = record;
      seen.images.push(...images);
    }
  }
  const writes: RotationWrite[] = [];
  for (const { first, last, images } of perTarget.values()) {
    const image = last.newImage;
    if (image === undefined || images.length === 0 || image[LEASE_ATTR.rotation] !== undefined) continue;
    // Judged when the image was written: a record read late must not skip a lease that was held then.
    const lease = heldLease(image, (last.writtenAtSeconds ?? 0) * 1000, policy, routing);
    if (lease === undefined) continue;
    const known = new Map<string, RotationEntry>();
    for (const old of images) {
      for (const [capability, entry] of Object.entries(plausibleRotation(decodeRotation(old.item[LEASE_ATTR.rotation]).rotation, old.writtenAtMs) ?? {})) {
        const seen = known.get(capability);
        if (seen === undefined || entry.since > seen.since) known.set(capability, entry);
      }
    }
    const before = new Set(membershipsAt(first.oldImage, first.newImage ? first.writtenAtSeconds : undefined, policy, routing).map((m) => m.targetGroupArn));
    const after = new Set(membershipsAt(image, last.writtenAtSeconds, policy, routing).map((m) => m.targetGroupArn));
    for (const { capability, targetGroupArn } of lease.capabilities) {
      const entry = known.get(capability);
      if (entry === undefined || !before.has(targetGroupArn) || !after.has(targetGroupArn)) continue;
      writes.push({ target: lease.target, leaseToken: lease.leaseToken, capability, entry, cause: 'restored', mapPresent: false });
    }
  }
  return writes;
}

/** The entries of rotation writes, as the registry's write path takes them (lib/core/registry-writes.ts). */
export function rotationEntries(writes: readonly RotationWrite[]): PlannedEntry[] {
  return writes.map((w) => ({
    target: w.target,
    leaseToken: w.leaseToken,
    entry: { attribute: LEASE_ATTR.rotation, key: w.capability, value: encodeRotationEntry(w.entry), since: w.entry.since },
    mapPresent: w.mapPresent ?? true,
  }));
}

/** One write per (lease, token, capability): the one with the newest `since`; of equals, the first listed. */
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

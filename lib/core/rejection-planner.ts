import { AddressPolicy } from './address-policy';
import { heartbeatExpiry, leaseKeyOf } from './lease-codec';
import { routeItem } from './lease-routing';
import { HEARTBEAT_ATTRS, LEASE_ATTR, RawAttributeValue, RawItem, REGISTRY_ATTRS, RoutingConfig } from './lease-schema';
import { decodeRejection, FACT_REASONS, REJECTION_REASON_OF, rejectionVerdict, RejectionVerdict, sameVerdict, STORED_ONLY_REASONS, StoredRejection } from './rejection';
import type { LeaseRejection } from './errors';
import type { LeaseChangeRecord, RecordKind } from './stream-planner';

/**
 * The registry's `rejection` writes (docs/lease-contract.md): from what the registry read of a
 * lease to the write that tells its writer why it is refused, or takes the reason away once it is
 * routed as written. Pure. A write is planned only when the verdict differs from what the lease
 * holds (reason, message, capabilities), never into an expired lease, and always conditional on
 * the item the verdict was judged on: its `leaseToken` and its `renewedAt` as read (or their
 * absence), so a verdict on an older write never lands on a newer one. It rides the registry's
 * one write per lease (lib/core/registry-writes.ts) beside that lease's `rotation` entries.
 */

/** One `SET rejection = :r` or `REMOVE rejection` the registry makes. */
export interface RejectionWrite {
  /** The lease key. */
  readonly target: string;
  /** The item's `leaseToken` as read (any scalar; undefined when it has none): the write's condition. */
  readonly leaseToken: RawAttributeValue | undefined;
  /** The item's `renewedAt` as read (undefined when it has none): the write's condition too. */
  readonly renewedAt: RawAttributeValue | undefined;
  /** What to write; undefined removes the attribute (the lease is now routed as written). */
  readonly rejection?: StoredRejection;
  /** The item the verdict was judged on: what a write that lost a race compares the lease with ({@link retryRejection}). */
  readonly judged: RawItem;
}

/** What validation and routing find wrong with an item, as the attribute says it; undefined when nothing. */
export function verdictOf(item: RawItem, policy: AddressPolicy, routing: RoutingConfig, nowSeconds?: number): RejectionVerdict | undefined {
  return rejectionVerdict(routeItem(item, policy, routing, nowSeconds).rejections);
}

/**
 * A stored rejection from AWS facts (`FACT_REASONS`: not admitted, over the quota) that stands
 * while nobody decides it again: the item alone cannot say whether it still holds. Undefined when
 * the item holds none, or when validation refuses the whole item (that verdict replaces it).
 */
export function standingFactRejection(item: RawItem, found: readonly LeaseRejection[]): StoredRejection | undefined {
  const stored = decodeRejection(item[LEASE_ATTR.rejection]);
  if (stored === undefined || !FACT_REASONS.includes(stored.reason) || found.some((r) => r.capability === undefined)) return undefined;
  return stored;
}

/**
 * The registry's stored verdict as the CLI's lenses take it: for a reason they cannot judge with
 * the routing they read (`STORED_ONLY_REASONS`), unless what they found refuses the whole item or
 * already gives that reason.
 */
export function lensStoredRejection(item: RawItem, found: readonly LeaseRejection[]): StoredRejection | undefined {
  const stored = decodeRejection(item[LEASE_ATTR.rejection]);
  if (stored === undefined || !STORED_ONLY_REASONS.includes(stored.reason)) return undefined;
  if (found.some((r) => r.capability === undefined || REJECTION_REASON_OF[r.reason] === stored.reason)) return undefined;
  return stored;
}

/**
 * What the registry holds against `item` now, as `status` and `leases` show it: what validation
 * and routing find at `nowSeconds`, or the registry's stored verdict for what they cannot judge
 * ({@link lensStoredRejection}).
 */
export function currentVerdict(item: RawItem, policy: AddressPolicy, routing: RoutingConfig, nowSeconds: number): RejectionVerdict | undefined {
  const found = routeItem(item, policy, routing, nowSeconds).rejections;
  const standing = lensStoredRejection(item, found);
  if (standing === undefined) return rejectionVerdict(found);
  const { since: _since, ...verdict } = standing;
  return verdict;
}

/** A value a condition can compare as it was read: absent, or a scalar (S or N). */
function conditionable(value: RawAttributeValue | undefined): boolean {
  if (value === undefined) return true;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
  return keys.length === 1 && (typeof value.S === 'string' || typeof value.N === 'string');
}

/** True when the item's `expiresAt` is a number of seconds at or before `nowSeconds`: its writer is gone. */
function expired(item: RawItem, nowSeconds: number): boolean {
  const text = item[LEASE_ATTR.expiresAt]?.N;
  if (typeof text !== 'string' || !/^\d+(\.\d+)?$/.test(text)) return false;
  return Number(text) <= nowSeconds;
}

export interface RejectionPlanInput {
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
  /** Epoch ms: `since` of a new verdict, and the expiry check. */
  readonly nowMs: number;
  /** A rejection read earlier for the same key (an older image): its `since` is kept when it says the same. */
  readonly earlier?: StoredRejection;
  /** What validation and routing already found in this item (the stream planner judged it): not judged again. */
  readonly found?: readonly LeaseRejection[];
  /**
   * What the registry decided about the lease from AWS facts this pass (admission by EC2, the
   * target quota): their refusals, or none when every decision let it through. `undefined` when
   * nothing was decided: a stored fact-based rejection (`FACT_REASONS`) then stands, as the
   * item alone cannot say whether it still holds.
   */
  readonly facts?: readonly LeaseRejection[];
}

/**
 * The registry's decisions from AWS facts by lease key, for {@link planRejection}'s `facts`: each
 * key of `refusals`, with its refusals, and each key in `passed` (every decision let it through)
 * with none. A key both refused and passed (one capability admitted, another not) keeps its
 * refusals.
 */
export function factDecisions(refusals: readonly LeaseRejection[], passed: Iterable<string>): Map<string, LeaseRejection[]> {
  const decided = new Map<string, LeaseRejection[]>();
  for (const key of passed) decided.set(key, []);
  for (const r of refusals) {
    if (r.target === undefined) continue;
    const known = decided.get(r.target);
    if (known === undefined) decided.set(r.target, [r]);
    else known.push(r);
  }
  return decided;
}

/** The write one item needs, if any. */
export function planRejection(item: RawItem | undefined, input: RejectionPlanInput): RejectionWrite | undefined {
  const target = leaseKeyOf(item);
  if (item === undefined || target === undefined || expired(item, Math.floor(input.nowMs / 1000))) return undefined;
  const leaseToken = item[LEASE_ATTR.leaseToken];
  const renewedAt = item[LEASE_ATTR.renewedAt];
  if (!conditionable(leaseToken) || !conditionable(renewedAt)) return undefined; // nothing to pin the write to
  const found = input.found ?? routeItem(item, input.policy, input.routing, Math.floor(input.nowMs / 1000)).rejections;
  const raw = item[LEASE_ATTR.rejection];
  const stored = decodeRejection(raw);
  // A refusal from AWS facts nobody decided on again stands, unless the item itself is refused whole.
  if (input.facts === undefined && standingFactRejection(item, found) !== undefined) return undefined;
  const verdict = rejectionVerdict([...found, ...(input.facts ?? [])]);
  if (verdict === undefined) return raw === undefined ? undefined : { target, leaseToken, renewedAt, judged: item };
  if (stored !== undefined && sameVerdict(verdict, stored)) return undefined;
  const since = input.earlier !== undefined && sameVerdict(verdict, input.earlier) ? input.earlier.since : Math.floor(input.nowMs);
  return { target, leaseToken, renewedAt, rejection: { ...verdict, since }, judged: item };
}

const NOT_JUDGED = new Set<string>([...HEARTBEAT_ATTRS, ...REGISTRY_ATTRS]);

function sameAttribute(a: RawAttributeValue | undefined, b: RawAttributeValue | undefined): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Whether `current` says what `judged` said, for a verdict: every attribute the same but the
 * registry's own and the heartbeat's, and those either the same or both in the contract's shape
 * (a heartbeat that turned `expiresAt` into milliseconds may change the verdict).
 */
function sameForVerdict(judged: RawItem, current: RawItem): boolean {
  for (const k of new Set([...Object.keys(judged), ...Object.keys(current)])) {
    if (!NOT_JUDGED.has(k) && !sameAttribute(judged[k], current[k])) return false;
  }
  const beatsAlike = HEARTBEAT_ATTRS.every((k) => sameAttribute(judged[k], current[k]));
  return beatsAlike || (heartbeatExpiry(judged) !== undefined && heartbeatExpiry(current) !== undefined);
}

/**
 * A rejection write whose condition failed, against `current` (the lease as DynamoDB returned it,
 * still held by the same token): `outdated` when the agent has written something the verdict may
 * not hold for (its own record is judged next), `superseded` when the lease already says it (or,
 * for a removal, has none), else the write again on the `renewedAt` read now — a heartbeat that
 * landed in between changes nothing the verdict is about.
 */
export function retryRejection(write: RejectionWrite, current: RawItem): RejectionWrite | 'superseded' | 'outdated' {
  if (!sameForVerdict(write.judged, current)) return 'outdated';
  const stored = current[LEASE_ATTR.rejection];
  if (write.rejection === undefined ? stored === undefined : sameVerdict(decodeRejection(stored), write.rejection)) return 'superseded';
  const renewedAt = current[LEASE_ATTR.renewedAt];
  if (!conditionable(renewedAt)) return 'outdated';
  return { ...write, renewedAt };
}

/** Heartbeats and the registry's own writes cannot change a verdict, unless they touch what it may be about. */
const QUIET_KINDS: readonly RecordKind[] = ['heartbeat', 'registry'];

/**
 * Nothing to judge after quiet records alone: an image without a `rejection` whose heartbeat
 * attributes look like the contract's (a heartbeat that turned `expiresAt` into milliseconds is
 * judged). Keeps the heartbeat path free of a second decode.
 */
function quietlyValid(image: RawItem | undefined): boolean {
  return (
    image !== undefined &&
    image[LEASE_ATTR.rejection] === undefined &&
    /^\d{1,11}$/.test(image[LEASE_ATTR.expiresAt]?.N ?? '') &&
    /^\d{1,16}$/.test(image[LEASE_ATTR.renewedAt]?.N ?? '')
  );
}

/**
 * The registry's own write coming back: a `registry` record whose heartbeat attributes did not
 * move either (the stream planner's kind says nothing else changed).
 */
function ownWrite(record: LeaseChangeRecord, kind: RecordKind | undefined): boolean {
  return kind === 'registry' && HEARTBEAT_ATTRS.every((k) => sameAttribute(record.oldImage?.[k], record.newImage?.[k]));
}

/**
 * Stream sync: for each key, its last new image in the batch (a deletion plans nothing). A
 * verdict some earlier image of the batch already carried keeps that `since` (an acquire's
 * PutItem drops the attribute; the registry writes the same verdict back, not a new one). With
 * the batch's record kinds, a key whose records are all heartbeats or registry writes is judged
 * only when its image could hold news (see `quietlyValid`): its verdict was planned with the record
 * that made it, and reconcile repeats what a failed write missed. A key whose records are all the
 * registry's own writes coming back is never judged again (unless the batch decided facts about
 * it): the item is what was judged, and a verdict that came out different (one that moved with
 * the clock or a count) would be written again, its record judged again, a write per lease per
 * batch for ever.
 */
export function planRejectionsFromRecords(
  records: readonly LeaseChangeRecord[],
  policy: AddressPolicy,
  routing: RoutingConfig,
  nowMs: number,
  kinds?: readonly RecordKind[],
  lastFound?: ReadonlyMap<string, readonly LeaseRejection[]>,
  facts?: ReadonlyMap<string, readonly LeaseRejection[]>,
): RejectionWrite[] {
  const perKey = new Map<string, { last: RawItem | undefined; earlier?: StoredRejection; quiet: boolean; own: boolean }>();
  records.forEach((record, index) => {
    const key = record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
    if (key === undefined) return;
    const seen = perKey.get(key) ?? { last: undefined, quiet: true, own: true };
    seen.quiet &&= kinds !== undefined && QUIET_KINDS.includes(kinds[index]);
    seen.own &&= ownWrite(record, kinds?.[index]);
    for (const image of [record.oldImage, record.newImage]) {
      const stored = decodeRejection(image?.[LEASE_ATTR.rejection]);
      if (stored !== undefined && (seen.earlier === undefined || stored.since >= seen.earlier.since)) seen.earlier = stored;
    }
    seen.last = record.newImage;
    perKey.set(key, seen);
  });
  const writes: RejectionWrite[] = [];
  for (const [key, { last, earlier, quiet, own }] of perKey) {
    const decided = facts?.get(key);
    if (decided === undefined && (own || (quiet && quietlyValid(last)))) continue;
    const found = lastFound?.get(key);
    const write = planRejection(last, { policy, routing, nowMs, ...(earlier ? { earlier } : {}), ...(found ? { found } : {}), ...(decided ? { facts: decided } : {}) });
    if (write) writes.push(write);
  }
  return writes;
}

/** Reconcile: every item of its scan. */
export function planRejectionsFromScan(
  items: readonly RawItem[],
  policy: AddressPolicy,
  routing: RoutingConfig,
  nowMs: number,
  facts?: ReadonlyMap<string, readonly LeaseRejection[]>,
): RejectionWrite[] {
  return items.flatMap((item) => {
    const decided = facts?.get(leaseKeyOf(item) ?? '');
    return planRejection(item, { policy, routing, nowMs, ...(decided ? { facts: decided } : {}) }) ?? [];
  });
}

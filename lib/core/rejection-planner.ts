import { AddressPolicy } from './address-policy';
import { leaseKeyOf } from './lease-codec';
import { routeItem } from './lease-routing';
import { LEASE_ATTR, RawAttributeValue, RawItem, RoutingConfig } from './lease-schema';
import { decodeRejection, rejectionVerdict, RejectionVerdict, sameVerdict, StoredRejection } from './rejection';
import type { LeaseChangeRecord } from './stream-planner';

/**
 * The registry's `rejection` writes (docs/lease-contract.md): from what the registry read of a
 * lease to the write that tells its writer why it is refused, or takes the reason away once it is
 * routed as written. Pure. A write is planned only when the verdict differs from what the lease
 * holds (reason, message, capabilities), never into an expired lease, and always conditional on
 * the item the verdict was judged on: its `leaseToken` and its `renewedAt` as read (or their
 * absence), so a verdict on an older write never lands on a newer one.
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
}

/** What validation and routing find wrong with an item, as the attribute says it; undefined when nothing. */
export function verdictOf(item: RawItem, policy: AddressPolicy, routing: RoutingConfig): RejectionVerdict | undefined {
  return rejectionVerdict(routeItem(item, policy, routing).rejections);
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
}

/** The write one item needs, if any. */
export function planRejection(item: RawItem | undefined, input: RejectionPlanInput): RejectionWrite | undefined {
  const target = leaseKeyOf(item);
  if (item === undefined || target === undefined || expired(item, Math.floor(input.nowMs / 1000))) return undefined;
  const leaseToken = item[LEASE_ATTR.leaseToken];
  const renewedAt = item[LEASE_ATTR.renewedAt];
  if (!conditionable(leaseToken) || !conditionable(renewedAt)) return undefined; // nothing to pin the write to
  const verdict = verdictOf(item, input.policy, input.routing);
  const raw = item[LEASE_ATTR.rejection];
  const stored = decodeRejection(raw);
  if (verdict === undefined) return raw === undefined ? undefined : { target, leaseToken, renewedAt };
  if (stored !== undefined && sameVerdict(verdict, stored)) return undefined;
  const since = input.earlier !== undefined && sameVerdict(verdict, input.earlier) ? input.earlier.since : Math.floor(input.nowMs);
  return { target, leaseToken, renewedAt, rejection: { ...verdict, since } };
}

/**
 * Stream sync: for each key, its last new image in the batch (a deletion plans nothing). A
 * verdict some earlier image of the batch already carried keeps that `since` (an acquire's
 * PutItem drops the attribute; the registry writes the same verdict back, not a new one).
 */
export function planRejectionsFromRecords(records: readonly LeaseChangeRecord[], policy: AddressPolicy, routing: RoutingConfig, nowMs: number): RejectionWrite[] {
  const perKey = new Map<string, { last: RawItem | undefined; earlier?: StoredRejection }>();
  for (const record of records) {
    const key = record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
    if (key === undefined) continue;
    const seen = perKey.get(key) ?? { last: undefined };
    for (const image of [record.oldImage, record.newImage]) {
      const stored = decodeRejection(image?.[LEASE_ATTR.rejection]);
      if (stored !== undefined && (seen.earlier === undefined || stored.since >= seen.earlier.since)) seen.earlier = stored;
    }
    seen.last = record.newImage;
    perKey.set(key, seen);
  }
  const writes: RejectionWrite[] = [];
  for (const { last, earlier } of perKey.values()) {
    const write = planRejection(last, { policy, routing, nowMs, ...(earlier ? { earlier } : {}) });
    if (write) writes.push(write);
  }
  return writes;
}

/** Reconcile: every item of its scan. */
export function planRejectionsFromScan(items: readonly RawItem[], policy: AddressPolicy, routing: RoutingConfig, nowMs: number): RejectionWrite[] {
  return items.flatMap((item) => planRejection(item, { policy, routing, nowMs }) ?? []);
}

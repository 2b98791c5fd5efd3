import { AddressPolicy } from './address-policy';
import { LeaseRejection } from './errors';
import { heartbeatExpiry, isLive, leaseKeyOf } from './lease-codec';
import { Membership, routeItem } from './lease-routing';
import { HEARTBEAT_ATTRS, LEASE_ATTR, RawItem, REGISTRY_ATTRS, RoutingConfig, TargetRef } from './lease-schema';

/** One lease-table change, as a stream record carries it. */
export interface LeaseChangeRecord {
  /** Identifies the record for ReportBatchItemFailures. */
  readonly id: string;
  /** The item key (`target`); taken from the images when absent. */
  readonly key?: string;
  readonly oldImage?: RawItem;
  readonly newImage?: RawItem;
  /** Epoch seconds the change was written (stream ApproximateCreationDateTime). Liveness is judged at this instant, never at the wall clock. */
  readonly writtenAtSeconds?: number;
  /** True when DynamoDB's TTL sweeper removed the item. */
  readonly removedByTtl?: boolean;
}

/**
 * - `heartbeat`: only `expiresAt`/`renewedAt` changed; `registry`: only attributes the registry
 *   writes (`REGISTRY_ATTRS`: `rotation`, `rejection`; perhaps the heartbeat's too) changed — the
 *   registry's own write coming back. Neither changes routing: no ELB call, no confirming read, no
 *   write, and their images are not decoded here (the rejection planner decodes one only when it
 *   holds a `rejection` to confirm).
 * - `noop`: another change that leaves the target's groups as they were (a re-acquire by the
 *   holder, new metadata); `registration`, `change`: the groups changed; `release`,
 *   `ttl-deletion`: the item was deleted by its holder or by DynamoDB's TTL.
 */
export type RecordKind = 'registration' | 'heartbeat' | 'registry' | 'noop' | 'release' | 'ttl-deletion' | 'change';

/** Every record kind, in the order reports list them. */
export const RECORD_KINDS: readonly RecordKind[] = ['registration', 'heartbeat', 'registry', 'noop', 'release', 'ttl-deletion', 'change'];

export interface TargetGroupChanges {
  readonly targetGroupArn: string;
  readonly capability: string;
  readonly register: readonly TargetRef[];
  readonly deregister: readonly TargetRef[];
  /**
   * Changes needed only if this batch is a retry: a partly failed batch is delivered again from
   * its first unapplied record, with the records written since appended, so a target whose
   * change had landed comes back with its records from before that change. Its coalesced plan,
   * which starts from the state before its first record, then misses what the landed change did:
   * an agent that joined (registered) and left (the appended record) plans nothing, and its target
   * would stay in the group. These are the targets some earlier record of the span may have left
   * otherwise than its last one wants: registered in a group the last image routes out of
   * (`deregister`), or taken out of one it routes to (`register`). The handler sends them when
   * their group makes that call anyway, or when the group shows they are needed.
   */
  readonly ifReplayed: { readonly register: readonly TargetRef[]; readonly deregister: readonly TargetRef[] };
}

export interface StreamPlan {
  /** Per target group, only groups with something to do. */
  readonly groups: readonly TargetGroupChanges[];
  /** For each changed target key, the index of its first record in the batch (replay starts there). */
  readonly firstRecordIndex: ReadonlyMap<string, number>;
  /** For each changed target key, the index of its last record in the batch: the change is that record's outcome. */
  readonly lastRecordIndex: ReadonlyMap<string, number>;
  readonly kinds: readonly RecordKind[];
  /**
   * Rejections found in new images of records that make or change a lease (old images were judged
   * when they were new; a heartbeat or a registry write changes nothing a rejection is about).
   */
  readonly rejections: readonly LeaseRejection[];
  /**
   * For each key whose last image was decoded (not one of only heartbeats and registry writes),
   * what validation and routing found in it (none for a deletion): the registry's `rejection`
   * verdict, without decoding again.
   */
  readonly lastFound: ReadonlyMap<string, readonly LeaseRejection[]>;
}

function recordKey(record: LeaseChangeRecord): string | undefined {
  return record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
}

interface ImageView {
  /** The groups the image puts its target in, judged at the view's time. */
  readonly memberships: readonly Membership[];
  /**
   * The groups the target may still be in because of this image: judged by status alone. An image
   * that has expired by the time of the record that replaces it was live when it was written, and
   * its expiry is no stream record: nothing took its target out since (reconcile may have, and a
   * deregistration of a target not registered is a no-op).
   */
  readonly mayBeIn: readonly Membership[];
  readonly rejections: readonly LeaseRejection[];
}

function viewOf(image: RawItem | undefined, at: number | undefined, policy: AddressPolicy, routing: RoutingConfig): ImageView {
  // With the view's time: a lease expiring beyond the deployment's maximum TTL routes nowhere.
  const routed = routeItem(image, policy, routing, at);
  const active = routed.lease !== undefined && routed.lease.status === 'active';
  const live = active && (at === undefined || isLive(routed.lease!, at));
  return { memberships: live ? routed.memberships : [], mayBeIn: active ? routed.memberships : [], rejections: routed.rejections };
}

/**
 * The groups `image` puts its target in, judged at `at` (epoch seconds; `undefined`: by status
 * alone, as for the image a removal took away): the planner's view of one image.
 */
export function membershipsAt(image: RawItem | undefined, at: number | undefined, policy: AddressPolicy, routing: RoutingConfig): readonly Membership[] {
  return viewOf(image, at, policy, routing).memberships;
}

/** Deep equality of attribute values (as a stream image holds them), without allocating. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  let keys = 0;
  for (const k in a) {
    keys++;
    if (!(k in b) || !sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  for (const _k in b) keys--;
  return keys === 0;
}

const HEARTBEAT = new Set(HEARTBEAT_ATTRS);
const REGISTRY = new Set<string>(REGISTRY_ATTRS);

interface NonRoutingChange {
  /** `registry`: an attribute the registry writes changed; `heartbeat`: only `expiresAt`/`renewedAt` did (or nothing). */
  readonly kind: 'registry' | 'heartbeat';
  /** Whether a heartbeat attribute changed (the expiry may have moved). */
  readonly heartbeat: boolean;
}

/** What a MODIFY changed, when only attributes that never route did; `undefined` when anything else changed. Decodes nothing. */
function nonRoutingChange(old: RawItem, next: RawItem): NonRoutingChange | undefined {
  let registry = false;
  let heartbeat = false;
  const routes = (k: string): boolean => {
    if (REGISTRY.has(k)) registry = true;
    else if (HEARTBEAT.has(k)) heartbeat = true;
    else return true;
    return false;
  };
  for (const k in old) if (!sameValue(old[k], next[k]) && routes(k)) return undefined;
  for (const k in next) if (!(k in old) && routes(k)) return undefined;
  return { kind: registry ? 'registry' : 'heartbeat', heartbeat };
}

function isActive(image: RawItem): boolean {
  return image[LEASE_ATTR.status]?.S === 'active';
}

/** Live at `at` as {@link viewOf} judges it, for an image whose expiry is `expiresAt` (well formed). */
function liveAt(image: RawItem, expiresAt: number, at: number | undefined): boolean {
  return isActive(image) && (at === undefined || expiresAt > at);
}

/**
 * The cheapest classification, before any decoding: a MODIFY that changed only attributes that
 * never route, and that cannot have moved the lease across its expiry (both images' heartbeat
 * attributes well formed, live alike at the record's time), leaves its target in exactly the
 * groups it was in: images otherwise identical are valid or invalid together and route alike.
 * `undefined`: the record is planned in full.
 */
function cheapChange(record: LeaseChangeRecord): NonRoutingChange | undefined {
  const { oldImage, newImage } = record;
  if (oldImage === undefined || newImage === undefined) return undefined;
  const change = nonRoutingChange(oldImage, newImage);
  if (change === undefined) return undefined;
  if (change.heartbeat) {
    const before = heartbeatExpiry(oldImage);
    const after = heartbeatExpiry(newImage);
    if (before === undefined || after === undefined) return undefined;
    const wasLive = liveAt(oldImage, before, record.writtenAtSeconds);
    if (wasLive !== liveAt(newImage, after, record.writtenAtSeconds)) return undefined;
    // An active lease that had expired before this heartbeat, renewed to a past expiry again: its
    // target may still be in its groups (see ImageView.mayBeIn), so the record is planned in full.
    if (!wasLive && isActive(oldImage)) return undefined;
  }
  return change;
}

/** A span of cheap records only: the same lease throughout, but each record judged at its own time, so the expiry may still fall between two of them. */
function livenessMoved(first: LeaseChangeRecord, last: LeaseChangeRecord): boolean {
  if (first === last) return false;
  const before = heartbeatExpiry(first.oldImage!);
  const after = heartbeatExpiry(last.newImage!);
  // A chain that never changed a heartbeat attribute may carry malformed ones: plan it in full.
  if (before === undefined || after === undefined) return true;
  return liveAt(first.oldImage!, before, first.writtenAtSeconds) !== liveAt(last.newImage!, after, last.writtenAtSeconds);
}

function byGroup(memberships: readonly Membership[]): Map<string, Membership> {
  return new Map(memberships.map((m) => [m.targetGroupArn, m]));
}

/** A target's records in one batch: the first and the last, with their views where they were planned in full. */
interface TargetSpan {
  readonly first: number;
  readonly firstRecord: LeaseChangeRecord;
  readonly before?: ImageView;
  last: number;
  lastRecord: LeaseChangeRecord;
  after?: ImageView;
  /**
   * The views of the new images between the first record and the last (planned in full ones
   * only: a cheap record routes as the one before it): states an earlier delivery of a prefix of
   * the span may have left the target in.
   */
  readonly between: ImageView[];
  /** Every record so far was classified cheaply: the images differ in no routing attribute. */
  cheapOnly: boolean;
}

/**
 * Turns an ordered batch of lease changes into per-target-group register/deregister sets.
 * Records of the same target are coalesced in order: only the difference between the
 * membership before the target's first record and after its last one is planned, so a
 * heartbeat or a flap inside one batch costs no ELB call. Records that change only attributes
 * that never route (heartbeats, the registry's own writes coming back) are classified without
 * decoding their images. Pure and deterministic: replaying a batch yields the same plan.
 */
export function planStreamBatch(records: readonly LeaseChangeRecord[], policy: AddressPolicy, routing: RoutingConfig): StreamPlan {
  const kinds: RecordKind[] = [];
  const rejections: LeaseRejection[] = [];
  const perTarget = new Map<string, TargetSpan>();

  records.forEach((record, index) => {
    const cheapRecord = cheapChange(record);
    // The registry's own write coming back (no heartbeat attribute changed) judges nothing again:
    // a lease that expired before it is reconcile's to take out, as one that expired with no
    // record at all. It takes no part in its target's span.
    if (cheapRecord?.kind === 'registry' && !cheapRecord.heartbeat) {
      kinds.push('registry');
      return;
    }
    const cheap = cheapRecord?.kind;
    let before: ImageView | undefined;
    let after: ImageView | undefined;
    if (cheap !== undefined) kinds.push(cheap);
    else {
      // A removal takes out whatever the old image may have left in a group (mayBeIn), expired or
      // not: TTL only deletes expired items, and their targets must leave now, not at the next reconcile.
      before = viewOf(record.oldImage, record.writtenAtSeconds, policy, routing);
      after = viewOf(record.newImage, record.writtenAtSeconds, policy, routing);
      kinds.push(classify(record, before, after));
      rejections.push(...after.rejections);
    }

    const key = recordKey(record);
    if (key === undefined) return;
    const seen = perTarget.get(key);
    if (seen) {
      if (seen.after !== undefined) seen.between.push(seen.after);
      seen.last = index;
      seen.lastRecord = record;
      seen.after = after;
      seen.cheapOnly &&= cheap !== undefined;
    } else {
      perTarget.set(key, { first: index, firstRecord: record, before, last: index, lastRecord: record, after, between: [], cheapOnly: cheap !== undefined });
    }
  });

  const groups = new Map<string, { capability: string; register: TargetRef[]; deregister: TargetRef[]; ifReplayed: { register: TargetRef[]; deregister: TargetRef[] } }>();
  const groupOf = (m: Membership) => {
    let g = groups.get(m.targetGroupArn);
    if (!g) groups.set(m.targetGroupArn, (g = { capability: m.capability, register: [], deregister: [], ifReplayed: { register: [], deregister: [] } }));
    return g;
  };
  const firstRecordIndex = new Map<string, number>();
  const lastRecordIndex = new Map<string, number>();
  const lastFound = new Map<string, readonly LeaseRejection[]>();
  for (const [key, span] of perTarget) {
    const { firstRecord, lastRecord } = span;
    if (span.after !== undefined) lastFound.set(key, span.after.rejections);
    if (span.cheapOnly && !livenessMoved(firstRecord, lastRecord)) continue;
    const before = span.before ?? viewOf(firstRecord.oldImage, firstRecord.writtenAtSeconds, policy, routing);
    const after = span.after ?? viewOf(lastRecord.newImage, lastRecord.writtenAtSeconds, policy, routing);
    lastFound.set(key, after.rejections);
    // Registered: what the last image routes and the first did not route while live (a target whose
    // lease expired in between is registered again: a no-op if it never left). Deregistered: what
    // the first image may have left in a group and the last does not route.
    const was = byGroup(before.memberships);
    const mayBeIn = byGroup(before.mayBeIn);
    const is = byGroup(after.memberships);
    let changed = false;
    for (const [arn, m] of is) {
      if (!was.has(arn)) {
        groupOf(m).register.push(m.target);
        changed = true;
      }
    }
    for (const [arn, m] of mayBeIn) {
      if (!is.has(arn)) {
        groupOf(m).deregister.push(m.target);
        changed = true;
      }
    }
    // What a landed earlier delivery of a prefix of the span may have done that the plan above,
    // starting from the first record, does not undo (see TargetGroupChanges.ifReplayed).
    const replayIn = new Map<string, Membership>();
    const replayOut = new Map<string, Membership>();
    for (const view of span.between) {
      for (const m of view.mayBeIn) if (!is.has(m.targetGroupArn) && !mayBeIn.has(m.targetGroupArn)) replayOut.set(m.targetGroupArn, m);
      const there = byGroup(view.memberships);
      for (const [arn, m] of is) if (was.has(arn) && !there.has(arn)) replayIn.set(arn, m);
    }
    for (const m of replayOut.values()) groupOf(m).ifReplayed.deregister.push(m.target);
    for (const m of replayIn.values()) groupOf(m).ifReplayed.register.push(m.target);
    changed ||= replayOut.size > 0 || replayIn.size > 0;
    if (changed) {
      firstRecordIndex.set(key, span.first);
      lastRecordIndex.set(key, span.last);
    }
  }

  return {
    groups: [...groups].map(([targetGroupArn, g]) => ({ targetGroupArn, ...g })),
    firstRecordIndex,
    lastRecordIndex,
    kinds,
    rejections,
    lastFound,
  };
}

function classify(record: LeaseChangeRecord, before: ImageView, after: ImageView): RecordKind {
  if (!record.newImage) return record.removedByTtl ? 'ttl-deletion' : 'release';
  const was = new Set(before.memberships.map((m) => m.targetGroupArn));
  const is = new Set(after.memberships.map((m) => m.targetGroupArn));
  const sameGroups = was.size === is.size && [...was].every((a) => is.has(a));
  const change = record.oldImage ? nonRoutingChange(record.oldImage, record.newImage) : undefined;
  // Only attributes that never route changed, and still the groups did (the lease crossed its expiry, or its heartbeat attributes became valid or not).
  if (change !== undefined) return sameGroups ? change.kind : 'change';
  if (sameGroups) return 'noop';
  return was.size === 0 ? 'registration' : 'change';
}

/**
 * Given the targets whose ELB change failed, the index of the first record not applied:
 * the batch is retried from there so per-target order holds. Undefined when all applied.
 */
export function firstUnappliedRecord(plan: StreamPlan, failedTargetKeys: Iterable<string>): number | undefined {
  let first: number | undefined;
  for (const key of failedTargetKeys) {
    const index = plan.firstRecordIndex.get(key);
    if (index !== undefined && (first === undefined || index < first)) first = index;
  }
  return first;
}

/**
 * Which of a group's replay-only changes of one action (TargetGroupChanges.ifReplayed) to send.
 * All of them when the group makes that call anyway (`planned` targets of the action): they ride
 * it. Otherwise only those the group, as ELB lists it, contradicts: a registration of a target it
 * does not hold registered, a deregistration of one it does (`registered`: the keys ELB holds
 * registered, draining ones not; `undefined` when the group could not be read: all of them, since
 * a call too many is a no-op and a change too few stays wrong until reconcile).
 */
export function replayChangesToSend(action: 'register' | 'deregister', planned: number, replayOnly: readonly TargetRef[], registered?: ReadonlySet<string>): TargetRef[] {
  if (planned > 0 || registered === undefined) return [...replayOnly];
  return replayOnly.filter((t) => registered.has(t.key) === (action === 'deregister'));
}

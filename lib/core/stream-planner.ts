import { AddressPolicy } from './address-policy';
import { LeaseRejection } from './errors';
import { isLive, leaseKeyOf } from './lease-codec';
import { Membership, routeItem } from './lease-routing';
import { HEARTBEAT_ATTRS, RawItem, REGISTRY_ATTRS, RoutingConfig, TargetRef } from './lease-schema';

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
 * - `heartbeat`: only `expiresAt`/`renewedAt` changed; `rotation`: only the registry's feedback
 *   (`rotation`, `rejection`; perhaps with the heartbeat's attributes) changed. Neither can change routing: no ELB call,
 *   no confirming read.
 * - `noop`: another change that leaves the target's groups as they were (a re-acquire by the
 *   holder, new metadata); `registration`, `change`: the groups changed; `release`,
 *   `ttl-deletion`: the item was deleted by its holder or by DynamoDB's TTL.
 */
export type RecordKind = 'registration' | 'heartbeat' | 'rotation' | 'noop' | 'release' | 'ttl-deletion' | 'change';

/** Every record kind, in the order reports list them. */
export const RECORD_KINDS: readonly RecordKind[] = ['registration', 'heartbeat', 'rotation', 'noop', 'release', 'ttl-deletion', 'change'];

export interface TargetGroupChanges {
  readonly targetGroupArn: string;
  readonly capability: string;
  readonly register: readonly TargetRef[];
  readonly deregister: readonly TargetRef[];
}

export interface StreamPlan {
  /** Per target group, only groups with something to do. */
  readonly groups: readonly TargetGroupChanges[];
  /** For each changed target key, the index of its first record in the batch (replay starts there). */
  readonly firstRecordIndex: ReadonlyMap<string, number>;
  /** For each changed target key, the index of its last record in the batch: the change is that record's outcome. */
  readonly lastRecordIndex: ReadonlyMap<string, number>;
  readonly kinds: readonly RecordKind[];
  /** Rejections found in new images (old images were judged when they were new). */
  readonly rejections: readonly LeaseRejection[];
  /** For each key, what validation and routing found in its last new image (none for a deletion): the registry's `rejection` verdict, without decoding again. */
  readonly lastFound: ReadonlyMap<string, readonly LeaseRejection[]>;
}

function recordKey(record: LeaseChangeRecord): string | undefined {
  return record.key ?? leaseKeyOf(record.newImage) ?? leaseKeyOf(record.oldImage);
}

interface ImageView {
  readonly memberships: readonly Membership[];
  readonly rejections: readonly LeaseRejection[];
}

function viewOf(image: RawItem | undefined, at: number | undefined, policy: AddressPolicy, routing: RoutingConfig): ImageView {
  const routed = routeItem(image, policy, routing);
  const live = routed.lease !== undefined && (at === undefined ? routed.lease.status === 'active' : isLive(routed.lease, at));
  return { memberships: live ? routed.memberships : [], rejections: routed.rejections };
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** True when only attributes in `ignored` differ. */
function sameExcept(a: RawItem, b: RawItem, ignored: readonly string[]): boolean {
  for (const k in a) if (!ignored.includes(k) && !sameValue(a[k], b[k])) return false;
  for (const k in b) if (!(k in a) && !ignored.includes(k)) return false;
  return true;
}

/** Attributes whose change alone never changes routing: the heartbeat's and the registry's own (`rotation`, `rejection`). */
const NOT_ROUTING_ATTRS: readonly string[] = [...HEARTBEAT_ATTRS, ...REGISTRY_ATTRS];

function byGroup(memberships: readonly Membership[]): Map<string, Membership> {
  return new Map(memberships.map((m) => [m.targetGroupArn, m]));
}

/**
 * Turns an ordered batch of lease changes into per-target-group register/deregister sets.
 * Records of the same target are coalesced in order: only the difference between the
 * membership before the target's first record and after its last one is planned, so a
 * heartbeat or a flap inside one batch costs no ELB call. Pure and deterministic: replaying
 * a batch yields the same plan.
 */
export function planStreamBatch(records: readonly LeaseChangeRecord[], policy: AddressPolicy, routing: RoutingConfig): StreamPlan {
  const kinds: RecordKind[] = [];
  const rejections: LeaseRejection[] = [];
  const perTarget = new Map<string, { first: number; last: number; before: ImageView; after: ImageView }>();

  records.forEach((record, index) => {
    // A removal takes out whatever the old image routed, expired or not: TTL only deletes expired
    // items, and their targets must leave the group now rather than at the next reconcile.
    const before = viewOf(record.oldImage, record.newImage ? record.writtenAtSeconds : undefined, policy, routing);
    const after = viewOf(record.newImage, record.writtenAtSeconds, policy, routing);
    const kind = classify(record, before, after);
    // The registry's own rotation write changes nothing a rejection is about: it was reported with the write that made the lease.
    if (kind !== 'rotation') rejections.push(...after.rejections);
    kinds.push(kind);

    const key = recordKey(record);
    if (key === undefined) return;
    const seen = perTarget.get(key);
    if (seen) {
      seen.after = after;
      seen.last = index;
    } else perTarget.set(key, { first: index, last: index, before, after });
  });

  const groups = new Map<string, { capability: string; register: TargetRef[]; deregister: TargetRef[] }>();
  const groupOf = (m: Membership) => {
    let g = groups.get(m.targetGroupArn);
    if (!g) groups.set(m.targetGroupArn, (g = { capability: m.capability, register: [], deregister: [] }));
    return g;
  };
  const firstRecordIndex = new Map<string, number>();
  const lastRecordIndex = new Map<string, number>();
  const lastFound = new Map<string, readonly LeaseRejection[]>();
  for (const [key, { first, last, before, after }] of perTarget) {
    lastFound.set(key, after.rejections);
    const was = byGroup(before.memberships);
    const is = byGroup(after.memberships);
    let changed = false;
    for (const [arn, m] of is) {
      if (!was.has(arn)) {
        groupOf(m).register.push(m.target);
        changed = true;
      }
    }
    for (const [arn, m] of was) {
      if (!is.has(arn)) {
        groupOf(m).deregister.push(m.target);
        changed = true;
      }
    }
    if (changed) {
      firstRecordIndex.set(key, first);
      lastRecordIndex.set(key, last);
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
  if (record.oldImage && sameExcept(record.oldImage, record.newImage, HEARTBEAT_ATTRS)) return sameGroups ? 'heartbeat' : 'change';
  if (record.oldImage && sameExcept(record.oldImage, record.newImage, NOT_ROUTING_ATTRS)) return sameGroups ? 'rotation' : 'change';
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

import type { HolderFacts } from '../core/admission';
import { TargetAction } from '../core/lease-confirmation';
import { memberKey } from '../core/reconcile-planner';

/**
 * What a handler remembers between invocations of one warm Lambda container (or one local-mode
 * process). Nothing here is needed for correctness: a cold start forgets it all, and the
 * handlers then merely spend a call they could have saved or, for held removals, wait one more
 * reconcile pass — the safe direction. Every map is bounded; the oldest entries go first.
 */

/** Entries one map keeps before it forgets the oldest. */
export const MEMORY_ENTRIES = 20_000;

class BoundedMap<V> {
  private readonly map = new Map<string, V>();
  public constructor(private readonly max: number) {}
  public get(key: string): V | undefined {
    return this.map.get(key);
  }
  public set(key: string, value: V): void {
    this.map.delete(key); // re-insert: the newest entry is the last one forgotten
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }
  public delete(key: string): void {
    this.map.delete(key);
  }
  public get size(): number {
    return this.map.size;
  }
  public entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }
}

/**
 * Targets ELB refused for good (ValidationError, InvalidTarget), by group and lease version:
 * not sent again until the lease changes (a re-acquire, a new zone or capability list), so a
 * bad target neither spends the account's Register budget every pass nor drags the good
 * targets of its call into one call each.
 */
export class RefusedTargets {
  private readonly versions: BoundedMap<string>;
  public constructor(max = MEMORY_ENTRIES) {
    this.versions = new BoundedMap(max);
  }
  public remember(targetGroupArn: string, key: string, version: string): void {
    this.versions.set(memberKey(targetGroupArn, key), version);
  }
  /** `version` is asked for only when the target was refused before (a lease version is a digest of the item). */
  public isRefused(targetGroupArn: string, key: string, version: () => string): boolean {
    const refused = this.versions.get(memberKey(targetGroupArn, key));
    return refused !== undefined && refused === version();
  }
  public forget(targetGroupArn: string, key: string): void {
    this.versions.delete(memberKey(targetGroupArn, key));
  }
  /** {@link memberKey} → lease version, the shape `planReconcile` takes. */
  public snapshot(): ReadonlyMap<string, string> {
    return new Map(this.versions.entries());
  }
  public get size(): number {
    return this.versions.size;
  }
}

/**
 * Sync: the last change applied to each (group, target) and the stream record it was the
 * outcome of. A batch delivered again after a partial failure (Lambda retries from the first
 * failed record, which brings back records whose changes had landed) finds those changes here
 * and does not send them again; a later record of the same target is a new decision.
 */
export class AppliedChanges {
  private readonly last: BoundedMap<{ action: TargetAction; recordId: string }>;
  public constructor(max = MEMORY_ENTRIES) {
    this.last = new BoundedMap(max);
  }
  public remember(targetGroupArn: string, key: string, action: TargetAction, recordId: string): void {
    this.last.set(memberKey(targetGroupArn, key), { action, recordId });
  }
  public alreadyApplied(targetGroupArn: string, key: string, action: TargetAction, recordId: string): boolean {
    const seen = this.last.get(memberKey(targetGroupArn, key));
    return seen !== undefined && seen.action === action && seen.recordId === recordId;
  }
}

/** How long EC2's answer about an address is used before EC2 is asked again. */
export const ADMISSION_CACHE_MS = 30_000;

/**
 * EC2's answers about addresses (who holds each, or nobody), for {@link ADMISSION_CACHE_MS}: a
 * lease that comes back (a re-acquire, a flap) within it costs no EC2 call, and an address
 * reused by another interface is seen within it.
 */
export class AdmissionCache {
  private readonly answers: BoundedMap<{ facts: HolderFacts | null; at: number }>;
  public constructor(
    private readonly maxAgeMs = ADMISSION_CACHE_MS,
    max = MEMORY_ENTRIES,
  ) {
    this.answers = new BoundedMap(max);
  }
  /** The answer about `id` no older than the cache's age at `now`; `undefined` when there is none. */
  public get(id: string, now: number): HolderFacts | null | undefined {
    const answer = this.answers.get(id);
    return answer !== undefined && now - answer.at < this.maxAgeMs ? answer.facts : undefined;
  }
  public set(id: string, facts: HolderFacts | null, now: number): void {
    this.answers.set(id, { facts, at: now });
  }
}

/**
 * Sync: how many targets each load balancer holds, as this container last counted them (every
 * group read) plus what its own calls changed since. Other shards' containers register too, so
 * it is recounted when it is old and a load balancer is near its quota.
 */
export interface TargetCount {
  /** Load balancer (see lib/core/target-quota.ts `loadBalancerOf`) → its targets; unset before the first count. */
  perLoadBalancer?: Map<string, number>;
  /** Epoch ms of the last count. */
  countedAt?: number;
}

/** Container state of the sync handler. */
export interface SyncMemory {
  readonly refused: RefusedTargets;
  readonly applied: AppliedChanges;
  readonly admission: AdmissionCache;
  readonly targetCount: TargetCount;
}

/** Container state of the reconcile handler. */
export interface ReconcileMemory {
  readonly refused: RefusedTargets;
  /** {@link memberKey}s of removals the safety valve held back in the last pass. */
  heldLastPass: ReadonlySet<string>;
  readonly admission: AdmissionCache;
  /** {@link memberKey}s of registered targets the last pass found not admitted: removed if this pass agrees. */
  notAdmittedLastPass: ReadonlySet<string>;
}

export function newSyncMemory(): SyncMemory {
  return { refused: new RefusedTargets(), applied: new AppliedChanges(), admission: new AdmissionCache(), targetCount: {} };
}

export function newReconcileMemory(): ReconcileMemory {
  return { refused: new RefusedTargets(), heldLastPass: new Set(), admission: new AdmissionCache(), notAdmittedLastPass: new Set() };
}

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

/** Container state of the sync handler. */
export interface SyncMemory {
  readonly refused: RefusedTargets;
  readonly applied: AppliedChanges;
}

/** Container state of the reconcile handler. */
export interface ReconcileMemory {
  readonly refused: RefusedTargets;
  /** {@link memberKey}s of removals the safety valve held back in the last pass. */
  heldLastPass: ReadonlySet<string>;
}

export function newSyncMemory(): SyncMemory {
  return { refused: new RefusedTargets(), applied: new AppliedChanges() };
}

export function newReconcileMemory(): ReconcileMemory {
  return { refused: new RefusedTargets(), heldLastPass: new Set() };
}

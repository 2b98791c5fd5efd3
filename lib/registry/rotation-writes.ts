import { mapLimit } from '../core/concurrency';
import { LeaseStoreError } from '../core/errors';
import type { RejectionWrite } from '../core/rejection-planner';
import type { RotationWrite } from '../core/rotation-planner';
import { LeaseStore } from '../aws/lease-store';

/** Rotation writes a handler makes at once (one UpdateItem each, usually). */
export const ROTATION_WRITES_AT_A_TIME = 16;

/** What a handler's `rotation` writes did (docs/lease-contract.md). */
export interface RotationWriteReport {
  readonly planned: number;
  readonly written: number;
  /** The lease already held this entry or a newer one: nothing written. */
  readonly superseded: number;
  /** The lease was released or re-acquired (another token) meanwhile: nothing written, the new lease gets its own. */
  readonly gone: number;
  /** DynamoDB failed: the entry is written again by the next reconcile pass that sees the state. */
  readonly failed: number;
  readonly firstError?: LeaseStoreError;
}

export const NO_ROTATION_WRITES: RotationWriteReport = { planned: 0, written: 0, superseded: 0, gone: 0, failed: 0 };

/**
 * Makes the planned writes, each conditional on its lease token (see `LeaseStore.writeRotation`).
 * Never throws: rotation is feedback for agents, and a failed write must not fail the batch or
 * the pass that made the ELB calls (it is retried by what observes the state next).
 */
export async function writeRotations(store: LeaseStore, writes: readonly RotationWrite[]): Promise<RotationWriteReport> {
  if (writes.length === 0) return NO_ROTATION_WRITES;
  const counts = { written: 0, superseded: 0, gone: 0, failed: 0 };
  let firstError: LeaseStoreError | undefined;
  await mapLimit(writes, ROTATION_WRITES_AT_A_TIME, async (w) => {
    try {
      counts[await store.writeRotation(w.target, w.leaseToken, w.capability, w.entry)]++;
    } catch (error) {
      counts.failed++;
      firstError ??= error instanceof LeaseStoreError ? error : new LeaseStoreError(String(error), { cause: error });
    }
  });
  return { planned: writes.length, ...counts, ...(firstError ? { firstError } : {}) };
}

/** What a handler's `rejection` writes did (docs/lease-contract.md, "Rejections"). */
export interface RejectionWriteReport {
  readonly planned: number;
  readonly written: number;
  /** The item changed since it was judged (the agent wrote it again): nothing written; its own record is judged next. */
  readonly changed: number;
  /** DynamoDB failed: written by the next pass (reconcile) that judges the lease. */
  readonly failed: number;
  readonly firstError?: LeaseStoreError;
}

export const NO_REJECTION_WRITES: RejectionWriteReport = { planned: 0, written: 0, changed: 0, failed: 0 };

/**
 * Makes the planned `rejection` writes (the registry's other feedback to agents, beside
 * `rotation`), each conditional on the item it was judged on. Never throws, for the same reason
 * as `writeRotations`.
 */
export async function writeRejections(store: LeaseStore, writes: readonly RejectionWrite[]): Promise<RejectionWriteReport> {
  if (writes.length === 0) return NO_REJECTION_WRITES;
  const counts = { written: 0, changed: 0, failed: 0 };
  let firstError: LeaseStoreError | undefined;
  await mapLimit(writes, ROTATION_WRITES_AT_A_TIME, async (w) => {
    try {
      counts[await store.writeRejection(w)]++;
    } catch (error) {
      counts.failed++;
      firstError ??= error instanceof LeaseStoreError ? error : new LeaseStoreError(String(error), { cause: error });
    }
  });
  return { planned: writes.length, ...counts, ...(firstError ? { firstError } : {}) };
}

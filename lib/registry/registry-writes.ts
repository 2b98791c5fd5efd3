import { mapLimit } from '../core/concurrency';
import { LeaseStoreError } from '../core/errors';
import { byLease, PlannedEntry } from '../core/registry-writes';
import type { RejectionWrite } from '../core/rejection-planner';
import { LeaseStore } from '../aws/lease-store';

/**
 * Leases stream sync writes into at once (one UpdateItem each, usually). Its writes come after
 * the batch's ELB calls but before the handler returns, so the next batch waits for them: they
 * go out together.
 */
export const LEASE_WRITES_AT_A_TIME = 16;

/**
 * Leases the rotation poll and reconcile write what they observed into at once. Those writes
 * wait for nothing and nothing waits for them, but they share the table with the agents'
 * acquires and heartbeats and with the sync's confirming reads, which do wait: 16 at a time, a
 * poll that saw a join's worth of new `healthy` targets kept 16 requests ahead of every other
 * in DynamoDB Local's queue (each took 75–90 ms instead of 10–20), and B2's registrations
 * waited behind them (registrar-alone p99 1.8–2.1 s, 1.5 s without the writes). Four at a
 * time still writes ~250 leases a second there, far above what health changes produce, and a
 * first reconcile pass over 10 000 leases takes seconds, not minutes.
 */
export const OBSERVED_WRITES_AT_A_TIME = 4;

/** What a handler's writes into lease items did (docs/lease-contract.md: `rotation`, `rejection`). */
export interface RegistryWriteReport {
  /** Entries planned (after merging: one per lease, attribute and key), a lease's rejection counting as one. */
  readonly planned: number;
  /** Of those, rejections (written or removed whole, one per lease at most). */
  readonly rejections: number;
  readonly written: number;
  /** The lease already held this entry or a newer one: nothing written. */
  readonly superseded: number;
  /** The lease was released or re-acquired (another token) meanwhile: nothing written, the new lease gets its own. */
  readonly gone: number;
  /** Rejections judged on an item the agent has written since: nothing written; that write's record is judged. */
  readonly outdated: number;
  /** DynamoDB failed: the entry is written again by the next pass that sees the state. */
  readonly failed: number;
  /** Leases written into (one write each). */
  readonly leases: number;
  /** UpdateItem requests sent: one write unit each. */
  readonly updates: number;
  /** Of those, the ones that changed an item: each is one more stream record for the sync handler. */
  readonly changed: number;
  readonly firstError?: LeaseStoreError;
}

export const NO_REGISTRY_WRITES: RegistryWriteReport = { planned: 0, rejections: 0, written: 0, superseded: 0, gone: 0, outdated: 0, failed: 0, leases: 0, updates: 0, changed: 0 };

/**
 * Makes the planned writes: one per lease with every entry and the rejection planned for it (see
 * `LeaseStore.writeEntries`), `atATime` leases at a time. Never throws: the
 * registry's writes are feedback for agents, and a failed one must not fail the batch or the
 * pass that made the ELB calls (what observes the state next writes it again).
 */
export async function writeRegistryEntries(
  store: LeaseStore,
  planned: readonly PlannedEntry[],
  rejections: readonly RejectionWrite[] = [],
  atATime: number = LEASE_WRITES_AT_A_TIME,
): Promise<RegistryWriteReport> {
  if (planned.length === 0 && rejections.length === 0) return NO_REGISTRY_WRITES;
  const leases = byLease(planned, rejections);
  const counts = { written: 0, superseded: 0, gone: 0, outdated: 0, failed: 0, updates: 0, changed: 0 };
  let firstError: LeaseStoreError | undefined;
  await mapLimit(leases, atATime, async (write) => {
    try {
      const outcome = await store.writeEntries(write);
      counts.written += outcome.written;
      counts.superseded += outcome.superseded;
      counts.gone += outcome.gone;
      counts.outdated += outcome.outdated;
      counts.updates += outcome.updates;
      counts.changed += outcome.changed;
    } catch (error) {
      counts.failed += write.entries.length + (write.rejection ? 1 : 0);
      counts.updates++;
      firstError ??= error instanceof LeaseStoreError ? error : new LeaseStoreError(String(error), { cause: error });
    }
  });
  const entries = leases.reduce((n, l) => n + l.entries.length, 0);
  const told = leases.filter((l) => l.rejection !== undefined).length;
  return { planned: entries + told, rejections: told, leases: leases.length, ...counts, ...(firstError ? { firstError } : {}) };
}

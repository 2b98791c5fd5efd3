import { mapLimit, Width } from '../core/concurrency';
import { afterWrite, inFlightAllowed, OBSERVED_WRITE_PACING, startPacing, WritePacing, WritePacingLimits } from '../core/write-pacing';
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
 * Leases the rotation poll and reconcile write what they observed into at once, paced by the
 * writes' own latency (lib/core/write-pacing.ts): those writes wait for nothing and nothing waits
 * for them, but they share the table with the agents' acquires and heartbeats and with the sync's
 * confirming reads, which do wait. A fixed 16 kept a join's worth of `healthy` writes ahead of
 * every other request in DynamoDB Local's queue and B2's registrations waited behind them; a fixed
 * 4 made a first pass over 10 000 leases take ~30 s there. Paced, they start at 4, widen while
 * the table answers as fast as it can, and halve as soon as it answers slowly.
 */
export class PacedWrites {
  private pacing: WritePacing;
  public constructor(private readonly limits: WritePacingLimits = OBSERVED_WRITE_PACING) {
    this.pacing = startPacing(limits);
  }
  /** Writes that may be in flight now. */
  public readonly width = (): number => inFlightAllowed(this.pacing);
  public observe(latencyMs: number): void {
    this.pacing = afterWrite(this.pacing, latencyMs, this.limits);
  }
  /** The width reached (fractional: it grows by 1/width a write). */
  public get current(): number {
    return this.pacing.width;
  }
}

/** Paced writes for one poll or pass (each starts afresh: the table may have changed since). */
export const observedWrites = (): PacedWrites => new PacedWrites();

/**
 * The width of a handler's writes into leases (and catalog entries): a number, a function asked
 * before each write, or writes paced by their latency.
 * @default observedWrites() for the rotation poll and reconcile; LEASE_WRITES_AT_A_TIME for the sync
 */
export type WriteWidth = Width | PacedWrites;

/** The width as `mapLimit` takes it. */
export const widthOf = (w: WriteWidth): Width => (w instanceof PacedWrites ? w.width : w);

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
  atATime: WriteWidth = LEASE_WRITES_AT_A_TIME,
): Promise<RegistryWriteReport> {
  if (planned.length === 0 && rejections.length === 0) return NO_REGISTRY_WRITES;
  const leases = byLease(planned, rejections);
  const counts = { written: 0, superseded: 0, gone: 0, outdated: 0, failed: 0, updates: 0, changed: 0 };
  let firstError: LeaseStoreError | undefined;
  const paced = atATime instanceof PacedWrites ? atATime : undefined;
  await mapLimit(leases, widthOf(atATime), async (write) => {
    const started = performance.now();
    try {
      const outcome = await store.writeEntries(write);
      paced?.observe(performance.now() - started);
      counts.written += outcome.written;
      counts.superseded += outcome.superseded;
      counts.gone += outcome.gone;
      counts.outdated += outcome.outdated;
      counts.updates += outcome.updates;
      counts.changed += outcome.changed;
    } catch (error) {
      paced?.observe(performance.now() - started);
      counts.failed += write.entries.length + (write.rejection ? 1 : 0);
      counts.updates++;
      firstError ??= error instanceof LeaseStoreError ? error : new LeaseStoreError(String(error), { cause: error });
    }
  });
  const entries = leases.reduce((n, l) => n + l.entries.length, 0);
  const told = leases.filter((l) => l.rejection !== undefined).length;
  return { planned: entries + told, rejections: told, leases: leases.length, ...counts, ...(firstError ? { firstError } : {}) };
}

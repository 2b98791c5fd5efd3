import { AddressPolicy } from '../core/address-policy';
import { RoutingConfig } from '../core/lease-schema';
import { catalogChangesOfWrites } from '../core/catalog-members';
import { changedTargets, groupStates, planObservedRotation, rotationEntries } from '../core/rotation-planner';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { CatalogReport, NO_CATALOG_CHANGE, RegistryCatalog, updateCatalogForLeases } from './catalog-update';
import { readGroups } from './group-reads';
import { NO_REGISTRY_WRITES, observedWrites, RegistryWriteReport, widthOf, WriteWidth, writeRegistryEntries } from './registry-writes';

export interface RotationPollDeps {
  readonly elb: ElbTargets;
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** The capability catalog: the member entries of the leases a poll wrote, updated after the writes (the sync leaves their records to it). @default - no catalog */
  readonly catalog?: RegistryCatalog;
  /** Leases (and catalog entries) written at once. @default observedWrites(): paced by their latency, afresh each poll */
  readonly writesAtATime?: WriteWidth;
}

export interface RotationPollReport {
  /** DescribeTargetHealth calls: one per routed group. */
  readonly describeCalls: number;
  /** Leases read (BatchGetItem keys): only those of targets whose ELB state changed since the last poll. */
  readonly leasesRead: number;
  /** What changed, one UpdateItem per lease. */
  readonly registryWrites: RegistryWriteReport;
  /** The catalog step for the leases written. */
  readonly catalog: CatalogReport;
}

/**
 * Health changes faster than the reconcile schedule: each `pollOnce()` reads every routed group
 * (one DescribeTargetHealth each, from ELB's Describe* budget: burst 40, refill 10/s per
 * account), then reads the leases of only the targets whose state changed since the previous
 * poll, and writes what changed into their `rotation` (conditional on the token, as reconcile
 * does, one UpdateItem per lease). No ELB mutation, no scan. Between changes a poll costs G
 * describes and nothing else.
 * Keeps the last read in memory: one instance per poller.
 */
export class RotationPoll {
  private previous?: Map<string, string>;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private stopped = false;

  public constructor(private readonly deps: RotationPollDeps) {}

  /** @throws what the lease read throws (LeaseStoreError); a group that cannot be read is skipped this time. */
  public async pollOnce(): Promise<RotationPollReport> {
    const observedAtMs = (this.deps.now ?? Date.now)();
    const { groups, unread } = await readGroups(this.deps.elb, this.deps.routing);
    const current = groupStates(groups);
    const read = new Set(groups.map((g) => g.targetGroupArn));
    const changed = [...changedTargets(this.previous, current, read)];
    // Members of unread groups keep their last state, so their changes are seen once they are read again.
    if (this.previous) for (const [member, state] of this.previous) if (!read.has(member.slice(0, member.indexOf(' ')))) current.set(member, state);
    const describeCalls = groups.length + unread.length;
    if (changed.length === 0) {
      this.previous = current;
      return { describeCalls, leasesRead: 0, registryWrites: NO_REGISTRY_WRITES, catalog: NO_CATALOG_CHANGE };
    }
    const items = [...(await this.deps.store.getMany(changed)).values()].filter((item) => item !== undefined);
    const observed = planObservedRotation({ groups, items, observedAtMs, policy: this.deps.policy, routing: this.deps.routing });
    const entries = rotationEntries(observed);
    const { catalog: registry, store, routing, policy, now, writesAtATime = observedWrites() } = this.deps;
    const registryWrites = await writeRegistryEntries(store, entries, [], writesAtATime);
    const catalog =
      registry && registryWrites.changed > 0
        ? await updateCatalogForLeases({ ...registry, store, routing, policy, ...(now ? { now } : {}) }, catalogChangesOfWrites(entries, routing), widthOf(writesAtATime))
        : NO_CATALOG_CHANGE;
    // Only now: a poll whose reads or writes failed looks at the same changes again next time.
    if (registryWrites.failed === 0) this.previous = current;
    return { describeCalls, leasesRead: changed.length, registryWrites, catalog };
  }

  /**
   * Polls every `intervalMs`, one poll at a time; a failed poll goes to `onError` and is tried
   * again at the next tick. `lane` runs each poll (default: at once); local mode runs it in line
   * with the reconcile passes, whose writes into the same leases it would otherwise race.
   */
  public start(intervalMs: number, onError: (error: unknown) => void, lane: (poll: () => Promise<unknown>) => Promise<unknown> = (poll) => poll()): void {
    if (intervalMs <= 0 || this.stopped) return;
    this.timer = setTimeout(() => {
      // Stopped while waiting for the lane: no poll.
      this.polling = lane(() => (this.stopped ? Promise.resolve() : this.pollOnce()))
        .then(
          () => undefined,
          (error: unknown) => onError(error),
        )
        .finally(() => this.start(intervalMs, onError, lane));
    }, intervalMs);
  }

  /** Stops polling; resolves once a poll in flight has ended. */
  public async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
  }
}

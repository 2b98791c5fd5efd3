import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LeaseHeldError } from '../../lib/core/errors';
import { AgentLease } from '../../lib/sdk/agent-lease';
import { between, chance, Random, stream, weighted } from '../support/prng';

/**
 * A fleet of agents holding leases through the real SDK (`AgentLease`): each slot is one
 * address:port whose successive agent processes ("incarnations") acquire, renew (the SDK's own
 * timer), drain and re-activate, release, crash (stop renewing), get replaced by a process that
 * takes the address:port over, or leave for a while. Decisions come from a per-slot seeded stream.
 * Agents use loopback addresses 127.1.x.y, which local mode admits on any port (on AWS they would
 * need a network interface in the agents' security group); nothing listens there, nothing needs to.
 */

export type EndAction = 'release' | 'crash' | 'takeover' | 'leave';

export interface FleetOptions {
  readonly agents: number;
  readonly capabilities: readonly string[];
  readonly tableName: string;
  /** Shared by every agent; the harness logs their writes on it. */
  readonly client: DynamoDBClient;
  readonly ttlSeconds: number;
  readonly seed: number;
  /** How long an incarnation lives before its end action, seconds. */
  readonly lifetimeSeconds: readonly [number, number];
  /** Pause between a crash/release and the next incarnation, seconds. */
  readonly downSeconds: readonly [number, number];
  /** Slots start spread over this many seconds. */
  readonly startSpreadSeconds: number;
  readonly endWeights: Readonly<Record<EndAction, number>>;
  /** Chance an incarnation drains for a while and comes back mid-life. */
  readonly drainCycleChance: number;
}

export interface FleetCounters {
  incarnations: number;
  acquires: number;
  acquireConflicts: number;
  acquireErrors: number;
  takeovers: number;
  renewals: number;
  renewFailures: number;
  drains: number;
  activates: number;
  releases: number;
  crashes: number;
  leaves: number;
  lost: number;
  reacquired: number;
  opErrors: number;
}

interface Slot {
  readonly index: number;
  readonly address: string;
  readonly port: number;
  readonly random: Random;
  current?: AgentLease;
}

export class AgentFleet {
  public readonly counters: FleetCounters = {
    incarnations: 0,
    acquires: 0,
    acquireConflicts: 0,
    acquireErrors: 0,
    takeovers: 0,
    renewals: 0,
    renewFailures: 0,
    drains: 0,
    activates: 0,
    releases: 0,
    crashes: 0,
    leaves: 0,
    lost: 0,
    reacquired: 0,
    opErrors: 0,
  };
  private readonly slots: Slot[];
  private readonly leases = new Set<AgentLease>();
  private churning = false;
  private readonly sleepers = new Set<() => void>();
  private loops: Promise<void>[] = [];

  public constructor(private readonly options: FleetOptions) {
    this.slots = Array.from({ length: options.agents }, (_, index) => {
      const host = Math.floor(index / 2);
      return {
        index,
        // Two agents per host on different ports: targets are keyed by address *and* port.
        address: `127.1.${Math.floor(host / 250)}.${(host % 250) + 1}`,
        port: 8000 + (index % 2),
        random: stream(options.seed, `slot-${index}`),
      };
    });
  }

  /** Starts every slot's life; returns at once. */
  public start(): void {
    this.churning = true;
    this.loops = this.slots.map((slot) => this.live(slot).catch(() => undefined));
  }

  /** Stops churn: agents holding a lease keep renewing it, nothing else happens. Resolves when every slot is idle. */
  public async freeze(): Promise<void> {
    this.churning = false;
    for (const wake of [...this.sleepers]) wake();
    await Promise.all(this.loops);
  }

  /** Stops every agent's timers (no release): for teardown. */
  public stop(): void {
    this.churning = false;
    for (const wake of [...this.sleepers]) wake();
    for (const lease of this.leases) lease.abandon();
  }

  /** Agents currently holding (held or re-acquiring) a lease. */
  public holding(): number {
    return this.slots.filter((s) => s.current?.held).length;
  }

  private sleep(seconds: number): Promise<void> {
    if (!this.churning) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, seconds * 1000);
      this.sleepers.add(done);
    });
  }

  private capabilitiesFor(random: Random): string[] {
    const all = [...this.options.capabilities];
    const count = weighted(random, { one: 6, two: 3, three: 1 }) === 'one' ? 1 : all.length >= 2 && random() < 0.75 ? 2 : all.length;
    const picked: string[] = [];
    while (picked.length < Math.min(count, all.length)) {
      const c = all[Math.floor(random() * all.length)];
      if (!picked.includes(c)) picked.push(c);
    }
    return picked;
  }

  private newLease(slot: Slot, takeover: boolean): AgentLease {
    const c = this.counters;
    c.incarnations++;
    const lease = new AgentLease({
      tableName: this.options.tableName,
      address: slot.address,
      port: slot.port,
      capabilities: this.capabilitiesFor(slot.random),
      agentId: `slot-${slot.index}-${c.incarnations}`,
      ttl: this.options.ttlSeconds,
      allowLoopback: true, // the SDK refuses loopback addresses unless told: only local mode admits them
      takeover,
      client: this.options.client,
      keepProcessAlive: false,
      random: slot.random,
    });
    lease.on('renewed', () => c.renewals++);
    lease.on('renewFailed', () => c.renewFailures++);
    lease.on('lost', () => c.lost++);
    lease.on('reacquired', () => c.reacquired++);
    this.leases.add(lease);
    return lease;
  }

  /** Acquires, retrying conflicts (a crashed predecessor's lease still live) and store errors until it works or churn stops. */
  private async acquire(slot: Slot, takeover: boolean): Promise<AgentLease | undefined> {
    const lease = this.newLease(slot, takeover);
    while (this.churning) {
      try {
        await lease.acquire();
        this.counters.acquires++;
        if (takeover) this.counters.takeovers++;
        return lease;
      } catch (error) {
        if (error instanceof LeaseHeldError) this.counters.acquireConflicts++;
        else this.counters.acquireErrors++;
        await this.sleep(between(slot.random, 0.5, 2));
      }
    }
    lease.abandon();
    return undefined;
  }

  private async op(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch {
      this.counters.opErrors++;
    }
  }

  private async live(slot: Slot): Promise<void> {
    const o = this.options;
    const r = slot.random;
    await this.sleep(between(r, 0, o.startSpreadSeconds));
    let takeoverNext = false;
    while (this.churning) {
      const lease = slot.current?.held && !takeoverNext ? slot.current : await this.acquire(slot, takeoverNext);
      if (lease === undefined) return;
      // A replaced process dies a moment after its successor took the address over.
      const previous = slot.current !== lease ? slot.current : undefined;
      slot.current = lease;
      if (previous) {
        await this.sleep(between(r, 0, 2));
        previous.abandon();
      }
      takeoverNext = false;

      const life = between(r, o.lifetimeSeconds[0], o.lifetimeSeconds[1]);
      if (chance(r, o.drainCycleChance)) {
        await this.sleep(life / 2);
        if (!this.churning) return;
        this.counters.drains++;
        await this.op(() => lease.drain());
        await this.sleep(between(r, 1, 6));
        if (!this.churning) return;
        this.counters.activates++;
        await this.op(() => lease.activate());
        await this.sleep(life / 2);
      } else {
        await this.sleep(life);
      }
      if (!this.churning) return;

      const action = weighted(r, o.endWeights);
      if (action === 'takeover') {
        // The next process starts while this one still holds the lease, and takes it over.
        takeoverNext = true;
        continue;
      }
      if (action === 'crash') {
        this.counters.crashes++;
        lease.abandon();
        // A restarted process replaces its dead predecessor half of the time; otherwise it waits for the lease to lapse.
        takeoverNext = chance(r, 0.5);
        await this.sleep(between(r, o.downSeconds[0], o.downSeconds[1]));
        continue;
      }
      // release, or leave (release and stay away longer); half the releases drain first.
      if (chance(r, 0.5)) {
        this.counters.drains++;
        await this.op(() => lease.drain());
        await this.sleep(between(r, 0.5, 3));
      }
      this.counters.releases++;
      await this.op(() => lease.release());
      lease.abandon();
      if (action === 'leave') {
        this.counters.leaves++;
        await this.sleep(between(r, 10, 30));
      } else {
        await this.sleep(between(r, o.downSeconds[0], o.downSeconds[1]));
      }
    }
  }
}

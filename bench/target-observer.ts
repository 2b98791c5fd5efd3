import { performance } from 'node:perf_hooks';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { sleep } from '../lib/core/concurrency';

export type Want = 'present' | 'absent';

interface Waiter {
  readonly id: string;
  readonly port: number;
  readonly want: Want;
  readonly resolve: (seenAtMs: number) => void;
}


/**
 * Watches target groups the way a client of the load balancer would: DescribeTargetHealth,
 * straight to the ELB endpoint. The observer shares the server with the registrar under test,
 * so it is kept cheap:
 * - it asks only about targets someone waits for (DescribeTargetHealth with `Targets`), at most
 *   `maxTargetsPerCall` per group and round, oldest waits first, so a call's cost does not grow
 *   with a backlog (a growing backlog would slow the rounds, which would grow the backlog);
 * - the groups of a round are polled at once (one after the other, a round of three groups
 *   added ~200 ms p50 and ~600 ms p99 between a RegisterTargets returning and the observer seeing
 *   it: the observer's resolution, not the registrar's latency), then it sleeps `intervalMs`, or
 *   longer if the round was slow, so that it keeps the server busy at most `maxDuty` of the time.
 * A target counts as present unless ELB answers `Target.NotRegistered`.
 *
 * Times are `performance.now()` at the arrival of the first answer showing the wanted state:
 * the change happened before that, by at most one round plus its sleep.
 */
export class TargetObserver {
  private readonly waiting = new Map<string, Map<string, Waiter>>();
  private running = false;
  private loopDone?: Promise<void>;
  /** Time from one round's start to the next's, for the resolution figure. */
  private readonly roundPeriods: number[] = [];
  /** DescribeTargetHealth calls made by the observer (not by the registrar). */
  public describeCalls = 0;
  public describeErrors = 0;
  private readonly callDurations: number[] = [];

  public constructor(
    private readonly client: ElasticLoadBalancingV2Client,
    private readonly groupArns: readonly string[],
    public readonly intervalMs = 50,
    /** Largest share of the time the observer keeps the server busy. */
    public readonly maxDuty = 0.5,
    public readonly maxTargetsPerCall = 100,
  ) {
    for (const arn of groupArns) this.waiting.set(arn, new Map());
  }

  public start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  public async stop(): Promise<void> {
    this.running = false;
    await this.loopDone;
  }

  /** Resolves with the time the target was first seen in the wanted state. Register the wait before causing the change. */
  public waitFor(groupArn: string, id: string, port: number, want: Want): Promise<number> {
    const group = this.waiting.get(groupArn);
    if (!group) throw new Error(`not watching ${groupArn}`);
    return new Promise<number>((resolve) => group.set(`${id}:${port}`, { id, port, want, resolve }));
  }

  /** Gives up on every wait still open (they never resolve); returns how many there were. */
  public abandonWaits(): number {
    let n = 0;
    for (const group of this.waiting.values()) {
      n += group.size;
      group.clear();
    }
    return n;
  }

  /** Mean duration of one observer DescribeTargetHealth call, ms. */
  public get meanCallMs(): number {
    return this.callDurations.length === 0 ? 0 : Math.round((this.callDurations.reduce((s, v) => s + v, 0) / this.callDurations.length) * 10) / 10;
  }

  /** Mean time between rounds that asked something, ms: the observer's resolution. */
  public get meanRoundMs(): number {
    return this.roundPeriods.length === 0 ? 0 : Math.round((this.roundPeriods.reduce((s, v) => s + v, 0) / this.roundPeriods.length) * 10) / 10;
  }

  private async loop(): Promise<void> {
    let lastRound: number | undefined;
    while (this.running) {
      const t0 = performance.now();
      const polls = this.groupArns.flatMap((arn) => {
        const group = this.waiting.get(arn)!;
        return group.size === 0 ? [] : [this.poll(arn, group)];
      });
      const asked = polls.length > 0;
      await Promise.all(polls);
      if (asked && lastRound !== undefined) this.roundPeriods.push(t0 - lastRound);
      lastRound = asked ? t0 : undefined;
      const busy = performance.now() - t0;
      await sleep(Math.max(this.intervalMs, (busy * (1 - this.maxDuty)) / this.maxDuty));
    }
  }

  private async poll(arn: string, group: Map<string, Waiter>): Promise<void> {
    const asked: Waiter[] = [];
    for (const waiter of group.values()) {
      if (asked.length === this.maxTargetsPerCall) break;
      asked.push(waiter); // a Map iterates in insertion order: oldest waits first
    }
    const t0 = performance.now();
    try {
      this.describeCalls++;
      const out = await this.client.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn, Targets: asked.map((w) => ({ Id: w.id, Port: w.port })) }));
      const at = performance.now();
      this.callDurations.push(at - t0);
      for (const d of out.TargetHealthDescriptions ?? []) {
        const key = `${d.Target?.Id}:${d.Target?.Port}`;
        const waiter = group.get(key);
        if (!waiter) continue;
        // In rotation: registered and not draining (a deregistered target drains for the group's delay).
        const present = d.TargetHealth?.Reason !== 'Target.NotRegistered' && d.TargetHealth?.State !== 'draining';
        if (present === (waiter.want === 'present')) {
          group.delete(key);
          waiter.resolve(at);
        }
      }
    } catch {
      this.describeErrors++;
    }
  }
}

/**
 * The gate every Register/DeregisterTargets call passes (lib/registry/elb-call-gate.ts) and how
 * ElbTargets spends its permits: light churn within the budget never waits for a token, a token
 * is charged when its call leaves, and each SDK retry of a call takes a token of its own. Clocks
 * are manual; nothing waits on wall time.
 */
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ELB_CALL_BUDGET, ElbCallGate, ElbCallPermit } from '../../lib/core/elb-call-budget';
import { RuntimeConfig } from '../../lib/core/runtime-config';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { BucketGate } from '../../lib/registry/elb-call-gate';
import { CountingElb } from '../support/counting-elb';
import { InMemoryLeaseTable } from '../support/in-memory-lease-table';
import { ALLOWED_CIDRS, captureMetrics, insert, leaseItem, privateIp, silentLogger, streamEvent, T0 } from '../support/lease-fixtures';

/** A gate that counts its acquisitions, and those that had to wait for a token. */
class CountingGate implements ElbCallGate {
  public acquired = 0;
  public waited = 0;
  public spent = 0;
  public constructor(
    private readonly inner: BucketGate,
    private readonly clock: () => number,
  ) {}
  public get budget() {
    return this.inner.budget;
  }
  public acquire(signal?: AbortSignal): Promise<ElbCallPermit> {
    const permit = this.inner.acquire(signal);
    this.acquired++;
    if (this.inner.waiting(this.clock()).queued > 0) this.waited++;
    return permit.then((p) => ({
      spend: () => {
        this.spent++;
        p.spend();
      },
      giveBack: () => p.giveBack(),
    }));
  }
  public waiting(nowMs: number) {
    return this.inner.waiting(nowMs);
  }
}

const ref = (n: number) => ({ key: `10.0.0.${n}:8080`, id: `10.0.0.${n}`, port: 8080 });
const TG = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g/1';

describe('BucketGate', () => {
  it('grants the burst at once, with no wait, and charges each token when its call leaves', async () => {
    let clock = 0;
    const gate = new BucketGate(DEFAULT_ELB_CALL_BUDGET, () => clock);
    const permits = await Promise.all(Array.from({ length: 10 }, () => gate.acquire()));
    expect(gate.waiting(clock).queued).toBe(0);
    // An eleventh waits: the ten reserved tokens fill the burst, sent or not.
    const eleventh = gate.acquire();
    expect(gate.waiting(clock).queued).toBe(1);
    permits.forEach((p) => p.spend());
    expect(gate.sent).toBe(10);
    clock = 500; // one refill later
    permits[0].giveBack(); // spent already: a no-op, not a free token
    await eleventh;
    expect(gate.waiting(clock).queued).toBe(0);
  });

  it('a permit given back wakes the next waiter at once, and charges nothing', async () => {
    const clock = 0;
    const gate = new BucketGate({ callsPerSecond: 2, burst: 1 }, () => clock);
    const first = await gate.acquire();
    const second = gate.acquire();
    expect(gate.waiting(clock).queued).toBe(1);
    first.giveBack();
    (await second).spend();
    expect(gate.sent).toBe(1);
  });
});

describe('light churn costs no wait: the burst and the refill cover it', () => {
  const GROUPS = 8;
  const arn = (g: number) => `arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/c${g}/${g}`;
  const config: RuntimeConfig = {
    tableName: 'leases',
    routing: { capabilities: Object.fromEntries(Array.from({ length: GROUPS }, (_, g) => [`c${g}`, { targetGroupArn: arn(g), targetType: 'ip' as const }])), allowedCidrs: ALLOWED_CIDRS },
    safetyValveShare: 0.5,
    reconcileRepeatSeconds: 0,
  };

  it('a fleet of 8 capabilities starting (one call per group), then 2 changed groups a second for 30 s: every call gets its token at once', async () => {
    let clock = T0 * 1000;
    const gate = new CountingGate(new BucketGate(DEFAULT_ELB_CALL_BUDGET, () => clock), () => clock);
    const elb = new CountingElb(() => clock);
    const table = new InMemoryLeaseTable('leases', () => T0);
    const emf = captureMetrics();
    const sync = createSyncHandler({ config, elbClient: elb.asClient(), dynamoClient: table.asClient(), logger: silentLogger(), metrics: emf.metrics, now: () => T0 * 1000 + 1500, elbGate: gate });
    let n = 0;
    const join = (g: number) => insert(leaseItem({ address: privateIp(++n), capabilities: [`c${g}`] }));
    // Second 0: the fleet starts, one new agent in every group (8 calls of the burst's 10).
    const batches = [Array.from({ length: GROUPS }, (_, g) => [join(g), join(g)]).flat()];
    // Then each second (one sync batch per second, the deployed 1 s window) agents join 2 groups: 2 calls, the refill.
    for (let s = 1; s <= 30; s++) batches.push([join(s % GROUPS), join((s + 3) % GROUPS), join(s % GROUPS)]);
    for (const records of batches) {
      table.applyRecords(records);
      expect((await sync(streamEvent(records))).batchItemFailures).toEqual([]);
      clock += 1000;
    }
    expect(elb.mutating).toBe(GROUPS + 2 * 30);
    expect(gate.acquired).toBe(elb.mutating);
    expect(gate.spent).toBe(elb.mutating);
    expect(gate.waited).toBe(0);
    expect(emf.all('QueuedChanges').every((q) => q === 0)).toBe(true);
    expect(emf.all('OldestQueuedChangeMs').every((ms) => ms === 0)).toBe(true);
    expect(elb.groups.get(arn(0))?.size).toBeGreaterThan(2);
  });
});

/** A real ELBv2 client whose HTTP handler answers `answers` in turn (status codes), counting requests. */
function clientAnswering(answers: number[]) {
  const requests: number[] = [];
  const ok = '<RegisterTargetsResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><RegisterTargetsResult/><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></RegisterTargetsResponse>';
  const busy = '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>busy</Message></Error><RequestId>r</RequestId></ErrorResponse>';
  const client = new ElasticLoadBalancingV2Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 6,
    requestHandler: {
      handle: async () => {
        const status = answers[requests.length] ?? 200;
        requests.push(status);
        return { response: { statusCode: status, headers: { 'content-type': 'text/xml' }, body: Readable.from([status === 200 ? ok : busy]) } };
      },
    },
  });
  return { client, requests };
}

describe("ElbTargets: every attempt ELB sees took a token, the SDK's retries included", () => {
  it('a call the SDK tries three times (two 503s, then accepted) spends three tokens', async () => {
    const { client, requests } = clientAnswering([503, 503, 200]);
    let clock = 0;
    const inner = new BucketGate({ callsPerSecond: 1000, burst: 10 }, () => clock);
    const gate = new CountingGate(inner, () => clock);
    const outcome = await new ElbTargets(client, gate).register(TG, [ref(1)]);
    clock = 1;
    expect(outcome.applied).toEqual(['10.0.0.1:8080']);
    expect(requests).toEqual([503, 503, 200]);
    expect(gate.acquired).toBe(3);
    expect(inner.sent).toBe(3);
  });

  it('an accepted first attempt spends exactly one token, the one the caller reserved', async () => {
    const { client, requests } = clientAnswering([200]);
    const gate = new CountingGate(new BucketGate(DEFAULT_ELB_CALL_BUDGET, () => 0), () => 0);
    const permit = await gate.acquire();
    await new ElbTargets(client, gate).register(TG, [ref(1)], { permit });
    expect(requests).toEqual([200]);
    expect(gate.acquired).toBe(1);
    expect(gate.spent).toBe(1);
  });
});

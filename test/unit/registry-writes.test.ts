import { DynamoDBClient, InternalServerError, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeRotationEntry } from '../../lib/core/lease-codec';
import type { RotationEntry } from '../../lib/core/lease-schema';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { LeaseStore } from '../../lib/aws/lease-store';
import { LEASE_WRITES_AT_A_TIME, PacedWrites, writeRegistryEntries } from '../../lib/registry/registry-writes';
import { OBSERVED_WRITE_PACING } from '../../lib/core/write-pacing';
import { rotationEntries } from '../../lib/core/rotation-planner';
import { RotationPoll } from '../../lib/registry/rotation-poll';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { AddressPolicy } from '../../lib/core/address-policy';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { captureMetrics, insert, Item, leaseItem, modify, remove, resetSequence, silentLogger, streamEvent, T0, testConfig, TG } from '../support/lease-fixtures';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });
const NOW_MS = T0 * 1000 + 1_500;
const KEY = '10.0.0.1:8080';
let table: FakeLeaseTable;
/** DescribeTargetHealth answers: per group, target key → state. */
let health: Record<string, Record<string, string>>;

const withRotation = (item: Item, rotation: Record<string, RotationEntry>): Item =>
  ({ ...item, rotation: { M: Object.fromEntries(Object.entries(rotation).map(([c, e]) => [c, encodeRotationEntry(e)])) } }) as Item;
const lease = (extra: Parameters<typeof leaseItem>[0] extends infer S ? Partial<S> : never = {}) => leaseItem({ address: '10.0.0.1', leaseToken: 'tok-1', ...extra });

function sync() {
  const handler = createSyncHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS });
  return (records: ReturnType<typeof insert>[]) => {
    table.applyRecords(records);
    return handler(streamEvent(records));
  };
}

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  resetSequence();
  table = new FakeLeaseTable().install(ddbMock);
  health = {};
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
  elbMock.on(DescribeTargetHealthCommand).callsFake((input: { TargetGroupArn: string }) => ({
    TargetHealthDescriptions: Object.entries(health[input.TargetGroupArn] ?? {}).map(([key, state]) => ({
      Target: { Id: key.split(':')[0], Port: Number(key.split(':')[1]) },
      TargetHealth: { State: state },
    })),
  }));
});

const updates = () => ddbMock.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);

describe('stream sync writes what its own calls did, where the lease would say otherwise', () => {
  it('a new lease: registered, and nothing written (no entry to correct: the first group read writes one)', async () => {
    await sync()([insert(lease({ capabilities: ['vision', 'speech'] }))]);
    expect(elbMock.commandCalls(RegisterTargetsCommand)).toHaveLength(2);
    expect(updates()).toEqual([]);
  });

  it('a drained lease: deregistered, then draining in every group, in one UpdateItem conditional on its token', async () => {
    const before = withRotation(lease({ capabilities: ['vision', 'speech'] }), { vision: { state: 'healthy', since: NOW_MS - 60_000 }, speech: { state: 'healthy', since: NOW_MS - 60_000 } });
    await sync()([modify(before, { ...before, status: { S: 'draining' } })]);
    expect(elbMock.commandCalls(DeregisterTargetsCommand)).toHaveLength(2);
    expect(table.rotationWrites.sort()).toEqual([`${KEY} speech=draining@${NOW_MS}`, `${KEY} vision=draining@${NOW_MS}`]);
    expect(updates()).toHaveLength(1);
    expect(updates()[0].ExpressionAttributeValues?.[':token']).toEqual({ S: 'tok-1' });
  });

  it('a lease drained before any entry was written: draining all the same (leave() waits for it)', async () => {
    await sync()([modify(lease(), lease({ status: 'draining' }))]);
    expect(table.rotationWrites).toEqual([`${KEY} vision=draining@${NOW_MS}`]);
    expect(updates()).toHaveLength(1);
    expect(updates()[0].UpdateExpression).toBe('SET #a0 = :w0');
  });

  it('made active again after a drain: registered, and initial over the draining entry', async () => {
    const drained = withRotation(lease({ status: 'draining' }), { vision: { state: 'draining', since: NOW_MS - 9_000 } });
    await sync()([modify(drained, { ...drained, status: { S: 'active' } })]);
    expect(elbMock.commandCalls(RegisterTargetsCommand)).toHaveLength(1);
    expect(table.rotationWrites).toEqual([`${KEY} vision=initial@${NOW_MS}`]);
  });

  it('a released lease: deregistered, nothing written (no item to write into, none created)', async () => {
    await sync()([remove(lease())]);
    expect(elbMock.commandCalls(DeregisterTargetsCommand)).toHaveLength(1);
    expect(updates()).toHaveLength(0);
    expect(table.items.size).toBe(0);
  });

  it("a record that changes only rotation (the registry's own write coming back) costs 0 ELB calls, 0 reads, 0 writes", async () => {
    const initial = withRotation(lease(), { vision: { state: 'initial', since: NOW_MS - 9_000 } });
    const healthy = withRotation(lease(), { vision: { state: 'healthy', since: NOW_MS - 1_000 } });
    const draining = withRotation(lease({ expiresAt: T0 + 40 }), { vision: { state: 'healthy', since: NOW_MS - 1_000 } });
    const result = await sync()([modify(initial, healthy), modify(healthy, draining)]);
    expect(result).toEqual({ batchItemFailures: [] });
    expect(elbMock).not.toHaveReceivedAnyCommand();
    expect(ddbMock).not.toHaveReceivedAnyCommand();
  });

  it('a re-acquire (PutItem, new token, rotation dropped): no ELB call, the entries written back into the new lease in one UpdateItem', async () => {
    const held = withRotation(lease({ capabilities: ['vision', 'speech'] }), { vision: { state: 'healthy', since: NOW_MS - 60_000 }, speech: { state: 'unhealthy', since: NOW_MS - 5_000 } });
    await sync()([modify(held, lease({ leaseToken: 'tok-2', capabilities: ['vision', 'speech'] }))]);
    expect(elbMock).not.toHaveReceivedAnyCommand();
    expect(table.rotationWrites.sort()).toEqual([`${KEY} speech=unhealthy@${NOW_MS - 5_000}`, `${KEY} vision=healthy@${NOW_MS - 60_000}`]);
    expect(updates().map((u) => u.UpdateExpression)).toEqual(['SET #a0 = :w0']);
    expect(table.items.get(KEY)?.leaseToken.S).toBe('tok-2');
  });

  it('a lease re-acquired again before the write lands: the write is a no-op, the batch succeeds', async () => {
    const run = sync();
    const records = [modify(lease(), lease({ status: 'draining' }))];
    table.applyRecords(records);
    // The table moves on (another token) between the deregistration's read and the rotation write.
    elbMock.on(DeregisterTargetsCommand).callsFake(() => {
      table.put(lease({ leaseToken: 'tok-9' }));
      return {};
    });
    await expect(run(records)).resolves.toEqual({ batchItemFailures: [] });
    expect(table.rotationWrites).toEqual([]);
    expect(updates()).toHaveLength(1);
    expect(table.items.get(KEY)?.rotation).toBeUndefined();
  });
});

describe('reconcile writes what its group reads show', () => {
  const reconcile = () => createReconcileHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS, sleep: async () => {} });

  it('registered and reported healthy: the lease is told healthy, every group in one UpdateItem, on change only', async () => {
    const handler = reconcile();
    table.put(withRotation(lease({ capabilities: ['vision', 'speech'] }), { vision: { state: 'initial', since: NOW_MS - 5_000 } }));
    health = { [TG.vision]: { [KEY]: 'healthy' }, [TG.speech]: { [KEY]: 'initial' } };
    const [report] = await handler();
    expect(table.rotationWrites.sort()).toEqual([`${KEY} speech=initial@${NOW_MS}`, `${KEY} vision=healthy@${NOW_MS}`]);
    expect(report.registryWrites).toMatchObject({ planned: 2, written: 2, leases: 1, updates: 1, changed: 1 });
    expect(elbMock.commandCalls(RegisterTargetsCommand)).toHaveLength(0);
    const [again] = await handler();
    expect(table.rotationWrites).toHaveLength(2);
    expect(again.registryWrites.updates).toBe(0);
  });

  it('a target it puts back (missing from its group): initial over the absent it read, not absent', async () => {
    table.put(withRotation(lease(), { vision: { state: 'healthy', since: NOW_MS - 60_000 } }));
    health = { [TG.vision]: {} };
    await reconcile()();
    expect(elbMock.commandCalls(RegisterTargetsCommand)).toHaveLength(1);
    expect(table.rotationWrites).toEqual([`${KEY} vision=initial@${NOW_MS}`]);
    expect(updates()).toHaveLength(1);
  });
});

describe('writeRegistryEntries', () => {
  it('a DynamoDB failure is counted and reported, never thrown: the ELB work stands', async () => {
    ddbMock.on(UpdateItemCommand).rejects(new InternalServerError({ message: 'boom', $metadata: { httpStatusCode: 500 } }));
    const report = await writeRegistryEntries(
      new LeaseStore(dynamoClient, 'leases'),
      rotationEntries([{ target: KEY, leaseToken: 'tok-1', capability: 'vision', entry: { state: 'initial', since: NOW_MS }, cause: 'call' }]),
    );
    expect(report).toMatchObject({ planned: 1, written: 0, failed: 1 });
    expect(report.firstError?.code).toBe('LEASE_STORE');
  });

  it('one UpdateItem per lease, whatever the number of entries planned for it; the newest entry of each capability', async () => {
    table.put(lease({ capabilities: ['vision', 'speech'] }), leaseItem({ address: '10.0.0.2', leaseToken: 'tok-2' }));
    const entry = (target: string, leaseToken: string, capability: string, state: 'healthy' | 'initial', since: number) =>
      ({ target, leaseToken, capability, entry: { state, since }, cause: 'observed' as const, mapPresent: false });
    const report = await writeRegistryEntries(
      new LeaseStore(dynamoClient, 'leases'),
      rotationEntries([
        entry(KEY, 'tok-1', 'vision', 'initial', NOW_MS),
        entry(KEY, 'tok-1', 'speech', 'healthy', NOW_MS),
        entry(KEY, 'tok-1', 'vision', 'healthy', NOW_MS + 1),
        entry('10.0.0.2:8080', 'tok-2', 'vision', 'healthy', NOW_MS),
      ]),
    );
    expect(report).toMatchObject({ planned: 3, written: 3, leases: 2, updates: 2, changed: 2 });
    expect(table.rotationWrites.sort()).toEqual([`${KEY} speech=healthy@${NOW_MS}`, `${KEY} vision=healthy@${NOW_MS + 1}`, `10.0.0.2:8080 vision=healthy@${NOW_MS}`]);
  });

  it('keeps at most atATime writes in flight, so they never queue ahead of agents in the table', async () => {
    let inFlight = 0;
    let most = 0;
    const store = {
      writeEntries: async (write: { entries: readonly unknown[] }) => {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setImmediate(resolve));
        inFlight--;
        return { written: write.entries.length, superseded: 0, gone: 0, outdated: 0, updates: 1, changed: 1 };
      },
    } as unknown as LeaseStore;
    const planned = rotationEntries(
      Array.from({ length: 40 }, (_, i) => ({ target: `10.0.1.${i + 1}:8080`, leaseToken: `tok-${i}`, capability: 'vision', entry: { state: 'healthy' as const, since: NOW_MS }, cause: 'observed' as const })),
    );
    expect(await writeRegistryEntries(store, planned, [], 4)).toMatchObject({ leases: 40, written: 40 });
    expect(most).toBe(4);
    most = 0;
    await writeRegistryEntries(store, planned);
    expect(most).toBe(LEASE_WRITES_AT_A_TIME);
  });

  it('paced (the poll and reconcile): starts at 4, widens while writes come back fast, halves when they come back slow', async () => {
    const plannedOf = (n: number) =>
      rotationEntries(
        Array.from({ length: n }, (_, i) => ({ target: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:8080`, leaseToken: `tok-${i}`, capability: 'vision', entry: { state: 'healthy' as const, since: NOW_MS }, cause: 'observed' as const })),
      );
    let inFlight = 0;
    let most = 0;
    let first = 0;
    let slow = false;
    // A table whose latency is the same however many writes wait (an idle table), then one whose latency grows with them.
    const store = {
      writeEntries: async (write: { entries: readonly unknown[] }) => {
        if (first === 0) first = inFlight + 1;
        most = Math.max(most, ++inFlight);
        const ms = slow ? 5 * inFlight : 5;
        await new Promise((resolve) => setTimeout(resolve, ms));
        inFlight--;
        return { written: write.entries.length, superseded: 0, gone: 0, outdated: 0, updates: 1, changed: 1 };
      },
    } as unknown as LeaseStore;
    // Fake timers: every write takes exactly its latency, however loaded the machine running the test.
    vi.useFakeTimers({ toFake: ['setTimeout', 'performance'] });
    const drive = async <T>(p: Promise<T>): Promise<T> => {
      let done = false;
      void p.finally(() => (done = true));
      while (!done) await vi.advanceTimersByTimeAsync(1);
      return p;
    };
    const paced = new PacedWrites();
    await drive(writeRegistryEntries(store, plannedOf(400), [], paced));
    expect(first).toBe(1);
    expect(most).toBe(OBSERVED_WRITE_PACING.max);
    // Latency proportional to the writes in flight: each halving brings it back, the width stays low.
    slow = true;
    most = 0;
    const crowded = new PacedWrites();
    await drive(writeRegistryEntries(store, plannedOf(200), [], crowded));
    vi.useRealTimers();
    expect(crowded.current).toBeLessThanOrEqual(OBSERVED_WRITE_PACING.start);
    expect(most).toBeLessThanOrEqual(OBSERVED_WRITE_PACING.start);
  });

  it("a lease's rejection rides its rotation write (same token, one UpdateItem); a rejection of a lease without a token is a write of its own", async () => {
    const refusedOcr = lease({ capabilities: ['ocr', 'vision'] });
    const tokenless: Item = { ...leaseItem({ address: '10.0.0.2' }), capabilities: { SS: ['ocr'] } };
    delete tokenless.leaseToken;
    table.put(refusedOcr, tokenless);
    const rejection = (item: Item) => ({
      target: item.target.S!,
      leaseToken: item.leaseToken,
      renewedAt: item.renewedAt,
      rejection: { reason: 'unknown-capability', message: 'capability "ocr" is not routed', capabilities: ['ocr'], since: NOW_MS },
      judged: item,
    });
    const report = await writeRegistryEntries(
      new LeaseStore(dynamoClient, 'leases'),
      rotationEntries([{ target: KEY, leaseToken: 'tok-1', capability: 'vision', entry: { state: 'healthy', since: NOW_MS }, cause: 'observed', mapPresent: false }]),
      [rejection(refusedOcr), rejection(tokenless)],
    );
    expect(report).toMatchObject({ planned: 3, rejections: 2, written: 3, leases: 2, updates: 2, changed: 2 });
    expect(table.rotationWrites).toEqual([`${KEY} vision=healthy@${NOW_MS}`]);
    expect(table.rejectionWrites.sort()).toEqual([`${KEY} unknown-capability[ocr]`, '10.0.0.2:8080 unknown-capability[ocr]']);
  });
});

describe('RotationPoll: health changes between reconcile passes', () => {
  it('reads every group each poll, but the leases only of targets whose state changed, and writes what changed', async () => {
    let clock = NOW_MS;
    const poll = new RotationPoll({
      elb: new ElbTargets(elbClient),
      store: new LeaseStore(dynamoClient, 'leases'),
      routing: testConfig().routing,
      policy: new AddressPolicy(testConfig().routing.allowedCidrs),
      now: () => clock,
    });
    table.put(lease(), leaseItem({ address: '10.0.0.2', leaseToken: 'tok-2' }));
    health = { [TG.vision]: { [KEY]: 'initial', '10.0.0.2:8080': 'healthy' } };

    const first = await poll.pollOnce();
    expect(first).toMatchObject({ describeCalls: 3, leasesRead: 2, registryWrites: { written: 2, updates: 2 } });
    const quiet = await poll.pollOnce();
    expect(quiet).toMatchObject({ describeCalls: 3, leasesRead: 0, registryWrites: { planned: 0 } });

    health = { [TG.vision]: { [KEY]: 'healthy', '10.0.0.2:8080': 'healthy' } };
    clock += 1_000;
    const changed = await poll.pollOnce();
    expect(changed).toMatchObject({ leasesRead: 1, registryWrites: { written: 1, updates: 1 } });
    expect(table.keysRead().slice(-1)).toEqual([KEY]);
    expect(table.rotationWrites.at(-1)).toBe(`${KEY} vision=healthy@${NOW_MS + 1_000}`);
    expect(elbMock.commandCalls(RegisterTargetsCommand)).toHaveLength(0);
  });
});

describe('RotationPoll.start: on a schedule, in the lane it is given', () => {
  it('runs every poll inside the lane (local mode: in line with reconcile passes)', async () => {
    const poll = new RotationPoll({ elb: new ElbTargets(elbClient), store: new LeaseStore(dynamoClient, 'leases'), routing: testConfig().routing, policy: new AddressPolicy(testConfig().routing.allowedCidrs) });
    const pollOnce = poll.pollOnce.bind(poll);
    let inLane = false;
    const polledInLane: boolean[] = [];
    poll.pollOnce = () => {
      polledInLane.push(inLane);
      return pollOnce();
    };
    let lanes = 0;
    const errors: unknown[] = [];
    await new Promise<void>((twice) => {
      poll.start(
        1,
        (error) => errors.push(error),
        async (run) => {
          inLane = true;
          try {
            return await run();
          } finally {
            inLane = false;
            if (++lanes === 2) twice();
          }
        },
      );
    });
    await poll.stop();
    expect(errors).toEqual([]);
    expect(polledInLane.length).toBeGreaterThanOrEqual(2);
    expect(polledInLane.every(Boolean)).toBe(true);
  });
});

describe('a rotation write coming back through the stream', () => {
  it('does not report the lease\'s rejections again (they were reported with the write that made the lease)', async () => {
    // A lease for vision and a capability nobody routes: routed to vision, rejected for the other, once.
    const made = lease({ capabilities: ['vision', 'ocr'] });
    const emf = captureMetrics();
    const handler = createSyncHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: emf.metrics, now: () => NOW_MS });
    table.applyRecords([insert(made)]);
    await handler(streamEvent([insert(made)]));
    const told = withRotation(made, { vision: { state: 'initial', since: NOW_MS } });
    await handler(streamEvent([modify(made, told)]));
    expect(emf.all('RejectedLeases')).toEqual([1, 0]);
  });
});

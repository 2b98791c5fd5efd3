/**
 * What each lease change costs the registry, counted, not timed: ELB calls, DynamoDB reads and
 * writes, and the stream records those writes cause (each comes back to the sync handler), through
 * the real handler factories against counting fakes (test/support/counting-elb.ts,
 * test/support/in-memory-lease-table.ts, which applies the registry's UpdateItems as DynamoDB
 * would). A change that adds a write per target, a call per group or a read per heartbeat fails
 * here, not in a benchmark nobody re-ran.
 */
import type { DynamoDBRecord } from 'aws-lambda';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { LeaseStore } from '../../lib/aws/lease-store';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { RotationPoll } from '../../lib/registry/rotation-poll';
import { CountingElb } from '../support/counting-elb';
import { InMemoryLeaseTable } from '../support/in-memory-lease-table';
import { captureMetrics, insert, Item, LEASE_TTL_SECONDS, leaseItem, modify, privateIp, remove, renewed, silentLogger, streamEvent, T0, testConfig, TG } from '../support/lease-fixtures';

const NOW_MS = T0 * 1000 + 1_500;

/** What one step cost. */
interface Cost {
  /** Register+Deregister calls. */
  readonly elbCalls: number;
  /** The most Register+Deregister calls one group got. */
  readonly maxPerGroup: number;
  /** The most calls of one kind (Register, or Deregister) one group got. */
  readonly maxSameKindPerGroup: number;
  readonly describes: number;
  /** Lease reads: BatchGetItem, GetItem and Scan requests. */
  readonly reads: number;
  /** Write requests (UpdateItem, PutItem, DeleteItem): one write unit each. */
  readonly writes: number;
  /** Stream records those writes caused. */
  readonly records: number;
}

/** The registry (sync, reconcile, rotation poll) over one counting ELB and one in-memory table, with the agents' writes applied as records. */
function registry(config = testConfig()) {
  let nowMs = NOW_MS;
  const elb = new CountingElb();
  const table = new InMemoryLeaseTable(config.tableName, () => Math.floor(nowMs / 1000));
  const clients = { elbClient: elb.asClient(), dynamoClient: table.asClient(), logger: silentLogger(), now: () => nowMs };
  const sync = createSyncHandler({ config, ...clients, metrics: captureMetrics().metrics });
  const reconcile = createReconcileHandler({ config, ...clients, metrics: captureMetrics().metrics, sleep: async () => undefined });
  const poll = new RotationPoll({ elb: new ElbTargets(elb.asClient()), store: new LeaseStore(table.asClient(), config.tableName), routing: config.routing, policy: new AddressPolicy(config.routing.allowedCidrs), now: () => nowMs });

  const snapshot = () => ({
    calls: { ...elb.calls },
    byGroup: new Map(elb.mutatingByGroup),
    byKind: new Map(elb.mutatingByCommandAndGroup),
    reads: table.count('BatchGetItem', 'GetItem', 'Scan'),
    writes: table.writes,
    records: table.streamRecords.length,
  });
  /** Runs `step` and returns what it cost. */
  const cost = async (step: () => Promise<unknown>): Promise<Cost> => {
    const before = snapshot();
    await step();
    const after = snapshot();
    const calls = (name: string) => (after.calls[name] ?? 0) - (before.calls[name] ?? 0);
    return {
      elbCalls: calls('RegisterTargetsCommand') + calls('DeregisterTargetsCommand'),
      maxPerGroup: Math.max(0, ...[...after.byGroup].map(([arn, n]) => n - (before.byGroup.get(arn) ?? 0))),
      maxSameKindPerGroup: Math.max(0, ...[...after.byKind].map(([id, n]) => n - (before.byKind.get(id) ?? 0))),
      describes: calls('DescribeTargetHealthCommand'),
      reads: after.reads - before.reads,
      writes: after.writes - before.writes,
      records: after.records - before.records,
    };
  };
  /** Agents' writes: the table takes them first (it is ahead of its stream), then the sync handler gets their records. */
  const deliver = (records: DynamoDBRecord[]) =>
    cost(async () => {
      table.applyRecords(records);
      const response = await sync(streamEvent(records));
      expect(response.batchItemFailures).toEqual([]);
    });
  /** The records the registry's own writes caused, delivered to the sync handler as its next batch. */
  const feedBack = () => {
    const records = table.takeStreamRecords();
    return { count: records.length, cost: cost(async () => void (await sync(streamEvent(records)))) };
  };
  return { elb, table, deliver, feedBack, reconcile: () => cost(() => reconcile()), poll: () => cost(() => poll.pollOnce()), setNow: (ms: number) => (nowMs = ms) };
}

const NOTHING: Cost = { elbCalls: 0, maxPerGroup: 0, maxSameKindPerGroup: 0, describes: 0, reads: 0, writes: 0, records: 0 };
const lease = (n: number, capabilities = ['vision', 'speech']) => leaseItem({ address: privateIp(n), capabilities, leaseToken: `tok-${n}` });

describe('what one lease change costs the registry', () => {
  it('a registration: one RegisterTargets per group, one read, no write, no record', async () => {
    const r = registry();
    expect(await r.deliver([insert(lease(1))])).toEqual({ ...NOTHING, elbCalls: 2, maxPerGroup: 1, maxSameKindPerGroup: 1, reads: 1 });
  });

  it('a heartbeat: nothing at all (0 calls, 0 reads, 0 writes)', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    expect(await r.deliver([modify(item, renewed(item))])).toEqual(NOTHING);
  });

  it('a release: one DeregisterTargets per group, one read, no write (no item to write into)', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    expect(await r.deliver([remove(item)])).toEqual({ ...NOTHING, elbCalls: 2, maxPerGroup: 1, maxSameKindPerGroup: 1, reads: 1 });
  });

  it('a drain: one DeregisterTargets per group, one read, one write for every group (draining), one record that costs nothing', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    expect(await r.deliver([modify(item, { ...item, status: { S: 'draining' } })])).toEqual({ ...NOTHING, elbCalls: 2, maxPerGroup: 1, maxSameKindPerGroup: 1, reads: 1, writes: 1, records: 1 });
    const back = r.feedBack();
    expect(back.count).toBe(1);
    expect(await back.cost).toEqual(NOTHING);
    expect(Object.keys(r.table.items.get(item.target.S!)!.rotation.M!).sort()).toEqual(['speech', 'vision']);
  });

  it('a health change: reconcile writes it once per lease, for all its groups, on change only; the record costs nothing', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    // ELB reports the target healthy in both groups: one UpdateItem with both entries.
    expect(await r.reconcile()).toEqual({ ...NOTHING, describes: 3, reads: 1, writes: 1, records: 1 });
    expect(await r.feedBack().cost).toEqual(NOTHING);
    // Nothing changed: nothing written.
    expect(await r.reconcile()).toEqual({ ...NOTHING, describes: 3, reads: 1 });
    // One group turns unhealthy: one write.
    r.elb.health.set(`${TG.vision} ${item.target.S}`, 'unhealthy');
    r.setNow(NOW_MS + 1_000);
    expect(await r.reconcile()).toEqual({ ...NOTHING, describes: 3, reads: 1, writes: 1, records: 1 });
  });

  it('a health change seen by the rotation poll: the same, and no read at all while nothing changes', async () => {
    const r = registry();
    await r.deliver([insert(lease(1)), insert(lease(2, ['vision']))]);
    expect(await r.poll()).toEqual({ ...NOTHING, describes: 3, reads: 1, writes: 2, records: 2 });
    expect(await r.poll()).toEqual({ ...NOTHING, describes: 3 });
    r.elb.health.set(`${TG.speech} ${lease(1).target.S}`, 'unhealthy');
    r.setNow(NOW_MS + 1_000);
    expect(await r.poll()).toEqual({ ...NOTHING, describes: 3, reads: 1, writes: 1, records: 1 });
    expect(await r.feedBack().cost).toEqual(NOTHING);
  });

  it('a lease reconcile reads before the stream registers it: reconcile registers it and writes nothing into it (no entry, no absent); the poll then writes it once', async () => {
    const r = registry();
    const item = lease(1);
    r.table.applyRecords([insert(item)]);
    expect(await r.reconcile()).toMatchObject({ elbCalls: 2, maxPerGroup: 1, writes: 0, records: 0 });
    expect(await r.poll()).toEqual({ ...NOTHING, describes: 3, reads: 1, writes: 1, records: 1 });
    expect(Object.keys(r.table.items.get(item.target.S!)!.rotation.M!).sort()).toEqual(['speech', 'vision']);
  });

  it('a record that changes only rotation (the registry\'s own write coming back): 0 calls, 0 reads, 0 writes', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    await r.reconcile();
    const back = r.feedBack();
    expect(back.count).toBe(1);
    expect(await back.cost).toEqual(NOTHING);
  });

  it('a re-acquire that dropped rotation: no call, one write restoring every entry, whose record costs nothing', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    await r.reconcile();
    r.feedBack();
    const held = r.table.items.get(item.target.S!)!;
    const again = leaseItem({ address: privateIp(1), capabilities: ['vision', 'speech'], leaseToken: 'tok-1b' });
    expect(await r.deliver([modify(held as Item, again)])).toEqual({ ...NOTHING, writes: 1, records: 1 });
    expect(await r.feedBack().cost).toEqual(NOTHING);
  });

  it('a rejected lease (port as a string): 0 ELB calls, 1 write (its rejection), once per change; its record, heartbeats and reconcile passes cost nothing more', async () => {
    const r = registry();
    const bad = leaseItem({ address: privateIp(1), leaseToken: 'tok-1' }, { port: { S: '8080' } });
    expect(await r.deliver([insert(bad)])).toEqual({ ...NOTHING, writes: 1, records: 1 });
    expect(r.table.items.get(bad.target.S!)!.rejection.M!.reason).toEqual({ S: 'invalid' });
    // Its own write coming back: judged, the same verdict, nothing written.
    expect(await r.feedBack().cost).toEqual(NOTHING);
    const told = r.table.items.get(bad.target.S!)! as Item;
    expect(await r.deliver([modify(told, renewed(told))])).toEqual(NOTHING);
    expect(await r.deliver([modify(renewed(told), renewed(renewed(told)))])).toEqual(NOTHING);
    expect(await r.reconcile()).toEqual({ ...NOTHING, describes: 3, reads: 1 });
    // Fixed (port a number, same token): registered, and the reason removed in one write.
    const now = r.table.items.get(bad.target.S!)! as Item;
    expect(await r.deliver([modify(now, { ...now, port: { N: '8080' }, renewedAt: { N: String(T0 * 1000 + 9_000) } })])).toEqual({ ...NOTHING, elbCalls: 1, maxPerGroup: 1, maxSameKindPerGroup: 1, reads: 1, writes: 1, records: 1 });
    expect(r.table.items.get(bad.target.S!)!.rejection).toBeUndefined();
    expect(await r.feedBack().cost).toEqual(NOTHING);
  });

  it('an unrouted capability: the routed ones register, one write tells the writer which one is refused', async () => {
    const r = registry();
    const item = lease(1, ['ocr', 'vision']);
    expect(await r.deliver([insert(item)])).toEqual({ ...NOTHING, elbCalls: 1, maxPerGroup: 1, maxSameKindPerGroup: 1, reads: 1, writes: 1, records: 1 });
    expect(r.table.items.get(item.target.S!)!.rejection.M!.capabilities).toEqual({ SS: ['ocr'] });
    expect(await r.feedBack().cost).toEqual(NOTHING);
    // Reconcile writes vision's rotation entry; the rejection is already there: one write, not two.
    expect(await r.reconcile()).toEqual({ ...NOTHING, describes: 3, reads: 1, writes: 1, records: 1 });
    expect(await r.feedBack().cost).toEqual(NOTHING);
  });

  it('a re-acquire of that lease (its PutItem dropped rotation and rejection): no call, one UpdateItem restoring both', async () => {
    const r = registry();
    const item = lease(1, ['ocr', 'vision']);
    await r.deliver([insert(item)]);
    r.feedBack();
    await r.reconcile();
    r.feedBack();
    const held = r.table.items.get(item.target.S!)! as Item;
    const since = held.rejection.M!.since;
    const again = leaseItem({ address: privateIp(1), capabilities: ['ocr', 'vision'], leaseToken: 'tok-1b' });
    expect(await r.deliver([modify(held, again)])).toEqual({ ...NOTHING, writes: 1, records: 1 });
    const restored = r.table.items.get(item.target.S!)!;
    expect(Object.keys(restored.rotation.M!)).toEqual(['vision']);
    // The same verdict, so the same `since`: the writer was told nothing new.
    expect(restored.rejection.M!.since).toEqual(since);
    expect(await r.feedBack().cost).toEqual(NOTHING);
  });

  it('a join of 300 agents over 3 groups in one batch: at most one call per group, reads in 100s, no write', async () => {
    const r = registry();
    const records = Array.from({ length: 300 }, (_, i) => insert(lease(i + 1, i % 3 === 0 ? ['vision'] : i % 3 === 1 ? ['speech'] : ['vision', 'speech'])));
    expect(await r.deliver(records)).toEqual({ ...NOTHING, elbCalls: 2, maxPerGroup: 1, maxSameKindPerGroup: 1, reads: 3 });
  });
});

/** One agent operation of the generated workload. */
type Op =
  | { kind: 'join'; agent: number; capabilities: string[] }
  | { kind: 'heartbeat' | 'drain' | 'activate' | 'release' | 'reacquire'; agent: number }
  | { kind: 'capabilities'; agent: number; capabilities: string[] };

/** `ocr` is not routed: a lease listing it is told so (one write), and routes in its other capabilities. */
const CAPABILITY_SETS = [['vision'], ['speech'], ['vision', 'speech'], ['ocr', 'vision']];

describe('an unseen workload, batch by batch', () => {
  it('never more than one register and one deregister per group per batch; writes only for drains, re-activations, re-acquires and rejections told or taken back; their records cost nothing', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('join' as const), agent: fc.nat(39), capabilities: fc.constantFrom(...CAPABILITY_SETS) }),
      fc.record({ kind: fc.constantFrom('heartbeat' as const, 'heartbeat' as const, 'drain' as const, 'activate' as const, 'release' as const, 'reacquire' as const), agent: fc.nat(39) }),
      fc.record({ kind: fc.constant('capabilities' as const), agent: fc.nat(39), capabilities: fc.constantFrom(...CAPABILITY_SETS) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 60 }), { minLength: 1, maxLength: 8 }), async (batches) => {
        const r = registry();
        let token = 0;
        for (const [b, batch] of batches.entries()) {
          const at = T0 + b;
          r.setNow(at * 1000 + 500);
          const records: DynamoDBRecord[] = [];
          const table = new Map(r.table.items);
          /** Leases whose records may leave `rotation` or `rejection` to correct: a drain, a re-activation, a re-acquire (also as a release and a join), `ocr` listed or dropped. */
          const mayWrite = new Set<string>();
          for (const o of batch as Op[]) {
            const key = `${privateIp(o.agent + 1)}:8080`;
            const held = table.get(key) as Item | undefined;
            const write = (next: Item | undefined) => {
              const lists = (i: Item | undefined) => (i?.capabilities.SS as string[] | undefined)?.includes('ocr') === true;
              if (lists(held) !== lists(next) || (lists(next) && held === undefined) || (lists(next) && next?.leaseToken.S !== held?.leaseToken.S)) mayWrite.add(key);
              records.push(next === undefined ? remove(held!, at) : held === undefined ? insert(next, at) : modify(held, next, at));
              if (next === undefined) table.delete(key);
              else table.set(key, next);
            };
            const fresh = (capabilities: string[]) => leaseItem({ address: privateIp(o.agent + 1), capabilities, leaseToken: `tok-${++token}`, expiresAt: at + LEASE_TTL_SECONDS });
            if (o.kind === 'join') {
              if (held !== undefined) continue;
              write(fresh(o.capabilities));
              // Released and acquired again in one batch: a re-acquire, whose dropped entries are written back.
              if (r.table.items.has(key)) mayWrite.add(key);
            } else if (held === undefined) continue;
            else if (o.kind === 'heartbeat') write({ ...held, expiresAt: { N: String(at + LEASE_TTL_SECONDS) }, renewedAt: { N: String(at * 1000) } });
            else if (o.kind === 'drain' || o.kind === 'activate') {
              write({ ...held, status: { S: o.kind === 'drain' ? 'draining' : 'active' } });
              mayWrite.add(key);
            } else if (o.kind === 'release') write(undefined);
            else if (o.kind === 'reacquire') {
              write(fresh(held.capabilities.SS as string[]));
              mayWrite.add(key);
            } else if (o.kind === 'capabilities') write({ ...held, capabilities: { SS: o.capabilities } });
          }
          if (records.length === 0) continue;
          const cost = await r.deliver(records);
          // One RegisterTargets and one DeregisterTargets per group at most.
          expect(cost.maxSameKindPerGroup).toBeLessThanOrEqual(1);
          expect(cost.reads).toBeLessThanOrEqual(1);
          expect(cost.writes).toBeLessThanOrEqual(mayWrite.size);
          // Now and then a reconcile pass writes what ELB shows (one write per lease at most)…
          if (b % 3 === 2) {
            const pass = await r.reconcile();
            expect(pass.writes).toBeLessThanOrEqual(r.table.items.size);
            expect(pass.elbCalls).toBe(0);
          }
          // …and whatever the registry wrote comes back through the stream for free.
          const back = r.feedBack();
          expect(await back.cost).toEqual(NOTHING);
        }
        // The groups hold exactly the live leases' targets.
        for (const [capability, arn] of Object.entries(TG)) {
          const want = [...r.table.items.values()]
            .filter((i) => i.status.S === 'active' && (i.capabilities.SS as string[]).includes(capability))
            .map((i) => i.target.S)
            .sort();
          expect([...(r.elb.groups.get(arn) ?? [])].sort(), capability).toEqual(want);
        }
      }),
      { seed: 17, numRuns: 60 },
    );
  });
});

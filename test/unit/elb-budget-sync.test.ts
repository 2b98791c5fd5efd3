/**
 * The ELB call budget through the real sync and reconcile handlers, against an ELB that throttles
 * as AWS does (test/support/counting-elb.ts with the account's bucket, part of it taken by another
 * registrar) and the in-memory lease table. Time runs at 20× AWS's rates (account bucket 80/s,
 * burst 20, 30/s of it taken by another registrar; budget 40/s, burst 10) so a round of 40 groups takes seconds, not a minute; the
 * ratios are AWS's. Waits are on events (the handlers' promises), never fixed sleeps.
 */
import { describe, expect, it } from 'vitest';
import { ElbCallBudget } from '../../lib/core/elb-call-budget';
import { RuntimeConfig } from '../../lib/core/runtime-config';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { BucketGate } from '../../lib/registry/elb-call-gate';
import { AccountBucket, CountingElb } from '../support/counting-elb';
import { InMemoryLeaseTable } from '../support/in-memory-lease-table';
import { ALLOWED_CIDRS, captureMetrics, insert, Item, leaseItem, modify, privateIp, remove, silentLogger, streamEvent, T0 } from '../support/lease-fixtures';

const GROUPS = 40;
const arn = (g: number) => `arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/c${g}/${g}`;
const ACCOUNT: AccountBucket = { burst: 20, perSecond: 80, otherPerSecond: 30 };
const BUDGET: ElbCallBudget = { callsPerSecond: 40, burst: 10 };

function config(): RuntimeConfig {
  return {
    tableName: 'leases',
    routing: { capabilities: Object.fromEntries(Array.from({ length: GROUPS }, (_, g) => [`c${g}`, { targetGroupArn: arn(g), targetType: 'ip' as const }])), allowedCidrs: ALLOWED_CIDRS },
    safetyValveShare: 0.5,
    reconcileRepeatSeconds: 0,
  };
}

/** Agent `i` serves capability c(i mod 40). */
const agent = (i: number, patch: Partial<Parameters<typeof leaseItem>[0]> = {}): Item => leaseItem({ address: privateIp(i), capabilities: [`c${i % GROUPS}`], ...patch });

function registry(gate: BucketGate | undefined, batchBudgetMs?: number) {
  const elb = new CountingElb();
  elb.bucket = ACCOUNT;
  const table = new InMemoryLeaseTable('leases', () => T0);
  const clients = { config: config(), elbClient: elb.asClient(), dynamoClient: table.asClient(), logger: silentLogger(), now: () => T0 * 1000 + 1500, ...(gate ? { elbGate: gate } : {}) };
  const emf = captureMetrics();
  const sync = createSyncHandler({ ...clients, metrics: emf.metrics, ...(batchBudgetMs !== undefined ? { batchBudgetMs } : {}) });
  const reconcile = createReconcileHandler({ ...clients, metrics: captureMetrics().metrics, sleep: async () => undefined });
  return { elb, table, sync, reconcile, emf };
}

/** What every group should hold: the live leases naming it. */
function desired(items: Iterable<Readonly<Record<string, { S?: string; SS?: string[] }>>>): Map<string, Set<string>> {
  const groups = new Map<string, Set<string>>();
  for (const item of items) {
    if (item.status.S !== 'active') continue;
    const g = Number(item.capabilities.SS![0].slice(1));
    groups.set(arn(g), (groups.get(arn(g)) ?? new Set()).add(item.target.S!));
  }
  return groups;
}

const nonEmpty = (groups: Map<string, Set<string>>) => new Map([...groups].filter(([, s]) => s.size > 0));

describe('the ELB call budget in sync and reconcile, against an ELB that throttles as AWS does', () => {
  it('a join storm over 40 groups on two shards and a reconcile pass: never over the budget, never throttled, every group exact', async () => {
    const gate = new BucketGate(BUDGET);
    const { elb, table, sync, reconcile } = registry(gate);
    // 320 agents join: 4 batches of 40 records per shard, each batch touching every group.
    const shard = async (offset: number) => {
      for (let b = 0; b < 4; b++) {
        const records = Array.from({ length: GROUPS }, (_, k) => insert(agent(offset + b * GROUPS + k)));
        table.applyRecords(records);
        // A batch reported unapplied (no token within its budget) is delivered again, as Lambda does.
        for (let attempt = 0; attempt < 20; attempt++) {
          const failures = (await sync(streamEvent(records))).batchItemFailures;
          if (failures.length === 0) break;
        }
      }
    };
    await Promise.all([shard(0), shard(GROUPS * 4), reconcile()]);
    await reconcile();

    expect(elb.throttled).toBe(0);
    // In any one second: at most the burst plus a second's refill.
    expect(elb.busiestWindow(1000)).toBeLessThanOrEqual(BUDGET.burst + BUDGET.callsPerSecond);
    expect(nonEmpty(elb.groups)).toEqual(desired(table.items.values()));
  });

  it('the same storm without a budget is throttled by the account bucket (the front throttles as AWS does)', async () => {
    const { elb, table, sync } = registry(undefined);
    const records = Array.from({ length: 4 * GROUPS }, (_, k) => insert(agent(k)));
    table.applyRecords(records);
    await Promise.all([0, 1, 2, 3].map((s) => sync(streamEvent(records.slice(s * GROUPS, (s + 1) * GROUPS)))));
    expect(elb.throttled).toBeGreaterThan(0);
  });

  it('registrations go before removals of targets ELB already reports unhealthy', async () => {
    const gate = new BucketGate({ callsPerSecond: 20, burst: 1 });
    const { elb, table, sync } = registry(gate);
    const old = agent(1, { capabilities: ['c1'] });
    const unhealthy = { ...old, rotation: { M: { c1: { M: { state: { S: 'unhealthy' }, since: { N: String(T0 * 1000) } } } } } };
    const draining = { ...unhealthy, status: { S: 'draining' } };
    table.applyRecords([insert(unhealthy)]);
    const fresh = agent(2, { capabilities: ['c2'] });
    const records = [modify(unhealthy, draining), insert(fresh)];
    table.applyRecords(records);
    expect((await sync(streamEvent(records))).batchItemFailures).toEqual([]);
    expect(elb.accepted).toEqual([`RegisterTargetsCommand ${arn(2)}`, `DeregisterTargetsCommand ${arn(1)}`]);
  });

  it('reports the budget: calls per second against it, queued changes, the oldest wait', async () => {
    const gate = new BucketGate({ callsPerSecond: 20, burst: 2 });
    const { table, sync, emf } = registry(gate);
    const records = Array.from({ length: 6 }, (_, k) => insert(agent(k)));
    table.applyRecords(records);
    await sync(streamEvent(records));
    expect(emf.last('ElbCallBudgetPerSecond')).toBe(20);
    expect(emf.last('ElbCallsPerSecond')).toBeGreaterThan(0);
    expect(emf.last('QueuedChanges')).toBeGreaterThan(0);
    expect(emf.last('OldestQueuedChangeMs')).toBeGreaterThan(0);
  });

  describe('a batch delivered again with the records written since (a retry after a partial failure)', () => {
    const member = (elb: CountingElb, i: number) => elb.groups.get(arn(i % GROUPS))?.has(agent(i).target.S!) ?? false;

    it('an agent whose registration landed in the first delivery and that left since is taken out', async () => {
      const { elb, table, sync } = registry(undefined);
      const join = insert(agent(1));
      table.applyRecords([join]);
      await sync(streamEvent([join]));
      expect(member(elb, 1)).toBe(true);
      const leave = remove(agent(1));
      table.applyRecords([leave]);
      expect((await sync(streamEvent([join, leave]))).batchItemFailures).toEqual([]);
      expect(member(elb, 1)).toBe(false);
      // The group alone needed the change: it was read first (outside the Register/Deregister bucket).
      expect(elb.calls.DescribeTargetHealthCommand).toBe(1);
    });

    it('an agent whose deregistration landed in the first delivery and that came back since is put back', async () => {
      const { elb, table, sync } = registry(undefined);
      table.applyRecords([insert(agent(2))]);
      await sync(streamEvent([insert(agent(2))]));
      const leave = remove(agent(2));
      table.applyRecords([leave]);
      await sync(streamEvent([leave]));
      expect(member(elb, 2)).toBe(false);
      const back = insert(agent(2));
      table.applyRecords([back]);
      expect((await sync(streamEvent([leave, back]))).batchItemFailures).toEqual([]);
      expect(member(elb, 2)).toBe(true);
    });

    it('a join and leave inside one first delivery costs a read of the group and no Register/Deregister call', async () => {
      const { elb, table, sync } = registry(undefined);
      const records = [insert(agent(3)), remove(agent(3))];
      table.applyRecords(records);
      await sync(streamEvent(records));
      expect(elb.mutating).toBe(0);
      expect(elb.calls.DescribeTargetHealthCommand).toBe(1);
    });

    it('a replay-only change rides the call its group makes anyway, without a read', async () => {
      const { elb, table, sync } = registry(undefined);
      // Agents 4 and 44 serve the same group.
      const joins = [insert(agent(4)), insert(agent(4 + GROUPS))];
      table.applyRecords(joins);
      await sync(streamEvent(joins));
      const leaves = [remove(agent(4)), remove(agent(4 + GROUPS))];
      table.applyRecords(leaves);
      // Agent 4's join comes back with both leaves: 44's deregistration carries 4's.
      expect((await sync(streamEvent([joins[0], ...leaves]))).batchItemFailures).toEqual([]);
      expect(member(elb, 4)).toBe(false);
      expect(member(elb, 4 + GROUPS)).toBe(false);
      expect(elb.calls.DescribeTargetHealthCommand ?? 0).toBe(0);
      expect(elb.calls.DeregisterTargetsCommand).toBe(1);
    });

    it('alone, a replay-only change waits for its group\'s turn: no token in the batch, no read of the group, and it comes back with the batch', async () => {
      // One token, and the next one an hour away.
      const { elb, table, sync } = registry(new BucketGate({ callsPerSecond: 1 / 3600, burst: 1 }), 50);
      const join = insert(agent(5));
      table.applyRecords([join]);
      await sync(streamEvent([join]));
      expect(member(elb, 5)).toBe(true);
      const leave = remove(agent(5));
      table.applyRecords([leave]);
      const result = await sync(streamEvent([join, leave]));
      expect(result.batchItemFailures).toEqual([{ itemIdentifier: join.dynamodb!.SequenceNumber }]);
      expect(elb.calls.DescribeTargetHealthCommand ?? 0).toBe(0);
      expect(member(elb, 5)).toBe(true);
    });
  });
});

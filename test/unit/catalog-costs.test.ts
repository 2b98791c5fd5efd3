/**
 * What each lease change costs the capability catalog, counted, as registry-costs.test.ts counts
 * the routing: member index writes, catalog reads and lease reads made by stream sync, the
 * catalog stream reader, the rotation poll and reconcile with the catalog on
 * (test/support/fake-registry-state.ts). Whatever stream sync does for the catalog is on the path
 * that delays its next batch, so a registration costs the sync's catalog step nothing: the catalog
 * stream reader (its own event source mapping) writes the entries. The registry's own `rotation`
 * writes coming back cost either reader nothing (their writers update the index), or each health
 * change a poll sees costs a read and a member write per group. B2 on ca7850c (no such count):
 * sync invocations of 4–5 s, registration p99 6.9 s against 2.2 s with the catalog's calls made
 * no-ops; on e02d80c, with the sync still writing new leases' entries: registrar p99 1.99 s
 * against 1.37 s.
 */
import { toLeaseChange } from '../../lib/aws/stream-records';
import type { DynamoDBRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import type { CatalogConfig } from '../../lib/core/catalog-document';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { LeaseStore } from '../../lib/aws/lease-store';
import { newSyncMemory } from '../../lib/registry/container-memory';
import { reconcileOnce } from '../../lib/registry/reconcile';
import { RotationPoll } from '../../lib/registry/rotation-poll';
import { syncStreamBatch } from '../../lib/registry/stream-sync';
import { syncCatalogBatch } from '../../lib/registry/catalog-stream';
import { CountingElb } from '../support/counting-elb';
import { FakeRegistryState } from '../support/fake-registry-state';
import { InMemoryLeaseTable } from '../support/in-memory-lease-table';
import { insert, leaseItem, modify, privateIp, renewed, T0, testConfig } from '../support/lease-fixtures';

const NOW_MS = T0 * 1000 + 1_500;
const catalogConfig: CatalogConfig = {
  tableName: 'state',
  headerName: 'X-Agent-Capability',
  pathPrefix: 'agents',
  attributes: [],
  capabilities: {
    vision: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
    speech: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
    ec2: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
  },
};

/** What one step cost the catalog. */
interface CatalogCost {
  /** Member index writes (puts and deletes). */
  readonly memberWrites: number;
  /** Lease reads (BatchGetItem requests), the routing's confirming reads included. */
  readonly leaseReads: number;
  /** Catalog document reads and member Queries. */
  readonly indexReads: number;
}

function registry() {
  let nowMs = NOW_MS;
  const config = testConfig();
  const elb = new CountingElb();
  const table = new InMemoryLeaseTable(config.tableName, () => Math.floor(nowMs / 1000));
  const state = new FakeRegistryState();
  const routing = config.routing;
  const policy = new AddressPolicy(routing.allowedCidrs);
  const store = new LeaseStore(table.asClient(), config.tableName);
  const catalog = { state: state.asStore(), catalog: catalogConfig };
  // A clock that moves (a millisecond a reading), as a pass's writes come after its scan.
  const now = () => ++nowMs;
  const memory = newSyncMemory();
  const sync = (records: DynamoDBRecord[]) => syncStreamBatch(records.map(toLeaseChange), { elb: new ElbTargets(elb.asClient()), routing, policy, store, now, memory, catalog });
  const catalogReader = (records: DynamoDBRecord[]) => syncCatalogBatch(records.map(toLeaseChange), { ...catalog, store, routing, policy, now });
  /** Both readers of the stream, each with the batch, as two event source mappings deliver it. */
  const bothReaders = async (records: DynamoDBRecord[]) => {
    await sync(records);
    await catalogReader(records);
  };
  const poll = new RotationPoll({ elb: new ElbTargets(elb.asClient()), store, routing, policy, now, catalog });
  const cost = async (step: () => Promise<unknown>): Promise<CatalogCost> => {
    const before = { ...state.calls };
    const reads = table.count('BatchGetItem');
    await step();
    const d = (k: keyof FakeRegistryState['calls']) => state.calls[k] - before[k];
    return { memberWrites: d('putMember') + d('deleteMember'), leaseReads: table.count('BatchGetItem') - reads, indexReads: d('readCatalog') + d('queryMembers') };
  };
  return {
    state,
    deliver: (records: DynamoDBRecord[]) =>
      cost(async () => {
        table.applyRecords(records);
        await bothReaders(records);
      }),
    /** The stream sync alone: what its next batch waits for. */
    syncOnly: (records: DynamoDBRecord[]) =>
      cost(async () => {
        table.applyRecords(records);
        await sync(records);
      }),
    /** The catalog stream reader alone, with records the table already holds. */
    catalogOnly: (records: DynamoDBRecord[]) => cost(() => catalogReader(records)),
    /** The records of the registry's own writes, as both readers' next batch. */
    feedBack: () => {
      const records = table.takeStreamRecords();
      return { count: records.length, cost: cost(() => bothReaders(records)) };
    },
    poll: () => cost(() => poll.pollOnce()),
    reconcile: () => cost(() => reconcileOnce({ elb: new ElbTargets(elb.asClient()), store, routing, policy, safetyValveShare: 0.5, now, catalog })),
  };
}

const lease = (n: number, capabilities = ['vision', 'speech']) => leaseItem({ address: privateIp(n), capabilities, leaseToken: `tok-${n}` });
const stateOf = (r: ReturnType<typeof registry>, capability: string, n: number) => r.state.members.get(capability)?.get(`${privateIp(n)}:8080`)?.member.state;

describe('what one lease change costs the catalog', () => {
  it('a registration: one member write per group, the lease read once more; a heartbeat: nothing', async () => {
    const r = registry();
    const item = lease(1);
    expect(await r.deliver([insert(item)])).toMatchObject({ memberWrites: 2, leaseReads: 2 });
    expect(await r.deliver([modify(item, renewed(item))])).toEqual({ memberWrites: 0, leaseReads: 0, indexReads: 0 });
  });

  it('a registration costs the stream sync nothing for the catalog (its confirming read only): the catalog stream reader writes the entries', async () => {
    const r = registry();
    const records = [insert(lease(1)), insert(lease(2, ['vision']))];
    expect(await r.syncOnly(records)).toEqual({ memberWrites: 0, leaseReads: 1, indexReads: 0 });
    expect(r.state.members.get('vision')?.size ?? 0).toBe(0);
    expect(await r.catalogOnly(records)).toMatchObject({ memberWrites: 3, leaseReads: 1 });
    expect(r.state.members.get('vision')?.size).toBe(2);
    expect(r.state.members.get('speech')?.size).toBe(1);
  });

  it('a health change the poll sees: the poll writes the entries (one per group); its record costs the sync nothing', async () => {
    const r = registry();
    await r.deliver([insert(lease(1)), insert(lease(2, ['vision']))]);
    expect(await r.poll()).toMatchObject({ memberWrites: 3 });
    expect(stateOf(r, 'vision', 1)).toBe('healthy');
    expect(stateOf(r, 'speech', 1)).toBe('healthy');
    const back = r.feedBack();
    expect(back.count).toBe(2);
    expect(await back.cost).toEqual({ memberWrites: 0, leaseReads: 0, indexReads: 0 });
    // Nothing changed: the poll writes nothing, to the leases or the index.
    expect(await r.poll()).toEqual({ memberWrites: 0, leaseReads: 0, indexReads: 0 });
  });

  it('a health change reconcile sees: the same, and its record costs the sync nothing', async () => {
    const r = registry();
    await r.deliver([insert(lease(1))]);
    expect(await r.reconcile()).toMatchObject({ memberWrites: 2 });
    expect(stateOf(r, 'vision', 1)).toBe('healthy');
    expect(await r.feedBack().cost).toEqual({ memberWrites: 0, leaseReads: 0, indexReads: 0 });
  });

  it('a drain: the catalog reader writes the entries of the status, the sync those of its `draining` write after it; the record coming back costs nothing', async () => {
    const r = registry();
    const item = lease(1);
    await r.deliver([insert(item)]);
    await r.poll();
    r.feedBack();
    // The drain's own entries (status) and, after the sync's `draining` write, the same entries again.
    expect(await r.deliver([modify(item, { ...item, status: { S: 'draining' } })])).toMatchObject({ memberWrites: 4 });
    expect(stateOf(r, 'vision', 1)).toBe('draining');
    expect(await r.feedBack().cost).toEqual({ memberWrites: 0, leaseReads: 0, indexReads: 0 });
  });
});

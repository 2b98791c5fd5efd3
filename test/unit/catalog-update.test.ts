import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import type { CatalogConfig } from '../../lib/core/catalog-document';
import { membersOfItem } from '../../lib/core/catalog-members';
import type { RawItem } from '../../lib/core/lease-schema';
import type { LeaseStore } from '../../lib/aws/lease-store';
import { CatalogDeps, repairCatalog, updateCatalogForLeases } from '../../lib/registry/catalog-update';
import { FakeRegistryState } from '../support/fake-registry-state';
import { ALLOWED_CIDRS, leaseItem, T0, testConfig } from '../support/lease-fixtures';

const routing = testConfig().routing;
const policy = new AddressPolicy(ALLOWED_CIDRS);
const catalog: CatalogConfig = {
  tableName: 'state',
  headerName: 'X-Agent-Capability',
  pathPrefix: 'agents',
  attributes: ['model'],
  capabilities: {
    vision: { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [] },
    speech: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
    ec2: { algorithm: 'round_robin', stickiness: 'off', variants: [] },
  },
};

/** The lease table as the registry's consistent reads see it. */
function leases(...items: RawItem[]) {
  const table = new Map(items.map((i) => [i.target.S!, i]));
  const reads: string[][] = [];
  const store = {
    getMany: async (keys: readonly string[]) => {
      reads.push([...keys]);
      return new Map(keys.map((k) => [k, table.get(k)]));
    },
  } as unknown as LeaseStore;
  return { table, reads, store };
}

const healthy = (address: string, capabilities = ['vision'], model = 'large') => ({
  ...leaseItem({ address, capabilities }),
  metadata: { M: { model: { S: model } } },
  rotation: { M: Object.fromEntries(capabilities.map((c) => [c, { M: { state: { S: 'healthy' }, since: { N: String(T0 * 1000) } } }])) },
});

function deps(state: FakeRegistryState, store: LeaseStore): CatalogDeps {
  return { state: state.asStore(), store, routing, policy, catalog, now: () => T0 * 1000 };
}

const entry = (state: FakeRegistryState, name: string) => state.doc?.capabilities.find((c) => c.name === name);

describe('updateCatalogForLeases (after a stream batch)', () => {
  it('writes the changed leases\' entries as the table has them now, builds the whole first revision, and counts', async () => {
    const state = new FakeRegistryState();
    const { store, reads } = leases(healthy('10.0.0.1'), healthy('10.0.0.2', ['vision', 'speech'], 'small'));
    const report = await updateCatalogForLeases(deps(state, store), new Map([
      ['10.0.0.1:8080', new Set(['vision'])],
      ['10.0.0.2:8080', new Set(['vision', 'speech'])],
    ]));
    expect(reads).toEqual([['10.0.0.1:8080', '10.0.0.2:8080']]);
    expect(report).toMatchObject({ memberWrites: 3, staleWrites: 0, published: true, revision: 1 });
    expect(report.error).toBeUndefined();
    expect(state.doc?.capabilities.map((c) => c.name)).toEqual(['ec2', 'speech', 'vision']);
    expect(entry(state, 'vision')).toMatchObject({ routable: true, targets: { registered: 2, healthy: 2 }, attributes: { model: ['large', 'small'] } });
    expect(entry(state, 'ec2')?.targets.registered).toBe(0);
  });

  it('moves the revision only when a count moved, and recounts only the touched capabilities', async () => {
    const state = new FakeRegistryState();
    const t = leases(healthy('10.0.0.1'), healthy('10.0.0.2', ['speech']));
    await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.1:8080', new Set(['vision'])]]));
    state.calls.queryMembers = 0;
    // The same lease again (a re-acquire that changed nothing the catalog shows): no new revision.
    const same = await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.1:8080', new Set(['vision'])]]));
    expect(same).toMatchObject({ published: false, revision: 1, groupsCounted: 1 });
    expect(state.calls.queryMembers).toBe(1);
    // It falls sick: a new revision with the new count.
    t.table.set('10.0.0.1:8080', { ...healthy('10.0.0.1'), rotation: { M: { vision: { M: { state: { S: 'unhealthy' }, since: { N: String(T0 * 1000 + 5) } } } } } });
    const sick = await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.1:8080', new Set(['vision'])]]));
    expect(sick).toMatchObject({ published: true, revision: 2 });
    expect(entry(state, 'vision')).toMatchObject({ routable: false, targets: { registered: 1, healthy: 0, unhealthy: 1 } });
  });

  it('removes the entries of a released lease and of a capability a lease dropped', async () => {
    const state = new FakeRegistryState();
    const t = leases(healthy('10.0.0.1', ['vision', 'speech']), healthy('10.0.0.2'));
    await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.1:8080', new Set(['vision', 'speech'])], ['10.0.0.2:8080', new Set(['vision'])]]));
    t.table.set('10.0.0.1:8080', healthy('10.0.0.1', ['speech']));
    t.table.delete('10.0.0.2:8080');
    await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.1:8080', new Set(['vision', 'speech'])], ['10.0.0.2:8080', new Set(['vision'])]]));
    expect(state.members.get('vision')?.size).toBe(0);
    expect(entry(state, 'vision')?.targets.registered).toBe(0);
    expect(entry(state, 'speech')?.targets.healthy).toBe(1);
  });

  it('recounts and publishes again when another writer published first', async () => {
    const state = new FakeRegistryState();
    const t = leases(healthy('10.0.0.1'));
    await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.1:8080', new Set(['vision'])]]));
    t.table.set('10.0.0.2:8080', healthy('10.0.0.2'));
    // Another writer publishes revision 2 between this step's read and its write.
    state.beforeWrite = () => (state.doc = { ...state.doc!, revision: 2 });
    const report = await updateCatalogForLeases(deps(state, t.store), new Map([['10.0.0.2:8080', new Set(['vision'])]]));
    expect(report).toMatchObject({ published: true, revision: 3 });
    expect(entry(state, 'vision')?.targets.healthy).toBe(2);
  });

  it('reports a failure instead of throwing: the catalog never holds up a batch', async () => {
    const state = new FakeRegistryState();
    state.failQuery = new Error('boom');
    const report = await updateCatalogForLeases(deps(state, leases(healthy('10.0.0.1')).store), new Map([['10.0.0.1:8080', new Set(['vision'])]]));
    expect(report.published).toBe(false);
    expect(report.error?.code).toBe('REGISTRY_STATE');
    expect(report.error?.message).toContain('boom');
  });

  it('does nothing for a batch of heartbeats', async () => {
    const state = new FakeRegistryState();
    const t = leases();
    expect(await updateCatalogForLeases(deps(state, t.store), new Map())).toMatchObject({ memberWrites: 0, published: false });
    expect(t.reads).toEqual([]);
    expect(state.calls.readCatalog).toBe(0);
  });
});

describe('repairCatalog (a reconcile pass)', () => {
  it('repairs what the index got wrong, judged by a fresh read, and publishes the whole document', async () => {
    const state = new FakeRegistryState();
    const a = healthy('10.0.0.1');
    const t = leases(a, healthy('10.0.0.2', ['speech']));
    // The index: a wrong state for .1, nothing for .2, an entry for a lease that is gone.
    const [m1] = membersOfItem(a, policy, routing, T0);
    await state.putMember({ ...m1, state: 'initial' }, 1);
    await state.putMember({ ...m1, target: '10.0.0.9:8080', address: '10.0.0.9' }, 1);
    const report = await repairCatalog(deps(state, t.store), [...t.table.values()], T0 * 1000 - 10);
    expect(report).toMatchObject({ memberWrites: 3, published: true, revision: 1 });
    expect(t.reads).toEqual([['10.0.0.1:8080', '10.0.0.9:8080', '10.0.0.2:8080']]);
    expect([...state.members.get('vision')!.keys()]).toEqual(['10.0.0.1:8080']);
    expect(entry(state, 'vision')?.targets.healthy).toBe(1);
    expect(entry(state, 'speech')?.targets.healthy).toBe(1);
    // Nothing left to repair: no read, no write, no new revision.
    const again = await repairCatalog(deps(state, t.store), [...t.table.values()], T0 * 1000);
    expect(again).toMatchObject({ memberWrites: 0, published: false, revision: 1 });
    expect(t.reads).toHaveLength(1);
  });

  it('leaves alone an entry the stream wrote from a read newer than the scan', async () => {
    const state = new FakeRegistryState();
    const t = leases();
    const [m1] = membersOfItem(healthy('10.0.0.1'), policy, routing, T0);
    await state.putMember(m1, T0 * 1000 + 500);
    const report = await repairCatalog(deps(state, t.store), [], T0 * 1000);
    expect(report.memberWrites).toBe(0);
    expect(t.reads).toEqual([]);
    expect(state.members.get('vision')?.size).toBe(1);
  });

  it('takes a crashed agent out once its lease expired, before the lease is deleted', async () => {
    const state = new FakeRegistryState();
    const expired = { ...healthy('10.0.0.1'), expiresAt: { N: String(T0 - 1) } };
    const t = leases(expired);
    const [m1] = membersOfItem(healthy('10.0.0.1'), policy, routing, T0);
    await state.putMember(m1, 1);
    await repairCatalog(deps(state, t.store), [expired], T0 * 1000);
    expect(state.members.get('vision')?.size).toBe(0);
    expect(entry(state, 'vision')?.routable).toBe(false);
  });
});

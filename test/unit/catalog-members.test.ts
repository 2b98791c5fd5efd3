import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import { catalogChanges, indexDrift, membersByGroup, membersOfItem, memberWrites } from '../../lib/core/catalog-members';
import type { CatalogMember } from '../../lib/core/registry-state';
import type { LeaseChangeRecord, RecordKind } from '../../lib/core/stream-planner';
import { ALLOWED_CIDRS, leaseItem, T0, testConfig } from '../support/lease-fixtures';

const routing = testConfig().routing;
const policy = new AddressPolicy(ALLOWED_CIDRS);

describe('membersOfItem: the member index entries a lease wants', () => {
  it('one per routed group, with the rotation entry of that group and the metadata; never the token', () => {
    const item = {
      ...leaseItem({ address: '10.0.0.1', capabilities: ['vision', 'speech', 'ocr'] }),
      metadata: { M: { model: { S: 'large' } } },
      rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: '1800000001000' } } } } },
    };
    const members = membersOfItem(item, policy, routing, T0).sort((x, y) => x.capability.localeCompare(y.capability));
    expect(members.map((m) => [m.capability, m.state])).toEqual([
      ['speech', undefined],
      ['vision', 'healthy'],
    ]);
    expect(members[1]).toMatchObject({ target: '10.0.0.1:8080', address: '10.0.0.1', port: 8080, status: 'active', since: 1_800_000_001_000, metadata: { model: { S: 'large' } } });
    expect(JSON.stringify(members)).not.toContain('leaseToken');
  });

  it.each([
    ['an expired lease', leaseItem({ address: '10.0.0.1', expiresAt: T0 }), 0],
    ['a draining lease (still held)', leaseItem({ address: '10.0.0.1', status: 'draining' }), 1],
    ['an invalid item', { target: { S: 'nonsense' } }, 0],
    ['no item', undefined, 0],
  ])('%s wants %i entries', (_, item, count) => {
    expect(membersOfItem(item as never, policy, routing, T0)).toHaveLength(count);
  });
});

describe('catalogChanges: which leases a batch may have changed in the index', () => {
  const record = (id: string, key: string, caps: string[], newCaps?: string[]): LeaseChangeRecord => ({
    id,
    key,
    oldImage: leaseItem({ address: key.split(':')[0], capabilities: caps }),
    ...(newCaps ? { newImage: leaseItem({ address: key.split(':')[0], capabilities: newCaps }) } : {}),
  });

  it('leaves heartbeats out and keeps every routed group the images named', () => {
    const records = [record('1', '10.0.0.1:8080', ['vision'], ['vision']), record('2', '10.0.0.2:8080', ['vision'], ['speech', 'ocr']), record('3', '10.0.0.3:8080', ['speech'])];
    const kinds: RecordKind[] = ['heartbeat', 'change', 'release'];
    expect([...catalogChanges(records, kinds, routing)].map(([k, g]) => [k, [...g].sort()])).toEqual([
      ['10.0.0.2:8080', ['speech', 'vision']],
      ['10.0.0.3:8080', ['speech']],
    ]);
  });
});

describe('memberWrites', () => {
  it('puts what the lease wants and removes the groups it no longer is in', () => {
    const [m] = membersOfItem(leaseItem({ address: '10.0.0.1', capabilities: ['speech'] }), policy, routing, T0);
    expect(memberWrites('10.0.0.1:8080', [m], ['vision', 'speech'])).toEqual({ puts: [m], deletes: [{ capability: 'vision', target: '10.0.0.1:8080' }] });
    expect(memberWrites('10.0.0.1:8080', [], ['vision'])).toEqual({ puts: [], deletes: [{ capability: 'vision', target: '10.0.0.1:8080' }] });
  });
});

describe('indexDrift: what a reconcile pass repairs', () => {
  const items = [leaseItem({ address: '10.0.0.1', capabilities: ['vision'] }), leaseItem({ address: '10.0.0.2', capabilities: ['vision'] })];
  const wanted = membersByGroup(items, policy, routing, T0).get('vision')!;
  const [a, b] = [...wanted.values()];
  const stale: CatalogMember = { ...a, state: 'healthy', since: 5 };
  const scanAt = 1000;

  it.each<[string, CatalogMember[], Record<string, number>, string[]]>([
    ['nothing when the index agrees', [a, b], {}, []],
    ['a missing entry', [a], {}, ['10.0.0.2:8080']],
    ['an entry that says otherwise', [stale, b], {}, ['10.0.0.1:8080']],
    ['an entry without a lease', [a, b, { ...a, target: '10.0.0.9:8080' }], {}, ['10.0.0.9:8080']],
    ['not an entry read after the scan: the stream already brought it up to date', [stale, b, { ...a, target: '10.0.0.9:8080' }], { '10.0.0.1:8080': 1001, '10.0.0.9:8080': 2000 }, []],
  ])('%s', (_, members, readAt, drift) => {
    expect(indexDrift(wanted, { members, readAt: new Map(Object.entries(readAt)) }, scanAt)).toEqual(drift);
  });

  it('groups every scanned lease by the groups it is routed to', () => {
    expect([...membersByGroup(items, policy, routing, T0)].map(([g, m]) => [g, m.size])).toEqual([
      ['vision', 2],
      ['speech', 0],
      ['ec2', 0],
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { canonicalJson, CatalogMember, decodeMember, encodeMember, memberReadAt, sameMember } from '../../lib/core/registry-state';

const member: CatalogMember = {
  capability: 'vision-canary',
  target: '10.0.0.1:8080',
  address: '10.0.0.1',
  port: 8080,
  agentId: 'worker-7',
  status: 'active',
  state: 'healthy',
  since: 1_800_000_001_000,
  availabilityZone: 'all',
  registeredAt: 1_800_000_000_000,
  metadata: { model: { S: 'large' } },
};

describe('the member index item', () => {
  it('keys a member by its capability partition and its target, and reads back as written', () => {
    const item = encodeMember(member, 1_800_000_002_000);
    expect(item.pk).toEqual({ S: 'members#vision-canary' });
    expect(item.sk).toEqual({ S: '10.0.0.1:8080' });
    expect(decodeMember(item)).toEqual(member);
    expect(memberReadAt(item)).toBe(1_800_000_002_000);
  });

  it('leaves out what the member does not have', () => {
    const bare: CatalogMember = { capability: 'vision', target: '10.0.0.1:8080', address: '10.0.0.1', port: 8080, agentId: 'a', status: 'draining', registeredAt: 1 };
    expect(Object.keys(encodeMember(bare, 2)).sort()).toEqual(['address', 'agentId', 'pk', 'port', 'readAt', 'registeredAt', 'sk', 'status']);
    expect(decodeMember(encodeMember(bare, 2))).toEqual(bare);
  });

  it.each([
    ['the catalog item', { pk: { S: 'catalog' }, sk: { S: 'document' } }],
    ['a member without a port', { ...encodeMember(member, 1), port: { S: '8080' } }],
    ['a member with an unknown status', { ...encodeMember(member, 1), status: { S: 'gone' } }],
  ])('is not read from %s', (_, item) => {
    expect(decodeMember(item)).toBeUndefined();
  });

  it('drops an unknown state rather than the member', () => {
    expect(decodeMember({ ...encodeMember(member, 1), state: { S: 'weird' } })?.state).toBeUndefined();
  });

  it('compares members by what they say, whatever the order of a map or the read time', () => {
    const reordered: CatalogMember = { ...member, metadata: { b: { S: '2' }, a: { S: '1' } } };
    expect(sameMember(reordered, { ...member, metadata: { a: { S: '1' }, b: { S: '2' } } })).toBe(true);
    expect(sameMember(member, { ...member, state: 'unhealthy' })).toBe(false);
    expect(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }] })).toBe('{"a":[{"c":2,"d":1}],"b":1}');
  });
});

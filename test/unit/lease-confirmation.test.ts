import { describe, expect, it } from 'vitest';
import { AddressPolicy, confirmChanges, contradictedBy, leaseVersion, RawItem, TargetRef, wantsTarget } from '../../lib/core';
import { leaseItem, renewed, T0, testConfig, TG } from '../support/lease-fixtures';

/** The rule the stream and reconcile paths share: the table, read just now, decides. */

const config = testConfig();
const ctx = { policy: new AddressPolicy(config.routing.allowedCidrs), routing: config.routing, nowSeconds: T0 };
const target = (item: RawItem): TargetRef => ({ key: item.target.S!, id: item.address.S!, port: Number(item.port.N) });

describe('wantsTarget: a lease wants its target in a group when it is live now and names the group', () => {
  it.each<[string, RawItem | undefined, string, boolean]>([
    ['a live active lease naming the group', leaseItem({ address: '10.0.6.1' }), TG.vision, true],
    ['no lease at all (released, swept, never written)', undefined, TG.vision, false],
    ['a lease that expired a second ago', leaseItem({ address: '10.0.6.1', expiresAt: T0 - 1 }), TG.vision, false],
    ['a lease expiring this very second', leaseItem({ address: '10.0.6.1', expiresAt: T0 }), TG.vision, false],
    ['a draining lease', leaseItem({ address: '10.0.6.1', status: 'draining' }), TG.vision, false],
    ['a live lease naming another group', leaseItem({ address: '10.0.6.1', capabilities: ['speech'] }), TG.vision, false],
    ['a live lease naming two groups, asked for the second', leaseItem({ address: '10.0.6.1', capabilities: ['vision', 'speech'] }), TG.speech, true],
    ['a lease with a public address', leaseItem({ address: '8.8.8.8' }), TG.vision, false],
    ['an item that is no valid lease', { ...leaseItem({ address: '10.0.6.1' }), port: { S: '8080' } }, TG.vision, false],
    ['an instance id in an ip group', leaseItem({ address: 'i-0123456789abcdef0' }), TG.vision, false],
  ])('%s → %s', (_n, item, arn, wanted) => {
    expect(wantsTarget(item, arn, ctx)).toBe(wanted);
  });
});

describe('confirmChanges: a registration goes only to a lease live now, a deregistration only to one that is not', () => {
  const live = leaseItem({ address: '10.0.6.1' });
  const expired = leaseItem({ address: '10.0.6.2', expiresAt: T0 - 91 });
  const draining = leaseItem({ address: '10.0.6.3', status: 'draining' });
  const gone = leaseItem({ address: '10.0.6.4' });
  const unread = leaseItem({ address: '10.0.6.5' });
  const reads = new Map<string, RawItem | undefined>([
    [live.target.S!, live],
    [expired.target.S!, expired],
    [draining.target.S!, draining],
    [gone.target.S!, undefined],
  ]);
  const all = [live, expired, draining, gone, unread].map(target);

  it.each([
    ['register', ['10.0.6.1:8080'], ['10.0.6.2:8080', '10.0.6.3:8080', '10.0.6.4:8080', '10.0.6.5:8080']],
    ['deregister', ['10.0.6.2:8080', '10.0.6.3:8080', '10.0.6.4:8080'], ['10.0.6.1:8080', '10.0.6.5:8080']],
  ] as const)('%s: sends %j, withholds %j (a key without a read is never acted on)', (action, send, withheld) => {
    const verdict = confirmChanges(action, TG.vision, all, reads, ctx);
    expect(verdict.send.map((t) => t.key)).toEqual(send);
    expect(verdict.withheld.map((t) => t.key)).toEqual(withheld);
  });

  it('after a call landed, what the table now contradicts is to be undone', () => {
    expect(contradictedBy('register', TG.vision, all.slice(0, 4), reads, ctx).map((t) => t.key)).toEqual(['10.0.6.2:8080', '10.0.6.3:8080', '10.0.6.4:8080']);
    expect(contradictedBy('deregister', TG.vision, all.slice(0, 4), reads, ctx).map((t) => t.key)).toEqual(['10.0.6.1:8080']);
  });
});

describe('leaseVersion: what counts as a change of the lease', () => {
  const base = leaseItem({ address: '10.0.6.1' });
  it.each<[string, RawItem, boolean]>([
    ['a heartbeat (expiresAt, renewedAt)', renewed(base, 30), true],
    ['the registry writing rotation', { ...base, rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: '1' } } } } } }, true],
    ['a capability added', { ...base, capabilities: { SS: ['speech', 'vision'] } }, false],
    ['a re-acquire (new token)', { ...base, leaseToken: { S: 'other' } }, false],
    ['a drain', { ...base, status: { S: 'draining' } }, false],
    ['a zone added', { ...base, availabilityZone: { S: 'all' } }, false],
    ['metadata changed', { ...base, metadata: { M: { v: { S: '2' } } } }, false],
  ])('%s keeps the version: %s', (_n, item, same) => {
    expect(leaseVersion(item) === leaseVersion(base)).toBe(same);
  });

  it('is stable under key and set order, and empty for no item', () => {
    const a = { ...base, capabilities: { SS: ['vision', 'speech'] } };
    const b = Object.fromEntries(Object.entries({ ...base, capabilities: { SS: ['speech', 'vision'] } }).reverse());
    expect(leaseVersion(a)).toBe(leaseVersion(b));
    expect(leaseVersion(undefined)).toBe('');
    expect(leaseVersion(base)).toMatch(/^[0-9a-f]{16}$/);
  });
});

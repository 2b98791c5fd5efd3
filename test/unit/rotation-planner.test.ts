import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import { encodeRotationEntry } from '../../lib/core/lease-codec';
import type { RotationEntry, RotationState } from '../../lib/core/lease-schema';
import type { ObservedGroup, ObservedTarget } from '../../lib/core/reconcile-planner';
import {
  changedTargets,
  rotationEntries,
  LandedCall,
  mergeRotationWrites,
  planCallRotation,
  planObservedRotation,
  planRestoredRotation,
  rotationStateOf,
  RotationWrite,
} from '../../lib/core/rotation-planner';
import type { LeaseChangeRecord } from '../../lib/core/stream-planner';
import { Item, leaseItem, T0, testConfig, TG } from '../support/lease-fixtures';

const policy = new AddressPolicy();
const routing = testConfig().routing;
const NOW_MS = T0 * 1000 + 1_000;
const KEY = '10.0.0.1:8080';

/** A lease on 10.0.0.1:8080 (vision and speech unless told), with these `rotation` entries. */
function lease(rotation: Record<string, RotationEntry> = {}, extra: { token?: string; expiresAt?: number; status?: 'active' | 'draining'; capabilities?: string[] } = {}): Item {
  const item = leaseItem({
    address: '10.0.0.1',
    capabilities: extra.capabilities ?? ['vision', 'speech'],
    leaseToken: extra.token ?? 'tok-1',
    ...(extra.expiresAt !== undefined ? { expiresAt: extra.expiresAt } : {}),
    ...(extra.status ? { status: extra.status } : {}),
  });
  if (Object.keys(rotation).length === 0) return item;
  return { ...item, rotation: { M: Object.fromEntries(Object.entries(rotation).map(([c, e]) => [c, encodeRotationEntry(e)])) } } as Item;
}
const at = (state: RotationState, since: number): RotationEntry => ({ state, since });
const group = (capability: 'vision' | 'speech', targets: ObservedTarget[]): ObservedGroup => ({ capability, targetGroupArn: TG[capability], targets });
const target = (state: string, reason?: string): ObservedTarget => ({ id: '10.0.0.1', port: 8080, state, ...(reason ? { reason } : {}) });
const brief = (writes: readonly RotationWrite[]) => writes.map((w) => `${w.capability}=${w.entry.state}@${w.entry.since - NOW_MS}/${w.leaseToken}/${w.cause}`).sort();

describe('rotationStateOf: ELB target health → rotation state', () => {
  it.each([
    ['initial', undefined, 'initial'],
    ['healthy', undefined, 'healthy'],
    ['unhealthy', 'Target.FailedHealthChecks', 'unhealthy'],
    ['draining', 'Target.DeregistrationInProgress', 'draining'],
    ['unused', 'Target.NotInUse', 'unused'],
    ['unavailable', undefined, 'unavailable'],
    ['unused', 'Target.NotRegistered', 'absent'],
    ['some-future-state', undefined, undefined],
  ] as const)('%s (%s) → %s', (state, reason, expected) => {
    expect(rotationStateOf(target(state, reason))).toBe(expected);
  });
  it('a target missing from the read is absent', () => expect(rotationStateOf(undefined)).toBe('absent'));
});

describe('planObservedRotation: what reconcile (and a rotation poll) writes from its group reads', () => {
  const observe = (items: Item[], groups: ObservedGroup[]) => brief(planObservedRotation({ groups, items, observedAtMs: NOW_MS, policy, routing }));
  it.each<[string, Item, ObservedGroup[], string[]]>([
    ['no entry yet: every read group is written', lease(), [group('vision', [target('healthy')]), group('speech', [target('initial')])], ['speech=initial@0/tok-1/observed', 'vision=healthy@0/tok-1/observed']],
    ['a state change is written', lease({ vision: at('initial', NOW_MS - 5000) }), [group('vision', [target('healthy')])], ['vision=healthy@0/tok-1/observed']],
    ['the same state is not written again (on change only)', lease({ vision: at('healthy', NOW_MS - 5000) }), [group('vision', [target('healthy')])], []],
    ['an entry newer than the read wins (a later writer saw more)', lease({ vision: at('draining', NOW_MS + 10) }), [group('vision', [target('healthy')])], []],
    ['not in the group read: absent', lease({ vision: at('draining', NOW_MS - 5000) }), [group('vision', [])], ['vision=absent@0/tok-1/observed']],
    ['an active lease not yet in a group it has no entry for: nothing (it has not left; its registration is under way)', lease(), [group('vision', [])], []],
    ['the same lease, draining: absent (its agent waits to be out of rotation)', lease({}, { status: 'draining' }), [group('vision', [])], ['vision=absent@0/tok-1/observed']],
    ['a group that was not read says nothing', lease(), [], []],
    ['an expired lease is not told anything', lease({}, { expiresAt: T0 }), [group('vision', [target('healthy')])], []],
    ['a draining lease is told its draining', lease({ vision: at('healthy', NOW_MS - 9000) }, { status: 'draining' }), [group('vision', [target('draining', 'Target.DeregistrationInProgress')])], ['vision=draining@0/tok-1/observed']],
    ['a capability the lease does not list is not written', lease({}, { capabilities: ['speech'] }), [group('vision', [target('healthy')])], []],
    ['a state outside the contract is not guessed at', lease(), [group('vision', [target('warming')])], []],
  ])('%s', (_name, item, groups, expected) => {
    expect(observe([item], groups)).toEqual(expected);
  });
});

describe('planCallRotation: what sync and reconcile record of their own calls, where the lease would say otherwise', () => {
  const call = (action: 'register' | 'deregister', item: Item | undefined, tg: string = TG.vision): LandedCall => ({ action, targetGroupArn: tg, target: KEY, item });
  it.each<[string, LandedCall, string[]]>([
    ['a registration of a lease with no entry writes nothing (the first group read will)', call('register', lease()), []],
    ['a registration of a target the lease shows healthy changes nothing (RegisterTargets leaves it as it is)', call('register', lease({ vision: at('healthy', NOW_MS - 1) })), []],
    ['a registration after a drain: initial over the draining entry', call('register', lease({ vision: at('draining', NOW_MS - 1) })), ['vision=initial@0/tok-1/call']],
    ['a registration over an absent entry: initial', call('register', lease({ vision: at('absent', NOW_MS - 1) })), ['vision=initial@0/tok-1/call']],
    ['a deregistration of a draining lease leaves it draining', call('deregister', lease({ vision: at('healthy', NOW_MS - 1) }, { status: 'draining' })), ['vision=draining@0/tok-1/call']],
    ['a deregistration of a lease with no entry yet: draining (the agent waits for it to leave)', call('deregister', lease({}, { status: 'draining' })), ['vision=draining@0/tok-1/call']],
    ['already draining: nothing', call('deregister', lease({ vision: at('draining', NOW_MS - 1) }, { status: 'draining' })), []],
    ['a released lease (no item) gets nothing', call('deregister', undefined), []],
    ['an entry newer than the call wins', call('register', lease({ vision: at('absent', NOW_MS + 5) })), []],
    ['a group the lease no longer lists gets nothing', call('deregister', lease({}, { capabilities: ['speech'] })), []],
  ])('%s', (_name, landed, expected) => {
    expect(brief(planCallRotation([landed], NOW_MS, policy, routing))).toEqual(expected);
  });

  it("judges the lease as the pass's own reads leave it: a target reconcile puts back is initial, not the absent its read showed", () => {
    const observed: RotationWrite[] = [{ target: KEY, leaseToken: 'tok-1', capability: 'vision', entry: at('absent', NOW_MS), cause: 'observed' }];
    const calls = planCallRotation([call('register', lease({ vision: at('healthy', NOW_MS - 60_000) }))], NOW_MS, policy, routing, observed);
    expect(brief(mergeRotationWrites(calls, observed))).toEqual(['vision=initial@0/tok-1/call']);
  });
});

describe('planRestoredRotation: a re-acquire (PutItem) drops rotation; the registry writes it back', () => {
  const record = (oldImage: Item | undefined, newImage: Item | undefined): LeaseChangeRecord => ({
    id: 'r',
    key: KEY,
    ...(oldImage ? { oldImage } : {}),
    ...(newImage ? { newImage } : {}),
    writtenAtSeconds: T0,
  });
  const healthy = at('healthy', NOW_MS - 20_000);
  it.each<[string, LeaseChangeRecord[], string[]]>([
    ['re-acquired with a new token: the entry is written into the new lease', [record(lease({ vision: healthy }), lease({}, { token: 'tok-2' }))], ['vision=healthy@-20000/tok-2/restored']],
    ['released then acquired in one batch: still restored', [record(lease({ vision: healthy }), undefined), record(undefined, lease({}, { token: 'tok-2' }))], ['vision=healthy@-20000/tok-2/restored']],
    ['a rotation-only change needs nothing', [record(lease({ vision: at('initial', NOW_MS - 30_000) }), lease({ vision: healthy }))], []],
    ['a release needs nothing', [record(lease({ vision: healthy }), undefined)], []],
    ['a capability the new lease dropped is not restored', [record(lease({ vision: healthy }), lease({}, { token: 'tok-2', capabilities: ['speech'] }))], []],
    ['a first acquire has nothing to restore', [record(undefined, lease())], []],
    ['a takeover of an expired lease (it joins its groups again): nothing restored, the next read tells it', [record(lease({ vision: at('absent', NOW_MS - 20_000) }, { expiresAt: T0 - 5 }), lease({}, { token: 'tok-2' }))], []],
  ])('%s', (_name, records, expected) => {
    expect(brief(planRestoredRotation(records, policy, routing))).toEqual(expected);
  });
});

describe('mergeRotationWrites', () => {
  it('keeps one write per lease, token and capability: the newest', () => {
    const w = (state: RotationState, since: number, leaseToken = 'tok-1'): RotationWrite => ({ target: KEY, leaseToken, capability: 'vision', entry: at(state, since), cause: 'call' });
    const merged = mergeRotationWrites([w('healthy', NOW_MS - 100)], [w('initial', NOW_MS), w('absent', NOW_MS - 5)], [w('healthy', NOW_MS - 100, 'tok-2')]);
    expect(brief(merged)).toEqual(['vision=healthy@-100/tok-2/call', 'vision=initial@0/tok-1/call']);
  });
});

describe('rotationEntries: rotation writes as the registry write path takes them', () => {
  it('an entry of `rotation` per write, keyed by capability, encoded as the contract says', () => {
    const [planned] = rotationEntries([{ target: KEY, leaseToken: 'tok-1', capability: 'vision', entry: at('healthy', NOW_MS), cause: 'observed', mapPresent: false }]);
    expect(planned).toEqual({
      target: KEY,
      leaseToken: 'tok-1',
      entry: { attribute: 'rotation', key: 'vision', value: encodeRotationEntry(at('healthy', NOW_MS)), since: NOW_MS },
      mapPresent: false,
    });
  });
});

describe('changedTargets: which leases a rotation poll reads', () => {
  const read = (entries: Record<string, string>) => new Map(Object.entries(entries));
  const both = new Set(['tgA', 'tgB']);
  it.each<[string, Map<string, string> | undefined, Map<string, string>, Set<string>, string[]]>([
    ['first poll: everything listed', undefined, read({ 'tgA 10.0.0.1:80': 'healthy' }), both, ['10.0.0.1:80']],
    ['nothing changed: nothing read', read({ 'tgA 10.0.0.1:80': 'healthy' }), read({ 'tgA 10.0.0.1:80': 'healthy' }), both, []],
    ['a new state', read({ 'tgA 10.0.0.1:80': 'initial', 'tgA 10.0.0.2:80': 'healthy' }), read({ 'tgA 10.0.0.1:80': 'healthy', 'tgA 10.0.0.2:80': 'healthy' }), both, ['10.0.0.1:80']],
    ['joined', read({}), read({ 'tgB 10.0.0.3:80': 'initial' }), both, ['10.0.0.3:80']],
    ['left (now absent)', read({ 'tgB 10.0.0.3:80': 'draining' }), read({}), both, ['10.0.0.3:80']],
    ['a group not read this time says nothing', read({ 'tgB 10.0.0.3:80': 'draining' }), read({}), new Set(['tgA']), []],
  ])('%s', (_name, previous, current, groupsRead, expected) => {
    expect([...changedTargets(previous, current, groupsRead)].sort()).toEqual(expected);
  });
});

describe('a rotation entry dated in the future (no registry clock wrote it)', () => {
  it('is treated as unknown and overwritten with what the read shows', () => {
    // Prepare: someone wrote vision healthy "since 2100"
    const forged = lease({ vision: at('healthy', Date.UTC(2100, 0, 1)) }, { capabilities: ['vision'] });

    // Act
    const writes = planObservedRotation({ groups: [group('vision', [target('unhealthy', 'Target.FailedHealthChecks')])], items: [forged], observedAtMs: NOW_MS, policy, routing });

    // Assess
    expect(brief(writes)).toEqual(['vision=unhealthy@0/tok-1/observed']);
  });

  it('within the clock-skew allowance it still counts (another registry clock may run a little ahead)', () => {
    const ahead = lease({ vision: at('healthy', NOW_MS + 10_000) }, { capabilities: ['vision'] });
    expect(planObservedRotation({ groups: [group('vision', [target('unhealthy')])], items: [ahead], observedAtMs: NOW_MS, policy, routing })).toEqual([]);
  });

  it('is never restored after a re-acquire', () => {
    const old = lease({ vision: at('healthy', Date.UTC(2100, 0, 1)) }, { capabilities: ['vision'] });
    const fresh = lease({}, { capabilities: ['vision'], token: 'tok-2' });
    const records: LeaseChangeRecord[] = [{ id: '1', oldImage: old, newImage: fresh, writtenAtSeconds: T0 }];
    expect(planRestoredRotation(records, policy, routing)).toEqual([]);
  });
});

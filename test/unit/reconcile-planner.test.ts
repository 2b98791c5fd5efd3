import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressPolicy, encodeLease, Lease, leaseVersion, memberKey, ObservedGroup, planReconcile, presenceOf, RawItem, RoutingConfig } from '../../lib/core';

const policy = new AddressPolicy();
const routing: RoutingConfig = {
  allowedCidrs: ['10.0.0.0/8'],
  capabilities: { vision: { targetGroupArn: 'tg/vision', targetType: 'ip' }, speech: { targetGroupArn: 'tg/speech', targetType: 'ip' } },
};
const NOW = 1_800_000_000;

function lease(n: number, patch: Partial<Lease> = {}): RawItem {
  const address = `10.0.0.${n}`;
  return encodeLease({
    target: `${address}:80`,
    address,
    port: 80,
    capabilities: ['vision'],
    expiresAt: NOW + 30,
    leaseToken: 't',
    agentId: `a${n}`,
    status: 'active',
    renewedAt: NOW * 1000,
    registeredAt: NOW * 1000,
    ...patch,
  });
}
type State = [n: number, state: string, reason?: string];
const observed = (arn: string, targets: State[]): ObservedGroup => ({
  capability: arn.split('/')[1],
  targetGroupArn: arn,
  targets: targets.map(([n, state, reason]) => ({ id: `10.0.0.${n}`, port: 80, state, ...(reason ? { reason } : {}) })),
});
const plan = (groups: ObservedGroup[], items: RawItem[], share = 0.5, extra: { heldLastPass?: Set<string>; refused?: Map<string, string> } = {}) =>
  planReconcile({ groups, items, nowSeconds: NOW, policy, routing, safetyValveShare: share, ...extra });
const keys = (targets: readonly { key: string }[]) => targets.map((t) => t.key);

describe('presenceOf: ELB states as ELB means them', () => {
  it.each([
    ['initial', 'Elb.RegistrationInProgress', 'registered'],
    ['initial', 'Elb.InitialHealthChecking', 'registered'],
    ['healthy', undefined, 'registered'],
    ['unhealthy', 'Target.FailedHealthChecks', 'registered'],
    ['unused', 'Target.NotInUse', 'registered'],
    ['unused', 'Target.InvalidState', 'registered'],
    ['unused', 'Target.IpUnusable', 'registered'],
    ['unavailable', 'Target.HealthCheckDisabled', 'registered'],
    ['draining', 'Target.DeregistrationInProgress', 'draining'],
    ['unused', 'Target.NotRegistered', 'absent'],
    ['unavailable', 'Target.NotRegistered', 'absent'],
  ])('%s (%s) is %s', (state, reason, presence) => {
    expect(presenceOf({ state, ...(reason ? { reason } : {}) })).toBe(presence);
  });
});

describe('planReconcile', () => {
  it('registers a live lease missing from its group', () => {
    const p = plan([observed('tg/vision', [])], [lease(1)]);
    expect(keys(p.groups[0].register)).toEqual(['10.0.0.1:80']);
    expect(p.groups[0].deregister).toEqual([]);
  });

  it.each([
    ['no lease at all', [], 'no-lease'],
    ['an expired lease', [lease(1, { expiresAt: NOW - 1 })], 'expired'],
    ['a draining lease', [lease(1, { status: 'draining' })], 'draining'],
    ['an invalid lease', [{ ...lease(1), port: { S: '80' } }], 'invalid-lease'],
    ['a live lease for another capability', [lease(1, { capabilities: ['speech'] })], 'not-listed'],
  ] as const)('deregisters a target with %s (reason %s)', (_n, items, reason) => {
    const p = plan([observed('tg/vision', [[1, 'unhealthy'], [2, 'healthy'], [3, 'healthy']])], [...items, lease(2), lease(3)]);
    expect(p.groups[0].deregister).toEqual([{ reason, target: expect.objectContaining({ key: '10.0.0.1:80' }) }]);
  });

  it.each<[string, State, RawItem[], string[], string[]]>([
    // state as reported, leases, expected register, expected deregister
    ['initial, live lease', [1, 'initial', 'Elb.RegistrationInProgress'], [lease(1)], [], []],
    ['unhealthy, live lease', [1, 'unhealthy', 'Target.FailedHealthChecks'], [lease(1)], [], []],
    ['unused (group not in use), live lease', [1, 'unused', 'Target.NotInUse'], [lease(1)], [], []],
    ['unavailable (checks off), live lease', [1, 'unavailable', 'Target.HealthCheckDisabled'], [lease(1)], [], []],
    ['draining, live lease: registered again at once', [1, 'draining', 'Target.DeregistrationInProgress'], [lease(1)], ['10.0.0.1:80'], []],
    ['draining, expired lease: left to finish', [1, 'draining', 'Target.DeregistrationInProgress'], [lease(1, { expiresAt: NOW - 1 })], [], []],
    ['draining, no lease: left to finish', [1, 'draining', 'Target.DeregistrationInProgress'], [], [], []],
    ['not registered, live lease', [1, 'unused', 'Target.NotRegistered'], [lease(1)], ['10.0.0.1:80'], []],
    ['not registered, no lease', [1, 'unused', 'Target.NotRegistered'], [], [], []],
    ['initial, expired lease', [1, 'initial', 'Elb.RegistrationInProgress'], [lease(1, { expiresAt: NOW - 1 })], [], ['10.0.0.1:80']],
    ['unused (group not in use), draining lease', [1, 'unused', 'Target.NotInUse'], [lease(1, { status: 'draining' })], [], ['10.0.0.1:80']],
  ])('target %s', (_n, state, items, register, deregister) => {
    const p = plan([observed('tg/vision', [state])], items);
    expect(keys(p.groups[0].register)).toEqual(register);
    expect(p.groups[0].deregister.map((d) => d.target.key)).toEqual(deregister);
  });

  it('marks a live lease\'s draining target as one to revive', () => {
    const p = plan([observed('tg/vision', [[1, 'draining'], [2, 'healthy']])], [lease(1), lease(2), lease(3)]);
    expect(keys(p.groups[0].register)).toEqual(['10.0.0.1:80', '10.0.0.3:80']);
    expect(keys(p.groups[0].revive)).toEqual(['10.0.0.1:80']);
    expect(p.groups[0].registeredCount).toBe(1);
  });

  it('lists expired leases for conditional deletion, even invalid ones', () => {
    const p = plan([], [lease(1, { expiresAt: NOW - 5 }), lease(2), { ...lease(3, { expiresAt: NOW - 1 }), status: { S: 'weird' } }]);
    expect(p.expired).toEqual([
      { target: '10.0.0.1:80', expiresAt: NOW - 5, cutoff: NOW },
      { target: '10.0.0.3:80', expiresAt: NOW - 1, cutoff: NOW },
    ]);
  });

  it('sweeps a lease written in milliseconds once its millisecond deadline has passed (DynamoDB TTL never will)', () => {
    const msLease = (n: number, expiresAtMs: number) => ({ ...lease(n), expiresAt: { N: String(expiresAtMs) } });
    const p = plan([], [msLease(1, (NOW - 5) * 1000), msLease(2, (NOW + 30) * 1000)]);
    expect(p.expired).toEqual([{ target: '10.0.0.1:80', expiresAt: (NOW - 5) * 1000, cutoff: NOW * 1000 }]);
    expect(p.rejections.map((r) => r.reason)).toEqual(['BAD_EXPIRY', 'BAD_EXPIRY']);
  });
});

describe('planReconcile: the safety valve holds mass removals of absent leases for a second pass', () => {
  const registered = (n: number): State[] => Array.from({ length: n }, (_, i) => [i + 1, 'healthy']);

  it.each<[string, State[], RawItem[], number, boolean, number, number]>([
    // group, leases, share → trips, sent now, held
    ['2 of 4 absent at 50 %', registered(4), [lease(3), lease(4)], 0.5, false, 2, 0],
    ['3 of 4 absent at 50 %', registered(4), [lease(4)], 0.5, true, 0, 3],
    ['1 of 1 absent at 50 %', registered(1), [], 0.5, true, 0, 1],
    ['4 of 4 absent at 100 %', registered(4), [], 1, false, 4, 0],
    ['10 of 10 absent (a wiped table)', registered(10), [], 0.5, true, 0, 10],
    ['3 of 4 expired: proof enough', registered(4), [1, 2, 3].map((n) => lease(n, { expiresAt: NOW - 1 })).concat(lease(4)), 0.5, false, 3, 0],
    ['3 of 4 gone, 2 of them expired: only the absent one is counted', registered(4), [lease(1, { expiresAt: NOW - 1 }), lease(2, { expiresAt: NOW - 1 }), lease(4)], 0.5, false, 3, 0],
    ['all 4 gone, 2 expired, 2 absent at 25 %: the absent ones wait', registered(4), [lease(1, { expiresAt: NOW - 1 }), lease(2, { status: 'draining' })], 0.25, true, 2, 2],
    ['draining targets do not count as registered', [...registered(2), [3, 'draining'], [4, 'draining']], [], 0.5, true, 0, 2],
  ])('%s', (_n, targets, items, share, trips, sent, held) => {
    const g = plan([observed('tg/vision', targets)], items, share).groups[0];
    expect(g.valveTripped).toBe(trips);
    expect(g.deregister).toHaveLength(sent);
    expect(g.held).toHaveLength(held);
    expect(g.held.every((d) => d.reason === 'no-lease')).toBe(true);
  });

  it('lets a held removal go when the previous pass held it too, and holds only the new ones', () => {
    const heldLastPass = new Set([memberKey('tg/vision', '10.0.0.1:80'), memberKey('tg/vision', '10.0.0.2:80'), memberKey('tg/speech', '10.0.0.3:80')]);
    const g = plan([observed('tg/vision', registered(3))], [], 0.5, { heldLastPass }).groups[0];
    expect(g.valveTripped).toBe(true);
    expect(g.deregister.map((d) => d.target.key)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(g.held.map((d) => d.target.key)).toEqual(['10.0.0.3:80']);
  });
});

describe('planReconcile: targets ELB refused for good', () => {
  it('are not sent again at the same lease version, and are when the lease changes', () => {
    const item = lease(1);
    const refused = new Map([[memberKey('tg/vision', '10.0.0.1:80'), leaseVersion(item)]]);
    const same = plan([observed('tg/vision', [])], [lease(1, { expiresAt: NOW + 99 })], 0.5, { refused }).groups[0];
    expect(same.register).toEqual([]);
    expect(keys(same.refused)).toEqual(['10.0.0.1:80']);
    const reacquired = plan([observed('tg/vision', [])], [lease(1, { leaseToken: 'other' })], 0.5, { refused }).groups[0];
    expect(keys(reacquired.register)).toEqual(['10.0.0.1:80']);
    expect(reacquired.refused).toEqual([]);
  });
});

describe('planReconcile: applying a plan', () => {
  it('for any starting group state, puts exactly the live set in rotation (share 1)', () => {
    const state = fc.constantFrom<[string, string | undefined]>(
      ['healthy', undefined],
      ['unhealthy', 'Target.FailedHealthChecks'],
      ['initial', 'Elb.RegistrationInProgress'],
      ['unused', 'Target.NotInUse'],
      ['unavailable', 'Target.HealthCheckDisabled'],
      ['draining', 'Target.DeregistrationInProgress'],
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.subarray(['vision', 'speech', 'other'], { minLength: 1 }), fc.constantFrom(-5, 0, 30), fc.constantFrom('active', 'draining')), { maxLength: 12 }),
        fc.array(fc.tuple(fc.constantFrom('tg/vision', 'tg/speech'), fc.integer({ min: 1, max: 12 }), state), { maxLength: 20 }),
        (leases, registered) => {
          const items = new Map<number, RawItem>();
          for (const [n, caps, ttl, status] of leases) items.set(n, lease(n, { capabilities: caps, expiresAt: NOW + ttl, status: status as 'active' }));
          const groups = ['tg/vision', 'tg/speech'].map((arn) => {
            const seen = new Map<number, [string, string | undefined]>();
            for (const [g, n, s] of registered) if (g === arn) seen.set(n, s);
            return observed(arn, [...seen].map(([n, [st, reason]]) => [n, st, reason] as State));
          });
          const p = plan(groups, [...items.values()], 1);
          for (const g of groups) {
            const repair = p.groups.find((r) => r.targetGroupArn === g.targetGroupArn)!;
            const inRotation = new Set(g.targets.filter((t) => t.state !== 'draining').map((t) => `${t.id}:80`));
            repair.deregister.forEach((d) => inRotation.delete(d.target.key));
            repair.register.forEach((t) => inRotation.add(t.key));
            const cap = g.capability;
            const live = [...items.entries()]
              .filter(([, it]) => it.status.S === 'active' && Number(it.expiresAt.N) > NOW && it.capabilities.SS!.includes(cap))
              .map(([n]) => `10.0.0.${n}:80`);
            expect([...inRotation].sort()).toEqual([...live].sort());
            expect(repair.held).toEqual([]);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('leases far beyond the maximum TTL', () => {
  const capped: RoutingConfig = { ...routing, maxLeaseTtlSeconds: 3600 };
  const planCapped = (groups: ObservedGroup[], items: RawItem[]) => planReconcile({ groups, items, nowSeconds: NOW, policy, routing: capped, safetyValveShare: 0.5 });

  it('route nowhere (a registered target leaves at once) and are swept on `expiresAt > latest`, so their key is free again', () => {
    // Prepare: 10.0.0.1 claims a year; 10.0.0.2 is a sane lease; 10.0.0.3 wrote milliseconds far in the future
    const items = [lease(1, { expiresAt: NOW + 365 * 86_400 }), lease(2), lease(3, { expiresAt: (NOW + 365 * 86_400) * 1000 })];

    // Act
    const p = planCapped([observed('tg/vision', [[1, 'healthy'], [2, 'healthy']])], items);

    // Assess
    expect(p.groups[0].deregister.map((d) => [d.target.key, d.reason])).toEqual([['10.0.0.1:80', 'not-listed']]);
    expect(p.tooFar).toEqual([
      { target: '10.0.0.1:80', expiresAt: NOW + 365 * 86_400, latest: NOW + 3600 + 30 },
      { target: '10.0.0.3:80', expiresAt: (NOW + 365 * 86_400) * 1000, latest: (NOW + 3600 + 30) * 1000 },
    ]);
    expect(p.rejections.map((r) => r.reason)).toEqual(expect.arrayContaining(['EXPIRY_TOO_FAR']));
  });

  it('sweeps items with no numeric expiresAt (missing, or a string): no TTL would ever remove them', () => {
    const { expiresAt: _, ...noExpiry } = lease(1);
    const items = [noExpiry, { ...lease(2), expiresAt: { S: '9999999999' } }, lease(3)];
    expect(plan([], items).noExpiry).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
  });

  it('without a maximum (a hand-written routing) nothing is swept for it', () => {
    expect(plan([], [lease(1, { expiresAt: NOW + 365 * 86_400 })]).tooFar).toEqual([]);
  });
});

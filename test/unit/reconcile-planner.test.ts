import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressPolicy, encodeLease, Lease, ObservedGroup, planReconcile, provenDeregistrations, RawItem, RoutingConfig } from '../../lib/core';

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
const observed = (arn: string, targets: [number, string][]): ObservedGroup => ({
  capability: arn.split('/')[1],
  targetGroupArn: arn,
  targets: targets.map(([n, state]) => ({ id: `10.0.0.${n}`, port: 80, state })),
});
const plan = (groups: ObservedGroup[], items: RawItem[], share = 0.5) =>
  planReconcile({ groups, items, nowSeconds: NOW, policy, routing, safetyValveShare: share });

describe('planReconcile', () => {
  it('registers a live lease missing from its group', () => {
    const p = plan([observed('tg/vision', [])], [lease(1)]);
    expect(p.groups[0].register.map((t) => t.key)).toEqual(['10.0.0.1:80']);
    expect(p.groups[0].deregister).toEqual([]);
  });

  it.each([
    ['no lease at all', [], 'no-lease'],
    ['an expired lease', [lease(1, { expiresAt: NOW - 1 })], 'expired'],
    ['a draining lease', [lease(1, { status: 'draining' })], 'draining'],
    ['an invalid lease', [{ ...lease(1), port: { S: '80' } }], 'invalid-lease'],
    ['a live lease for another capability', [lease(1, { capabilities: ['speech'] })], 'not-listed'],
  ] as const)('deregisters a target with %s (reason %s)', (_n, items, reason) => {
    const p = plan([observed('tg/vision', [[1, 'unhealthy']])], [...items]);
    expect(p.groups[0].deregister).toEqual([expect.objectContaining({ reason, target: expect.objectContaining({ key: '10.0.0.1:80' }) })]);
  });

  it('leaves targets ELB is already draining alone, in both directions', () => {
    const p = plan([observed('tg/vision', [[1, 'draining'], [2, 'draining']])], [lease(1)]);
    expect(p.groups[0].register).toEqual([]);
    expect(p.groups[0].deregister).toEqual([]);
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

  it.each([
    ['2 of 4 healthy at 50 %', 4, 2, 0.5, false],
    ['3 of 4 healthy at 50 %', 4, 3, 0.5, true],
    ['1 of 1 healthy at 50 %', 1, 1, 0.5, true],
    ['4 of 4 healthy at 100 %', 4, 4, 1, false],
  ])('safety valve: %s trips=%s', (_n, healthy, leaving, share, trips) => {
    const targets: [number, string][] = Array.from({ length: healthy }, (_, i) => [i + 1, 'healthy']);
    const items = Array.from({ length: healthy - leaving }, (_, i) => lease(i + 1));
    expect(plan([observed('tg/vision', targets)], items, share).groups[0].valveTripped).toBe(trips);
  });

  it('after the valve trips, only deregistrations proven by the second read stay', () => {
    const p = plan([observed('tg/vision', [[1, 'healthy'], [2, 'healthy'], [3, 'healthy']])], []);
    const second = new Map<string, RawItem | undefined>([
      ['10.0.0.1:80', undefined],
      ['10.0.0.2:80', lease(2)],
      ['10.0.0.3:80', lease(3, { expiresAt: NOW - 1 })],
    ]);
    expect(provenDeregistrations(p.groups[0].deregister, second, NOW).map((d) => d.target.key)).toEqual(['10.0.0.1:80', '10.0.0.3:80']);
  });

  it('with the address policy, a lease that can never route proves its target too (a draining one does not)', () => {
    const p = plan([observed('tg/vision', [[1, 'healthy'], [2, 'healthy'], [3, 'healthy'], [4, 'healthy']])], []);
    const second = new Map<string, RawItem | undefined>([
      ['10.0.0.1:80', { ...lease(1), address: { S: '8.8.8.8' } }],
      ['10.0.0.2:80', lease(2)],
      ['10.0.0.3:80', lease(3, { status: 'draining' })],
      ['10.0.0.4:80', { ...lease(4), port: { S: '80' } }],
    ]);
    expect(provenDeregistrations(p.groups[0].deregister, second, NOW, policy).map((d) => d.target.key)).toEqual(['10.0.0.1:80', '10.0.0.4:80']);
  });

  it('for any starting group state, applying the plan yields exactly the live set (draining targets aside)', () => {
    const state = fc.constantFrom('healthy', 'unhealthy', 'initial', 'unused', 'draining');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.subarray(['vision', 'speech', 'other'], { minLength: 1 }), fc.constantFrom(-5, 0, 30), fc.constantFrom('active', 'draining')), { maxLength: 12 }),
        fc.array(fc.tuple(fc.constantFrom('tg/vision', 'tg/speech'), fc.integer({ min: 1, max: 12 }), state), { maxLength: 20 }),
        (leases, registered) => {
          const items = new Map<number, RawItem>();
          for (const [n, caps, ttl, status] of leases) items.set(n, lease(n, { capabilities: caps, expiresAt: NOW + ttl, status: status as 'active' }));
          const groups = ['tg/vision', 'tg/speech'].map((arn) => {
            const seen = new Map<number, string>();
            for (const [g, n, s] of registered) if (g === arn) seen.set(n, s);
            return observed(arn, [...seen]);
          });
          const p = plan(groups, [...items.values()], 1);
          for (const g of groups) {
            const repair = p.groups.find((r) => r.targetGroupArn === g.targetGroupArn)!;
            const draining = new Set(g.targets.filter((t) => t.state === 'draining').map((t) => `${t.id}:80`));
            const after = new Set(g.targets.map((t) => `${t.id}:80`));
            repair.deregister.forEach((d) => after.delete(d.target.key));
            repair.register.forEach((t) => after.add(t.key));
            const cap = g.capability;
            const live = [...items.entries()]
              .filter(([, it]) => it.status.S === 'active' && Number(it.expiresAt.N) > NOW && it.capabilities.SS!.includes(cap))
              .map(([n]) => `10.0.0.${n}:80`);
            const expected = new Set([...live, ...draining]);
            expect([...after].sort()).toEqual([...expected].sort());
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TargetHealthState } from '../../../lib/local/data-plane/health-checks';
import {
  CandidateTarget,
  entersSlowStart,
  pickTargetGroup,
  RoundRobinState,
  routableTargets,
  RoutingPolicy,
  selectTarget,
  slowStartWeight,
  smoothRoundRobin,
} from '../../../lib/local/data-plane/target-selection';
import { mulberry32 } from '../../support/prng';

const policy = (patch: Partial<RoutingPolicy> = {}): RoutingPolicy => ({ algorithm: 'round_robin', slowStartMs: 0, minimumHealthyCount: 1, ...patch });
const t = (key: string, state: TargetHealthState, patch: Partial<CandidateTarget> = {}): CandidateTarget => ({ key, state, outstanding: 0, ...patch });

/** Routes `n` requests through selectTarget, carrying the round-robin state; returns the keys chosen. */
function routeMany(targets: CandidateTarget[], p: RoutingPolicy, n: number, seed = 1, now = 0): string[] {
  const random = mulberry32(seed);
  let rr: RoundRobinState = new Map();
  const picks: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = selectTarget({ targets, policy: p, now, random, roundRobin: rr });
    if (s.kind !== 'target') throw new Error(`no target: ${s.reason}`);
    rr = s.roundRobin;
    picks.push(s.key);
  }
  return picks;
}

const counts = (picks: string[]) => picks.reduce<Record<string, number>>((acc, k) => ({ ...acc, [k]: (acc[k] ?? 0) + 1 }), {});

describe('routableTargets', () => {
  it.each<[string, CandidateTarget[], Partial<RoutingPolicy>, string[], boolean]>([
    ['only healthy targets get traffic', [t('a', 'healthy'), t('b', 'unhealthy'), t('c', 'initial'), t('d', 'draining')], {}, ['a'], false],
    ['targets with health checks off count as healthy', [t('a', 'unavailable'), t('b', 'unhealthy')], {}, ['a'], false],
    ['all unhealthy: fail open to all of them', [t('a', 'unhealthy'), t('b', 'unhealthy'), t('c', 'draining')], {}, ['a', 'b'], true],
    ['no healthy target: fail open to the unhealthy, never to initial ones', [t('a', 'unhealthy'), t('b', 'initial')], {}, ['a'], true],
    ['only initial targets: nothing to route to', [t('a', 'initial'), t('b', 'initial')], {}, [], false],
    ['only draining targets: nothing to route to', [t('a', 'draining')], {}, [], false],
    ['an unused target never gets traffic', [t('a', 'unused'), t('b', 'healthy')], {}, ['b'], false],
    ['minimum healthy count 2: one healthy is not enough, fail open', [t('a', 'healthy'), t('b', 'unhealthy'), t('c', 'unhealthy')], { minimumHealthyCount: 2 }, ['a', 'b', 'c'], true],
    ['minimum healthy 50 %: 1 of 3 is too few', [t('a', 'healthy'), t('b', 'unhealthy'), t('c', 'unhealthy')], { minimumHealthyPercentage: 50 }, ['a', 'b', 'c'], true],
    ['minimum healthy 50 %: 2 of 3 is enough', [t('a', 'healthy'), t('b', 'healthy'), t('c', 'unhealthy')], { minimumHealthyPercentage: 50 }, ['a', 'b'], false],
  ])('%s', (_why, targets, patch, expected, failOpen) => {
    const r = routableTargets(targets, policy(patch));
    expect(r.targets.map((x) => x.key)).toEqual(expected);
    expect(r.failOpen).toBe(failOpen);
  });
});

describe('selectTarget', () => {
  it('answers no-registered-targets for an empty group and no-routable-targets when all are initial or draining', () => {
    expect(selectTarget({ targets: [], policy: policy(), now: 0, random: Math.random, roundRobin: new Map() })).toEqual({ kind: 'no-target', reason: 'no-registered-targets' });
    expect(selectTarget({ targets: [t('a', 'draining'), t('b', 'initial')], policy: policy(), now: 0, random: Math.random, roundRobin: new Map() })).toEqual({
      kind: 'no-target',
      reason: 'no-routable-targets',
    });
  });

  it('round robin takes the healthy targets in turn', () => {
    const targets = [t('a', 'healthy'), t('b', 'unhealthy'), t('c', 'healthy'), t('d', 'healthy')];
    expect(routeMany(targets, policy(), 6)).toEqual(['a', 'c', 'd', 'a', 'c', 'd']);
  });

  it('round robin while failing open spreads over every unhealthy target', () => {
    expect(counts(routeMany([t('a', 'unhealthy'), t('b', 'unhealthy')], policy(), 10))).toEqual({ a: 5, b: 5 });
  });

  it('least outstanding requests picks the target with the fewest in flight', () => {
    const targets = [t('a', 'healthy', { outstanding: 3 }), t('b', 'healthy', { outstanding: 1 }), t('c', 'healthy', { outstanding: 2 })];
    expect(new Set(routeMany(targets, policy({ algorithm: 'least_outstanding_requests' }), 20))).toEqual(new Set(['b']));
  });

  it('least outstanding requests breaks ties at random, over all tied targets', () => {
    const targets = [t('a', 'healthy', { outstanding: 1 }), t('b', 'healthy', { outstanding: 1 }), t('c', 'healthy', { outstanding: 5 })];
    const c = counts(routeMany(targets, policy({ algorithm: 'least_outstanding_requests' }), 400, 7));
    expect(c.c).toBeUndefined();
    expect(c.a).toBeGreaterThan(150);
    expect(c.b).toBeGreaterThan(150);
  });

  it('weighted random spreads evenly, and by mitigation weight when anomaly mitigation cut one', () => {
    const even = counts(routeMany([t('a', 'healthy'), t('b', 'healthy')], policy({ algorithm: 'weighted_random' }), 4000, 3));
    expect(even.a / 4000).toBeCloseTo(0.5, 1);
    const cut = counts(routeMany([t('a', 'healthy'), t('b', 'healthy', { mitigationWeight: 0.25 })], policy({ algorithm: 'weighted_random' }), 5000, 3));
    expect(cut.b / 5000).toBeCloseTo(0.2, 1);
  });

  it('stickiness overrides the algorithm while the sticky target is routable', () => {
    const targets = [t('a', 'healthy'), t('b', 'healthy')];
    const s = selectTarget({ targets, policy: policy(), now: 0, random: Math.random, roundRobin: new Map(), stickyTarget: 'b' });
    expect(s).toMatchObject({ kind: 'target', key: 'b', via: 'stickiness' });
  });

  it.each<[string, TargetHealthState]>([
    ['unhealthy', 'unhealthy'],
    ['draining', 'draining'],
    ['initial', 'initial'],
  ])('a sticky target that is %s gets a new target chosen by the algorithm', (_why, state) => {
    const s = selectTarget({ targets: [t('a', 'healthy'), t('b', state)], policy: policy(), now: 0, random: Math.random, roundRobin: new Map(), stickyTarget: 'b' });
    expect(s).toMatchObject({ kind: 'target', key: 'a', via: 'algorithm' });
  });

  it('a target in slow start takes a linearly growing share of round robin', () => {
    const targets = (since: number) => [t('a', 'healthy'), t('b', 'healthy'), t('new', 'healthy', { slowStartSince: since })];
    const share = (now: number) => (counts(routeMany(targets(0), policy({ slowStartMs: 1000 }), 2000, 1, now)).new ?? 0) / 2000;
    expect(share(0)).toBe(0);
    expect(share(250)).toBeCloseTo(0.25 / 2.25, 2);
    expect(share(500)).toBeCloseTo(0.5 / 2.5, 2);
    expect(share(1000)).toBeCloseTo(1 / 3, 2);
    expect(share(5000)).toBeCloseTo(1 / 3, 2);
  });
});

describe('slow start', () => {
  it.each<[string, number | undefined, number, number]>([
    ['not in slow start', undefined, 100, 1],
    ['at the start', 1000, 1000, 0],
    ['a quarter in', 1000, 1250, 0.25],
    ['over', 1000, 3000, 1],
  ])('weight %s', (_why, since, now, expected) => {
    expect(slowStartWeight({ ...(since !== undefined ? { slowStartSince: since } : {}) }, now, 1000)).toBe(expected);
  });

  it.each<[string, CandidateTarget[], number, boolean]>([
    ['a target joining a group with a healthy target enters slow start', [t('a', 'healthy')], 1000, true],
    ['the first targets of an empty group do not', [], 1000, false],
    ['nor when every other healthy target is itself in slow start', [t('a', 'healthy', { slowStartSince: 900 })], 1000, false],
    ['a target whose slow start is over counts as a full one', [t('a', 'healthy', { slowStartSince: 0 })], 1000, true],
    ['unhealthy and initial others do not count', [t('a', 'unhealthy'), t('b', 'initial')], 1000, false],
    ['slow start off', [t('a', 'healthy')], 0, false],
  ])('%s', (_why, others, slowStartMs, expected) => {
    expect(entersSlowStart(others, 1000, slowStartMs)).toBe(expected);
  });
});

describe('smoothRoundRobin', () => {
  it('gives each target its weight share, interleaved', () => {
    let rr: RoundRobinState = new Map();
    const picks: string[] = [];
    for (let i = 0; i < 7; i++) {
      const p = smoothRoundRobin(
        [
          { key: 'a', weight: 5 },
          { key: 'b', weight: 1 },
          { key: 'c', weight: 1 },
        ],
        rr,
      );
      rr = p.roundRobin;
      picks.push(p.key);
    }
    expect(picks).toEqual(['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('gives every target its exact share over one full cycle, for any integer weights', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }), (weights) => {
        const targets = weights.map((weight, i) => ({ key: `t${i}`, weight }));
        let rr: RoundRobinState = new Map();
        const c: Record<string, number> = {};
        const total = weights.reduce((a, b) => a + b, 0);
        for (let i = 0; i < total; i++) {
          const p = smoothRoundRobin(targets, rr);
          rr = p.roundRobin;
          c[p.key] = (c[p.key] ?? 0) + 1;
        }
        expect(c).toEqual(Object.fromEntries(targets.map((x) => [x.key, x.weight])));
      }),
    );
  });
});

describe('pickTargetGroup', () => {
  const groups = [
    { targetGroupArn: 'stable', weight: 90 },
    { targetGroupArn: 'canary', weight: 10 },
  ];

  it('splits by weight within 2 percentage points over 10 000 requests, for any seed', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const random = mulberry32(seed);
        let canary = 0;
        for (let i = 0; i < 10_000; i++) if (pickTargetGroup(groups, random)?.targetGroupArn === 'canary') canary++;
        expect(Math.abs(canary / 10_000 - 0.1)).toBeLessThan(0.02);
      }),
      { numRuns: 20 },
    );
  });

  it.each<[string, Parameters<typeof pickTargetGroup>[0], string | undefined, ReturnType<typeof pickTargetGroup>]>([
    ['the cookie pins the group', groups, 'canary', { targetGroupArn: 'canary', via: 'stickiness' }],
    ['even at weight 0, while the action still names it', [groups[0], { targetGroupArn: 'canary', weight: 0 }], 'canary', { targetGroupArn: 'canary', via: 'stickiness' }],
    ['a cookie for a group the action no longer has is ignored', [groups[0]], 'canary', { targetGroupArn: 'stable', via: 'weight' }],
    ['a group at weight 0 never gets new sessions', [groups[0], { targetGroupArn: 'canary', weight: 0 }], undefined, { targetGroupArn: 'stable', via: 'weight' }],
    ['every weight 0: no group', [{ targetGroupArn: 'a', weight: 0 }, { targetGroupArn: 'b', weight: 0 }], undefined, undefined],
  ])('%s', (_why, g, sticky, expected) => {
    expect(pickTargetGroup(g, mulberry32(5), sticky)).toEqual(expected);
  });
});

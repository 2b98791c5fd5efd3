import { describe, expect, test } from 'vitest';
import { CapabilityLoad, DEFAULT_LOAD_BALANCER_QUOTAS, LoadBalancerQuotas, packCapabilities, quotasProblem } from '../../lib/core/load-balancer-packing';

const caps = (n: number, extra: Partial<CapabilityLoad> = {}): CapabilityLoad[] => Array.from({ length: n }, (_, i) => ({ name: `c${i}`, variants: 0, ...extra }));
const Q = DEFAULT_LOAD_BALANCER_QUOTAS;
const CATALOG = { targetGroups: 1, rules: 1 };

/** The packing as `capabilities per load balancer`, or the refusal. */
function layout(capabilities: CapabilityLoad[], quotas: LoadBalancerQuotas = Q, perLb = { targetGroups: 0, rules: 0 }): number[] | string {
  const r = packCapabilities(capabilities, quotas, perLb);
  return r.ok ? r.loadBalancers.map((lb) => lb.capabilities.length) : r.message;
}

describe('packCapabilities: as few load balancers as the quotas allow', () => {
  test.each<[string, CapabilityLoad[], LoadBalancerQuotas, { targetGroups: number; rules: number }, number[]]>([
    ['no capability: no load balancer', [], Q, { targetGroups: 0, rules: 0 }, []],
    ['50 capabilities fill the default rule quota exactly (100 rules)', caps(50), Q, { targetGroups: 0, rules: 0 }, [50]],
    ['51 capabilities: the 51st goes to a second', caps(51), Q, { targetGroups: 0, rules: 0 }, [50, 1]],
    ['with the catalog (1 rule each), 49 fit on one', caps(50), Q, CATALOG, [49, 1]],
    ['a raised rule quota: 100 target groups is the hard limit', caps(101), { ...Q, rulesPerLoadBalancer: 1000 }, { targetGroups: 0, rules: 0 }, [100, 1]],
    ['200 capabilities at default quotas: four load balancers', caps(200), Q, CATALOG, [49, 49, 49, 49, 4]],
    ['targets: 500 agents × 2 capabilities fill one load balancer', caps(2, { expectedTargets: 500 }), Q, { targetGroups: 0, rules: 0 }, [2]],
    ['targets: a third capability of 500 goes to a second', caps(3, { expectedTargets: 500 }), Q, { targetGroups: 0, rules: 0 }, [2, 1]],
    ['a variant takes a target group and two rules: 49 variants fill the rule quota', [{ name: 'a', variants: 49 }, { name: 'b', variants: 0 }], Q, { targetGroups: 0, rules: 0 }, [1, 1]],
  ])('%s', (_, capabilities, quotas, perLb, expected) => {
    expect(layout(capabilities, quotas, perLb)).toEqual(expected);
  });

  test('first fit in list order: a small capability fills a gap an earlier one left, and appending never moves one placed', () => {
    const list: CapabilityLoad[] = [
      { name: 'big', variants: 0, expectedTargets: 900 },
      { name: 'huge', variants: 0, expectedTargets: 600 },
      { name: 'small', variants: 0, expectedTargets: 100 },
    ];
    const before = packCapabilities(list);
    const after = packCapabilities([...list, { name: 'new', variants: 0, expectedTargets: 50 }]);
    expect(before.ok && before.loadBalancers.map((l) => l.capabilities)).toEqual([['big', 'small'], ['huge']]);
    expect(after.ok && after.loadBalancers.map((l) => l.capabilities)).toEqual([['big', 'small'], ['huge', 'new']]);
  });

  test('explicit assignments are kept, the others fill around them', () => {
    const r = packCapabilities([{ name: 'a', variants: 0 }, { name: 'b', variants: 0, loadBalancer: 1 }, { name: 'c', variants: 0 }]);
    expect(r.ok && r.loadBalancers.map((l) => l.capabilities)).toEqual([['a', 'c'], ['b']]);
  });

  test('each load balancer reports what it takes of its quotas', () => {
    const r = packCapabilities([{ name: 'a', variants: 1, expectedTargets: 30 }, { name: 'b', variants: 0, expectedTargets: 5 }], Q, CATALOG);
    expect(r.ok && r.loadBalancers).toEqual([{ capabilities: ['a', 'b'], targetGroups: 4, rules: 7, expectedTargets: 35 }]);
  });
});

describe('refusals name the capability and the quota in one line', () => {
  test.each<[string, CapabilityLoad[], LoadBalancerQuotas, string]>([
    [
      'a capability with 100 variants needs 101 target groups',
      [{ name: 'vision', variants: 100 }],
      { ...Q, rulesPerLoadBalancer: 1000 },
      'capability "vision" alone needs 101 target groups on a load balancer (with its 100 variants); the quota "Target groups per Application Load Balancer (not adjustable)" is 100',
    ],
    [
      'a capability with 50 variants needs 102 rules',
      [{ name: 'vision', variants: 50 }],
      Q,
      'capability "vision" alone needs 102 listener rules on a load balancer (with its 50 variants); the quota "Rules per Application Load Balancer" is 100',
    ],
    [
      'a capability expecting more targets than a load balancer holds',
      [{ name: 'speech', variants: 1, expectedTargets: 1500 }],
      Q,
      'capability "speech" alone needs 1500 targets on a load balancer (with its 1 variant); the quota "Targets per Application Load Balancer" is 1000',
    ],
    [
      'more targets than its groups hold',
      [{ name: 'speech', variants: 0, expectedTargets: 1200 }],
      { ...Q, targetsPerLoadBalancer: 5000 },
      'capability "speech" expects 1200 targets in 1 target group; the quota "Targets per Target Group per Region" is 1000',
    ],
    [
      'an assignment that breaks a quota',
      [...caps(50, { loadBalancer: 0 }), { name: 'late', variants: 0, loadBalancer: 0 }],
      Q,
      'capability "late" takes load balancer 0 it is assigned to to 102 listener rules; the quota "Rules per Application Load Balancer" is 100',
    ],
    [
      'more load balancers than the Region allows',
      caps(101),
      { ...Q, loadBalancersPerRegion: 2 },
      'capability "c100" needs load balancer 3; the quota "Application Load Balancers per Region" is 2',
    ],
    [
      'an assignment past the Region quota',
      [{ name: 'far', variants: 0, loadBalancer: 50 }],
      Q,
      'capability "far" is assigned to load balancer 50 (load balancer 51); the quota "Application Load Balancers per Region" is 50',
    ],
  ])('%s', (_, capabilities, quotas, message) => {
    const r = packCapabilities(capabilities, quotas);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toBe(message);
    expect(message).not.toContain('\n');
  });

  test.each<[Partial<LoadBalancerQuotas>, string | undefined]>([
    [{}, undefined],
    [{ rulesPerLoadBalancer: 500 }, undefined],
    [{ rulesPerLoadBalancer: 0 }, 'quota rulesPerLoadBalancer 0 must be a whole number, at least 1'],
    [{ targetsPerLoadBalancer: 1.5 }, 'quota targetsPerLoadBalancer 1.5 must be a whole number, at least 1'],
    [{ targetGroupsPerLoadBalancer: 200 }, 'quota targetGroupsPerLoadBalancer 200 must be at most 100: AWS does not raise it'],
  ])('quotas %j: %s', (quotas, problem) => {
    expect(quotasProblem({ ...Q, ...quotas })).toBe(problem);
  });
});

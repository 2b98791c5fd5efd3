import { describe, expect, it } from 'vitest';
import { countRegistered, countRegisteredPerLoadBalancer, fullest, planQuota, planQuotaPerLoadBalancer, QuotaCandidate, quotaAlarmThreshold, SOLE_LOAD_BALANCER } from '../../lib/core/target-quota';

const candidates = (n: number): QuotaCandidate[] =>
  Array.from({ length: n }, (_, i) => ({ capability: 'vision', targetGroupArn: 'tg/vision', target: { key: `10.0.0.${i + 1}:8080`, id: `10.0.0.${i + 1}`, port: 8080 } }));

describe('planQuota: first come, first served', () => {
  it.each([
    ['room for all', 3, 10, 20, 3, 0],
    ['exactly full after them', 3, 17, 20, 3, 0],
    ['room for some: the first ones take it', 5, 18, 20, 2, 3],
    ['full already', 4, 20, 20, 0, 4],
    ['over already (a quota lowered below what is registered): nothing is pushed out, nothing added', 2, 25, 20, 0, 2],
    ['no candidates', 0, 20, 20, 0, 0],
  ] as const)('%s', (_what, n, registered, quota, within, over) => {
    const plan = planQuota(candidates(n), registered, quota);
    expect(plan.within.map((c) => c.target.key)).toEqual(candidates(n).slice(0, within).map((c) => c.target.key));
    expect(plan.over).toHaveLength(over);
    expect(plan.room).toBe(Math.max(0, quota - registered));
  });

  it('rejects the latecomers over-quota, naming the quota and the setting', () => {
    const [{ rejection }] = planQuota(candidates(2), 999, 1000).over;
    expect(rejection).toEqual({
      reason: 'OVER_QUOTA',
      target: '10.0.0.2:8080',
      capability: 'vision',
      message: 'the load balancer holds its quota of 1000 targets (the deployment\'s targetQuota): capability "vision" takes no more until some leave',
    });
  });

  it('says the same whatever the count: the message is written into the lease, and a new one would be written again', () => {
    const at = (registered: number) => planQuota(candidates(1), registered, 1000).over[0]?.rejection.message;
    expect(at(1000)).toBe(at(1200));
  });
});

describe('planQuotaPerLoadBalancer: the quota holds on each load balancer apart', () => {
  const LB1 = 'arn:lb/1';
  const LB2 = 'arn:lb/2';
  const placement = { vision: LB1, 'vision-canary': LB1, speech: LB2 };
  /** `spec`: capabilities in arrival order, one candidate each. */
  const arriving = (spec: string) =>
    spec.split(' ').map((capability, i): QuotaCandidate => ({ capability, targetGroupArn: `tg/${capability}`, target: { key: `10.0.1.${i + 1}:8080`, id: `10.0.1.${i + 1}`, port: 8080 } }));
  it.each<[string, string, Record<string, number>, number, string, typeof placement | undefined]>([
    ['room on both', 'vision speech vision speech', { [LB1]: 0, [LB2]: 0 }, 5, 'vision speech vision speech', placement],
    ['one full, the other not: only the full one refuses', 'vision speech vision speech', { [LB1]: 5, [LB2]: 3 }, 5, 'speech speech', placement],
    ['a variant counts on its capability\'s load balancer', 'vision-canary speech vision', { [LB1]: 4, [LB2]: 0 }, 5, 'vision-canary speech', placement],
    ['first come first served within each', 'speech speech speech vision', { [LB2]: 3 }, 5, 'speech speech vision', placement],
    ['a load balancer with no group read counts 0', 'speech', {}, 1, 'speech', placement],
    ['no placement: every group on one load balancer, all counted together', 'vision speech vision', { [SOLE_LOAD_BALANCER]: 4 }, 5, 'vision', undefined],
    ['a capability the placement does not name counts on the sole load balancer', 'search vision', { [SOLE_LOAD_BALANCER]: 5, [LB1]: 0 }, 5, 'vision', placement],
  ])('%s', (_what, spec, registered, quota, within, where) => {
    const plan = planQuotaPerLoadBalancer(arriving(spec), new Map(Object.entries(registered)), quota, where);
    expect(plan.within.map((c) => c.capability).join(' ')).toBe(within);
    expect(plan.within.length + plan.over.length).toBe(spec.split(' ').length);
    for (const { rejection } of plan.over) expect(rejection.reason).toBe('OVER_QUOTA');
  });

  it('counts registered targets per load balancer of the capability; the alarm reads the fullest', () => {
    const t = (state: string) => ({ id: 'x', port: 1, state });
    const groups = [
      { capability: 'vision', targets: [t('healthy'), t('draining')] },
      { capability: 'vision-canary', targets: [t('initial')] },
      { capability: 'speech', targets: [t('healthy')] },
      { capability: 'search', targets: [t('healthy')] },
    ];
    const counts = countRegisteredPerLoadBalancer(groups, placement);
    expect(Object.fromEntries(counts)).toEqual({ [LB1]: 3, [LB2]: 1, [SOLE_LOAD_BALANCER]: 1 });
    expect(fullest(counts)).toBe(3);
    expect(fullest(new Map())).toBe(0);
    expect(Object.fromEntries(countRegisteredPerLoadBalancer(groups))).toEqual({ [SOLE_LOAD_BALANCER]: 5 });
  });
});

describe('countRegistered', () => {
  it('counts every registration in every group, draining ones too, never targets ELB reports as not registered', () => {
    const groups = [
      { targets: [{ id: 'a', port: 1, state: 'healthy' }, { id: 'b', port: 1, state: 'initial' }, { id: 'c', port: 1, state: 'draining' }] },
      { targets: [{ id: 'a', port: 1, state: 'unhealthy' }, { id: 'd', port: 1, state: 'unused', reason: 'Target.NotRegistered' }] },
    ];
    expect(countRegistered(groups)).toBe(4);
  });
});

describe('quotaAlarmThreshold', () => {
  it.each([
    [1000, 800],
    [2000, 1600],
    [1, 1],
    [7, 6],
  ])('alarms at 80 %% of %i: %i', (quota, threshold) => {
    expect(quotaAlarmThreshold(quota)).toBe(threshold);
  });
});

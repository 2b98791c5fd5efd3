import { describe, expect, it } from 'vitest';
import { countRegistered, planQuota, QuotaCandidate, quotaAlarmThreshold } from '../../lib/core/target-quota';

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

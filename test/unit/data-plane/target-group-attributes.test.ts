import { describe, expect, it } from 'vitest';
import { loadBalancerPolicy, targetGroupPolicy, TargetGroupPolicy } from '../../../lib/local/data-plane/target-group-attributes';

const attrs = (o: Record<string, string>) => Object.entries(o).map(([Key, Value]) => ({ Key, Value }));

describe('targetGroupPolicy', () => {
  it('has ALB defaults without attributes', () => {
    expect(targetGroupPolicy('tg', [])).toEqual({
      policy: { algorithm: 'round_robin', anomalyMitigation: false, slowStartMs: 0, deregistrationDelayMs: 300_000, minimumHealthyCount: 1 },
      problems: [],
    });
  });

  it.each<[string, Record<string, string>, Partial<TargetGroupPolicy>]>([
    ['least outstanding requests', { 'load_balancing.algorithm.type': 'least_outstanding_requests' }, { algorithm: 'least_outstanding_requests' }],
    ['weighted random with anomaly mitigation', { 'load_balancing.algorithm.type': 'weighted_random', 'load_balancing.algorithm.anomaly_mitigation': 'on' }, { algorithm: 'weighted_random', anomalyMitigation: true }],
    ['slow start with round robin, scaled', { 'slow_start.duration_seconds': '60' }, { slowStartMs: 600 }],
    ['deregistration delay, scaled', { 'deregistration_delay.timeout_seconds': '30' }, { deregistrationDelayMs: 300 }],
    ['lb cookie stickiness (durations not scaled)', { 'stickiness.enabled': 'true', 'stickiness.type': 'lb_cookie', 'stickiness.lb_cookie.duration_seconds': '120' }, { stickiness: { type: 'lb_cookie', durationMs: 120_000 } }],
    ['lb cookie is the default type, for a day', { 'stickiness.enabled': 'true' }, { stickiness: { type: 'lb_cookie', durationMs: 86_400_000 } }],
    [
      'app cookie stickiness',
      { 'stickiness.enabled': 'true', 'stickiness.type': 'app_cookie', 'stickiness.app_cookie.cookie_name': 'session', 'stickiness.app_cookie.duration_seconds': '60' },
      { stickiness: { type: 'app_cookie', cookieName: 'session', durationMs: 60_000 } },
    ],
    ['stickiness attributes while disabled', { 'stickiness.enabled': 'false', 'stickiness.type': 'lb_cookie' }, {}],
    ['unhealthy state routing thresholds', { 'target_group_health.unhealthy_state_routing.minimum_healthy_targets.count': '2', 'target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage': '50' }, { minimumHealthyCount: 2, minimumHealthyPercentage: 50 }],
  ])('%s', (_why, a, expected) => {
    const { policy, problems } = targetGroupPolicy('tg', attrs(a), 0.01);
    expect(problems).toEqual([]);
    expect(policy).toMatchObject(expected);
    if (!('stickiness' in expected)) expect(policy.stickiness).toBeUndefined();
  });

  it.each<[string, Record<string, string>, Partial<TargetGroupPolicy>, string]>([
    ['an unknown algorithm', { 'load_balancing.algorithm.type': 'fastest' }, { algorithm: 'round_robin' }, 'target group tg: load_balancing.algorithm.type = "fastest" is not round_robin, least_outstanding_requests or weighted_random; using round_robin'],
    ['anomaly mitigation without weighted random', { 'load_balancing.algorithm.anomaly_mitigation': 'on' }, { anomalyMitigation: false }, 'target group tg: load_balancing.algorithm.anomaly_mitigation is only available with weighted_random, not round_robin; mitigation is off'],
    [
      'slow start with least outstanding requests',
      { 'load_balancing.algorithm.type': 'least_outstanding_requests', 'slow_start.duration_seconds': '30' },
      { slowStartMs: 0 },
      'target group tg: slow_start.duration_seconds cannot be used with least_outstanding_requests (ALB refuses the combination); slow start is off',
    ],
    [
      'slow start with weighted random',
      { 'load_balancing.algorithm.type': 'weighted_random', 'slow_start.duration_seconds': '30' },
      { slowStartMs: 0 },
      'target group tg: slow_start.duration_seconds cannot be used with weighted_random (ALB refuses the combination); slow start is off',
    ],
    ['slow start shorter than 30 s', { 'slow_start.duration_seconds': '10' }, { slowStartMs: 0 }, 'target group tg: slow_start.duration_seconds = "10" is outside 0 or 30-900; using 0'],
    ['a deregistration delay past an hour', { 'deregistration_delay.timeout_seconds': '4000' }, { deregistrationDelayMs: 300_000 }, 'target group tg: deregistration_delay.timeout_seconds = "4000" is outside 0-3600; using 300'],
    [
      'an app cookie named like ALB cookies',
      { 'stickiness.enabled': 'true', 'stickiness.type': 'app_cookie', 'stickiness.app_cookie.cookie_name': 'AWSALBsession' },
      {},
      'target group tg: stickiness.app_cookie.cookie_name "AWSALBsession" is empty or starts with a reserved prefix (AWSALB, AWSALBAPP, AWSALBTG); stickiness is off',
    ],
  ])('says why it refuses %s and keeps the safe setting', (_why, a, expected, problem) => {
    const { policy, problems } = targetGroupPolicy('tg', attrs(a));
    expect(problems).toEqual([problem]);
    expect(policy).toMatchObject(expected);
  });
});

describe('loadBalancerPolicy', () => {
  it.each<[Record<string, string>, ReturnType<typeof loadBalancerPolicy>]>([
    [{}, { idleTimeoutMs: 60_000, xffMode: 'append' }],
    [{ 'idle_timeout.timeout_seconds': '5', 'routing.http.xff_header_processing.mode': 'remove' }, { idleTimeoutMs: 5000, xffMode: 'remove' }],
    [{ 'idle_timeout.timeout_seconds': '0', 'routing.http.xff_header_processing.mode': 'bogus' }, { idleTimeoutMs: 60_000, xffMode: 'append' }],
  ])('%j', (a, expected) => {
    expect(loadBalancerPolicy(attrs(a))).toEqual(expected);
  });
});

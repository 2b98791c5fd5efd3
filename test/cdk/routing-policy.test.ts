import { Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it, test } from 'vitest';
import { CapabilityProps } from '../../lib/constructs';
import { newRouter, validationError } from './fixtures';

/** The attributes of the one target group of a router with `capability`, as a map. */
function attributesOf(capability: CapabilityProps): Record<string, string> {
  const { stack } = newRouter([capability]);
  const groups = Object.values(Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::TargetGroup'));
  expect(groups).toHaveLength(1);
  const list = (groups[0].Properties as { TargetGroupAttributes: { Key: string; Value: string }[] }).TargetGroupAttributes;
  return Object.fromEntries(list.map((a) => [a.Key, a.Value]));
}

describe('routing policy: algorithm', () => {
  it('defaults to least outstanding requests, for agents whose requests vary from milliseconds to minutes', () => {
    const { stack } = newRouter([{ name: 'vision' }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([{ Key: 'load_balancing.algorithm.type', Value: 'least_outstanding_requests' }]),
    });
  });

  it('defaults to round robin when slow start is set, the only algorithm ALB allows it with', () => {
    expect(attributesOf({ name: 'speech', slowStart: Duration.seconds(30) })).toMatchObject({
      'load_balancing.algorithm.type': 'round_robin',
      'slow_start.duration_seconds': '30',
    });
  });

  test.each([
    ['round_robin', { 'load_balancing.algorithm.type': 'round_robin' }],
    ['least_outstanding_requests', { 'load_balancing.algorithm.type': 'least_outstanding_requests' }],
    ['weighted_random', { 'load_balancing.algorithm.type': 'weighted_random', 'load_balancing.algorithm.anomaly_mitigation': 'off' }],
  ] as const)('writes algorithm %s as the target group attribute', (algorithm, expected) => {
    const { stack } = newRouter([{ name: 'vision', algorithm }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith(Object.entries(expected).map(([Key, Value]) => ({ Key, Value }))),
    });
  });

  it('turns anomaly mitigation on with weighted random', () => {
    const { stack } = newRouter([{ name: 'vision', algorithm: 'weighted_random', anomalyMitigation: true }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'load_balancing.algorithm.type', Value: 'weighted_random' },
        { Key: 'load_balancing.algorithm.anomaly_mitigation', Value: 'on' },
      ]),
    });
  });

  it('writes no anomaly mitigation attribute for the other algorithms, where ALB does not have it', () => {
    expect(Object.keys(attributesOf({ name: 'vision', algorithm: 'round_robin', anomalyMitigation: false }))).not.toContain('load_balancing.algorithm.anomaly_mitigation');
  });
});

describe('routing policy: sticky sessions', () => {
  it('load balancer cookie with a duration', () => {
    const { stack } = newRouter([{ name: 'chat', stickiness: { type: 'lb_cookie', duration: Duration.hours(2) } }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'stickiness.enabled', Value: 'true' },
        { Key: 'stickiness.type', Value: 'lb_cookie' },
        { Key: 'stickiness.lb_cookie.duration_seconds', Value: '7200' },
      ]),
    });
  });

  it('load balancer cookie for ALB\'s default of one day when no duration is given', () => {
    expect(attributesOf({ name: 'chat', stickiness: { type: 'lb_cookie' } })).toMatchObject({ 'stickiness.lb_cookie.duration_seconds': '86400' });
  });

  it('application cookie by name', () => {
    const { stack } = newRouter([{ name: 'chat', stickiness: { type: 'app_cookie', cookieName: 'session', duration: Duration.minutes(30) } }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'stickiness.enabled', Value: 'true' },
        { Key: 'stickiness.type', Value: 'app_cookie' },
        { Key: 'stickiness.app_cookie.cookie_name', Value: 'session' },
        { Key: 'stickiness.app_cookie.duration_seconds', Value: '1800' },
      ]),
    });
  });

  it('says stickiness is off when none is configured', () => {
    expect(attributesOf({ name: 'vision' })).toMatchObject({ 'stickiness.enabled': 'false' });
  });

  it('keeps stickiness with least outstanding requests and round robin (it overrides the algorithm after the first pick)', () => {
    expect(attributesOf({ name: 'chat', algorithm: 'round_robin', stickiness: { type: 'lb_cookie' } })).toMatchObject({
      'load_balancing.algorithm.type': 'round_robin',
      'stickiness.enabled': 'true',
    });
  });
});

describe('routing policy: what ALB refuses is refused at synth, naming both settings', () => {
  const lbCookie = { type: 'lb_cookie' } as const;
  test.each<[string, CapabilityProps, string]>([
    [
      'slow start with least outstanding requests',
      { name: 'vision', algorithm: 'least_outstanding_requests', slowStart: Duration.seconds(60) },
      'Capability "vision": slowStart 60 seconds cannot be used with algorithm "least_outstanding_requests" (ALB: "The least outstanding requests routing algorithm can not be used with slow start mode"); use algorithm "round_robin" or drop slowStart',
    ],
    [
      'slow start with weighted random',
      { name: 'vision', algorithm: 'weighted_random', slowStart: Duration.seconds(30) },
      'Capability "vision": slowStart 30 seconds cannot be used with algorithm "weighted_random" (ALB: "The weighted random routing algorithm can not be used with slow start mode"); use algorithm "round_robin" or drop slowStart',
    ],
    [
      'anomaly mitigation with the default algorithm',
      { name: 'vision', anomalyMitigation: true },
      'Capability "vision": anomalyMitigation cannot be used with algorithm "least_outstanding_requests" (the default) (ALB: "The anomaly mitigation function of ATW is only available when using the Weighted random routing algorithm"); set algorithm "weighted_random" or drop anomalyMitigation',
    ],
    [
      'anomaly mitigation with round robin',
      { name: 'vision', algorithm: 'round_robin', anomalyMitigation: true },
      'Capability "vision": anomalyMitigation cannot be used with algorithm "round_robin" (ALB: "The anomaly mitigation function of ATW is only available when using the Weighted random routing algorithm"); set algorithm "weighted_random" or drop anomalyMitigation',
    ],
    [
      'stickiness with weighted random',
      { name: 'vision', algorithm: 'weighted_random', stickiness: lbCookie },
      'Capability "vision": stickiness "lb_cookie" cannot be used with algorithm "weighted_random" (ALB: "The weighted random routing algorithm can not be used with sticky sessions"); choose another algorithm or drop stickiness',
    ],
    [
      'application cookie stickiness with variants',
      { name: 'vision', stickiness: { type: 'app_cookie', cookieName: 'session' }, variants: [{ name: 'canary', weight: 10 }] },
      'Capability "vision": stickiness "app_cookie" cannot be used with variants (ALB: "Application-based stickiness does not work with weighted target groups"); use stickiness "lb_cookie"',
    ],
    [
      'target group stickiness turned off while stickiness is on',
      { name: 'vision', stickiness: lbCookie, variants: [{ name: 'canary', weight: 10 }], variantStickiness: Duration.seconds(0) },
      'Capability "vision": variantStickiness 0 (off) cannot be used with stickiness "lb_cookie" (ALB: "If you have a forward action with multiple target groups, and sticky sessions are enabled for one or more of the target groups, you must enable stickiness at the target group level")',
    ],
  ])('%s', (_, capability, message) => {
    expect(() => newRouter([capability])).toThrow(validationError(message));
  });
});

describe('routing policy: values out of ALB\'s ranges', () => {
  test.each<[string, CapabilityProps, string]>([
    ['an unknown algorithm', { name: 'vision', algorithm: 'fastest' as 'round_robin' }, 'Capability "vision": algorithm "fastest" must be "round_robin", "least_outstanding_requests" or "weighted_random"'],
    ['an unknown stickiness type', { name: 'vision', stickiness: { type: 'source_ip' } as unknown as CapabilityProps['stickiness'] }, 'Capability "vision": stickiness type "source_ip" must be "lb_cookie" or "app_cookie"'],
    ['a stickiness of 0 seconds', { name: 'vision', stickiness: { type: 'lb_cookie', duration: Duration.seconds(0) } }, 'Capability "vision": stickiness duration 0 seconds is out of range 1–604800 seconds (7 days)'],
    ['a stickiness over 7 days', { name: 'vision', stickiness: { type: 'lb_cookie', duration: Duration.days(8) } }, 'Capability "vision": stickiness duration 691200 seconds is out of range 1–604800 seconds (7 days)'],
    ['an app cookie without a name', { name: 'vision', stickiness: { type: 'app_cookie' } as unknown as CapabilityProps['stickiness'] }, 'Capability "vision": stickiness "app_cookie" needs cookieName: the name of the cookie the agents set'],
    ['an app cookie name with a space', { name: 'vision', stickiness: { type: 'app_cookie', cookieName: 'my session' } }, 'Capability "vision": stickiness cookieName "my session" must be a cookie name: letters, digits and !#$%&\'*+.^_`|~-'],
    ['an app cookie name ALB reserves', { name: 'vision', stickiness: { type: 'app_cookie', cookieName: 'AWSALBTGX' } }, 'Capability "vision": stickiness cookieName "AWSALBTGX" starts with "AWSALB", which ALB reserves (AWSALB, AWSALBAPP, AWSALBTG)'],
  ])('rejects %s', (_, capability, message) => {
    expect(() => newRouter([capability])).toThrow(validationError(message));
  });
});

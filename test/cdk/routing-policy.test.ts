import { Duration } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
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

describe('routing policy: weighted variants', () => {
  const canary = { name: 'vision', variants: [{ name: 'canary', weight: 10 }] };

  /** The logical id of the target group tagged `agent-lb:capability = <capability>`. */
  function groupId(template: Template, capability: string): string {
    const ids = Object.entries(template.findResources('AWS::ElasticLoadBalancingV2::TargetGroup')).filter(([, r]) =>
      (r.Properties as { Tags: { Key: string; Value: string }[] }).Tags.some((t) => t.Key === 'agent-lb:capability' && t.Value === capability),
    );
    expect(ids).toHaveLength(1);
    return ids[0][0];
  }

  it('gives each variant a target group tagged with the capability its agents list, the capability it belongs to and its weight', () => {
    const { stack } = newRouter([canary]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Tags: Match.arrayWith([
        { Key: 'agent-lb:capability', Value: 'vision-canary' },
        { Key: 'agent-lb:variant-of', Value: 'vision' },
        { Key: 'agent-lb:variant-weight', Value: '10' },
      ]),
      TargetGroupAttributes: Match.arrayWith([{ Key: 'load_balancing.algorithm.type', Value: 'least_outstanding_requests' }]),
    });
  });

  it('forwards the header and the path rule to the stable group and the variants by weight (the stable group gets the rest of 100)', () => {
    const { stack, router } = newRouter([{ name: 'vision', variants: [{ name: 'canary', weight: 10 }, { name: 'next', weight: 5 }] }]);
    const template = Template.fromStack(stack);
    const forward = {
      Type: 'forward',
      ForwardConfig: {
        TargetGroups: [
          { TargetGroupArn: { Ref: groupId(template, 'vision') }, Weight: 85 },
          { TargetGroupArn: { Ref: groupId(template, 'vision-canary') }, Weight: 10 },
          { TargetGroupArn: { Ref: groupId(template, 'vision-next') }, Weight: 5 },
        ],
      },
    };
    const route = router.routes[0];
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: route.headerRulePriority,
      Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: ['vision'] } }],
      Actions: [forward],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: route.pathRulePriority,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/agents/vision', '/agents/vision/*'] } }],
      Actions: [forward],
    });
    expect(route.stableWeight).toBe(85);
    expect(route.variants.map((v) => [v.capability, v.weight])).toEqual([
      ['vision-canary', 10],
      ['vision-next', 5],
    ]);
  });

  it('pins a request carrying the variant header to the variant alone, ahead of the weighted rules', () => {
    const { stack, router } = newRouter([canary], { variantHeaderName: 'X-Canary' });
    const template = Template.fromStack(stack);
    const pinned = [{ Type: 'forward', TargetGroupArn: { Ref: groupId(template, 'vision-canary') } }];
    const [route] = router.routes;
    const [variant] = route.variants;
    expect(variant.headerRulePriority).toBeLessThan(route.headerRulePriority);
    expect(variant.pathRulePriority).toBeLessThan(route.pathRulePriority);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: variant.headerRulePriority,
      Conditions: [
        { Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: ['vision'] } },
        { Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Canary', Values: ['canary'] } },
      ],
      Actions: pinned,
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: variant.pathRulePriority,
      Conditions: [
        { Field: 'path-pattern', PathPatternConfig: { Values: ['/agents/vision', '/agents/vision/*'] } },
        { Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Canary', Values: ['canary'] } },
      ],
      Actions: pinned,
    });
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::ListenerRule', 4);
  });

  it('turns target group stickiness on with the stickiness duration when the capability is sticky', () => {
    const { stack } = newRouter([{ ...canary, stickiness: { type: 'lb_cookie', duration: Duration.hours(2) } }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Actions: [{ Type: 'forward', ForwardConfig: Match.objectLike({ TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 7200 } }) }],
    });
  });

  it('sets target group stickiness of its own with variantStickiness', () => {
    const { stack } = newRouter([{ ...canary, variantStickiness: Duration.minutes(10) }]);
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Actions: [{ Type: 'forward', ForwardConfig: Match.objectLike({ TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 600 } }) }],
    });
  });

  it('leaves target group stickiness off by default', () => {
    const { stack } = newRouter([canary]);
    const rules = Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::ListenerRule');
    for (const rule of Object.values(rules)) expect(JSON.stringify(rule)).not.toContain('TargetGroupStickinessConfig');
  });

  test.each<[string, CapabilityProps[], string]>([
    [
      'five variants (six groups in one forward action)',
      [{ name: 'vision', variants: ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, weight: 1 })) }],
      'Capability "vision": 5 variants and the stable group make 6 target groups in one forward action; ALB allows at most 5 (4 variants)',
    ],
    [
      'weights over 100',
      [{ name: 'vision', variants: [{ name: 'a', weight: 60 }, { name: 'b', weight: 50 }] }],
      'Capability "vision": variant weights add up to 110 percent (a 60, b 50); at most 100, the stable group gets the rest',
    ],
    ['a fractional weight', [{ name: 'vision', variants: [{ name: 'a', weight: 2.5 }] }], 'Capability "vision": variant "a" weight 2.5 must be a whole percent, 0–100'],
    ['a variant name in capitals', [{ name: 'vision', variants: [{ name: 'Canary', weight: 1 }] }], 'Capability "vision": variant name "Canary" (variants[0]) must be lowercase letters, digits, "_" or "-", starting with a letter or digit'],
    ['a variant named twice', [{ name: 'vision', variants: [{ name: 'a', weight: 1 }, { name: 'a', weight: 2 }] }], 'Capability "vision": variant name "a" appears twice'],
    [
      'a variant whose capability name another capability has',
      [{ name: 'vision-canary' }, canary],
      'Duplicate capability name "vision-canary" (capabilities[0] and variant "canary" of capabilities[1])',
    ],
    ['variantStickiness without variants', [{ name: 'vision', variantStickiness: Duration.minutes(1) }], 'Capability "vision": variantStickiness applies to the weighted forward action of variants; the capability has none'],
    [
      'variantStickiness over 7 days',
      [{ ...canary, variantStickiness: Duration.days(8) }],
      'Capability "vision": variantStickiness 691200 seconds must be 0 (off) or in 1–604800 seconds (7 days)',
    ],
    [
      'a pinned priority with no room below it for the pin rules',
      [{ ...canary, priority: 1 }],
      'Capability "vision": priority 1 leaves no room below it for the pin rules of its 1 variants; pin it in 2–25000',
    ],
  ])('refuses %s', (_, capabilities, message) => {
    expect(() => newRouter(capabilities)).toThrow(validationError(message));
  });
});

describe('routing policy: load balancer budget', () => {
  it('refuses more than 100 target groups, naming the capability that goes over', () => {
    const capabilities: CapabilityProps[] = Array.from({ length: 33 }, (_, i) => ({ name: `cap-${i}`, variants: [{ name: 'a', weight: 1 }, { name: 'b', weight: 1 }] }));
    capabilities.push({ name: 'last', variants: [{ name: 'a', weight: 1 }] });
    expect(() => newRouter(capabilities)).toThrow(
      validationError(
        'The capabilities need 101 target groups (one per capability and one per variant); an ALB routes to at most 100, not adjustable. ' +
          'Capability "last" with its 1 variant takes the count from 99 to 101; remove capabilities or variants, or put some on another load balancer',
      ),
    );
  });

  it('warns when variants take the rules past the default quota, naming the capability', () => {
    const capabilities: CapabilityProps[] = Array.from({ length: 25 }, (_, i) => ({ name: `cap-${i}`, variants: [{ name: 'a', weight: 1 }] }));
    capabilities.push({ name: 'last', variants: [{ name: 'a', weight: 1 }] });
    const { stack } = newRouter(capabilities);
    Annotations.fromStack(stack).hasWarning(
      '/RouterTest/Router',
      Match.stringLikeRegexp('^The capabilities need 104 listener rules .*Capability "last" with its 1 variant takes the count from 100 to 104; raise the quota before deploying'),
    );
  });
});

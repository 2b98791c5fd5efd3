import { Duration } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { describe, expect, it, test } from 'vitest';
import { CapabilityProps, capabilitySlot, unknownCapabilityBody } from '../../lib/constructs';
import { newRouter, rulePriorities, validationError } from './fixtures';

const names = (...ns: string[]): CapabilityProps[] => ns.map((name) => ({ name }));

describe('CapabilityRouter target groups', () => {
  it('creates one IP target group per capability with the documented defaults and the capability tag', () => {
    // GIVEN / WHEN
    const { stack, router } = newRouter(names('vision', 'speech'));

    // THEN
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::TargetGroup', 2);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetType: 'ip',
      Port: 80,
      Protocol: 'HTTP',
      HealthCheckEnabled: true,
      HealthCheckPath: '/',
      HealthCheckPort: 'traffic-port',
      HealthCheckIntervalSeconds: 10,
      HealthCheckTimeoutSeconds: 5,
      HealthyThresholdCount: 2,
      UnhealthyThresholdCount: 2,
      Matcher: { HttpCode: '200' },
      // maxRequestDuration 5 minutes by default: the delay lets such a request finish (+ 10 s)
      TargetGroupAttributes: Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: '310' }]),
      // The catalog reads the policy tags with the capability tag (CDK sorts tags by key).
      Tags: [
        { Key: 'agent-lb:algorithm', Value: 'least_outstanding_requests' },
        { Key: 'agent-lb:capability', Value: 'vision' },
        { Key: 'agent-lb:max-request-seconds', Value: '300' },
        { Key: 'agent-lb:stickiness', Value: 'off' },
      ],
    });
    expect(Object.keys(router.targetGroups)).toEqual(['vision', 'speech']);
  });

  it('names no target group, so capability names longer than 32 characters still deploy', () => {
    const { stack } = newRouter(names('a-capability-name-of-forty-characters-x'));
    const groups = Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::TargetGroup');
    expect(Object.values(groups).map((g) => (g.Properties as Record<string, unknown>).Name)).toEqual([undefined]);
  });

  it('applies target type, port, protocol, health check, deregistration delay and slow start', () => {
    const { stack } = newRouter([
      {
        name: 'gpu',
        targetType: 'instance',
        port: 8443,
        protocol: elbv2.ApplicationProtocol.HTTPS,
        healthCheck: {
          path: '/healthz',
          port: 9000,
          healthyThresholdCount: 3,
          unhealthyThresholdCount: 4,
          interval: Duration.seconds(20),
          timeout: Duration.seconds(8),
          healthyHttpCodes: '200-299',
        },
        deregistrationDelay: Duration.seconds(0),
        slowStart: Duration.seconds(60),
      },
    ]);

    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetType: 'instance',
      Port: 8443,
      Protocol: 'HTTPS',
      HealthCheckPath: '/healthz',
      HealthCheckPort: '9000',
      HealthyThresholdCount: 3,
      UnhealthyThresholdCount: 4,
      HealthCheckIntervalSeconds: 20,
      HealthCheckTimeoutSeconds: 8,
      Matcher: { HttpCode: '200-299' },
      TargetGroupAttributes: Match.arrayWith([
        { Key: 'deregistration_delay.timeout_seconds', Value: '0' },
        { Key: 'slow_start.duration_seconds', Value: '60' },
      ]),
    });
  });

  it('treats a slow start of 0 as off', () => {
    const { stack } = newRouter([{ name: 'vision', slowStart: Duration.seconds(0) }]);
    const group = Object.values(Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::TargetGroup'))[0];
    const attributes = (group.Properties as { TargetGroupAttributes: { Key: string }[] }).TargetGroupAttributes;
    expect(attributes.map((a) => a.Key)).not.toContain('slow_start.duration_seconds');
  });
});

describe('CapabilityRouter listener rules', () => {
  it('routes the header and the path of each capability to its target group, header first', () => {
    // GIVEN: "vision" hashes to slot 22106
    const { stack } = newRouter(names('vision'));

    // THEN
    const template = Template.fromStack(stack);
    const group = Object.keys(template.findResources('AWS::ElasticLoadBalancingV2::TargetGroup'))[0];
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::ListenerRule', 2);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: 22106,
      Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: ['vision'] } }],
      Actions: [{ Type: 'forward', TargetGroupArn: { Ref: group } }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Priority: 25000 + 22106,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/agents/vision', '/agents/vision/*'] } }],
      Actions: [{ Type: 'forward', TargetGroupArn: { Ref: group } }],
    });
  });

  it('uses the configured header name and path prefix', () => {
    const { stack } = newRouter(names('vision'), { headerName: 'X-Skill', pathPrefix: 'v1/skills' });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Skill', Values: ['vision'] } }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/v1/skills/vision', '/v1/skills/vision/*'] } }],
    });
  });

  it('answers unknown capabilities with a 404 JSON body naming the known ones', () => {
    const { stack } = newRouter(names('vision', 'speech', 'search'));
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      DefaultActions: [
        {
          Type: 'fixed-response',
          FixedResponseConfig: {
            StatusCode: '404',
            ContentType: 'application/json',
            MessageBody: '{"error":"unknown capability","header":"X-Agent-Capability","path":"/agents/<capability>/","capabilities":["search","speech","vision"]}',
          },
        },
      ],
    });
  });

  it('keeps the 404 body within the 1024-character ALB limit by cutting the list and counting the rest', () => {
    const many = Array.from({ length: 100 }, (_, i) => `capability-${String(i).padStart(3, '0')}-${'x'.repeat(40)}`);
    const body = unknownCapabilityBody(many, 'X-Agent-Capability', 'agents');
    const parsed = JSON.parse(body) as { capabilities: string[]; more: number };
    expect(body.length).toBeLessThanOrEqual(1024);
    expect(parsed.capabilities.length + parsed.more).toBe(100);
    expect(parsed.capabilities).toEqual(many.slice(0, parsed.capabilities.length));
  });
});

describe('CapabilityRouter rule priorities', () => {
  it('derives the slot from FNV-1a of the name, a value that must never change between releases', () => {
    expect(capabilitySlot('a')).toBe(2221); // FNV-1a("a") = 0xe40c292c = 3826002220; 3826002220 % 25000 + 1
    expect(capabilitySlot('vision')).toBe(22106);
  });

  it('does not move existing rules when a capability is added, inserted or removed', () => {
    const before = rulePriorities(Template.fromStack(newRouter(names('vision', 'speech', 'search')).stack));
    const appended = rulePriorities(Template.fromStack(newRouter(names('vision', 'speech', 'search', 'ocr')).stack));
    const inserted = rulePriorities(Template.fromStack(newRouter(names('ocr', 'vision', 'speech', 'search')).stack));
    const removed = rulePriorities(Template.fromStack(newRouter(names('vision', 'search')).stack));

    for (const name of ['vision', 'speech', 'search']) {
      expect(appended[name]).toEqual(before[name]);
      expect(inserted[name]).toEqual(before[name]);
    }
    expect(removed.vision).toEqual(before.vision);
    expect(removed.search).toEqual(before.search);
    expect(before.speech).toEqual({ header: capabilitySlot('speech'), path: 25000 + capabilitySlot('speech') });
  });

  it('uses a pinned priority as the slot', () => {
    const { router } = newRouter([{ name: 'vision', priority: 7 }]);
    expect(router.routes[0]).toMatchObject({ slot: 7, headerRulePriority: 7, pathRulePriority: 25007, pinned: true });
  });

  it('moves the later of two names with the same hash to the next free slot, and warns', () => {
    // GIVEN: "cap-243" and "cap-368" both hash to slot 9014
    expect(capabilitySlot('cap-243')).toBe(9014);
    expect(capabilitySlot('cap-368')).toBe(9014);

    // WHEN
    const { stack } = newRouter(names('cap-243', 'cap-368'));

    // THEN
    expect(rulePriorities(Template.fromStack(stack))).toEqual({
      'cap-243': { header: 9014, path: 34014 },
      'cap-368': { header: 9015, path: 34015 },
    });
    Annotations.fromStack(stack).hasWarning(
      '/RouterTest/Router',
      'Capability "cap-368" hashes to rule-priority slot 9014, already used by "cap-243"; it uses slot 9015. Pin it with priority: 9015 so its rules never move. [ack: agent-lb:priority-moved]',
    );
  });

  test.each([
    [
      [{ name: 'a', priority: 5 }, { name: 'b', priority: 5 }],
      'Rule-priority clash: capabilities "a" (pinned) and "b" (pinned) share slot 5 (header rule 5, path rule 25005); give the pinned ones other priorities in 1–25000',
    ],
    [
      [{ name: 'vision' }, { name: 'b', priority: 22106 }],
      'Rule-priority clash: capabilities "vision" (hashed) and "b" (pinned) share slot 22106 (header rule 22106, path rule 47106); give the pinned ones other priorities in 1–25000',
    ],
  ])('reports priority clashes at synth: %j', (capabilities, message) => {
    const { router } = newRouter(capabilities);
    expect(router.node.validate()).toEqual([message]);
  });

  it('warns when the rules exceed the default quota of 100 rules per load balancer', () => {
    const { stack } = newRouter(Array.from({ length: 51 }, (_, i) => ({ name: `cap-${i}` })));
    Annotations.fromStack(stack).hasWarning('/RouterTest/Router', Match.stringLikeRegexp('^The capabilities need 102 listener rules.*Capability "cap-50" takes the count from 100 to 102'));
  });
});

describe('CapabilityRouter validation', () => {
  const hc = (healthCheck: CapabilityProps['healthCheck']): CapabilityProps[] => [{ name: 'vision', healthCheck }];

  test.each<[string, CapabilityProps[], string]>([
    ['uppercase name', names('Vision'), 'Capability name "Vision" (capabilities[0]) must match ^[a-z0-9][a-z0-9_-]{0,62}$: 1–63 lowercase letters, digits, "_" or "-", starting with a letter or digit'],
    ['name starting with "-"', names('ok', '-x'), 'Capability name "-x" (capabilities[1]) must match ^[a-z0-9][a-z0-9_-]{0,62}$: 1–63 lowercase letters, digits, "_" or "-", starting with a letter or digit'],
    ['64-character name', names('a'.repeat(64)), `Capability name "${'a'.repeat(64)}" (capabilities[0]) must match ^[a-z0-9][a-z0-9_-]{0,62}$: 1–63 lowercase letters, digits, "_" or "-", starting with a letter or digit`],
    ['duplicate name', names('vision', 'speech', 'vision'), 'Duplicate capability name "vision" (capabilities[0] and capabilities[2])'],
    ['101 capabilities', Array.from({ length: 101 }, (_, i) => ({ name: `c${i}` })), 'At most 100 capabilities fit one load balancer (one target group each), got 101: capability "c100" is the first over'],
    ['unknown target type', [{ name: 'vision', targetType: 'lambda' as 'ip' }], 'Capability "vision": targetType "lambda" must be "ip" or "instance"'],
    ['port 0', [{ name: 'vision', port: 0 }], 'Capability "vision": port 0 is out of range 1–65535'],
    ['port 65536', [{ name: 'vision', port: 65536 }], 'Capability "vision": port 65536 is out of range 1–65535'],
    ['ports entry as a string (a JavaScript app)', [{ name: 'vision', ports: ['9000-8000' as unknown as number] }], 'Capability "vision": ports entry "9000-8000" must be a port number or { from, to } (e.g. 8080 or { from: 9000, to: 9099 })'],
    ['priority 0', [{ name: 'vision', priority: 0 }], 'Capability "vision": priority 0 is out of range 1–25000'],
    ['priority 25001', [{ name: 'vision', priority: 25001 }], 'Capability "vision": priority 25001 is out of range 1–25000'],
    ['fractional priority', [{ name: 'vision', priority: 1.5 }], 'Capability "vision": priority 1.5 is out of range 1–25000'],
    ['deregistration delay 3601 s', [{ name: 'vision', deregistrationDelay: Duration.seconds(3601) }], 'Capability "vision": deregistration delay 3601 seconds is out of range 0–3600 seconds'],
    ['slow start 10 s', [{ name: 'vision', slowStart: Duration.seconds(10) }], 'Capability "vision": slow start 10 seconds must be 0 (off) or in 30–900 seconds'],
    ['slow start 901 s', [{ name: 'vision', slowStart: Duration.seconds(901) }], 'Capability "vision": slow start 901 seconds must be 0 (off) or in 30–900 seconds'],
    ['health check path without "/"', hc({ path: 'health' }), 'Capability "vision": health check path "health" must start with "/" and be at most 1024 characters'],
    ['health check port 0', hc({ port: 0 }), 'Capability "vision": health check port 0 is out of range 1–65535'],
    ['healthy threshold 1', hc({ healthyThresholdCount: 1 }), 'Capability "vision": health check healthyThresholdCount 1 is out of range 2–10'],
    ['unhealthy threshold 11', hc({ unhealthyThresholdCount: 11 }), 'Capability "vision": health check unhealthyThresholdCount 11 is out of range 2–10'],
    ['interval 4 s', hc({ interval: Duration.seconds(4) }), 'Capability "vision": health check interval 4 seconds is out of range 5–300 seconds'],
    ['interval 1.5 s', hc({ interval: Duration.millis(1500) }), 'Capability "vision": health check interval 1.5 seconds is out of range 5–300 seconds'],
    ['timeout 1 s', hc({ timeout: Duration.seconds(1) }), 'Capability "vision": health check timeout 1 seconds is out of range 2–120 seconds'],
    ['timeout equal to the default interval', hc({ timeout: Duration.seconds(10) }), 'Capability "vision": health check timeout 10 seconds must be less than the interval 10 seconds'],
    ['timeout above the interval', hc({ interval: Duration.seconds(6), timeout: Duration.seconds(8) }), 'Capability "vision": health check timeout 8 seconds must be less than the interval 6 seconds'],
    ['malformed healthy codes', hc({ healthyHttpCodes: 'ok' }), 'Capability "vision": health check healthyHttpCodes "ok" must be codes or ranges like "200" or "200-299,302"'],
  ])('rejects %s', (_, capabilities, message) => {
    expect(() => newRouter(capabilities)).toThrow(validationError(message));
  });

  test.each([
    [{ headerName: 'X Agent' }, 'Header name "X Agent" must be 1–40 characters of letters, digits and !#$%&\'*+.^_`|~-'],
    [{ headerName: 'X-'.repeat(21) }, `Header name "${'X-'.repeat(21)}" must be 1–40 characters of letters, digits and !#$%&'*+.^_\`|~-`],
    [{ pathPrefix: '/agents' }, 'Path prefix "/agents" must be segments of letters, digits, "_", "-", "." or "~" separated by "/", without a leading or trailing "/"'],
    [{ pathPrefix: 'agents/' }, 'Path prefix "agents/" must be segments of letters, digits, "_", "-", "." or "~" separated by "/", without a leading or trailing "/"'],
    [{ pathPrefix: 'p'.repeat(62) }, `Path prefix "${'p'.repeat(62)}" is 62 characters; at most 61 leave room for a 63-character capability name in a 128-character path pattern`],
  ])('rejects router option %j', (props, message) => {
    expect(() => newRouter(names('vision'), props)).toThrow(validationError(message));
  });

  it('accepts 100 capabilities of the longest allowed name', () => {
    const capabilities = Array.from({ length: 100 }, (_, i) => ({ name: `${String(i).padStart(3, '0')}${'x'.repeat(60)}` }));
    const { router } = newRouter(capabilities);
    expect(router.node.validate()).toEqual([]);
    expect(Object.keys(router.targetGroups)).toHaveLength(100);
  });
});

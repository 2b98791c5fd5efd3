/**
 * maxRequestDuration per capability and what derives from it: the target group's deregistration
 * delay, the idle timeout of the load balancer AgentLbStack creates, the tag the sidecar reads,
 * and the warnings when a setting of the user's would cut long requests.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { describe, expect, it, test } from 'vitest';
import { AgentLb, AgentLbStack, CapabilityProps } from '../../lib/constructs';
import { addAgentLbStack, CONTEXT_KEY } from '../../lib/constructs/app-context';
import { appWithoutBundling, newRouter, validationError } from './fixtures';

const delayOf = (minutesOrSeconds: string) => Match.arrayWith([{ Key: 'deregistration_delay.timeout_seconds', Value: minutesOrSeconds }]);

describe('deregistration delay from maxRequestDuration', () => {
  test.each([
    ['the default 5 minutes', {}, '310', '300'],
    ['90 s', { maxRequestDuration: Duration.seconds(90) }, '100', '90'],
    ['the longest accepted, 3590 s', { maxRequestDuration: Duration.seconds(3590) }, '3600', '3590'],
  ])('%s: delay = duration + 10 s, tagged for the sidecar', (_what, props, delay, tag) => {
    // GIVEN / WHEN
    const { stack } = newRouter([{ name: 'vision', ...props }]);

    // THEN
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetGroupAttributes: delayOf(delay),
      Tags: Match.arrayWith([{ Key: 'agent-lb:max-request-seconds', Value: tag }]),
    });
  });

  it('takes an explicit deregistrationDelay as given, and warns when it is shorter than the longest request', () => {
    // GIVEN / WHEN
    const { stack } = newRouter([
      { name: 'vision', deregistrationDelay: Duration.seconds(30) },
      { name: 'speech', maxRequestDuration: Duration.seconds(20), deregistrationDelay: Duration.seconds(45) },
    ]);

    // THEN
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { TargetGroupAttributes: delayOf('30'), Tags: Match.arrayWith([{ Key: 'agent-lb:capability', Value: 'vision' }]) });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { TargetGroupAttributes: delayOf('45'), Tags: Match.arrayWith([{ Key: 'agent-lb:capability', Value: 'speech' }]) });
    const annotations = Annotations.fromStack(stack);
    annotations.hasWarning(
      '/RouterTest/Router/vision',
      Match.stringLikeRegexp('^Capability "vision": deregistrationDelay 30 s is shorter than its maxRequestDuration 300 s \\(the default\\): a request still running'),
    );
    annotations.hasNoWarning('/RouterTest/Router/speech', Match.anyValue());
  });

  test.each([
    [0, 'Capability "vision": maxRequestDuration 0 seconds is out of range 1–3590 whole seconds (the deregistration delay it implies, 10 s more, must fit ALB\'s 3600 s)'],
    [3591, 'Capability "vision": maxRequestDuration 3591 seconds is out of range 1–3590 whole seconds (the deregistration delay it implies, 10 s more, must fit ALB\'s 3600 s)'],
    [1.5, 'Capability "vision": maxRequestDuration 1.5 seconds is out of range 1–3590 whole seconds (the deregistration delay it implies, 10 s more, must fit ALB\'s 3600 s)'],
  ])('refuses maxRequestDuration %s s, quoting it and the range', (seconds, message) => {
    expect(() => newRouter([{ name: 'vision', maxRequestDuration: Duration.millis(seconds * 1000) }])).toThrow(validationError(message));
  });
});

describe('idle timeout of the load balancer AgentLbStack creates', () => {
  const idleOf = (capabilities: CapabilityProps[]) => {
    const stack = new AgentLbStack(appWithoutBundling(), 'Idle', { capabilities });
    const lb = Object.values(Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::LoadBalancer'))[0];
    const attributes = (lb.Properties as { LoadBalancerAttributes: { Key: string; Value: string }[] }).LoadBalancerAttributes;
    return { value: attributes.find((a) => a.Key === 'idle_timeout.timeout_seconds')?.Value, stack };
  };

  test.each([
    ['the default 5 minutes', [{ name: 'vision' }], '310'],
    ['the longest capability + 10 s', [{ name: 'vision', maxRequestDuration: Duration.seconds(90) }, { name: 'speech', maxRequestDuration: Duration.minutes(20) }], '1210'],
    ["never below ALB's 60 s", [{ name: 'vision', maxRequestDuration: Duration.seconds(5) }], '60'],
  ])('%s', (_what, capabilities, expected) => {
    const { value, stack } = idleOf(capabilities);
    expect(value).toBe(expected);
    // Its own load balancer is sized: no warning about it.
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('idle timeout'));
  });

  it('reads maxRequestDurationSeconds from the app context', () => {
    const app = appWithoutBundling({ [CONTEXT_KEY]: { capabilities: [{ name: 'vision', maxRequestDurationSeconds: 1800 }] } });
    const template = Template.fromStack(addAgentLbStack(app, {}));
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', { TargetGroupAttributes: delayOf('1810') });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { LoadBalancerAttributes: Match.arrayWith([{ Key: 'idle_timeout.timeout_seconds', Value: '1810' }]) });
  });
});

describe('AgentLb on a load balancer of the user', () => {
  function userStack(idleTimeout?: Duration) {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'UserStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
    const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc, ...(idleTimeout ? { idleTimeout } : {}) });
    const listener = alb.addListener('Http', { port: 80, open: false, defaultAction: elbv2.ListenerAction.fixedResponse(200) });
    return { stack, vpc, alb, listener };
  }

  it("warns when the load balancer's idle timeout (ALB's default 60 s here) is shorter than the longest request, naming the attribute and the value to set", () => {
    // GIVEN
    const { stack, vpc, listener } = userStack();

    // WHEN
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }, { name: 'speech', maxRequestDuration: Duration.seconds(30) }] });

    // THEN
    Annotations.fromStack(stack).hasWarning(
      '/UserStack/Agents',
      Match.stringLikeRegexp("^The load balancer's idle timeout \\(idle_timeout\\.timeout_seconds\\) is 60 s, shorter than the longest maxRequestDuration, 300 s: .* Set it to 310 s"),
    );
    // It does not change a load balancer it did not create.
    const lb = Object.values(Template.fromStack(stack).findResources('AWS::ElasticLoadBalancingV2::LoadBalancer'))[0];
    expect(JSON.stringify(lb.Properties)).not.toContain('idle_timeout');
  });

  it('sees an idle timeout set after AgentLb was added, and then says nothing', () => {
    const { stack, vpc, alb, listener } = userStack();
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }] });
    alb.setAttribute('idle_timeout.timeout_seconds', '310');
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('idle timeout'));
  });

  it('does not warn when the idle timeout covers the longest request', () => {
    const { stack, vpc, listener } = userStack(Duration.seconds(120));
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision', maxRequestDuration: Duration.seconds(100) }] });
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('idle timeout'));
  });

  it('on an imported listener, where the idle timeout cannot be read, says which attribute to check (an info, not a warning)', () => {
    const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Imported', { env: { account: '123456789012', region: 'eu-west-1' } });
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123', vpcCidrBlock: '10.1.0.0/16', availabilityZones: ['eu-west-1a', 'eu-west-1b'] });
    const listener = elbv2.ApplicationListener.fromApplicationListenerAttributes(stack, 'Listener', {
      listenerArn: 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shared/0123456789abcdef/fedcba9876543210',
      securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'AlbSg', 'sg-0123'),
    });
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision', maxRequestDuration: Duration.minutes(2) }] });
    const annotations = Annotations.fromStack(stack);
    annotations.hasInfo('/Imported/Agents', Match.stringLikeRegexp('make sure its idle_timeout\\.timeout_seconds is at least 130 s'));
    annotations.hasNoWarning('*', Match.stringLikeRegexp('idle timeout'));
  });
});

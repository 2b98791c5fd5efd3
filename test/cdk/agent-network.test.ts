/**
 * The load balancer reaches agents and nothing else, in the three shapes agent-lb is deployed
 * in: AgentLbStack's own load balancer, a user's own ALB listener, and a listener imported by
 * ARN with its security group. Egress only to a security group (the agents', or a capability's
 * admitted ones), only on the capabilities' ports and health-check ports; the matching ingress;
 * explicit ranges only where configured; and synth refusals and warnings.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { describe, expect, it } from 'vitest';
import { AgentLb, AgentLbStack } from '../../lib/constructs';
import { CapabilityProps } from '../../lib/constructs/capability-props';
import { CONFIG_ENV, parseRuntimeSettings } from '../../lib/core/runtime-config';
import { appWithoutBundling, cdkJsonContext, renderJoin } from './fixtures';
import { addAgentLbStack } from '../../lib/constructs';

type Json = Record<string, any>;

const LISTENER_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shared/0123456789abcdef/fedcba9876543210';
const ALB_SG = 'sg-0aa11bb22cc33dd44';

const resources = (t: Template, type: string): [string, Json][] => Object.entries(t.findResources(type));
const idOf = (t: Template, type: string, part: string): string => {
  const found = resources(t, type).filter(([id]) => id.includes(part));
  expect(found.map(([id]) => id)).toHaveLength(1);
  return found[0][0];
};
const groupId = (id: string) => ({ 'Fn::GetAtt': [id, 'GroupId'] });

/** Every egress a template gives `group` (inline rules and separate resources), as `to:from-to`. */
function egressOf(t: Template, group: unknown): string[] {
  const out: string[] = [];
  for (const [id, sg] of resources(t, 'AWS::EC2::SecurityGroup')) {
    if (JSON.stringify(groupId(id)) !== JSON.stringify(group)) continue;
    for (const e of sg.Properties.SecurityGroupEgress ?? []) {
      if (e.CidrIp === '255.255.255.255/32') continue; // CDK's "disallow all" placeholder
      out.push(`${JSON.stringify(e.CidrIp ?? e.CidrIpv6 ?? e.DestinationSecurityGroupId)}:${e.FromPort}-${e.ToPort}`);
    }
  }
  for (const [, e] of resources(t, 'AWS::EC2::SecurityGroupEgress')) {
    if (JSON.stringify(e.Properties.GroupId) !== JSON.stringify(group)) continue;
    const p = e.Properties;
    out.push(`${JSON.stringify(p.CidrIp ?? p.CidrIpv6 ?? p.DestinationSecurityGroupId)}:${p.FromPort}-${p.ToPort}`);
  }
  return out.sort();
}

function ownListener(props: Partial<ConstructorParameters<typeof AgentLb>[2]> = {}, capabilities: CapabilityProps[] = [{ name: 'vision' }]) {
  const stack = new Stack(appWithoutBundling(), 'UserStack');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
  const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc });
  const listener = alb.addListener('Http', { port: 80, open: false, defaultAction: elbv2.ListenerAction.fixedResponse(200, { messageBody: 'mine' }) });
  const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities, priorityRange: { min: 100, max: 199 }, ...props });
  return { stack, vpc, alb, agents, template: Template.fromStack(stack) };
}

function importedListener(withGroup = true) {
  const stack = new Stack(appWithoutBundling(), 'UserStack', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123456789abcdef0', vpcCidrBlock: '10.1.0.0/16', availabilityZones: ['eu-west-1a', 'eu-west-1b'] });
  // TypeScript insists on `securityGroup`; JavaScript apps, and a listener looked up on a load balancer without one, go without.
  const attributes = { listenerArn: LISTENER_ARN, ...(withGroup ? { securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'AlbSg', ALB_SG) } : {}) };
  const listener = elbv2.ApplicationListener.fromApplicationListenerAttributes(stack, 'Listener', attributes as elbv2.ApplicationListenerAttributes);
  return { stack, vpc, listener };
}

describe('AgentLbStack (the default app from cdk.json)', () => {
  const stack = addAgentLbStack(appWithoutBundling(cdkJsonContext()), {});
  const t = Template.fromStack(stack);
  const lb = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'LoadBalancerSecurityGroup'));
  const agents = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup'));

  it('the load balancer\'s egress goes only to the agents\' security group, only on the capabilities\' port (8080 in cdk.json)', () => {
    expect(egressOf(t, lb)).toEqual([`${JSON.stringify(agents)}:8080-8080`]);
  });

  it('keeps no CIDR-wide egress at all: nothing inline (CloudFormation drops EC2\'s default allow-all once an egress rule exists), no CIDR rule', () => {
    const sg = t.toJSON().Resources[idOf(t, 'AWS::EC2::SecurityGroup', 'LoadBalancerSecurityGroup')];
    expect(sg.Properties.SecurityGroupEgress).toBeUndefined();
    expect(resources(t, 'AWS::EC2::SecurityGroupEgress').every(([, e]) => e.Properties.CidrIp === undefined && e.Properties.CidrIpv6 === undefined)).toBe(true);
  });

  it('the agents\' security group takes the load balancer on that port and nothing else', () => {
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { GroupId: agents, SourceSecurityGroupId: lb, IpProtocol: 'tcp', FromPort: 8080, ToPort: 8080 });
    expect(resources(t, 'AWS::EC2::SecurityGroupIngress').filter(([, r]) => JSON.stringify(r.Properties.GroupId) === JSON.stringify(agents))).toHaveLength(1);
    const sg = t.toJSON().Resources[idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup')];
    expect(sg.Properties.SecurityGroupIngress ?? []).toEqual([]);
  });

  it('outputs the agents\' security group and tells the Lambdas to admit it', () => {
    t.hasOutput('AgentSecurityGroupId', { Value: agents });
    expect(stack.agentSecurityGroup).toBe(stack.agentLb.agentSecurityGroup);
  });
});

describe('a user\'s own ALB listener (the README example)', () => {
  it('was unreachable before (only CDK\'s "disallow all" egress); now reaches the agents\' group on the capability\'s port', () => {
    const { template: t, alb, agents } = ownListener();
    const lb = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AlbSecurityGroup'));
    const ag = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup'));
    expect(egressOf(t, lb)).toEqual([`${JSON.stringify(ag)}:80-80`]);
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { GroupId: ag, SourceSecurityGroupId: lb, FromPort: 80, ToPort: 80 });
    expect(alb.connections.securityGroups).toHaveLength(1);
    expect(agents.connections.securityGroups).toEqual([agents.agentSecurityGroup]);
  });

  it('opens each capability\'s declared ports and fixed health-check port, merged into as few rules as possible', () => {
    const { template: t } = ownListener({}, [
      { name: 'vision', port: 8080 },
      { name: 'batch', ports: [9000, { from: 9001, to: 9099 }], healthCheck: { port: 9100 } },
    ]);
    const lb = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AlbSecurityGroup'));
    const ag = JSON.stringify(groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup')));
    expect(egressOf(t, lb)).toEqual([`${ag}:8080-8080`, `${ag}:9000-9100`]);
  });

  it('tells the Lambdas the declared ports that are not simply the group\'s port', () => {
    const { template: t } = ownListener({}, [{ name: 'vision', port: 8080 }, { name: 'batch', ports: [{ from: 9000, to: 9099 }] }]);
    const [, fn] = resources(t, 'AWS::Lambda::Function').find(([id]) => id.includes('Sync'))!;
    const settings = parseRuntimeSettings(renderJoin(fn.Properties.Environment.Variables[CONFIG_ENV], () => '10.0.0.0/16'));
    expect(settings.ports).toEqual({ batch: [{ from: 9000, to: 9099 }] });
    expect(settings.vpcCidrs).toEqual(['10.0.0.0/16']);
    expect(settings.allowedCidrs).toEqual([]);
  });

  it('a capability with its own admitted security groups: egress to those on its ports, and the Lambdas admit only them for it', () => {
    const stack = new Stack(appWithoutBundling(), 'UserStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
    const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc });
    const listener = alb.addListener('Http', { port: 80, open: false, defaultAction: elbv2.ListenerAction.fixedResponse(404) });
    const visionService = new ec2.SecurityGroup(stack, 'VisionService', { vpc });
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision', port: 8080, admittedSecurityGroups: [visionService] }, { name: 'speech', port: 8081 }] });
    const t = Template.fromStack(stack);
    const lb = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AlbSecurityGroup'));
    const vs = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'VisionService'));
    const ag = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup'));
    expect(egressOf(t, lb)).toEqual([`${JSON.stringify(vs)}:8080-8080`, `${JSON.stringify(ag)}:8081-8081`].sort());
    const [, fn] = resources(t, 'AWS::Lambda::Function').find(([id]) => id.includes('Sync'))!;
    const settings = parseRuntimeSettings(renderJoin(fn.Properties.Environment.Variables[CONFIG_ENV], (i) => ((i['Fn::GetAtt'] as string[] | undefined)?.[1] === 'CidrBlock' ? '10.0.0.0/16' : undefined)));
    expect(settings.admission?.byCapability).toEqual({ vision: [`<${idOf(t, 'AWS::EC2::SecurityGroup', 'VisionService')}.GroupId>`] });
  });

  it('warns when the load balancer\'s own group allows all outbound traffic', () => {
    const stack = new Stack(appWithoutBundling(), 'UserStack');
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
    const open = new ec2.SecurityGroup(stack, 'OpenSg', { vpc, allowAllOutbound: true });
    const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc, securityGroup: open });
    new AgentLb(stack, 'Agents', { vpc, listener: alb.addListener('Http', { port: 80, open: false }), capabilities: [{ name: 'vision' }], unknownCapabilityResponse: true });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('allows all outbound traffic, so the load balancer can reach more than the agents'));
  });
});

describe('a listener imported by ARN', () => {
  it('adds the egress to the security group it carries, as its own resources, and the ingress on the agents\' group', () => {
    const { stack, vpc, listener } = importedListener();
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision', port: 8080 }, { name: 'speech', port: 8080 }] });
    const t = Template.fromStack(stack);
    const ag = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup'));
    expect(egressOf(t, ALB_SG)).toEqual([`${JSON.stringify(ag)}:8080-8080`]);
    t.hasResourceProperties('AWS::EC2::SecurityGroupEgress', { GroupId: ALB_SG, DestinationSecurityGroupId: ag, IpProtocol: 'tcp', FromPort: 8080, ToPort: 8080 });
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { GroupId: ag, SourceSecurityGroupId: ALB_SG, FromPort: 8080, ToPort: 8080 });
  });

  it('with an agents\' security group of its own (imported too): both rules as resources', () => {
    const { stack, vpc, listener } = importedListener();
    const mine = ec2.SecurityGroup.fromSecurityGroupId(stack, 'Mine', 'sg-0ffeeffee00000001');
    const agents = new AgentLb(stack, 'Agents', { vpc, listener, agentSecurityGroup: mine, capabilities: [{ name: 'vision', port: 8080 }] });
    const t = Template.fromStack(stack);
    expect(agents.agentSecurityGroup).toBe(mine);
    t.resourceCountIs('AWS::EC2::SecurityGroup', 0);
    t.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { GroupId: 'sg-0ffeeffee00000001', SourceSecurityGroupId: ALB_SG, FromPort: 8080, ToPort: 8080 });
    expect(egressOf(t, ALB_SG)).toEqual(['"sg-0ffeeffee00000001":8080-8080']);
  });

  it('without a security group: synth fails in one line naming what to pass', () => {
    const { stack, vpc, listener } = importedListener(false);
    let message = '';
    try {
      new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }] });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/The listener carries no security group to open towards the agents: import it with ApplicationListener\.fromApplicationListenerAttributes\(scope, id, \{ listenerArn, securityGroup: /);
    expect(message.split('\n')).toHaveLength(1);
  });

  it('explicit ranges outside the VPC get egress on the capabilities\' ports; nothing else does', () => {
    const { stack, vpc, listener } = importedListener();
    new AgentLb(stack, 'Agents', { vpc, listener, allowedCidrs: ['192.168.50.0/24'], capabilities: [{ name: 'vision', port: 8080 }] });
    const t = Template.fromStack(stack);
    const ag = groupId(idOf(t, 'AWS::EC2::SecurityGroup', 'AgentSecurityGroup'));
    expect(egressOf(t, ALB_SG)).toEqual([`"192.168.50.0/24":8080-8080`, `${JSON.stringify(ag)}:8080-8080`].sort());
  });
});

describe('synth refuses and warns', () => {
  it('refuses capabilities: [] (a registry with no target group)', () => {
    expect(() => ownListener({}, [])).toThrow(/capabilities is empty: list at least one capability to route/);
  });

  it('warns about an internet-facing load balancer open to 0.0.0.0/0 over plain HTTP', () => {
    const stack = new AgentLbStack(appWithoutBundling(), 'Open', { capabilities: [{ name: 'vision' }], internetFacing: true, ingressCidrs: ['0.0.0.0/0'] });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('internetFacing with ingressCidrs 0.0.0.0/0 over plain HTTP'));
  });

  it('does not warn for an internal one, or over HTTPS', () => {
    const internal = new AgentLbStack(appWithoutBundling(), 'Internal', { capabilities: [{ name: 'vision' }], ingressCidrs: ['0.0.0.0/0'] });
    Annotations.fromStack(internal).hasNoWarning('*', Match.stringLikeRegexp('over plain HTTP'));
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const https = new AgentLbStack(app, 'Https', {
      capabilities: [{ name: 'vision' }],
      internetFacing: true,
      ingressCidrs: ['0.0.0.0/0'],
      certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/0e6ad1f3-8d6b-4f8e-9a8e-123456789abc',
    });
    Annotations.fromStack(https).hasNoWarning('*', Match.stringLikeRegexp('over plain HTTP'));
  });

  it('refuses more egress rules than a security group holds', () => {
    const many = Array.from({ length: 7 }, (_, i) => ({ name: `c${i}`, ports: Array.from({ length: 10 }, (_, j) => 10_000 + i * 100 + j * 2) }));
    const { stack } = (() => {
      const stack = new Stack(appWithoutBundling(), 'UserStack');
      const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
      const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc });
      new AgentLb(stack, 'Agents', { vpc, listener: alb.addListener('Http', { port: 80, open: false }), capabilities: many, unknownCapabilityResponse: true });
      return { stack };
    })();
    expect(() => Template.fromStack(stack)).toThrow(/would need 70 egress rules to reach the agents; a security group holds 60/);
  });
});

describe('explicit ranges that overlap the VPC', () => {
  it('warn: the security group would then reach every address of the VPC on those ports', () => {
    const stack = new AgentLbStack(appWithoutBundling(), 'Wide', { capabilities: [{ name: 'vision' }], allowedCidrs: ['10.0.0.0/8'] });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('allowedCidrs 10.0.0.0/8 overlap the VPC \\(10.0.0.0/16\\)'));
  });

  it('a range outside the VPC does not', () => {
    const stack = new AgentLbStack(appWithoutBundling(), 'Peered', { capabilities: [{ name: 'vision' }], allowedCidrs: ['192.168.0.0/24'] });
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('overlap the VPC'));
  });
});

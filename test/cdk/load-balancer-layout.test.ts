/**
 * AgentLbStack places its capabilities on as many load balancers as ALB's quotas need (the pure
 * packing of lib/core/load-balancer-packing.ts): a 200-capability stack synthesized once and every
 * quota checked from the template itself (target groups and rules per load balancer, expected
 * targets), one table and one registry for all; refusals name the capability and the quota.
 */
import { NestedStack, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { AgentLbStack, CapabilityProps, targetGroupOutputId } from '../../lib/constructs';
import { CAPABILITY_TAG } from '../../lib/core/lease-schema';
import { CONFIG_ENV } from '../../lib/core/runtime-config';
import { appWithoutBundling, renderJoin, validationError } from './fixtures';

type Resource = { Type: string; Properties: Record<string, any> };

const CAPABILITIES = 200;
const name = (i: number) => `c${String(i).padStart(3, '0')}`;
/** Every 40th capability has a canary variant (so 5 do: they go on the first load balancer). */
const capabilities: CapabilityProps[] = Array.from({ length: CAPABILITIES }, (_, i) => ({
  name: name(i),
  ...(i % 40 === 0 ? { variants: [{ name: 'canary', weight: 10 }] } : {}),
}));
/** 15 targets a capability, 60 for every tenth: 3 540 in all, more than three load balancers' 1 000. */
const expectedTargets = Object.fromEntries(capabilities.map((c, i) => [c.name, i % 10 === 0 ? 60 : 15]));

/** Logical ids of every `{ Ref }` inside `value`. */
function refsIn(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refsIn);
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.Ref === 'string') return [o.Ref];
    return Object.values(o).flatMap(refsIn);
  }
  return [];
}

let stack: AgentLbStack;
let template: Template;
let resources: Record<string, Resource>;
/** The stack's template and each nested stack's (a load balancer's groups and rules each). */
let templates: { stack: Stack; resources: Record<string, Resource> }[];

beforeAll(() => {
  stack = new AgentLbStack(appWithoutBundling(), 'Fleet', { capabilities, expectedTargets });
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, Resource>;
  const nested = stack.node.findAll().filter((c): c is NestedStack => NestedStack.isNestedStack(c));
  templates = [stack, ...nested].map((s) => ({ stack: s, resources: Template.fromStack(s).toJSON().Resources as Record<string, Resource> }));
});

describe('AgentLbStack with 200 capabilities', () => {
  it('creates as many load balancers as the quotas need, each with its listener and security group', () => {
    const n = stack.layout.length;
    // Rules decide here: 2 per capability, 2 more per variant, 1 for the catalog, 100 a load balancer.
    expect(n).toBe(Math.ceil((2 * CAPABILITIES + 2 * 5) / 99));
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', n);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', n);
    template.resourceCountIs('AWS::EC2::SecurityGroup', n + 1); // and the agents' group
    expect(stack.loadBalancers).toHaveLength(n);
    // Each load balancer its own group: clients in on 80, out only to the agents' security group on its capabilities' port (80, the default).
    const agents = stack.resolve(stack.agentSecurityGroup.securityGroupId);
    for (const [i, sg] of stack.loadBalancerSecurityGroups.entries()) {
      expect(stack.resolve(stack.loadBalancers[i].connections.securityGroups[0].securityGroupId)).toEqual(stack.resolve(sg.securityGroupId));
      template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', { GroupId: stack.resolve(sg.securityGroupId), DestinationSecurityGroupId: agents, FromPort: 80, ToPort: 80 });
      template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { GroupId: agents, SourceSecurityGroupId: stack.resolve(sg.securityGroupId), FromPort: 80, ToPort: 80 });
    }
  });

  it('stays within CloudFormation\'s 500 resources a stack: each extra load balancer\'s groups and rules in a nested stack', () => {
    expect(templates).toHaveLength(stack.layout.length);
    for (const t of templates) expect(Object.keys(t.resources).length).toBeLessThanOrEqual(500);
  });

  it('keeps every load balancer within every quota: target groups ≤ 100, rules ≤ 100, expected targets ≤ 1 000', () => {
    const seen = new Map<string, string>();
    // Each template's rules go on one listener (the stack's own first one, or the nested stack's parameter).
    const perListener = templates.flatMap(({ stack: s, resources: rs }) => {
      const capabilityOfGroup = new Map(
        Object.entries(rs)
          .filter(([, r]) => r.Type === 'AWS::ElasticLoadBalancingV2::TargetGroup')
          .map(([id, r]) => [id, (r.Properties.Tags ?? []).find((t: { Key: string }) => t.Key === CAPABILITY_TAG)?.Value as string | undefined]),
      );
      const rules = Object.values(rs).filter((r) => r.Type === 'AWS::ElasticLoadBalancingV2::ListenerRule');
      const listeners = new Set(rules.map((r) => JSON.stringify(r.Properties.ListenerArn)));
      return [...listeners].map((listener) => ({ where: s.node.path, listener, rules: rules.filter((r) => JSON.stringify(r.Properties.ListenerArn) === listener), capabilityOfGroup }));
    });
    expect(perListener).toHaveLength(stack.layout.length);
    for (const { where, rules, capabilityOfGroup } of perListener) {
      const groups = new Set(rules.flatMap((r) => refsIn(r.Properties.Actions)));
      expect(rules.length, where).toBeLessThanOrEqual(100);
      expect(groups.size, where).toBeLessThanOrEqual(100);
      // The catalog's Lambda target group on each (the one group not tagged with a capability): GET /agents answers on every load balancer.
      expect([...groups].filter((g) => capabilityOfGroup.get(g) === undefined), where).toHaveLength(1);
      const names = [...groups].flatMap((g) => capabilityOfGroup.get(g) ?? []);
      const targets = names.reduce((sum, n) => sum + (expectedTargets[n] ?? 0), 0);
      expect(targets).toBeLessThanOrEqual(1000);
      for (const n of names) {
        expect(seen.get(n)).toBeUndefined(); // each capability's group on one load balancer only
        seen.set(n, where);
      }
    }
    expect(seen.size).toBe(CAPABILITIES + 5);
  });

  it('puts capabilities with weighted variants on the first load balancer', () => {
    expect(stack.layout[0].capabilities).toEqual(expect.arrayContaining(['c000', 'c040', 'c080', 'c120', 'c160']));
  });

  it('has one lease table and one registry (sync, catalog stream and reconcile) that finds its groups on every load balancer', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 2); // the lease table and the registry state table
    const functions = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.[CONFIG_ENV] !== undefined);
    expect(functions).toHaveLength(3);
    for (const fn of functions) {
      const config = stack.resolve(fn.Properties.Environment.Variables[CONFIG_ENV]);
      const text = JSON.stringify(config);
      const lbs = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::ElasticLoadBalancingV2::LoadBalancer').map(([id]) => id);
      for (const lb of lbs) expect(text).toContain(lb);
      expect(text).toContain('moreLoadBalancerArns');
      // The target quota is per load balancer (the registry counts each one's groups apart), not multiplied by their number.
      expect(text).toContain('\\"targetQuota\\":1000,');
    }
  });
});

describe('AgentLbStack target group outputs on every load balancer', () => {
  it('60 capabilities on two load balancers: one TargetGroupArn<Name> output each on the top stack, the second\'s passed up from its nested stack', () => {
    const two = new AgentLbStack(appWithoutBundling(), 'Two', { capabilities: capabilities.slice(0, 60).map((c) => ({ name: c.name })) });
    expect(two.layout).toHaveLength(2);
    expect(two.targetGroupOutputsPerCapability).toBe(true);
    const t = Template.fromStack(two);
    const first = two.layout[0].capabilities[0];
    const later = two.layout[1].capabilities.at(-1)!;
    t.hasOutput(targetGroupOutputId(first), { Value: { Ref: Match.stringLikeRegexp(`^Router${first}TargetGroup`) } });
    // A group of the second load balancer: the nested stack's output, read with Fn::GetAtt on the top stack.
    t.hasOutput(targetGroupOutputId(later), { Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('Routes2NestedStack'), Match.stringLikeRegexp('^Outputs\\.')] } });
    const outputs = Object.keys(t.toJSON().Outputs as object);
    expect(outputs.filter((o) => o.startsWith('TargetGroupArn'))).toHaveLength(60);
  });

  it('200 capabilities: more groups than CloudFormation\'s 200 outputs take, so each load balancer lists its groups in one output, and synth says so', () => {
    expect(stack.targetGroupOutputsPerCapability).toBe(false);
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(Object.keys(outputs).length).toBeLessThanOrEqual(200);
    const lists = stack.layout.map((_, i) => (i === 0 ? 'TargetGroupArns' : `TargetGroupArns${i + 1}`));
    for (const id of lists) expect(outputs[id]).toBeDefined();
    // Every group (capabilities and variants) named once, in the load balancer's list that routes it.
    const named = lists.flatMap((id) => renderJoin(outputs[id].Value).split(',').map((pair) => pair.split('=')[0]));
    expect(new Set(named).size).toBe(CAPABILITIES + 5);
    expect(named).toHaveLength(CAPABILITIES + 5);
    Annotations.fromStack(stack).hasWarning('/Fleet', Match.stringLikeRegexp("exceed CloudFormation's 200 outputs per stack"));
  });
});

describe('AgentLbStack refuses a layout that breaks a quota, naming the capability and the quota', () => {
  it.each<[string, ConstructorParameters<typeof AgentLbStack>[2], RegExp]>([
    [
      'a capability with 99 variants needs 100 target groups besides the catalog\'s',
      { capabilities: [{ name: 'big', variants: Array.from({ length: 99 }, (_, i) => ({ name: `v${i}`, weight: 0 })) }] },
      /capability "big" alone needs 101 target groups on a load balancer \(with its 99 variants\); the quota "Target groups per Application Load Balancer \(not adjustable\)" is 100/,
    ],
    [
      'more load balancers than the Region allows',
      { capabilities, loadBalancerQuotas: { loadBalancersPerRegion: 2 } },
      /capability "c09\d" needs load balancer 3; the quota "Application Load Balancers per Region" is 2/,
    ],
    [
      'more targets than one target group takes',
      { capabilities: [{ name: 'crowd' }], expectedTargets: { crowd: 1500 } },
      /capability "crowd" expects 1500 targets in 1 target group; the quota "Targets per Target Group per Region" is 1000/,
    ],
    ['a quota AWS does not raise', { capabilities: [{ name: 'a' }], loadBalancerQuotas: { targetGroupsPerLoadBalancer: 200 } }, /loadBalancerQuotas: quota targetGroupsPerLoadBalancer 200 must be at most 100/],
    [
      'a registry target quota that contradicts the packing\'s',
      { capabilities: [{ name: 'a' }], loadBalancerQuotas: { targetsPerLoadBalancer: 1000 }, registrySync: { targetQuota: 2000 } },
      /^registrySync.targetQuota 2000 and loadBalancerQuotas.targetsPerLoadBalancer 1000 disagree: both are ALB's "Targets per Application Load Balancer" quota, per load balancer; set one$/,
    ],
    ['a target quota out of range', { capabilities: [{ name: 'a' }], registrySync: { targetQuota: 0 } }, /^registrySync.targetQuota 0 is out of range 1–100000 \(a whole number\)$/],
    ['expected targets of an unknown capability', { capabilities: [{ name: 'a' }], expectedTargets: { b: 3 } }, /expectedTargets names "b", which is not among capabilities/],
  ])('%s', (_, props, message) => {
    expect(() => new AgentLbStack(appWithoutBundling(), 'Refused', props)).toThrow(validationError(expect.stringMatching(message) as unknown as string));
  });

  it.each<[string, ConstructorParameters<typeof AgentLbStack>[2]]>([
    ['registrySync.targetQuota', { capabilities: [], registrySync: { targetQuota: 2000 } }],
    ['loadBalancerQuotas.targetsPerLoadBalancer', { capabilities: [], loadBalancerQuotas: { targetsPerLoadBalancer: 2000 } }],
    ['both, alike', { capabilities: [], registrySync: { targetQuota: 2000 }, loadBalancerQuotas: { targetsPerLoadBalancer: 2000 } }],
  ])('one targets-per-load-balancer quota, set by %s: the packing and the registry (and its alarm) use it', (_, props) => {
    const crowd = capabilities.slice(0, 3).map((c) => ({ name: c.name }));
    const s = new AgentLbStack(appWithoutBundling(), 'Quota', { ...props, capabilities: crowd, expectedTargets: { c000: 900, c001: 900, c002: 900 } });
    // 2 700 expected targets: two load balancers at 2 000 each (three at AWS's default 1 000).
    expect(s.layout.map((l) => l.expectedTargets)).toEqual([1800, 900]);
    const t = Template.fromStack(s);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'RegisteredTargets', Threshold: 1600 });
    const fn = Object.values(t.toJSON().Resources as Record<string, Resource>).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.[CONFIG_ENV] !== undefined)!;
    expect(JSON.stringify(s.resolve(fn.Properties.Environment.Variables[CONFIG_ENV]))).toContain('\\"targetQuota\\":2000');
  });

  it('a raised rule quota packs more capabilities on each load balancer', () => {
    const raised = new AgentLbStack(appWithoutBundling(), 'Raised', { capabilities: capabilities.slice(0, 90), loadBalancerQuotas: { rulesPerLoadBalancer: 200 } });
    expect(raised.layout).toHaveLength(1);
    Template.fromStack(raised).resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
  });
});

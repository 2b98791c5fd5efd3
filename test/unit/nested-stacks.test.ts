import { describe, expect, it } from 'vitest';
import { inlineNestedStacks, NestedTemplates } from '../../lib/local/nested-stacks';
import { CfnTemplate, localSubset } from '../../lib/local/template-subset';

const ELB = 'AWS::ElasticLoadBalancingV2::';
const tag = (capability: string) => [{ Key: 'agent-lb:capability', Value: capability }];
const group = (capability: string, vpc: unknown) => ({ Type: `${ELB}TargetGroup`, Properties: { Port: 8080, Protocol: 'HTTP', TargetType: 'ip', VpcId: vpc, Tags: tag(capability) } });
const rule = (listener: unknown, groupRef: unknown, priority: number) => ({ Type: `${ELB}ListenerRule`, Properties: { ListenerArn: listener, Priority: priority, Actions: [{ Type: 'forward', TargetGroupArn: groupRef }], Conditions: [] } });

/** What AgentLbStack synthesizes with two load balancers, cut down: search's group and rule in nested stack Routes2. */
function parent(): CfnTemplate {
  return {
    Resources: {
      Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: '10.0.0.0/16' } },
      LoadBalancer: { Type: `${ELB}LoadBalancer`, Properties: {} },
      LoadBalancerHttp: { Type: `${ELB}Listener`, Properties: { LoadBalancerArn: { Ref: 'LoadBalancer' }, Port: 80 } },
      LoadBalancer2: { Type: `${ELB}LoadBalancer`, Properties: {} },
      LoadBalancer2Http: { Type: `${ELB}Listener`, Properties: { LoadBalancerArn: { Ref: 'LoadBalancer2' }, Port: 80 } },
      VisionGroup: group('vision', { Ref: 'Vpc' }),
      Rule: rule({ Ref: 'LoadBalancerHttp' }, { Ref: 'VisionGroup' }, 1),
      Routes2: { Type: 'AWS::CloudFormation::Stack', Properties: { Parameters: { refVpc: { Ref: 'Vpc' }, refListener: { Ref: 'LoadBalancer2Http' } }, TemplateURL: 'https://s3/x.json' } },
      Leases: { Type: 'AWS::DynamoDB::Table', Properties: { KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }] } },
      Sync: { Type: 'AWS::Lambda::Function', Properties: { Name: { 'Fn::GetAtt': ['Routes2', 'Outputs.SearchGroupRef'] } }, DependsOn: ['Routes2'] },
    },
  };
}

function nested(): CfnTemplate {
  return {
    Parameters: { refVpc: { Type: 'String' }, refListener: { Type: 'String' } },
    Resources: {
      SearchGroup: group('search', { Ref: 'refVpc' }),
      // The same id as the parent's rule: the nested stack's own namespace.
      Rule: rule({ Ref: 'refListener' }, { Ref: 'SearchGroup' }, 2),
    },
    Outputs: { SearchGroupRef: { Value: { Ref: 'SearchGroup' } }, SearchGroupName: { Value: { 'Fn::GetAtt': ['SearchGroup', 'TargetGroupFullName'] } } },
  };
}

describe('inlineNestedStacks: the nested stacks of later load balancers, in the one template moto creates', () => {
  const flat = inlineNestedStacks(parent(), { Routes2: nested() });

  it("puts each nested resource in the parent's order under the nested stack's id, with the parent's values for its parameters", () => {
    expect(Object.keys(flat.Resources)).toEqual(['Vpc', 'LoadBalancer', 'LoadBalancerHttp', 'LoadBalancer2', 'LoadBalancer2Http', 'VisionGroup', 'Rule', 'Routes2SearchGroup', 'Routes2Rule', 'Leases', 'Sync']);
    expect(flat.Resources.Routes2SearchGroup.Properties?.VpcId).toEqual({ Ref: 'Vpc' });
    expect(flat.Resources.Routes2Rule.Properties).toMatchObject({ ListenerArn: { Ref: 'LoadBalancer2Http' }, Actions: [{ TargetGroupArn: { Ref: 'Routes2SearchGroup' } }] });
    // The parent's own rule is untouched.
    expect(flat.Resources.Rule.Properties?.ListenerArn).toEqual({ Ref: 'LoadBalancerHttp' });
  });

  it("reads the nested stack's outputs in place and waits for its resources instead of the stack", () => {
    expect(flat.Resources.Sync.Properties?.Name).toEqual({ Ref: 'Routes2SearchGroup' });
    expect(flat.Resources.Sync.DependsOn).toEqual(['Routes2SearchGroup', 'Routes2Rule']);
  });

  it('gives local mode every load balancer with the capabilities its rules reach', () => {
    expect(localSubset(flat).loadBalancers).toEqual([
      { logicalId: 'LoadBalancer', listenerLogicalId: 'LoadBalancerHttp', capabilities: ['vision'] },
      { logicalId: 'LoadBalancer2', listenerLogicalId: 'LoadBalancer2Http', capabilities: ['search'] },
    ]);
  });

  it('leaves a template without nested stacks as it is', () => {
    const one = parent();
    delete one.Resources.Routes2;
    delete one.Resources.Sync;
    expect(inlineNestedStacks(one, {})).toBe(one);
  });
});

describe('what local mode cannot model is refused in one line, never dropped', () => {
  const withNested = (change: (t: CfnTemplate) => void): NestedTemplates => {
    const t = nested();
    change(t);
    return { Routes2: t };
  };
  it.each<[string, () => CfnTemplate, RegExp]>([
    ['a nested stack whose template is not in the assembly', () => inlineNestedStacks(parent(), {}), /^local mode cannot model nested stack Routes2: its template is not in the synthesized assembly$/],
    ['a parameter the parent gives no value', () => inlineNestedStacks(parent(), withNested((t) => (t.Parameters!.refZone = { Type: 'String' }))), /nested stack Routes2: the parent passes no value for parameter refZone/],
    ['a nested stack nesting another', () => inlineNestedStacks(parent(), withNested((t) => (t.Resources.Deeper = { Type: 'AWS::CloudFormation::Stack' }))), /nested stack Routes2: it nests stack Deeper in turn/],
    ['conditions in a nested template', () => inlineNestedStacks(parent(), withNested((t) => (t.Conditions = { IsProd: {} }))), /nested stack Routes2: its template has Conditions/],
    ['Fn::Sub in a nested template', () => inlineNestedStacks(parent(), withNested((t) => (t.Resources.SearchGroup.Properties!.Name = { 'Fn::Sub': '${AWS::StackName}-x' }))), /nested stack Routes2: it uses Fn::Sub/],
    ['an output the nested stack does not have', () => inlineNestedStacks({ ...parent(), Resources: { ...parent().Resources, Sync: { Type: 'AWS::Lambda::Function', Properties: { Name: { 'Fn::GetAtt': ['Routes2', 'Outputs.Nope'] } } } } }, { Routes2: nested() }), /Routes2.Outputs.Nope: nested stack Routes2 has no such output/],
    ['a nested stack left in the template', () => localSubset(parent()) as unknown as CfnTemplate, /cannot model nested stack Routes2: inline it first/],
    [
      'a load-balancing resource that needs what moto does not provision',
      () => localSubset({ Resources: { ...inlineNestedStacks(parent(), { Routes2: nested() }).Resources, Cert: { Type: 'AWS::CertificateManager::Certificate' }, Https: { Type: `${ELB}Listener`, Properties: { LoadBalancerArn: { Ref: 'LoadBalancer' }, Certificates: [{ CertificateArn: { Ref: 'Cert' } }] } } } }) as unknown as CfnTemplate,
      /^local mode cannot model Https \(AWS::ElasticLoadBalancingV2::Listener\): it needs Cert \(AWS::CertificateManager::Certificate\), which moto does not provision$/,
    ],
    [
      'a capability group no rule forwards to',
      () => localSubset({ Resources: { ...inlineNestedStacks(parent(), { Routes2: nested() }).Resources, Orphan: group('orphan', { Ref: 'Vpc' }) } }) as unknown as CfnTemplate,
      /capability orphan: no listener rule of a load balancer forwards to its target group/,
    ],
  ])('%s', (_, run, message) => {
    expect(run).toThrow(message);
  });
});

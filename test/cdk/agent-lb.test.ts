import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it, test } from 'vitest';
import { AgentLb, AgentLbProps, capabilitySlot } from '../../lib/constructs';
import { parseRuntimeSettings } from '../../lib/core/runtime-config';
import { renderJoin, rulePriorities, validationError } from './fixtures';
import { CATALOG_SLOT_NAME } from '../../lib/constructs/rule-priorities';
import { CONFIG_ENV } from '../../lib/core/runtime-config';
import { AGENT_ATTRIBUTES } from '../../lib/core/lease-schema';

const LISTENER_ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shared/0123456789abcdef/fedcba9876543210';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

/** A user's stack with a VPC and a listener imported by ARN (bundling skipped: only the template is read). */
function importedListenerStack() {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'UserStack', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0123', vpcCidrBlock: '10.1.0.0/16', availabilityZones: ['eu-west-1a', 'eu-west-1b'] });
  const listener = elbv2.ApplicationListener.fromApplicationListenerAttributes(stack, 'Listener', {
    listenerArn: LISTENER_ARN,
    securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'AlbSg', 'sg-0123'),
  });
  return { stack, vpc, listener };
}

/** A user's stack with its own ALB and a listener whose default action answers 200. */
function ownListenerStack() {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'UserStack');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
  const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc });
  const listener = alb.addListener('Http', {
    port: 80,
    open: false,
    defaultAction: elbv2.ListenerAction.fixedResponse(200, { contentType: 'text/plain', messageBody: 'my own app' }),
  });
  return { stack, vpc, alb, listener };
}

const resourcesOf = (template: Template, type: string) => Object.entries(template.toJSON().Resources as Record<string, Resource>).filter(([, r]) => r.Type === type);
/** The function's AGENT_LB_CONFIG as the handlers parse it; a new VPC's CIDR (an attribute) stands in as 10.0.0.0/16. */
const configOf = (fn: Resource) =>
  parseRuntimeSettings(
    renderJoin(fn.Properties.Environment.Variables[CONFIG_ENV], (i) => ((i['Fn::GetAtt'] as string[] | undefined)?.[1] === 'CidrBlock' ? '10.0.0.0/16' : undefined)),
  );

describe('AgentLb on an imported listener', () => {
  // GIVEN / WHEN
  const { stack, vpc, listener } = importedListenerStack();
  const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }, { name: 'speech' }], priorityRange: { min: 40001, max: 50000 } });
  const template = Template.fromStack(stack);

  it('adds a header and a path rule per capability to that listener, inside the priority range', () => {
    const rules = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::ListenerRule');
    expect(rules).toHaveLength(5);
    for (const [, rule] of rules) expect(rule.Properties.ListenerArn).toBe(LISTENER_ARN);
    // 10000 priorities: header rules in 40001–45000, path rules in 45001–50000, slot = FNV-1a mod 5000 + 1;
    // the catalog's `GET /agents` rule in the path half, in a slot of its own.
    expect(rulePriorities(template)).toEqual({
      vision: { header: 40000 + capabilitySlot('vision', 5000), path: 45000 + capabilitySlot('vision', 5000) },
      speech: { header: 40000 + capabilitySlot('speech', 5000), path: 45000 + capabilitySlot('speech', 5000) },
      agents: { path: 45000 + capabilitySlot(CATALOG_SLOT_NAME, 5000) },
    });
    expect(agents.router.priorityRange).toEqual({ min: 40001, max: 50000 });
  });

  it('creates no listener or load balancer and leaves the default action alone', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 0);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 0);
  });

  it('lets the functions find the target groups through the listener, with DescribeListeners allowed', () => {
    const functions = resourcesOf(template, 'AWS::Lambda::Function').filter(([, fn]) => fn.Properties.Environment.Variables[CONFIG_ENV] !== undefined);
    expect(functions).toHaveLength(3); // sync, catalog stream, reconcile
    for (const [, fn] of functions) expect(configOf(fn).discover).toEqual({ listenerArn: LISTENER_ARN, capabilities: ['vision', 'speech'] });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'FindCapabilityTargetGroups',
            Action: ['elasticloadbalancing:DescribeListeners', 'elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTags'],
            Resource: '*',
          }),
        ]),
      },
    });
  });

  it('deploys the functions, the stream mapping and the schedule after every rule', () => {
    const rules = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::ListenerRule').map(([id]) => id);
    // The registry's: the catalog function is what the catalog rule forwards to, so it comes first.
    const triggers = ['AWS::Lambda::Function', 'AWS::Lambda::EventSourceMapping', 'AWS::Events::Rule'].flatMap((t) => resourcesOf(template, t)).filter(([id]) => id.startsWith('AgentsRegistry'));
    expect(triggers).toHaveLength(6); // three functions, two stream mappings, the schedule
    for (const [id, r] of triggers) expect(r.DependsOn ?? [], id).toEqual(expect.arrayContaining(rules));
  });

  it('creates the lease table (kept on removal) and a managed policy agents can be given', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', Properties: { StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' } } });
    expect(agents.leaseTable).toBeDefined();
    expect(agents.agentPolicy).toBe(agents.leaseTable!.agentPolicy);
    expect(Object.keys(agents.targetGroups)).toEqual(['vision', 'speech']);
  });

  test.each<[string, Partial<AgentLbProps>, string]>([
    [
      'the capability 404 on a listener it cannot set the default action of',
      { unknownCapabilityResponse: true },
      "unknownCapabilityResponse sets the listener's default action, which an imported listener does not allow; set the 404 on the listener where it is defined, or leave unknownCapabilityResponse off",
    ],
    ['a range too small for its capabilities', { priorityRange: { min: 10, max: 12 } }, "priorityRange 10–12 holds 3 priorities; 2 capabilities need at least 6 (a header rule and a path rule each, and a slot for the capability catalog's rule)"],
    ['a range too small without the catalog', { priorityRange: { min: 10, max: 12 }, catalog: false }, 'priorityRange 10–12 holds 3 priorities; 2 capabilities need at least 4 (a header rule and a path rule each)'],
    ['a range beyond the listener', { priorityRange: { min: 0, max: 100 } }, 'priorityRange 0–100 must be whole numbers with 1 ≤ min ≤ max ≤ 50000'],
    ['a reversed range', { priorityRange: { min: 200, max: 100 } }, 'priorityRange 200–100 must be whole numbers with 1 ≤ min ≤ max ≤ 50000'],
    ['a pinned priority beyond the range', { priorityRange: { min: 1, max: 100 }, capabilities: [{ name: 'vision', priority: 51 }] }, 'Capability "vision": priority 51 is out of range 1–50'],
  ])('refuses %s', (_, props, message) => {
    const s = importedListenerStack();
    expect(() => new AgentLb(s.stack, 'Agents', { vpc: s.vpc, listener: s.listener, capabilities: [{ name: 'vision' }, { name: 'speech' }], ...props })).toThrow(validationError(message));
  });
});

describe('AgentLb on a listener defined in the same app', () => {
  it("keeps the user's default action and finds the target groups on the listener's load balancer", () => {
    // GIVEN
    const { stack, vpc, listener } = ownListenerStack();

    // WHEN
    new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], priorityRange: { min: 100, max: 199 } });

    // THEN
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      DefaultActions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '200', ContentType: 'text/plain', MessageBody: 'my own app' } }],
    });
    expect(rulePriorities(template)).toEqual({
      vision: { header: 100 + capabilitySlot('vision', 50) - 1, path: 150 + capabilitySlot('vision', 50) - 1 },
      agents: { path: 150 + capabilitySlot(CATALOG_SLOT_NAME, 50) - 1 },
    });
    const [[, fn]] = resourcesOf(template, 'AWS::Lambda::Function').filter(([id]) => id.includes('Sync'));
    const alb = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')[0][0];
    expect(configOf(fn).discover).toEqual({ loadBalancerArn: `<${alb}>`, capabilities: ['vision'] });
  });

  it('answers unknown capabilities with the 404 JSON only when asked, replacing the default action', () => {
    const { stack, vpc, alb } = ownListenerStack();
    const dedicated = alb.addListener('Agents', { port: 8080, open: false });
    new AgentLb(stack, 'Agents', { vpc, listener: dedicated, capabilities: [{ name: 'vision' }], unknownCapabilityResponse: true });
    Template.fromStack(stack).hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 8080,
      DefaultActions: [{ Type: 'fixed-response', FixedResponseConfig: Match.objectLike({ StatusCode: '404', ContentType: 'application/json' }) }],
    });
  });

  it("reports a rule of the user's own on one of its priorities at synth, naming both rules", () => {
    // GIVEN: the user's rule at the priority agent-lb's vision header rule takes in 1–100
    const { stack, vpc, listener } = ownListenerStack();
    const taken = capabilitySlot('vision', 50);
    new elbv2.ApplicationListenerRule(stack, 'MyRule', { listener, priority: taken, conditions: [elbv2.ListenerCondition.pathPatterns(['/mine'])], action: elbv2.ListenerAction.fixedResponse(204) });

    // WHEN
    const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], priorityRange: { min: 1, max: 100 } });

    // THEN
    expect(agents.router.node.validate()).toEqual([
      `Listener rule UserStack/MyRule/Resource has priority ${taken}, which agent-lb's rule UserStack/Agents/Router/vision/HeaderRule uses; move your rule outside priorityRange 1–100, or set priorityRange to leave it out`,
    ]);
  });

  it('accepts rules of the user outside its range', () => {
    const { stack, vpc, listener } = ownListenerStack();
    new elbv2.ApplicationListenerRule(stack, 'MyRule', { listener, priority: 5, conditions: [elbv2.ListenerCondition.pathPatterns(['/mine'])], action: elbv2.ListenerAction.fixedResponse(204) });
    const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], priorityRange: { min: 1000, max: 2000 } });
    expect(agents.router.node.validate()).toEqual([]);
  });
});

describe('AgentLb with an existing lease table', () => {
  it('uses it: no new table, the stream mapping on its stream, agent access on its ARN', () => {
    // GIVEN
    const { stack, vpc, listener } = ownListenerStack();
    const table = dynamodb.Table.fromTableAttributes(stack, 'Leases', {
      tableName: 'team-leases',
      tableStreamArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/team-leases/stream/2026-01-01T00:00:00.000',
    });

    // WHEN
    const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], table, tableRemovalPolicy: RemovalPolicy.DESTROY });
    const role = new iam.Role(stack, 'AgentRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    agents.grantAgentAccess(role);

    // THEN
    const template = Template.fromStack(stack);
    // The registry state table only (the capability catalog's).
    expect(resourcesOf(template, 'AWS::DynamoDB::Table').map(([id]) => id)).toEqual([expect.stringMatching(/^AgentsRegistryState/)]);
    expect(agents.leaseTable).toBeUndefined();
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { EventSourceArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/team-leases/stream/2026-01-01T00:00:00.000' });
    template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Sid: 'ReadAndReleaseLeases', Action: ['dynamodb:GetItem', 'dynamodb:DeleteItem'] }),
          Match.objectLike({ Sid: 'WriteAgentAttributesOnly', Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem'], Condition: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...AGENT_ATTRIBUTES] } } }),
        ],
      },
    });
    const [[, fn]] = resourcesOf(template, 'AWS::Lambda::Function').filter(([id]) => id.includes('Sync'));
    expect(configOf(fn).tableName).toBe('team-leases');
  });

  it('refuses a table imported without its stream, saying how to import it', () => {
    const { stack, vpc, listener } = ownListenerStack();
    const table = dynamodb.Table.fromTableName(stack, 'Leases', 'team-leases');
    expect(() => new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], table })).toThrow(
      'The lease table must have a stream (NEW_AND_OLD_IMAGES); import an existing one with Table.fromTableAttributes(scope, id, { tableName, tableStreamArn })',
    );
  });
});

describe('AgentLb with a weighted variant', () => {
  // GIVEN / WHEN
  const { stack, vpc, listener } = importedListenerStack();
  const agents = new AgentLb(stack, 'Agents', { vpc, listener, capabilities: [{ name: 'vision', variants: [{ name: 'canary', weight: 10 }] }] });
  const template = Template.fromStack(stack);
  const reconcile = resourcesOf(template, 'AWS::Lambda::Function').find(([id]) => id.includes('Reconcile'))![1];

  it('registers agents of the variant into its own group: both groups are capabilities the Lambdas know', () => {
    expect(Object.keys(agents.targetGroups)).toEqual(['vision', 'vision-canary']);
    expect(configOf(reconcile).discover?.capabilities).toEqual(['vision', 'vision-canary']);
  });

  it('tells the reconcile Lambda the configured weight, so it can hold an empty variant at 0', () => {
    expect(configOf(reconcile).variantWeights).toEqual({ 'vision-canary': 10 });
  });

  it('lets the reconcile Lambda change the two weighted rules and no other', () => {
    const policies = resourcesOf(template, 'AWS::IAM::Policy').filter(([id]) => id.includes('Reconcile'));
    const statements = policies.flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Sid?: string; Action: string | string[]; Resource: unknown }[]);
    const modify = statements.find((s) => s.Sid === 'SetVariantWeights')!;
    expect(modify.Action).toBe('elasticloadbalancing:ModifyRule');
    const weighted = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::ListenerRule')
      .filter(([, r]) => r.Properties.Actions[0].ForwardConfig?.TargetGroups.length === 2)
      .map(([id]) => ({ Ref: id }));
    expect(weighted).toHaveLength(2);
    expect(modify.Resource).toEqual(weighted);
    expect(statements.find((s) => s.Sid === 'ReadWeightedRules')?.Action).toEqual(['elasticloadbalancing:DescribeListeners', 'elasticloadbalancing:DescribeRules']);
  });

  it('gives the sync Lambda no rule permissions', () => {
    const sync = resourcesOf(template, 'AWS::IAM::Policy').filter(([id]) => id.includes('RegistrySync') && !id.includes('Reconcile'));
    expect(sync).toHaveLength(1);
    expect(JSON.stringify(sync)).not.toContain('ModifyRule');
  });
});

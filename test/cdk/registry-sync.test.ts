import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as sns from 'aws-cdk-lib/aws-sns';
import { describe, expect, it, test } from 'vitest';
import { CapabilityRouter, LeaseTable, RegistryStateTable, RegistrySync, RegistrySyncProps } from '../../lib/constructs';
import { appWithoutBundling, renderJoin, validationError } from './fixtures';
import { RECONCILE_SERVICE_NAME } from '../../lib/core/metric-names';
import { CONFIG_ENV } from '../../lib/core/runtime-config';
import { AgentLbValidationError } from '../../lib/constructs/validation-error';

/** A stack holding a lease table and a router for `names`, the inputs a RegistrySync needs (bundling skipped). */
function surroundings(names: string[] = ['vision']) {
  const stack = new Stack(appWithoutBundling(), 'SyncTest');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 0 });
  const alb = new elbv2.ApplicationLoadBalancer(stack, 'Alb', { vpc });
  const listener = alb.addListener('Http', { port: 80, open: false });
  const router = names.length > 0 ? new CapabilityRouter(stack, 'Router', { vpc, listener, capabilities: names.map((name) => ({ name })), unknownCapabilityResponse: true }) : undefined;
  const leases = new LeaseTable(stack, 'Leases');
  const capabilities = Object.fromEntries(names.map((n) => [n, { targetGroup: router!.targetGroups[n] }]));
  return { stack, vpc, alb, table: leases.table, capabilities };
}

function newSync(props: Partial<RegistrySyncProps> = {}, names?: string[]) {
  const s = surroundings(names);
  const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, ...props });
  return { ...s, sync };
}

describe('RegistrySync', () => {
  it('passes custom event source settings through', () => {
    const { stack } = newSync({ batchSize: 500, maxBatchingWindow: Duration.seconds(5), retryAttempts: 3, maxRecordAge: Duration.hours(2) });
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      BatchSize: 500,
      MaximumBatchingWindowInSeconds: 5,
      MaximumRetryAttempts: 3,
      MaximumRecordAgeInSeconds: 7200,
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('tells the Lambdas each capability\'s target type, the safety valve and the repeat', () => {
    const { stack, sync } = newSync({ safetyValveShare: 0.25, reconcileRepeat: Duration.seconds(20), allowedCidrs: ['10.1.0.0/16'] }, ['vision', 'gpu']);
    const config = JSON.parse(renderJoin(stack.resolve(sync.runtimeConfigJson)));
    expect(config).toEqual({
      tableName: expect.stringMatching(/^<LeasesTable/),
      capabilities: {
        vision: { targetGroupArn: expect.stringMatching(/^<RoutervisionTargetGroup/), targetType: 'ip' },
        gpu: { targetGroupArn: expect.stringMatching(/^<RoutergpuTargetGroup/), targetType: 'ip' },
      },
      vpcCidrs: [expect.stringMatching(/^<Vpc.*\.CidrBlock>$/)],
      allowedCidrs: ['10.1.0.0/16'],
      maxLeaseTtlSeconds: 3600,
      targetQuota: 1000,
      safetyValveShare: 0.25,
      reconcileRepeatSeconds: 20,
    });
    // Looping inside one invocation: the timeout covers the whole schedule interval.
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
      Timeout: 60,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: RECONCILE_SERVICE_NAME }) },
    });
  });

  it('allows the VPC\'s CIDR only by default; anything wider only when named', () => {
    const s = surroundings();
    const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc });
    const config = JSON.parse(renderJoin(s.stack.resolve(sync.runtimeConfigJson)));
    expect(config.vpcCidrs).toEqual([expect.stringMatching(/^<Vpc.*\.CidrBlock>$/)]);
    expect(config.allowedCidrs).toEqual([]);
  });

  it('needs the VPC, or ranges named explicitly', () => {
    const s = surroundings();
    expect(() => new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities })).toThrow(
      validationError('RegistrySync needs vpc (its CIDR is where lease addresses may come from) or allowedCidrs naming the ranges'),
    );
  });

  it('takes a maximum lease TTL and a target quota, and refuses them out of range', () => {
    const { stack, sync } = newSync({ maxLeaseTtl: Duration.minutes(5), targetQuota: 500 });
    expect(JSON.parse(renderJoin(stack.resolve(sync.runtimeConfigJson)))).toMatchObject({ maxLeaseTtlSeconds: 300, targetQuota: 500 });
    expect(() => newSync({ maxLeaseTtl: Duration.days(2) })).toThrow(/maxLeaseTtl 172800 seconds is out of range 5–86400 seconds/);
    expect(() => newSync({ targetQuota: 0 })).toThrow(/targetQuota 0 is out of range 1–100000/);
  });

  it('alarms when the fullest load balancer holds 80 % of its target quota', () => {
    const { stack } = newSync({ targetQuota: 500 });
    Template.fromStack(stack).hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'RegisteredTargets',
      Namespace: 'AgentLb',
      Dimensions: [{ Name: 'service', Value: 'agent-lb-reconcile' }],
      Statistic: 'Maximum',
      Threshold: 400,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmDescription: Match.stringLikeRegexp('80 % or more of its target quota \\(500 per load balancer\\)'),
    });
  });

  it('sends every alarm to the given actions', () => {
    const s = surroundings();
    const topic = new sns.Topic(s.stack, 'Pager');
    new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, alarmActions: [new cloudwatchActions.SnsAction(topic)] });
    const template = Template.fromStack(s.stack);
    template.resourceCountIs('AWS::CloudWatch::Alarm', 6);
    template.allResourcesProperties('AWS::CloudWatch::Alarm', { AlarmActions: [{ Ref: s.stack.getLogicalId(topic.node.defaultChild as never) }] });
  });

  it('refuses to exist without a capability (it would register nothing)', () => {
    expect(() => newSync({}, [])).toThrow(/RegistrySync needs at least one capability/);
  });

  it('refuses target group ARNs that would not fit Lambda\'s 4 KB environment, and says how to fit them', () => {
    const { sync } = newSync({}, Array.from({ length: 40 }, (_, i) => `capability-with-a-long-name-${i}`));
    expect(sync.node.validate()).toEqual([
      expect.stringMatching(
        new RegExp(`^${CONFIG_ENV} for 40 capabilities may reach \\d{4} bytes of Lambda environment; Lambda allows 4096 bytes\\. Pass \`loadBalancer\` or \`listener\` so the functions find the target groups themselves, or use fewer capabilities per stack$`),
      ),
    ]);
  });

  it('fits 100 capabilities with 20-character names when the functions discover their target groups', () => {
    const s = surroundings(Array.from({ length: 100 }, (_, i) => `capability-name-${String(i).padStart(4, '0')}`));
    const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, loadBalancer: s.alb });
    expect(sync.node.validate()).toEqual([]);
  });

  it('fits 99 capabilities with 20-character names, admission and the capability catalog with 10 public metadata keys', () => {
    const s = surroundings(Array.from({ length: 99 }, (_, i) => `capability-name-${String(i).padStart(4, '0')}`));
    const table = new RegistryStateTable(s.stack, 'State');
    const attributes = Array.from({ length: 10 }, (_, i) => `metadata-key-${i}`);
    const agents = new ec2.SecurityGroup(s.stack, 'Agents', { vpc: s.vpc });
    const sync = new RegistrySync(s.stack, 'Registry', {
      table: s.table,
      capabilities: s.capabilities,
      vpc: s.vpc,
      loadBalancer: s.alb,
      admission: { agentSecurityGroups: [agents] },
      catalog: { table, headerName: 'X-Agent-Capability', pathPrefix: 'agents', attributes },
    });
    expect(sync.node.validate()).toEqual([]);
  });

  describe('the catalog\'s hosts: DescribeLoadBalancers for the roles that build the document, and nothing in the environment', () => {
    /** Actions of each of the registry's roles, by role (Sync, CatalogStream, Reconcile). */
    function actionsByRole(stack: Stack): Record<string, string[]> {
      const out: Record<string, string[]> = {};
      for (const policy of Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'))) {
        for (const role of policy.Properties.Roles as { Ref: string }[]) {
          const name = ['CatalogStream', 'Reconcile', 'Sync'].find((n) => role.Ref.includes(`${n}Role`))!;
          for (const st of policy.Properties.PolicyDocument.Statement) out[name] = [...(out[name] ?? []), ...[st.Action].flat()];
        }
      }
      return out;
    }
    /** A registry with a catalog whose functions find the groups on the stack's load balancer. */
    const withCatalog = (names?: string[]) => {
      const s = surroundings(names);
      const table = new RegistryStateTable(s.stack, 'State');
      const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, loadBalancer: s.alb, catalog: { table, headerName: 'X-Agent-Capability', pathPrefix: 'agents' } });
      return { ...s, sync };
    };

    it('grants DescribeLoadBalancers on "*" (it has no resource-level permission) to sync, catalog stream and reconcile', () => {
      const { stack } = withCatalog();
      Template.fromStack(stack).hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: { Statement: Match.arrayWith([{ Sid: 'NameCatalogLoadBalancers', Effect: 'Allow', Action: 'elasticloadbalancing:DescribeLoadBalancers', Resource: '*' }]) },
      });
      const byRole = actionsByRole(stack);
      for (const role of ['Sync', 'CatalogStream', 'Reconcile']) expect(byRole[role], role).toContain('elasticloadbalancing:DescribeLoadBalancers');
    });

    it('grants it to no role without a catalog', () => {
      const { stack, sync } = newSync({}, ['vision']);
      expect(sync.catalogStreamFunction).toBeUndefined();
      expect(Object.values(actionsByRole(stack)).flat()).not.toContain('elasticloadbalancing:DescribeLoadBalancers');
    });

    it('groups named by ARN with declared ports: DescribeTargetGroups too (which load balancer each group is on), still only for those roles', () => {
      const s = surroundings();
      const capabilities = { vision: { ...s.capabilities.vision, ports: [{ from: 8080, to: 8080 }] } };
      const table = new RegistryStateTable(s.stack, 'State');
      new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities, vpc: s.vpc, catalog: { table, headerName: 'X-Agent-Capability', pathPrefix: 'agents' } });
      Template.fromStack(s.stack).hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([{ Sid: 'NameCatalogLoadBalancers', Effect: 'Allow', Action: ['elasticloadbalancing:DescribeLoadBalancers', 'elasticloadbalancing:DescribeTargetGroups'], Resource: '*' }]),
        },
      });
    });

    it('puts no host into AGENT_LB_CONFIG: the functions look the DNS names up, so the environment is what it was', () => {
      const { stack, sync } = withCatalog(['vision', 'speech']);
      const config = JSON.parse(renderJoin(stack.resolve(sync.runtimeConfigJson)));
      expect(Object.keys(config.catalog).sort()).toEqual(['headerName', 'pathPrefix', 'tableName']);
      expect(JSON.stringify(config)).not.toMatch(/DNSName|dnsName|host/i);
    });
  });

  describe('the shared ELB call budget: one item every sync and reconcile container takes its tokens from', () => {
    const budgetStatement = (table: RegistryStateTable) => ({
      Effect: 'Allow',
      Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
      Resource: { 'Fn::GetAtt': [Stack.of(table).getLogicalId(table.table.node.defaultChild as dynamodb.CfnTable), 'Arn'] },
      Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['elb-budget'] } },
    });

    it('names the table in AGENT_LB_CONFIG and grants sync and reconcile GetItem and UpdateItem of that item alone', () => {
      const s = surroundings();
      const table = new RegistryStateTable(s.stack, 'State');
      const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, elbBudgetTable: table });
      expect(JSON.parse(renderJoin(s.stack.resolve(sync.runtimeConfigJson))).sharedElbBudget).toEqual({ tableName: expect.stringMatching(/^<StateTable/) });
      const template = Template.fromStack(s.stack);
      for (const role of ['SyncRole', 'ReconcileRole']) {
        template.hasResourceProperties('AWS::IAM::Policy', {
          Roles: [{ Ref: Match.stringLikeRegexp(`^Registry${role}`) }],
          PolicyDocument: { Statement: Match.arrayWith([budgetStatement(table)]) },
        });
      }
      // No other grant on the state table: without a catalog, the budget item is all they may touch.
      const onState = Object.values(template.findResources('AWS::IAM::Policy'))
        .flatMap((p) => p.Properties.PolicyDocument.Statement as { Resource: unknown; Condition?: unknown }[])
        .filter((st) => JSON.stringify(st.Resource).includes('StateTable'));
      expect(onState).toHaveLength(2);
      expect(onState.every((st) => st.Condition !== undefined)).toBe(true);
    });

    it('with a catalog, takes the catalog\'s table unless told otherwise, names it once, and grants UpdateItem only on the budget item', () => {
      const s = surroundings();
      const table = new RegistryStateTable(s.stack, 'State');
      const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, catalog: { table, headerName: 'X-Agent-Capability', pathPrefix: 'agents' } });
      const config = JSON.parse(renderJoin(s.stack.resolve(sync.runtimeConfigJson)));
      expect(config.sharedElbBudget).toEqual({});
      expect(config.catalog.tableName).toMatch(/^<StateTable/);
      const template = Template.fromStack(s.stack);
      for (const role of ['SyncRole', 'ReconcileRole']) {
        template.hasResourceProperties('AWS::IAM::Policy', {
          Roles: [{ Ref: Match.stringLikeRegexp(`^Registry${role}`) }],
          PolicyDocument: { Statement: Match.arrayWith([budgetStatement(table)]) },
        });
      }
      // The catalog stream calls no ELB API: it gets no budget.
      template.resourcePropertiesCountIs('AWS::IAM::Policy', { Roles: [{ Ref: Match.stringLikeRegexp('^RegistryCatalogStreamRole') }], PolicyDocument: { Statement: Match.arrayWith([budgetStatement(table)]) } }, 0);
      const unconditionedUpdates = Object.values(template.findResources('AWS::IAM::Policy'))
        .flatMap((p) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown; Condition?: unknown }[])
        .filter((st) => JSON.stringify(st.Resource).includes('StateTable') && [st.Action].flat().includes('dynamodb:UpdateItem') && st.Condition === undefined);
      expect(unconditionedUpdates).toEqual([]);
    });

    it('without a table, tells the functions of none: each container keeps its own bucket', () => {
      const { stack, sync } = newSync();
      expect(JSON.parse(renderJoin(stack.resolve(sync.runtimeConfigJson))).sharedElbBudget).toBeUndefined();
    });
  });

  it('still refuses names too long for 4 KB even as a list', () => {
    const s = surroundings(Array.from({ length: 100 }, (_, i) => `a-capability-name-long-enough-to-matter-${String(i).padStart(4, '0')}`));
    const sync = new RegistrySync(s.stack, 'Registry', { table: s.table, capabilities: s.capabilities, vpc: s.vpc, loadBalancer: s.alb });
    expect(sync.node.validate()).toEqual([expect.stringMatching(new RegExp(`^${CONFIG_ENV} for 100 capabilities may reach \\d{4} bytes .* Use fewer or shorter capability names`))]);
  });

  it('accepts 16 capabilities with names of up to 20 characters', () => {
    const { sync } = newSync({}, Array.from({ length: 16 }, (_, i) => `capability-name-${String(i).padStart(4, '0')}`));
    expect(sync.node.validate()).toEqual([]);
  });

  it('reports a repeat that is not shorter than the schedule at synth', () => {
    const { sync } = newSync({ reconcileRepeat: Duration.seconds(60) });
    expect(sync.node.validate()).toEqual(['reconcileRepeat 60 seconds must be less than reconcileInterval 60 seconds']);
  });

  test.each<[string, Partial<RegistrySyncProps>, string]>([
    ['safety valve 0', { safetyValveShare: 0 }, 'safetyValveShare 0 is out of range (0, 1]'],
    ['safety valve 1.5', { safetyValveShare: 1.5 }, 'safetyValveShare 1.5 is out of range (0, 1]'],
    ['batch size 0', { batchSize: 0 }, 'batchSize 0 is out of range 1–10000'],
    ['batch size 10001', { batchSize: 10_001 }, 'batchSize 10001 is out of range 1–10000'],
    ['batching window 301 s', { maxBatchingWindow: Duration.seconds(301) }, 'maxBatchingWindow 301 seconds is out of range 0–300 seconds'],
    ['retry attempts -1', { retryAttempts: -1 }, 'retryAttempts -1 is out of range 0–10000'],
    ['record age 30 s', { maxRecordAge: Duration.seconds(30) }, 'maxRecordAge 30 seconds is out of range 60–604800 seconds'],
    ['record age 8 days', { maxRecordAge: Duration.days(8) }, 'maxRecordAge 691200 seconds is out of range 60–604800 seconds'],
    ['schedule of 90 s', { reconcileInterval: Duration.seconds(90) }, 'reconcileInterval 90 seconds must be a whole number of minutes, at least 1'],
    ['repeat 601 s', { reconcileRepeat: Duration.seconds(601) }, 'reconcileRepeat 601 seconds is out of range 0–600 seconds'],
    ['a malformed CIDR', { allowedCidrs: ['10.0.0.0/33'] }, 'allowedCidrs: "10.0.0.0/33" is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
  ])('rejects %s', (_, props, message) => {
    expect(() => newSync(props)).toThrow(validationError(message));
  });

  it('names the construct whose props are wrong', () => {
    let thrown: unknown;
    try {
      newSync({ batchSize: 0 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AgentLbValidationError);
    expect((thrown as AgentLbValidationError).constructPath).toMatch(/\/Registry$/);
  });

  it('rejects a capability name outside the lease contract', () => {
    const s = surroundings();
    expect(() => new RegistrySync(s.stack, 'Registry', { table: s.table, vpc: s.vpc, capabilities: { Vision: s.capabilities.vision } })).toThrow(
      validationError('Capability name "Vision" must match ^[a-z0-9][a-z0-9_-]{0,62}$'),
    );
  });

  it('rejects a table without a stream', () => {
    const s = surroundings();
    const plain = new dynamodb.Table(s.stack, 'Plain', { partitionKey: { name: 'target', type: dynamodb.AttributeType.STRING } });
    expect(() => new RegistrySync(s.stack, 'Registry', { table: plain, vpc: s.vpc, capabilities: s.capabilities })).toThrow(
      validationError('The lease table must have a stream (NEW_AND_OLD_IMAGES); import an existing one with Table.fromTableAttributes(scope, id, { tableName, tableStreamArn })'),
    );
  });
});

import { Duration, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it, test } from 'vitest';
import { AgentLbStack, AgentLbStackProps, addAgentLbStack, capabilitySlot } from '../../lib/constructs';
import { parseRuntimeSettings } from '../../lib/core/runtime-config';
import { appWithoutBundling, cdkJsonContext, renderJoin, validationError } from './fixtures';
import { METRICS_NAMESPACE, RECONCILE_METRICS, RECONCILE_SERVICE_NAME, SYNC_METRICS, SYNC_SERVICE_NAME } from '../../lib/core/metric-names';
import { CONFIG_ENV } from '../../lib/core/runtime-config';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

/** The stack `cdk synth` builds from cdk.json, synthesized once for this file (Lambda bundling skipped). */
let stack: AgentLbStack;
let template: Template;
const ids: Record<string, string> = {};

const logicalId = (type: string, pathPart: string): string => {
  const found = Object.keys(template.findResources(type)).filter((id) => id.includes(pathPart));
  if (found.length !== 1) throw new Error(`expected one ${type} matching ${pathPart}, found ${found.join(', ')}`);
  return found[0];
};
const resource = (id: string): Resource => template.toJSON().Resources[id] as Resource;
const policyStatements = (roleIdPart: string): Record<string, any>[] =>
  resource(logicalId('AWS::IAM::Policy', `${roleIdPart}RoleDefaultPolicy`)).Properties.PolicyDocument.Statement;

beforeAll(() => {
  stack = addAgentLbStack(appWithoutBundling(cdkJsonContext()), {});
  template = Template.fromStack(stack);
  for (const name of ['vision', 'speech', 'search']) ids[name] = logicalId('AWS::ElasticLoadBalancingV2::TargetGroup', `Router${name}`);
  ids.table = logicalId('AWS::DynamoDB::Table', 'Leases');
  ids.registryTable = logicalId('AWS::DynamoDB::Table', 'RegistryState');
  ids.sync = logicalId('AWS::Lambda::Function', 'RegistrySync');
  ids.reconcile = logicalId('AWS::Lambda::Function', 'RegistryReconcile');
  ids.queue = logicalId('AWS::SQS::Queue', 'SyncFailures');
  ids.vpc = logicalId('AWS::EC2::VPC', 'Vpc');
  ids.alb = logicalId('AWS::ElasticLoadBalancingV2::LoadBalancer', 'LoadBalancer');
  ids.agentSg = logicalId('AWS::EC2::SecurityGroup', 'AgentSecurityGroup');
  ids.lbSg = logicalId('AWS::EC2::SecurityGroup', 'LoadBalancerSecurityGroup');
});

describe('AgentLbStack from the default cdk.json context', () => {
  it('is environment-agnostic, so it synthesizes without AWS credentials or lookups', () => {
    expect(Token.isUnresolved(stack.account)).toBe(true);
    expect(Token.isUnresolved(stack.region)).toBe(true);
    expect(stack.stackName).toBe('AgentLb');
  });

  it('keeps the logical ids deployed stacks have (a replaced lease table would lose every lease)', () => {
    expect(ids.table).toBe('LeasesTableFEA91EF2');
    expect(ids.sync).toBe('RegistrySync98475FBA');
    expect(ids.vision).toBe('RoutervisionTargetGroupEF5DF75C');
    expect(Object.keys(template.findResources('AWS::IAM::ManagedPolicy'))).toEqual(['LeasesAgentPolicy793C5981']);
  });

  it('holds the lease table of the contract', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }],
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
        DeletionProtectionEnabled: false,
      },
    });
  });

  it('has one target group per example capability, with the context health check and timings (and the catalog\'s Lambda target group)', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::TargetGroup', 4);
    for (const name of ['vision', 'speech', 'search']) {
      expect(resource(ids[name]).Properties).toMatchObject({
        TargetType: 'ip',
        Port: 8080,
        Protocol: 'HTTP',
        HealthCheckPath: '/health',
        HealthCheckIntervalSeconds: 10,
        HealthCheckTimeoutSeconds: 5,
        VpcId: { Ref: ids.vpc },
        Tags: expect.arrayContaining([
          { Key: 'agent-lb:capability', Value: name },
          { Key: 'agent-lb:max-request-seconds', Value: '300' },
        ]),
      });
      expect(resource(ids[name]).Properties.TargetGroupAttributes).toContainEqual({ Key: 'deregistration_delay.timeout_seconds', Value: '310' });
    }
    expect(resource(ids.speech).Properties.TargetGroupAttributes).toContainEqual({ Key: 'slow_start.duration_seconds', Value: '30' });
  });

  test.each(['vision', 'speech', 'search'])('routes header and path of "%s" with hash-derived priorities', (name) => {
    const listener = logicalId('AWS::ElasticLoadBalancingV2::Listener', 'LoadBalancerHttp');
    const slot = capabilitySlot(name);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      ListenerArn: { Ref: listener },
      Priority: slot,
      Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: [name] } }],
      Actions: [{ Type: 'forward', TargetGroupArn: { Ref: ids[name] } }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
      ListenerArn: { Ref: listener },
      Priority: 25000 + slot,
      Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: [`/agents/${name}`, `/agents/${name}/*`] } }],
      Actions: [{ Type: 'forward', TargetGroupArn: { Ref: ids[name] } }],
    });
  });

  it('answers requests for no known capability with 404 JSON on an HTTP listener', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
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

  it('puts an internal ALB dropping invalid headers in the private subnets, reachable from the VPC only', () => {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internal',
      Type: 'application',
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' }]),
      Subnets: [{ Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') }, { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet2') }],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'agent-lb load balancer: clients in, agents out',
      SecurityGroupIngress: [{ CidrIp: { 'Fn::GetAtt': [ids.vpc, 'CidrBlock'] }, FromPort: 80, ToPort: 80, IpProtocol: 'tcp', Description: 'clients on 80' }],
    });
  });

  it('builds a cheap two-AZ VPC: one NAT gateway and a free DynamoDB gateway endpoint', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.resourceCountIs('AWS::EC2::Subnet', 4);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.dynamodb']] },
    });
  });

  it('feeds the table stream to the sync Lambda with the documented event source settings', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: ids.sync },
      EventSourceArn: { 'Fn::GetAtt': [ids.table, 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 10000,
      MaximumBatchingWindowInSeconds: 1,
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      MaximumRecordAgeInSeconds: 3600,
      ParallelizationFactor: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [ids.queue, 'Arn'] } } },
    });
  });

  it('keeps given-up stream batches in an encrypted queue that refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: ids.queue }],
      PolicyDocument: {
        Statement: [Match.objectLike({ Effect: 'Deny', Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })],
      },
    });
  });

  it('runs reconcile every minute, without async retries piling onto the next tick', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [ids.reconcile, 'Arn'] }, RetryPolicy: { MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 2 } })],
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { FunctionName: { Ref: ids.reconcile }, MaximumRetryAttempts: 0 });
  });

  test.each([
    ['sync', SYNC_SERVICE_NAME, 60],
    ['reconcile', RECONCILE_SERVICE_NAME, 60],
  ])('runs the %s Lambda on Node.js 22 arm64 with its Powertools service name', (key, service, timeout) => {
    expect(resource(ids[key]).Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: timeout,
      Environment: {
        Variables: {
          POWERTOOLS_SERVICE_NAME: service,
          POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
          [CONFIG_ENV]: expect.anything(),
        },
      },
    });
  });

  it(`gives both Lambdas an ${CONFIG_ENV} that the handlers' own parser accepts`, () => {
    for (const key of ['sync', 'reconcile']) {
      const text = renderJoin(resource(ids[key]).Properties.Environment.Variables[CONFIG_ENV], (intrinsic) =>
        JSON.stringify(intrinsic) === JSON.stringify({ 'Fn::GetAtt': [ids.vpc, 'CidrBlock'] }) ? '10.0.0.0/16' : undefined,
      );
      // Capability names only: the functions find the target groups on the load balancer by tag.
      expect(JSON.parse(text)).toEqual({
        tableName: `<${ids.table}>`,
        loadBalancerArn: `<${ids.alb}>`,
        capabilities: ['vision', 'speech', 'search'],
        // The VPC's CIDR only; the ports are the groups' own (8080), which the functions read.
        vpcCidrs: ['10.0.0.0/16'],
        allowedCidrs: [],
        maxLeaseTtlSeconds: 3600,
        admission: { vpcId: `<${ids.vpc}>`, securityGroups: [`<${ids.agentSg}.GroupId>`] },
        targetQuota: 1000,
        safetyValveShare: 0.5,
        reconcileRepeatSeconds: 0,
        catalog: { tableName: `<${ids.registryTable}>`, headerName: 'X-Agent-Capability', pathPrefix: 'agents' },
        // The ELB call budget's bucket, shared by every container: in the catalog's table, not named twice.
        sharedElbBudget: {},
      });
      expect(parseRuntimeSettings(text).sharedElbBudget).toEqual({ tableName: `<${ids.registryTable}>`, fallbackDivisor: 4 });
      expect(parseRuntimeSettings(text).discover).toEqual({ loadBalancerArn: `<${ids.alb}>`, capabilities: ['vision', 'speech', 'search'] });
    }
  });

  it('deploys and invokes the functions only after the listener rules they discover their target groups through', () => {
    const rules = Object.keys(template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule'));
    expect(rules.length).toBe(7);
    const triggers = [
      // The registry's functions: the catalog's is what the catalog rule forwards to, so it comes before the rules.
      ...Object.entries(template.findResources('AWS::Lambda::Function')).filter(([id]) => id.startsWith('Registry')).map(([, r]) => r),
      ...Object.values(template.findResources('AWS::Lambda::EventSourceMapping')),
      ...Object.values(template.findResources('AWS::Events::Rule')),
    ];
    // Sync, catalog stream and reconcile, both stream mappings, the schedule.
    expect(triggers).toHaveLength(6);
    for (const trigger of triggers) for (const rule of rules) expect([trigger.DependsOn].flat()).toContain(rule);
    for (const role of ['Sync', 'CatalogStream', 'Reconcile']) {
      expect(policyStatements(role)).toContainEqual({
        Sid: 'FindCapabilityTargetGroups',
        Effect: 'Allow',
        Action: ['elasticloadbalancing:DescribeTags', 'elasticloadbalancing:DescribeTargetGroups'],
        Resource: '*',
      });
    }
  });

  it('limits Register/DeregisterTargets of both Lambdas to this stack\'s target groups', () => {
    // cdk.json's feature flags (@aws-cdk/aws-iam:minimizePolicies) sort actions and resources.
    const tgRefs = [{ Ref: ids.search }, { Ref: ids.speech }, { Ref: ids.vision }];
    for (const role of ['Sync', 'Reconcile']) {
      expect(policyStatements(role)).toContainEqual({
        Sid: 'RegisterInCapabilityTargetGroups',
        Effect: 'Allow',
        Action: ['elasticloadbalancing:DeregisterTargets', 'elasticloadbalancing:RegisterTargets'],
        Resource: tgRefs,
      });
    }
    const everyAction = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(everyAction).not.toMatch(/elasticloadbalancing:\*|dynamodb:\*|"\*:\*"/);
  });

  it('lets only reconcile describe target health (a "*"-only action), read the table, delete items and update them (rotation) — never put them', () => {
    const reconcile = policyStatements('Reconcile');
    expect(reconcile).toContainEqual({ Sid: 'ReadTargetHealth', Effect: 'Allow', Action: 'elasticloadbalancing:DescribeTargetHealth', Resource: '*' });
    // On the lease table; the registry state table is the registry's own (below).
    const onLeases = (s: Record<string, any>) => !JSON.stringify(s.Resource).includes(ids.registryTable);
    const reconcileActions = reconcile.filter(onLeases).flatMap((s) => [s.Action].flat());
    expect(reconcileActions).toEqual(expect.arrayContaining(['dynamodb:Scan', 'dynamodb:BatchGetItem', 'dynamodb:DeleteItem']));
    expect(reconcileActions).not.toEqual(expect.arrayContaining(['dynamodb:PutItem']));
    expect(reconcileActions).not.toEqual(expect.arrayContaining(['dynamodb:BatchWriteItem']));

    const syncActions = policyStatements('Sync').filter(onLeases).flatMap((s) => [s.Action].flat());
    expect(syncActions).toEqual(expect.arrayContaining(['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:DescribeStream']));
    // Stream reads, plus BatchGetItem to confirm every change against the leases as they are now,
    // and UpdateItem for the rotation feedback.
    expect(syncActions.filter((a: string) => a.startsWith('dynamodb:') && !['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:DescribeStream', 'dynamodb:ListStreams'].includes(a))).toEqual([
      'dynamodb:BatchGetItem',
      'dynamodb:UpdateItem',
    ]);
    for (const role of ['Sync', 'Reconcile']) {
      template.hasResourceProperties('AWS::IAM::Policy', {
        Roles: [{ Ref: logicalId('AWS::IAM::Role', `${role}Role`) }],
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: Match.arrayWith(['dynamodb:UpdateItem']), Resource: { 'Fn::GetAtt': [ids.table, 'Arn'] } })]) },
      });
    }
    expect(syncActions).not.toContain('elasticloadbalancing:DescribeTargetHealth');
    // The catalog's document and member index: items of the registry state table, no scan, no stream.
    for (const role of ['Sync', 'Reconcile']) {
      expect(policyStatements(role)).toContainEqual({
        Effect: 'Allow',
        Action: ['dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
        Resource: { 'Fn::GetAtt': [ids.registryTable, 'Arn'] },
      });
    }
  });

  it('uses its own Lambda roles with log writes to their own log groups, no AWS managed policies', () => {
    for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
      expect((role.Properties as Record<string, unknown>).ManagedPolicyArns).toBeUndefined();
    }
    expect(policyStatements('Sync')[0]).toEqual({
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: { 'Fn::GetAtt': [logicalId('AWS::Logs::LogGroup', 'SyncLogs'), 'Arn'] },
    });
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('gives agents a managed policy with the four lease item actions, writes limited to the agent attributes', () => {
    template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'ReadAndReleaseLeases',
            Effect: 'Allow',
            Action: ['dynamodb:DeleteItem', 'dynamodb:GetItem'],
            Resource: { 'Fn::GetAtt': [ids.table, 'Arn'] },
          },
          {
            Sid: 'WriteAgentAttributesOnly',
            Effect: 'Allow',
            Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
            Resource: { 'Fn::GetAtt': [ids.table, 'Arn'] },
            Condition: {
              'ForAllValues:StringEquals': {
                'dynamodb:Attributes': ['target', 'address', 'port', 'capabilities', 'expiresAt', 'leaseToken', 'agentId', 'status', 'renewedAt', 'registeredAt', 'availabilityZone', 'metadata'],
              },
            },
          },
        ],
      },
    });
  });

  test.each([
    ['SyncFailuresAlarm', { Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', ComparisonOperator: 'GreaterThanThreshold', Threshold: 0, Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['__queue', 'QueueName'] } }] }],
    ['SyncIteratorAgeAlarm', { Namespace: 'AWS/Lambda', MetricName: 'IteratorAge', Statistic: 'Maximum', ComparisonOperator: 'GreaterThanThreshold', Threshold: 60000, Dimensions: [{ Name: 'FunctionName', Value: { Ref: '__sync' } }] }],
    ['SyncErrorsAlarm', { Namespace: 'AWS/Lambda', MetricName: 'Errors', Statistic: 'Sum', ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: 1, Dimensions: [{ Name: 'FunctionName', Value: { Ref: '__sync' } }] }],
    ['ReconcileErrorsAlarm', { Namespace: 'AWS/Lambda', MetricName: 'Errors', Statistic: 'Sum', ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: 1, Dimensions: [{ Name: 'FunctionName', Value: { Ref: '__reconcile' } }] }],
    ['SafetyValveAlarm', { Namespace: METRICS_NAMESPACE, MetricName: RECONCILE_METRICS.safetyValveTripped, Statistic: 'Sum', ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: 1, Dimensions: [{ Name: 'service', Value: RECONCILE_SERVICE_NAME }] }],
    ['TargetQuotaAlarm', { Namespace: METRICS_NAMESPACE, MetricName: RECONCILE_METRICS.registeredTargets, Statistic: 'Maximum', ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: 800, Dimensions: [{ Name: 'service', Value: RECONCILE_SERVICE_NAME }] }],
  ])('alarms: %s', (idPart, expected) => {
    const withIds = JSON.parse(JSON.stringify(expected).replace(/"__(\w+)"/g, (_, key: string) => JSON.stringify(ids[key])));
    expect(resource(logicalId('AWS::CloudWatch::Alarm', idPart)).Properties).toMatchObject({ ...withIds, EvaluationPeriods: 1, TreatMissingData: 'notBreaching' });
  });

  it('has a dashboard with per-capability healthy/unhealthy hosts, registrations, rejections and sync lag', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const body = renderJoin(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0].Properties.DashboardBody, (intrinsic) =>
      intrinsic['Fn::Select'] ? '<selected>' : undefined,
    );
    const metrics = (JSON.parse(body) as { widgets: { properties: { title?: string; metrics?: unknown[][] } }[] }).widgets.flatMap((w) =>
      (w.properties.metrics ?? []).map((m) => ({ title: w.properties.title, metric: m.filter((x) => typeof x === 'string').join(' ') })),
    );
    for (const name of ['vision', 'speech', 'search']) {
      const own = metrics.filter((m) => m.title === `Targets: ${name}`).map((m) => m.metric);
      expect(own).toEqual([
        expect.stringMatching(new RegExp(`^AWS/ApplicationELB HealthyHostCount LoadBalancer <.+> TargetGroup <${ids[name]}\\.TargetGroupFullName>$`)),
        expect.stringMatching(new RegExp(`^AWS/ApplicationELB UnHealthyHostCount LoadBalancer <.+> TargetGroup <${ids[name]}\\.TargetGroupFullName>$`)),
      ]);
    }
    for (const metric of [SYNC_METRICS.registrations, SYNC_METRICS.deregistrations, SYNC_METRICS.rejectedLeases, SYNC_METRICS.syncLagMs]) {
      expect(metrics.map((m) => m.metric)).toContain(`${METRICS_NAMESPACE} ${metric} service ${SYNC_SERVICE_NAME}`);
    }
    expect(metrics.map((m) => m.metric)).toContain(`${METRICS_NAMESPACE} ${RECONCILE_METRICS.variantsHeldOut} service ${RECONCILE_SERVICE_NAME}`);
  });

  it('exports the outputs tools and agents need', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs).toMatchObject({
      TableName: { Value: { Ref: ids.table } },
      TableStreamArn: { Value: { 'Fn::GetAtt': [ids.table, 'StreamArn'] } },
      ListenerArn: { Value: { Ref: logicalId('AWS::ElasticLoadBalancingV2::Listener', 'LoadBalancerHttp') } },
      AgentPolicyArn: { Value: { Ref: logicalId('AWS::IAM::ManagedPolicy', 'AgentPolicy') } },
      LeaseTtlSeconds: { Value: '30' },
      TargetGroupArnVision: { Value: { Ref: ids.vision } },
      TargetGroupArnSpeech: { Value: { Ref: ids.speech } },
      TargetGroupArnSearch: { Value: { Ref: ids.search } },
    });
    template.hasOutput('LoadBalancerDnsName', { Value: { 'Fn::GetAtt': [logicalId('AWS::ElasticLoadBalancingV2::LoadBalancer', 'LoadBalancer'), 'DNSName'] } });
  });
});

/** A variant of the stack in a fresh app (bundling skipped). */
function variant(props: Partial<AgentLbStackProps>, capabilities: AgentLbStackProps['capabilities'] = [{ name: 'vision' }]) {
  const s = new AgentLbStack(appWithoutBundling(), 'Variant', { capabilities, ...props });
  return { stack: s, template: Template.fromStack(s) };
}

describe('AgentLbStack options', () => {
  it('serves HTTPS with the given certificate and redirects port 80 to it', () => {
    const cert = 'arn:aws:acm:eu-west-1:123456789012:certificate/abc';
    const { template: t } = variant({ certificateArn: cert });
    t.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 2);
    const https = Object.entries(t.findResources('AWS::ElasticLoadBalancingV2::Listener', { Properties: { Port: 443 } }));
    expect(https).toHaveLength(1);
    expect(https[0][1].Properties).toMatchObject({ Protocol: 'HTTPS', Certificates: [{ CertificateArn: cert }], SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06' });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
      DefaultActions: [{ Type: 'redirect', RedirectConfig: { Port: '443', Protocol: 'HTTPS', StatusCode: 'HTTP_301' } }],
    });
    t.allResourcesProperties('AWS::ElasticLoadBalancingV2::ListenerRule', { ListenerArn: { Ref: https[0][0] } });
    t.hasOutput('ListenerArn', { Value: { Ref: https[0][0] } });
    const ingress = Object.values(t.findResources('AWS::EC2::SecurityGroup'))[0].Properties.SecurityGroupIngress as { FromPort: number }[];
    expect(ingress.map((r) => r.FromPort)).toEqual([80, 443]);
  });

  it('can face the internet from the public subnets', () => {
    const { template: t } = variant({ internetFacing: true, ingressCidrs: ['203.0.113.0/24'] });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      Subnets: [{ Ref: Match.stringLikeRegexp('^VpcPublicSubnet1') }, { Ref: Match.stringLikeRegexp('^VpcPublicSubnet2') }],
    });
    t.hasResourceProperties('AWS::EC2::SecurityGroup', { SecurityGroupIngress: [Match.objectLike({ CidrIp: '203.0.113.0/24', FromPort: 80 })] });
  });

  it('allowedCidrs: ranges outside the VPC named explicitly, for lease addresses and with egress on the capabilities\' ports; clients still only from the VPC', () => {
    const { stack: s, template: t } = variant({ allowedCidrs: ['192.168.10.0/24'] });
    const vpcCidr = { 'Fn::GetAtt': [s.getLogicalId(s.vpc.node.defaultChild as never), 'CidrBlock'] };
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'agent-lb load balancer: clients in, agents out',
      SecurityGroupIngress: [Match.objectLike({ CidrIp: vpcCidr, FromPort: 80 })],
      SecurityGroupEgress: [{ CidrIp: '192.168.10.0/24', IpProtocol: 'tcp', FromPort: 80, ToPort: 80, Description: 'agent-lb: load balancer to agents in 192.168.10.0/24 on 80' }],
    });
    const config = JSON.parse(renderJoin(s.resolve(s.registrySync.runtimeConfigJson))) as { allowedCidrs: string[]; vpcCidrs: string[] };
    expect(config.allowedCidrs).toEqual(['192.168.10.0/24']);
    expect(config.vpcCidrs).toEqual([`<${s.getLogicalId(s.vpc.node.defaultChild as never)}.CidrBlock>`]);
  });

  it('with zero NAT gateways makes the private subnets isolated and still places an internal ALB', () => {
    const { template: t } = variant({ natGateways: 0 });
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internal',
      Subnets: [{ Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') }, { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet2') }],
    });
  });

  it('writes access logs to a named bucket when the region is known', () => {
    const { template: t } = variant({ accessLogsBucketName: 'my-logs', accessLogsPrefix: 'alb', env: { account: '123456789012', region: 'eu-west-1' } });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: 'my-logs' },
        { Key: 'access_logs.s3.prefix', Value: 'alb' },
      ]),
    });
  });

  it('derives capability output ids from names and sizes reconcile for its repeat option', () => {
    const { template: t } = variant(
      { leaseTtl: Duration.seconds(90), registrySync: { reconcileRepeat: Duration.seconds(15), reconcileInterval: Duration.minutes(2) } },
      [{ name: 'speech-to-text' }, { name: 'ocr_v2', targetType: 'instance' }],
    );
    t.hasOutput('TargetGroupArnSpeechToText', {});
    t.hasOutput('TargetGroupArnOcrV2', {});
    t.hasOutput('LeaseTtlSeconds', { Value: '90' });
    t.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: { POWERTOOLS_SERVICE_NAME: RECONCILE_SERVICE_NAME } }, Timeout: 120 });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(2 minutes)' });
  });

  test.each<[string, Partial<AgentLbStackProps>, AgentLbStackProps['capabilities'] | undefined, string]>([
    ['lease TTL below 5 s', { leaseTtl: Duration.seconds(2) }, undefined, 'leaseTtl 2 seconds is out of range 5–3600 seconds'],
    ['7 AZs', { maxAzs: 7 }, undefined, 'maxAzs 7 is out of range 2–6'],
    ['more NAT gateways than AZs', { natGateways: 3 }, undefined, 'natGateways 3 is out of range 0–2 (maxAzs)'],
    [
      'a VPC lookup without account and region',
      { vpcId: 'vpc-0123' },
      undefined,
      'vpcId "vpc-0123" is looked up at synth time, which needs the stack\'s account and region: set env (e.g. from CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION)',
    ],
    ['access logs without a region', { accessLogsBucketName: 'logs' }, undefined, 'accessLogsBucket needs the stack\'s region (env.region): the log-delivery principal differs per region'],
    ['names with the same output id', {}, [{ name: 'a-b' }, { name: 'a_b' }], 'Capabilities "a-b" and "a_b" both map to output id "TargetGroupArnAB"; rename one of them'],
  ])('rejects %s', (_, props, capabilities, message) => {
    expect(() => variant(props, capabilities)).toThrow(validationError(message));
  });
});

/**
 * Security of what agent-lb deploys, read from the synthesized templates of several variants
 * (the cdk.json stack, a stack with every option, one logging to a bucket of another stack):
 * least privilege over *every* identity policy (not only the statements we wrote), written
 * reasons for every accepted cdk-nag finding, the load balancer's exposure and header hygiene,
 * encryption at rest, and server-side refusal of addresses a lease must never point the load
 * balancer at, in both handlers. Complements agent-lb-stack.test.ts, lease-table.test.ts and
 * compliance.test.ts (which runs cdk-nag and cfn-lint); what those assert is not repeated here.
 */
import { DeleteItemCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, test } from 'vitest';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { AgentLbStack, AgentLbStackProps, addAgentLbStack } from '../../lib/constructs';
import { addressPolicyFor, parseRuntimeConfig } from '../../lib/core/runtime-config';
import { ADDRESS_EDGES } from '../fuzz/lease-cases';
import { captureMetrics, insert, Item, leaseItem, silentLogger, streamEvent, T0, testConfig, TG } from '../support/lease-fixtures';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { appWithoutBundling, cdkJsonContext, validationError } from './fixtures';
import { RECONCILE_METRICS, SYNC_METRICS } from '../../lib/core/metric-names';
import { AGENT_ATTRIBUTES } from '../../lib/core/lease-schema';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const CERT = `arn:aws:acm:${REGION}:${ACCOUNT}:certificate/0e6ad1f3-8d6b-4f8e-9a8e-123456789abc`;

type Json = Record<string, any>;

interface Variant {
  readonly name: string;
  readonly stack: AgentLbStack;
  readonly template: Template;
  /** Templates of other stacks of the same app (the access-logs bucket's). */
  readonly others: Template[];
}

function envApp(): App {
  return appWithoutBundling({ [`availability-zones:account=${ACCOUNT}:region=${REGION}`]: [`${REGION}a`, `${REGION}b`, `${REGION}c`] });
}

function variant(name: string, props: Partial<AgentLbStackProps>, app: App = appWithoutBundling(), others: Stack[] = []): Variant {
  const stack = new AgentLbStack(app, name, { capabilities: [{ name: 'vision' }], ...props });
  return { name, stack, template: Template.fromStack(stack), others: others.map((s) => Template.fromStack(s)) };
}

const variants: Record<string, Variant> = {};

beforeAll(() => {
  const cdkJson = addAgentLbStack(appWithoutBundling(cdkJsonContext()), {});
  variants.cdkJson = { name: 'cdk.json', stack: cdkJson, template: Template.fromStack(cdkJson), others: [] };
  variants.full = variant(
    'Full',
    {
      env: { account: ACCOUNT, region: REGION },
      maxAzs: 3,
      internetFacing: true,
      certificateArn: CERT,
      accessLogsBucketName: 'agent-lb-access-logs',
      allowedCidrs: ['10.0.0.0/8'],
      ingressCidrs: ['203.0.113.0/24'],
      capabilities: [
        { name: 'vision' },
        { name: 'gpu-batch', targetType: 'instance', protocol: elbv2.ApplicationProtocol.HTTPS, port: 8443 },
        { name: 'speech_to_text' },
      ],
    },
    envApp(),
  );
  const app = envApp();
  const logsStack = new Stack(app, 'Logs', { env: { account: ACCOUNT, region: REGION } });
  const bucket = new s3.Bucket(logsStack, 'AccessLogs', { enforceSSL: true, encryption: s3.BucketEncryption.S3_MANAGED });
  variants.bucket = variant('WithBucket', { env: { account: ACCOUNT, region: REGION }, accessLogsBucket: bucket, accessLogsPrefix: 'alb' }, app, [logsStack]);
});

// ------------------------------------------------------------------ IAM

interface OwnedStatement {
  /** Logical id of the role or managed policy the statement is attached to. */
  readonly owners: string[];
  readonly statement: Json;
}

/** Every identity-policy statement of a template, with the principals it applies to. */
function identityStatements(template: Template): OwnedStatement[] {
  const out: OwnedStatement[] = [];
  const refs = (xs: unknown) => ((xs as { Ref: string }[] | undefined) ?? []).map((x) => x.Ref);
  for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
    const owners = [...refs(policy.Properties.Roles), ...refs(policy.Properties.Users), ...refs(policy.Properties.Groups)];
    for (const statement of policy.Properties.PolicyDocument.Statement) out.push({ owners, statement });
  }
  for (const [id, policy] of Object.entries(template.findResources('AWS::IAM::ManagedPolicy'))) {
    for (const statement of policy.Properties.PolicyDocument.Statement) out.push({ owners: [id], statement });
  }
  for (const [id, role] of Object.entries(template.findResources('AWS::IAM::Role'))) {
    for (const inline of role.Properties.Policies ?? []) for (const statement of inline.PolicyDocument.Statement) out.push({ owners: [id], statement });
  }
  return out;
}

const list = (x: unknown): unknown[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);

/** Whether an Allow statement grants `action`, wildcards and NotAction included. */
function grants(statement: Json, action: string): boolean {
  if (statement.Effect !== 'Allow') return false;
  const matches = (pattern: unknown) =>
    typeof pattern === 'string' && new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i').test(action);
  if (statement.NotAction !== undefined) return !list(statement.NotAction).some(matches);
  return list(statement.Action).some(matches);
}

function roleOf(template: Template, idPart: string): string {
  const ids = Object.keys(template.findResources('AWS::IAM::Role')).filter((id) => id.includes(idPart));
  expect(ids, `one role matching ${idPart}`).toHaveLength(1);
  return ids[0];
}

/** Resource-level permissions do not exist for these: "*" is their only valid resource. */
const STAR_ONLY_ACTIONS = new Set([
  'dynamodb:ListStreams',
  'elasticloadbalancing:DescribeTargetHealth',
  'elasticloadbalancing:DescribeTargetGroups',
  'elasticloadbalancing:DescribeTags',
  'elasticloadbalancing:DescribeLoadBalancers',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeInstances',
]);

describe.each(['cdkJson', 'full', 'bucket'])('IAM of the %s variant', (key) => {
  it('only the sync and reconcile roles may Register/DeregisterTargets, on exactly this stack\'s target groups and nothing else', () => {
    const { template } = variants[key];
    // The capability groups; the catalog's Lambda target group takes no registration from the registry.
    const groups = Object.entries(template.findResources('AWS::ElasticLoadBalancingV2::TargetGroup'))
      .filter(([, g]) => g.Properties.TargetType !== 'lambda')
      .map(([id]) => id)
      .sort();
    expect(groups.length).toBeGreaterThan(0);
    for (const action of ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets']) {
      const granting = identityStatements(template).filter((s) => grants(s.statement, action));
      expect(granting.flatMap((s) => s.owners).sort(), action).toEqual([roleOf(template, 'SyncRole'), roleOf(template, 'ReconcileRole')].sort());
      for (const { statement } of granting) {
        const resources = list(statement.Resource);
        expect(resources, `${action} must name target groups, never "*"`).not.toContain('*');
        expect(resources.map((r) => (r as { Ref?: string }).Ref).sort()).toEqual(groups);
        expect(statement.Condition).toBeUndefined();
      }
    }
  });

  it('only the roles that build the catalog document (sync for its drains, catalog stream, reconcile) may DescribeLoadBalancers: the DNS names the catalog shows', () => {
    const { template } = variants[key];
    const owners = identityStatements(template).filter((s) => grants(s.statement, 'elasticloadbalancing:DescribeLoadBalancers')).flatMap((s) => s.owners);
    expect([...new Set(owners)].sort()).toEqual([roleOf(template, 'SyncRole'), roleOf(template, 'CatalogStreamRole'), roleOf(template, 'ReconcileRole')].sort());
  });

  it('uses no wildcard action, no NotAction/NotResource, and "*" resources only for actions that have no resource-level permissions', () => {
    for (const { owners, statement } of identityStatements(variants[key].template)) {
      const where = `${owners.join(',')}: ${JSON.stringify(statement)}`;
      expect(statement.NotAction, where).toBeUndefined();
      expect(statement.NotResource, where).toBeUndefined();
      expect(statement.Effect, where).toBe('Allow');
      for (const action of list(statement.Action)) expect(action, where).not.toMatch(/\*/);
      if (list(statement.Resource).includes('*')) {
        for (const action of list(statement.Action)) expect(STAR_ONLY_ACTIONS.has(action as string), where).toBe(true);
      }
    }
  });

  it('agents get item reads and writes of their own attributes on the lease table only; nobody else may put a lease, only the registry updates one (rotation)', () => {
    const { template } = variants[key];
    const table = Object.keys(template.findResources('AWS::DynamoDB::Table')).filter((id) => !id.includes('RegistryState'));
    expect(table).toHaveLength(1);
    const agentPolicies = Object.entries(template.findResources('AWS::IAM::ManagedPolicy')).filter(([id]) => id.includes('AgentPolicy'));
    expect(agentPolicies).toHaveLength(1);
    // Sorted: cdk.json's feature flags (@aws-cdk/aws-iam:minimizePolicies) sort actions, other apps may not.
    const statements = agentPolicies[0][1].Properties.PolicyDocument.Statement.map((st: { Action: string[] }) => ({ ...st, Action: [...st.Action].sort() }));
    expect(statements).toEqual([
      { Sid: 'ReadAndReleaseLeases', Effect: 'Allow', Action: ['dynamodb:DeleteItem', 'dynamodb:GetItem'], Resource: { 'Fn::GetAtt': [table[0], 'Arn'] } },
      {
        Sid: 'WriteAgentAttributesOnly',
        Effect: 'Allow',
        Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
        Resource: { 'Fn::GetAtt': [table[0], 'Arn'] },
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...AGENT_ATTRIBUTES] } },
      },
    ]);
    expect(AGENT_ATTRIBUTES).not.toEqual(expect.arrayContaining(['rotation']));
    expect(AGENT_ATTRIBUTES).not.toEqual(expect.arrayContaining(['rejection']));
    const onLeases = (s: { statement: Json }) => !JSON.stringify(s.statement.Resource).includes('RegistryState');
    for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem', 'dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate']) {
      const writers = identityStatements(template).filter((s) => grants(s.statement, action) && onLeases(s)).flatMap((s) => s.owners);
      // UpdateItem also for the registry's two roles: they write `rotation` (conditional on the lease token).
      const expected = { 'dynamodb:PutItem': [agentPolicies[0][0]], 'dynamodb:UpdateItem': [agentPolicies[0][0], roleOf(template, 'SyncRole'), roleOf(template, 'ReconcileRole')] }[action] ?? [];
      expect(writers.sort(), action).toEqual(expected.sort());
    }
  });

  it('the registry state table: only the sync, catalog stream and reconcile roles write it (sync and reconcile update the ELB budget item, no other); the catalog function may read the catalog item and nothing else; agents get nothing', () => {
    const { template } = variants[key];
    const [registry] = Object.keys(template.findResources('AWS::DynamoDB::Table')).filter((id) => id.includes('RegistryState'));
    const onRegistry = identityStatements(template).filter((s) => JSON.stringify(s.statement.Resource).includes(registry));
    for (const action of ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:UpdateItem', 'dynamodb:BatchWriteItem', 'dynamodb:Query', 'dynamodb:Scan']) {
      const expected = ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query'].includes(action)
        ? [roleOf(template, 'SyncRole'), roleOf(template, 'CatalogStreamRole'), roleOf(template, 'ReconcileRole')]
        : action === 'dynamodb:UpdateItem'
          ? [roleOf(template, 'SyncRole'), roleOf(template, 'ReconcileRole')]
          : [];
      expect(onRegistry.filter((s) => grants(s.statement, action)).flatMap((s) => s.owners).sort(), action).toEqual(expected.sort());
    }
    // UpdateItem on the ELB budget's item alone: its partition holds nothing else.
    for (const s of onRegistry.filter((x) => grants(x.statement, 'dynamodb:UpdateItem'))) {
      expect(s.statement.Condition).toEqual({ 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['elb-budget'] } });
    }
    const catalog = onRegistry.filter((s) => s.owners.includes(roleOf(template, 'CatalogRole')));
    expect(catalog.map((s) => s.statement)).toEqual([
      { Effect: 'Allow', Action: 'dynamodb:GetItem', Resource: { 'Fn::GetAtt': [registry, 'Arn'] }, Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['catalog'] } } },
    ]);
    // The catalog role touches nothing else: no lease table, no ELB.
    const catalogActions = identityStatements(template).filter((s) => s.owners.includes(roleOf(template, 'CatalogRole'))).flatMap((s) => list(s.statement.Action));
    expect(catalogActions.sort()).toEqual(['dynamodb:GetItem', 'logs:CreateLogStream', 'logs:PutLogEvents']);
    // The catalog stream role reads the stream and (consistently) the changed leases; it writes no
    // lease and calls no ELB action but the reads a names-only configuration needs at cold start.
    const streamRole = roleOf(template, 'CatalogStreamRole');
    const streamActions = new Set(identityStatements(template).filter((s) => s.owners.includes(streamRole)).flatMap((s) => list(s.statement.Action)));
    for (const a of streamActions) expect(a, String(a)).toMatch(/^(dynamodb:(BatchGetItem|GetItem|PutItem|DeleteItem|Query|ConditionCheckItem|DescribeStream|GetRecords|GetShardIterator|ListStreams)|logs:(CreateLogStream|PutLogEvents)|elasticloadbalancing:Describe\w+)$/);
    const onLeaseTable = identityStatements(template).filter((s) => s.owners.includes(streamRole) && !JSON.stringify(s.statement.Resource).includes('RegistryState') && JSON.stringify(s.statement.Resource).includes('Lease'));
    expect(onLeaseTable.flatMap((s) => list(s.statement.Action)).filter((a) => !/Stream|GetRecords|GetShardIterator/.test(String(a)))).toEqual(['dynamodb:BatchGetItem']);
  });
});

// ------------------------------------------------------------------ cdk-nag acknowledgements

/** Every acknowledged rule in a stack: construct path, rule id, reason. */
function acknowledgements(stack: Stack): { path: string; id: string; reason: string }[] {
  return stack.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({ path: c.node.path, id, reason }))),
  );
}

describe('accepted cdk-nag findings', () => {
  it('each carries a written reason of its own, and the list is exactly the reviewed one', () => {
    const acks = acknowledgements(variants.cdkJson.stack);
    for (const a of acks) {
      expect(a.reason.length, `${a.path} ${a.id}`).toBeGreaterThanOrEqual(40);
      expect(a.reason, `${a.path} ${a.id}`).not.toMatch(/\b(todo|tbd|fixme|xxx)\b/i);
    }
    // A new suppression must be added here too: that is the review.
    expect(acks.filter((a) => a.id.startsWith('Annotation::AwsSolutions')).map((a) => `${a.path} ${a.id.replace('Annotation::', '')}`).sort()).toEqual(
      [
        'AgentLb/LoadBalancer AwsSolutions-ELB2',
        'AgentLb/LoadBalancerSecurityGroup AwsSolutions-EC23',
        'AgentLb/Default/Catalog/Function AwsSolutions-L1',
        'AgentLb/Default/Registry/CatalogStream AwsSolutions-L1',
        'AgentLb/Default/Registry/CatalogStreamRole AwsSolutions-IAM5[Resource::*]',
        'AgentLb/Default/Registry/Reconcile AwsSolutions-L1',
        'AgentLb/Default/Registry/ReconcileRole AwsSolutions-IAM5[Resource::*]',
        'AgentLb/Default/Registry/Sync AwsSolutions-L1',
        'AgentLb/Default/Registry/SyncFailures AwsSolutions-SQS3',
        'AgentLb/Default/Registry/SyncRole AwsSolutions-IAM5[Resource::*]',
        'AgentLb/Vpc AwsSolutions-VPC7',
      ].sort(),
    );
    // Reasons are written per finding, not pasted; only the runtime pin (L1) is one decision for every function.
    const others = acks.filter((a) => !a.id.endsWith('AwsSolutions-L1'));
    expect(new Set(others.map((a) => a.reason)).size).toBe(others.length);
  });

  it('findings the configuration fixes are not acknowledged: no ELB2 with access logs, no EC23 with literal ingress CIDRs', () => {
    const ids = acknowledgements(variants.full.stack).map((a) => a.id);
    expect(ids).not.toContain('Annotation::AwsSolutions-ELB2');
    expect(ids).not.toContain('Annotation::AwsSolutions-EC23');
  });

  it('no resource carries a cdk-nag suppression without a reason', () => {
    for (const v of Object.values(variants)) {
      for (const [id, resource] of Object.entries(v.template.toJSON().Resources as Record<string, Json>)) {
        for (const rule of resource.Metadata?.cdk_nag?.rules_to_suppress ?? []) {
          expect(typeof rule.reason === 'string' && rule.reason.length >= 20, `${v.name}/${id} ${rule.id}`).toBe(true);
        }
      }
    }
  });
});

// ------------------------------------------------------------------ load balancer

describe('the load balancer', () => {
  test.each([
    ['cdkJson', 'internal'],
    ['full', 'internet-facing'],
    ['bucket', 'internal'],
  ])('%s: scheme %s, invalid header fields dropped', (key, scheme) => {
    variants[key].template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: scheme,
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' }]),
    });
  });

  it('writes no access logs unless asked to', () => {
    const attributes = Object.values(variants.cdkJson.template.findResources('AWS::ElasticLoadBalancingV2::LoadBalancer'))[0].Properties.LoadBalancerAttributes as { Key: string; Value: string }[];
    expect(attributes.filter((a) => a.Key.startsWith('access_logs.'))).toEqual([]);
  });

  it('with a bucket, writes access logs under the prefix and lets ELB log delivery (only) put objects there', () => {
    const { template, others } = variants.bucket;
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.prefix', Value: 'alb' },
      ]),
    });
    const statements = Object.values(others[0].findResources('AWS::S3::BucketPolicy')).flatMap((p) => p.Properties.PolicyDocument.Statement as Json[]);
    const puts = statements.filter((s) => s.Effect === 'Allow' && list(s.Action).some((a) => String(a).startsWith('s3:Put')));
    expect(puts.length).toBeGreaterThan(0);
    for (const s of puts) {
      // Writes only under <prefix>/AWSLogs/<this account>/, and only by ELB's log-delivery principals of the region.
      expect(JSON.stringify(s.Resource)).toContain(`/alb/AWSLogs/${ACCOUNT}/*`);
      expect(JSON.stringify(s.Principal)).toMatch(/^\{"Service":"delivery\.logs\.amazonaws\.com"\}$|:iam::156460612806:root/);
    }
  });

  it('with a certificate, no plain-HTTP listener forwards anything: port 80 only redirects to HTTPS', () => {
    const listeners = Object.entries(variants.full.template.findResources('AWS::ElasticLoadBalancingV2::Listener'));
    const http = listeners.filter(([, l]) => l.Properties.Protocol === 'HTTP');
    expect(http).toHaveLength(1);
    expect(http[0][1].Properties.DefaultActions).toEqual([{ Type: 'redirect', RedirectConfig: expect.objectContaining({ Protocol: 'HTTPS', Port: '443' }) }]);
    const rules = Object.values(variants.full.template.findResources('AWS::ElasticLoadBalancingV2::ListenerRule'));
    expect(rules.filter((r) => JSON.stringify(r.Properties.ListenerArn) === JSON.stringify({ Ref: http[0][0] }))).toEqual([]);
  });
});

// ------------------------------------------------------------------ encryption at rest

describe.each(['cdkJson', 'full', 'bucket'])('encryption at rest in the %s variant', (key) => {
  it('every table is encrypted (KMS) and every queue too (SQS-managed SSE or KMS)', () => {
    const { template } = variants[key];
    for (const table of Object.values(template.findResources('AWS::DynamoDB::Table'))) expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true });
    const queues = Object.values(template.findResources('AWS::SQS::Queue'));
    expect(queues.length).toBeGreaterThan(0);
    for (const q of queues) expect(q.Properties.SqsManagedSseEnabled === true || q.Properties.KmsMasterKeyId !== undefined).toBe(true);
  });
});

// ------------------------------------------------------------------ construct misconfiguration

describe('misconfiguration CloudFormation would only refuse at deploy time fails at synth, naming the value and what is allowed', () => {
  const env = { account: ACCOUNT, region: REGION };
  test.each<[string, Partial<AgentLbStackProps>, string]>([
    ['allowedCidrs that is not a CIDR', { allowedCidrs: ['banana'] }, 'allowedCidrs: "banana" is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
    ['allowedCidrs with a /33', { allowedCidrs: ['10.0.0.0/33'] }, 'allowedCidrs: "10.0.0.0/33" is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
    ['ingressCidrs with a /40', { ingressCidrs: ['1.2.3.4/40'] }, 'ingressCidrs: "1.2.3.4/40" is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
    ['an IPv6 ingress CIDR with a /200', { ingressCidrs: ['fd00::/200'] }, 'ingressCidrs: "fd00::/200" is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
    ['a VPC CIDR of /33', { vpcCidr: '10.0.0.0/33' }, 'vpcCidr "10.0.0.0/33" must be an IPv4 CIDR of /16 to /18 (one /24 public and one /20 private subnet in each of 2 AZs)'],
    ['a VPC CIDR too small for its subnets', { vpcCidr: '10.0.0.0/20' }, 'vpcCidr "10.0.0.0/20" must be an IPv4 CIDR of /16 to /18 (one /24 public and one /20 private subnet in each of 2 AZs)'],
    ['an IPv6 VPC CIDR', { vpcCidr: 'fd00::/56' }, 'vpcCidr "fd00::/56" must be an IPv4 CIDR of /16 to /18 (one /24 public and one /20 private subnet in each of 2 AZs)'],
    [
      'a certificate that is not an ARN',
      { certificateArn: 'my-cert' },
      'certificateArn "my-cert" must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>) or an IAM server certificate ARN',
    ],
    [
      'an access-logs bucket name S3 refuses',
      { accessLogsBucketName: 'Agent_Logs', env },
      'accessLogsBucketName "Agent_Logs" must be an S3 bucket name: 3–63 lowercase letters, digits, "." and "-", starting and ending with a letter or digit',
    ],
  ])('rejects %s', (_, props, message) => {
    expect(() => variant('Bad', props)).toThrow(validationError(message));
  });

  it('accepts an IAM server certificate and a /18 VPC for three AZs', () => {
    expect(() => variant('IamCert', { certificateArn: `arn:aws:iam::${ACCOUNT}:server-certificate/agents` })).not.toThrow();
    expect(() => variant('ThreeAz', { vpcCidr: '10.9.0.0/18', maxAzs: 3, env }, envApp())).not.toThrow();
  });

  it('warns when allowedCidrs reach beyond the private ranges, since a lease may then point the load balancer there', () => {
    const open = variant('Open', { allowedCidrs: ['10.0.0.0/8', '0.0.0.0/0'] });
    Annotations.fromStack(open.stack).hasWarning('/Open', Match.stringLikeRegexp('^allowedCidrs 0\\.0\\.0\\.0/0 reach beyond the private ranges'));
    const privateOnly = variant('Private', { allowedCidrs: ['10.20.0.0/16', '172.16.0.0/12', '100.64.0.0/10'], leaseTtl: Duration.seconds(30) });
    Annotations.fromStack(privateOnly.stack).hasNoWarning('*', Match.stringLikeRegexp('allowedCidrs'));
  });
});

// ------------------------------------------------------------------ server-side address enforcement

describe('address ranges are enforced server-side, whoever wrote the lease', () => {
  const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
  const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 1 });
  const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials, maxAttempts: 1 });
  const elbMock = mockClient(ElasticLoadBalancingV2Client);
  const ddbMock = mockClient(DynamoDBClient);
  /** Every address edge case the deployed configuration must refuse (it allows no IPv6 range). */
  const refused = ADDRESS_EDGES.filter((e) => !e.unstorable);
  const rogue = (address: string, port = 8080): Item => leaseItem({ address, port });

  beforeEach(() => {
    elbMock.reset();
    ddbMock.reset();
    elbMock.on(RegisterTargetsCommand).resolves({});
    elbMock.on(DeregisterTargetsCommand).resolves({});
  });

  it('a deployed configuration cannot allow loopback: AGENT_LB_CONFIG has no way to say so', () => {
    const config = parseRuntimeConfig(JSON.stringify({ tableName: 't', capabilities: { vision: { targetGroupArn: TG.vision } }, allowLoopback: true }));
    expect(config.routing.allowLoopback).toBeUndefined();
    expect(addressPolicyFor(config.routing).check('127.0.0.1')).toMatchObject({ ok: false, message: expect.stringMatching(/loopback/) });
  });

  it(`stream sync: none of ${refused.length} edge addresses (public, loopback, link-local, multicast, mapped, zoned, malformed) is registered; the batch succeeds`, async () => {
    const emf = captureMetrics();
    const handler = createSyncHandler({ config: testConfig(), elbClient, logger: silentLogger(), metrics: emf.metrics, now: () => T0 * 1000 });
    const items = refused.map((e, i) => rogue(e.address, 1000 + i));

    const result = await handler(streamEvent(items.map((item) => insert(item))));

    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(refused.length);
  });

  it('reconcile: leases at public or special addresses in the table are never registered, the valid one is', async () => {
    const valid = leaseItem({ address: '10.1.2.3' });
    const bad = ['8.8.8.8', '169.254.169.254', '127.0.0.1', '::ffff:10.0.0.1', '0:0:0:0:0:ffff:a00:1', '224.0.0.1', '100.128.0.1'].map((a) => rogue(a));
    const table = new Map([valid, ...bad].map((item) => [item.target.S!, item]));
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    ddbMock.on(ScanCommand).resolves({ Items: [...table.values()] as never, Count: table.size });
    const fake = new FakeLeaseTable().install(ddbMock);
    for (const [key, item] of table) fake.items.set(key, item);
    const emf = captureMetrics();
    const handler = createReconcileHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: emf.metrics, now: () => T0 * 1000 });

    await handler();

    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(elbMock).toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.1.2.3', Port: 8080 }] });
    expect(emf.last(RECONCILE_METRICS.rejectedLeases)).toBe(bad.length);
  });

  it('reconcile: a public target found registered (by hand, or by an older version) is taken out although a lease names it', async () => {
    const live = [leaseItem({ address: '10.1.0.1' }), leaseItem({ address: '10.1.0.2' })];
    const bad = rogue('8.8.8.8');
    const table = new Map([...live, bad].map((item) => [item.target.S!, item]));
    elbMock.on(DescribeTargetHealthCommand).callsFake((input: { TargetGroupArn: string }) => ({
      TargetHealthDescriptions:
        input.TargetGroupArn === TG.vision
          ? ['10.1.0.1', '10.1.0.2', '8.8.8.8'].map((id) => ({ Target: { Id: id, Port: 8080 }, TargetHealth: { State: 'healthy' } }))
          : [],
    }));
    ddbMock.on(ScanCommand).resolves({ Items: [...table.values()] as never, Count: table.size });
    const fake = new FakeLeaseTable().install(ddbMock);
    for (const [key, item] of table) fake.items.set(key, item);
    ddbMock.on(DeleteItemCommand).resolves({});
    const handler = createReconcileHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => T0 * 1000 });

    await handler();

    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '8.8.8.8', Port: 8080 }] });
  });
});

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, waitUntilStackCreateComplete } from '@aws-sdk/client-cloudformation';
import { AttributeValue, DeleteItemCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAgentLbStack } from '../../lib/constructs';
import { MotoServer, startMotoServer } from '../../lib/local/emulators';
import { cdkJsonContext } from '../cdk/fixtures';
import { insert, leaseItem, modify, privateIp, remove, renewed } from '../support/lease-fixtures';

/**
 * The Lambda artefact users deploy — the esbuild bundle `cdk synth` writes — run as Lambda would
 * run it (a fresh Node process, configuration from the environment, AWS endpoint from
 * AWS_ENDPOINT_URL) against moto's ELBv2. It checks the call pattern the stack promises.
 */
let moto: MotoServer;
let workdir: string;
let bundle: string;
const groups: Record<string, string> = {};

beforeAll(async () => {
  workdir = mkdtempSync(path.join(tmpdir(), 'agent-lb-built-'));
  const app = new App({ outdir: path.join(workdir, 'cdk.out'), context: cdkJsonContext() });
  const stack = addAgentLbStack(app, {});
  const assembly = app.synth();
  const template = assembly.getStackByName(stack.stackName).template as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
  const sync = Object.values(template.Resources).find(
    (r) => r.Type === 'AWS::Lambda::Function' && JSON.stringify(r.Properties.Description ?? '').includes('stream'),
  );
  const key = (sync?.Properties.Code as { S3Key: string } | undefined)?.S3Key;
  if (!key) throw new Error('no stream-sync function with a bundled asset in the synthesized template');
  bundle = path.join(workdir, 'cdk.out', `asset.${key.replace(/\.zip$/, '')}`, 'index.js');

  moto = await startMotoServer();
  // Two bare target groups, and the lease table the handler reads before it deregisters.
  const group = { Type: 'AWS::ElasticLoadBalancingV2::TargetGroup', Properties: { TargetType: 'ip', Protocol: 'HTTP', Port: 8080, VpcId: { Ref: 'Vpc' } } };
  const cfn = new CloudFormationClient(moto.clientConfig);
  const table = {
    Type: 'AWS::DynamoDB::Table',
    Properties: {
      TableName: 'leases',
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }],
    },
  };
  const fixture = { Resources: { Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: '10.0.0.0/16' } }, vision: group, speech: group, table } };
  await cfn.send(new CreateStackCommand({ StackName: 'built-handler', TemplateBody: JSON.stringify(fixture) }));
  await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60, minDelay: 1 }, { StackName: 'built-handler' });
  const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: 'built-handler' }));
  for (const r of StackResources) if (r.LogicalResourceId === 'vision' || r.LogicalResourceId === 'speech') groups[r.LogicalResourceId] = r.PhysicalResourceId!;
}, 120_000);

afterAll(async () => {
  await moto?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

interface Invocation {
  readonly result: { batchItemFailures: { itemIdentifier: string }[] };
  /** The EMF documents the handler printed. */
  readonly metrics: Record<string, unknown>[];
  readonly logs: Record<string, unknown>[];
}

/** One cold invocation of the bundle in its own Node process, as the Lambda runtime would load it. */
function invoke(records: DynamoDBRecord[]): Promise<Invocation> {
  const eventFile = path.join(workdir, `event-${Date.now()}.json`);
  writeFileSync(eventFile, JSON.stringify({ Records: records }));
  const script = `require(${JSON.stringify(bundle)}).handler(JSON.parse(require('fs').readFileSync(${JSON.stringify(eventFile)}, 'utf8')))
    .then((r) => process.stdout.write('RESULT ' + JSON.stringify(r) + '\\n'), (e) => { console.error(e); process.exit(1); });`;
  const config = {
    tableName: 'leases',
    capabilities: {
      vision: { targetGroupArn: groups.vision, targetType: 'ip' },
      speech: { targetGroupArn: groups.speech, targetType: 'ip' },
    },
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], {
      env: {
        PATH: process.env.PATH,
        AGENT_LB_CONFIG: JSON.stringify(config),
        AWS_ENDPOINT_URL: moto.endpoint,
        AWS_REGION: moto.clientConfig.region,
        AWS_ACCESS_KEY_ID: moto.clientConfig.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: moto.clientConfig.credentials.secretAccessKey,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        POWERTOOLS_SERVICE_NAME: 'stream-sync',
        POWERTOOLS_METRICS_NAMESPACE: 'AgentLb',
      },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bundle exited ${code}: ${err}`));
      const lines = out.split('\n').filter(Boolean);
      const result = lines.find((l) => l.startsWith('RESULT '));
      // Powertools writes warnings and errors to stderr, the rest (and EMF) to stdout.
      const docs = [...lines, ...err.split('\n')].filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({
        result: JSON.parse(result!.slice('RESULT '.length)),
        metrics: docs.filter((d) => '_aws' in d),
        logs: docs.filter((d) => !('_aws' in d)),
      });
    });
  });
}

async function registered(capability: string): Promise<string[]> {
  const elb = new ElasticLoadBalancingV2Client(moto.clientConfig);
  const out = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: groups[capability] }));
  return (out.TargetHealthDescriptions ?? []).map((d) => `${d.Target!.Id}:${d.Target!.Port}`).sort();
}

const metric = (inv: Invocation, name: string) => inv.metrics.map((d) => d[name]).find((v) => v !== undefined);

describe('the bundled stream-sync Lambda against moto', () => {
  const vision = [1, 2, 3].map((n) => leaseItem({ address: privateIp(n), capabilities: ['vision'] }));
  const both = [4, 5].map((n) => leaseItem({ address: privateIp(n), capabilities: ['vision', 'speech'] }));

  it('registers a batch of joins with one RegisterTargets per target group and rejects a public address', async () => {
    const publicLease = leaseItem({ address: '10.0.0.1', capabilities: ['vision'] }, { address: { S: '8.8.8.8' }, target: { S: '8.8.8.8:8080' } });
    const inv = await invoke([...vision.slice(0, 2).map((i) => insert(i)), insert(publicLease), insert(vision[2]), ...both.map((i) => insert(i))]);

    expect(inv.result.batchItemFailures).toEqual([]);
    expect(metric(inv, 'ElbCalls')).toBe(2);
    expect(metric(inv, 'Registrations')).toBe(7);
    expect(metric(inv, 'RejectedLeases')).toBe(1);
    expect(inv.logs.some((l) => l.message === 'lease rejected' && JSON.stringify(l).includes('8.8.8.8'))).toBe(true);
    expect(await registered('vision')).toEqual([1, 2, 3, 4, 5].map((n) => `${privateIp(n)}:8080`).sort());
    expect(await registered('speech')).toEqual([4, 5].map((n) => `${privateIp(n)}:8080`).sort());
  });

  it('spends no ELB call on a batch of heartbeats', async () => {
    const inv = await invoke([...vision, ...both].map((i) => modify(i, renewed(i))));
    expect(inv.result.batchItemFailures).toEqual([]);
    expect(metric(inv, 'ElbCalls')).toBe(0);
    expect(metric(inv, 'NoopRecords')).toBe(5);
    expect(await registered('vision')).toHaveLength(5);
  });

  it('keeps a target whose lease has come back since the removal record was written (stream behind or replayed)', async () => {
    // Stream-image and SDK attribute types differ only in TypeScript.
    const back = leaseItem({ address: privateIp(3), capabilities: ['vision'], expiresAt: Math.floor(Date.now() / 1000) + 3600 }) as Record<string, AttributeValue>;
    const ddb = new DynamoDBClient(moto.clientConfig);
    await ddb.send(new PutItemCommand({ TableName: 'leases', Item: back }));
    const inv = await invoke([remove(vision[2])]);
    expect(inv.result.batchItemFailures).toEqual([]);
    expect(metric(inv, 'ElbCalls')).toBe(0);
    expect(await registered('vision')).toContain(`${privateIp(3)}:8080`);
    await ddb.send(new DeleteItemCommand({ TableName: 'leases', Key: { target: back.target! } }));
  });

  it('removes releases with one DeregisterTargets per touched group', async () => {
    const inv = await invoke([remove(vision[0]), remove(both[0])]);
    expect(metric(inv, 'ElbCalls')).toBe(2);
    expect(await registered('vision')).toEqual([2, 3, 5].map((n) => `${privateIp(n)}:8080`).sort());
    expect(await registered('speech')).toEqual([`${privateIp(5)}:8080`]);
  });
});

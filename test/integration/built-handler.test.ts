import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { CloudFormationClient, CreateStackCommand, DescribeStackResourcesCommand, waitUntilStackCreateComplete } from '@aws-sdk/client-cloudformation';
import { AttributeValue, DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { addAgentLbStack } from '../../lib/constructs';
import { MotoServer, startMotoServer } from '../../lib/local/emulators';
import { BundleRunner, Invocation, metricOf } from '../support/bundle-runner';
import { cdkJsonContext } from '../cdk/fixtures';
import { insert, Item, leaseItem, modify, privateIp, remove, renewed } from '../support/lease-fixtures';
import { METRICS_NAMESPACE } from '../../lib/core/metric-names';
import { CONFIG_ENV } from '../../lib/core/runtime-config';

/**
 * The Lambda artefacts users deploy — the esbuild bundles `cdk synth` writes for the sync and
 * reconcile functions — run as Lambda runs them (a Node process per container, configuration
 * from the environment, AWS endpoint from AWS_ENDPOINT_URL, invoked again while warm) against
 * moto's ELBv2 with ELB's timing (lib/local/python/moto_launcher.py: deregistered targets drain
 * for the group's deregistration delay, RegisterTargets brings a draining target back, public
 * addresses are refused) and moto's DynamoDB for the lease table. Each numbered case of issue 9
 * is one test here.
 */
let moto: MotoServer;
let workdir: string;
const bundles: { sync: string; reconcile: string } = { sync: '', reconcile: '' };
const groups: Record<string, string> = {};
const runners: BundleRunner[] = [];
let elb: ElasticLoadBalancingV2Client;
let ddb: DynamoDBClient;

/** Epoch seconds now: records and leases are written against the real clock the bundles read. */
const now = () => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  workdir = mkdtempSync(path.join(tmpdir(), 'agent-lb-built-'));
  const app = new App({ outdir: path.join(workdir, 'cdk.out'), context: cdkJsonContext() });
  const stack = addAgentLbStack(app, {});
  const assembly = app.synth();
  const template = assembly.getStackByName(stack.stackName).template as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
  const bundleOf = (words: string) => {
    const fn = Object.values(template.Resources).find((r) => r.Type === 'AWS::Lambda::Function' && JSON.stringify(r.Properties.Description ?? '').includes(words));
    const key = (fn?.Properties.Code as { S3Key: string } | undefined)?.S3Key;
    if (!key) throw new Error(`no function "${words}" with a bundled asset in the synthesized template`);
    return path.join(workdir, 'cdk.out', `asset.${key.replace(/\.zip$/, '')}`, 'index.js');
  };
  bundles.sync = bundleOf('applies lease changes');
  bundles.reconcile = bundleOf('repairs drift');

  moto = await startMotoServer();
  elb = new ElasticLoadBalancingV2Client(moto.clientConfig);
  ddb = new DynamoDBClient(moto.clientConfig);
  // Bare target groups (moto's default deregistration delay is AWS's, 300 s: a deregistered
  // target stays draining for the whole file) and two lease tables, one to be "wiped".
  const group = { Type: 'AWS::ElasticLoadBalancingV2::TargetGroup', Properties: { TargetType: 'ip', Protocol: 'HTTP', Port: 8080, VpcId: { Ref: 'Vpc' } } };
  const table = (name: string) => ({
    Type: 'AWS::DynamoDB::Table',
    Properties: { TableName: name, BillingMode: 'PAY_PER_REQUEST', KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }] },
  });
  const fixture = {
    Resources: { Vpc: { Type: 'AWS::EC2::VPC', Properties: { CidrBlock: '10.0.0.0/16' } }, vision: group, speech: group, x: group, wiped: group, leases: table('leases'), empty: table('empty') },
  };
  const cfn = new CloudFormationClient(moto.clientConfig);
  await cfn.send(new CreateStackCommand({ StackName: 'built-handler', TemplateBody: JSON.stringify(fixture) }));
  await waitUntilStackCreateComplete({ client: cfn, maxWaitTime: 60, minDelay: 1 }, { StackName: 'built-handler' });
  const { StackResources = [] } = await cfn.send(new DescribeStackResourcesCommand({ StackName: 'built-handler' }));
  for (const r of StackResources) if (r.ResourceType === 'AWS::ElasticLoadBalancingV2::TargetGroup') groups[r.LogicalResourceId!] = r.PhysicalResourceId!;
  cfn.destroy();
}, 120_000);

afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.stop()));
});

afterAll(async () => {
  elb?.destroy();
  ddb?.destroy();
  await moto?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
});

/** A cold container of one bundle; `capabilities` names the groups it routes (explicit form). */
function container(kind: 'sync' | 'reconcile', options: { capabilities?: string[]; tableName?: string; allowedCidrs?: string[] } = {}): BundleRunner {
  const config = {
    tableName: options.tableName ?? 'leases',
    capabilities: Object.fromEntries((options.capabilities ?? ['vision', 'speech']).map((c) => [c, { targetGroupArn: groups[c], targetType: 'ip' }])),
    ...(options.allowedCidrs ? { allowedCidrs: options.allowedCidrs } : {}),
  };
  const runner = BundleRunner.start(bundles[kind], {
    [CONFIG_ENV]: JSON.stringify(config),
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: moto.clientConfig.region,
    AWS_ACCESS_KEY_ID: moto.clientConfig.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: moto.clientConfig.credentials.secretAccessKey,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    POWERTOOLS_SERVICE_NAME: kind,
    POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
  });
  runners.push(runner);
  return runner;
}

const batch = (sync: BundleRunner, records: DynamoDBRecord[]) => sync.invoke<{ batchItemFailures: { itemIdentifier: string }[] }>({ Records: records });

/** `<id>:<port>` → ELB state, every target DescribeTargetHealth lists (draining ones included). */
async function states(capability: string): Promise<Record<string, string>> {
  const out = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: groups[capability] }));
  return Object.fromEntries((out.TargetHealthDescriptions ?? []).map((d) => [`${d.Target!.Id}:${d.Target!.Port}`, d.TargetHealth!.State!]));
}

/** Targets in rotation (registered, not draining): what "registered" means to a user. */
async function inRotation(capability: string): Promise<string[]> {
  return Object.entries(await states(capability))
    .filter(([, s]) => s !== 'draining')
    .map(([k]) => k)
    .sort();
}

async function put(...items: Item[]): Promise<void> {
  // Stream-image and SDK attribute types differ only in TypeScript.
  for (const item of items) await ddb.send(new PutItemCommand({ TableName: 'leases', Item: item as Record<string, AttributeValue> }));
}

async function del(item: Item, tableName = 'leases'): Promise<void> {
  await ddb.send(new DeleteItemCommand({ TableName: tableName, Key: { target: { S: item.target.S! } } }));
}

/** A lease live for an hour from now. */
const live = (n: number, capabilities = ['vision'], extra: Partial<Parameters<typeof leaseItem>[0]> = {}) =>
  leaseItem({ address: privateIp(n), capabilities, expiresAt: now() + 3600, ...extra });

const key = (item: Item) => item.target.S!;

describe('the bundled stream-sync Lambda', () => {
  it('registers a batch of joins with one RegisterTargets per target group and rejects a public address', async () => {
    // Prepare: the agents wrote their leases; their INSERT records arrive
    const vision = [1, 2, 3].map((n) => live(n));
    const both = [4, 5].map((n) => live(n, ['vision', 'speech']));
    const publicLease = leaseItem({ address: '10.0.0.1', capabilities: ['vision'], expiresAt: now() + 3600 }, { address: { S: '8.8.8.8' }, target: { S: '8.8.8.8:8080' } });
    await put(...vision, ...both, publicLease);
    const sync = container('sync');

    // Act
    const inv = await batch(sync, [...vision.slice(0, 2).map((i) => insert(i, now())), insert(publicLease, now()), insert(vision[2], now()), ...both.map((i) => insert(i, now()))]);

    // Assess
    expect(inv.result.batchItemFailures).toEqual([]);
    expect(metricOf(inv, 'ElbCalls')).toBe(2);
    expect(metricOf(inv, 'Registrations')).toBe(7);
    expect(metricOf(inv, 'RejectedLeases')).toBe(1);
    expect(inv.logs.some((l) => l.message === 'lease rejected' && JSON.stringify(l).includes('8.8.8.8'))).toBe(true);
    expect(await inRotation('vision')).toEqual([...vision, ...both].map(key).sort());
    expect(await inRotation('speech')).toEqual(both.map(key).sort());

    // Act: a batch of heartbeats of the same leases
    const beat = await batch(sync, [...vision, ...both].map((i) => modify(i, renewed(i), now())));

    // Assess: zero ELB calls, zero reads
    expect(beat.result.batchItemFailures).toEqual([]);
    expect(metricOf(beat, 'ElbCalls')).toBe(0);
    expect(metricOf(beat, 'LeasesRead')).toBe(0);
    expect(metricOf(beat, 'NoopRecords')).toBe(5);
  });

  describe('issue 9, case 1: a late, replayed or untimed record never registers a lease that is not live now', () => {
    // Group x, explicit config, empty group; the lease 10.0.6.11:8080 was written at now − 121 s with expiresAt = now − 91.
    const dead = () => leaseItem({ address: '10.0.6.11', capabilities: ['x'], expiresAt: now() - 91 });

    it.each<[string, () => Promise<DynamoDBRecord>]>([
      ['a late INSERT, no item in the table', async () => insert(dead(), now() - 121)],
      [
        'a late INSERT, the expired item still in the table',
        async () => {
          await put(dead());
          return insert(dead(), now() - 121);
        },
      ],
      ['the INSERT of a released lease, replayed after the item was deleted', async () => insert(leaseItem({ address: '10.0.6.11', capabilities: ['x'], expiresAt: now() + 30 }), now() - 20)],
      [
        'an INSERT without ApproximateCreationDateTime, the expired item in the table',
        async () => {
          await put(dead());
          const record = insert(dead());
          delete record.dynamodb!.ApproximateCreationDateTime;
          return record;
        },
      ],
    ])('%s', async (_name, prepare) => {
      // Prepare
      const record = await prepare();
      const sync = container('sync', { capabilities: ['x'] });

      // Act
      const inv = await batch(sync, [record]);

      // Assess
      expect(inv.result.batchItemFailures).toEqual([]);
      expect(await states('x')).toEqual({});
      expect(metricOf(inv, 'ElbCalls')).toBe(0);
      await del(dead());
    });
  });

  it('keeps a target whose lease has come back since the removal record was written (stream behind or replayed)', async () => {
    // Prepare: 10.0.0.3 was released, then acquired again by a new agent
    const back = live(3, ['vision'], { leaseToken: 'new-holder' });
    await put(back);
    const sync = container('sync');

    // Act: the old release record arrives
    const inv = await batch(sync, [remove(live(3), now() - 30)]);

    // Assess
    expect(inv.result.batchItemFailures).toEqual([]);
    expect(metricOf(inv, 'ElbCalls')).toBe(0);
    expect(await inRotation('vision')).toContain(key(back));
  });

  it('takes releases out of rotation with one DeregisterTargets per touched group; ELB drains them', async () => {
    // Prepare: 10.0.0.1 (vision) and 10.0.0.4 (vision, speech) released
    const released = [live(1), live(4, ['vision', 'speech'])];
    for (const item of released) await del(item);
    const sync = container('sync');

    // Act
    const inv = await batch(sync, released.map((i) => remove(i, now())));

    // Assess
    expect(metricOf(inv, 'ElbCalls')).toBe(2);
    expect(await inRotation('vision')).toEqual([2, 3, 5].map((n) => `${privateIp(n)}:8080`).sort());
    expect(await inRotation('speech')).toEqual([`${privateIp(5)}:8080`]);
    const vision = await states('vision');
    expect(vision[key(released[0])]).toBe('draining');
    expect(vision[key(released[1])]).toBe('draining');
  });

  it('issue 9, case 4: a target ELB refuses is not sent again by a replay, and does not hold back the others', async () => {
    // Prepare: this deployment allows 203.0.113.0/24 (so our own check passes), ELB refuses public addresses
    const refused = leaseItem({ address: '203.0.113.7', capabilities: ['speech'], expiresAt: now() + 3600 });
    const good = [live(21, ['speech']), live(22, ['speech'])];
    await put(refused, ...good);
    const sync = container('sync', { allowedCidrs: ['10.0.0.0/8', '203.0.113.0/24'] });
    const records = [insert(good[0], now()), insert(refused, now()), insert(good[1], now())];

    // Act
    const first = await batch(sync, records);
    const replay = await batch(sync, records);

    // Assess: the good ones registered, the refused one reported; the replay costs nothing
    expect(first.result.batchItemFailures).toEqual([]);
    expect(await inRotation('speech')).toEqual(expect.arrayContaining(good.map(key)));
    expect(await inRotation('speech')).not.toContain(key(refused));
    expect(first.logs.some((l) => l.message === 'target refused by ELB' && JSON.stringify(l).includes('203.0.113.7'))).toBe(true);
    expect(replay.result.batchItemFailures).toEqual([]);
    expect(metricOf(replay, 'ElbCalls')).toBe(0);
    for (const item of [refused, ...good]) await del(item);
  });
});

describe('the bundled reconcile Lambda', () => {
  const pass = (reconcile: BundleRunner) => reconcile.invoke<{ driftRegistered: number; driftDeregistered: number; removalsHeld: number; drainingRevived: number; expiredLeasesDeleted: number; elbCalls: number }[]>({});

  it('issue 9, case 2: a live lease\'s draining target is registered again at once (release, then re-acquire, around a pass)', async () => {
    // Prepare: 10.0.11.14 registered, released (sync drains it), acquired again; the stream has not delivered the acquire
    const lease = leaseItem({ address: '10.0.11.14', capabilities: ['vision'], expiresAt: now() + 3600 });
    await put(lease);
    const sync = container('sync');
    await batch(sync, [insert(lease, now())]);
    await del(lease);
    await batch(sync, [remove(lease, now())]);
    expect((await states('vision'))[key(lease)]).toBe('draining');
    await put({ ...lease, leaseToken: { S: 'again' } });
    const reconcile = container('reconcile');

    // Act
    const [report] = (await pass(reconcile)).result;

    // Assess: in rotation again after one pass
    expect((await states('vision'))[key(lease)]).toBe('healthy');
    expect(report.drainingRevived).toBe(1);
  });

  it('leaves a draining target without a live lease to finish draining', async () => {
    // Prepare: 10.0.0.1 was released above and is draining; nothing wants it
    const reconcile = container('reconcile');

    // Act
    await pass(reconcile);

    // Assess
    expect((await states('vision'))[`${privateIp(1)}:8080`]).toBe('draining');
  });

  it('issue 9, case 3: a wiped table empties no group in one pass; the second pass of the container agrees', async () => {
    // Prepare: ten healthy targets in "wiped", the lease table really empty
    const ten = Array.from({ length: 10 }, (_, i) => ({ Id: privateIp(300 + i), Port: 8080 }));
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: groups.wiped, Targets: ten }));
    const reconcile = container('reconcile', { capabilities: ['wiped'], tableName: 'empty' });

    // Act + Assess: the first pass holds; a cold container holds too
    const first = (await pass(reconcile)).result[0];
    expect(first.removalsHeld).toBe(10);
    expect(await inRotation('wiped')).toHaveLength(10);
    const [cold] = (await pass(container('reconcile', { capabilities: ['wiped'], tableName: 'empty' }))).result;
    expect(cold.driftDeregistered).toBe(0);
    expect(await inRotation('wiped')).toHaveLength(10);

    // Act + Assess: the second pass of the first container agrees: all ten leave
    const second = (await pass(reconcile)).result[0];
    expect(second.driftDeregistered).toBe(10);
    expect(await inRotation('wiped')).toEqual([]);
  });

  it('a crashed fleet (expired leases) leaves in one pass, and its leases are swept', async () => {
    // Prepare: three agents of "x" crashed: their leases expired a minute ago, targets still registered
    const crashed = [31, 32, 33].map((n) => leaseItem({ address: privateIp(n), capabilities: ['x'], expiresAt: now() - 60 }));
    await put(...crashed);
    await elb.send(new RegisterTargetsCommand({ TargetGroupArn: groups.x, Targets: crashed.map((c) => ({ Id: c.address.S!, Port: 8080 })) }));
    const reconcile = container('reconcile', { capabilities: ['x'] });

    // Act
    const [report] = (await pass(reconcile)).result;

    // Assess
    expect(report.driftDeregistered).toBe(3);
    expect(await inRotation('x')).toEqual([]);
    for (const c of crashed) expect((await ddb.send(new GetItemCommand({ TableName: 'leases', Key: { target: { S: key(c) } }, ConsistentRead: true }))).Item).toBeUndefined();
  });

  it('issue 9, case 4: a target ELB refused for good is not sent again on later passes until its lease changes', async () => {
    // Prepare: two live leases missing from "x", one at an address ELB refuses
    const refused = leaseItem({ address: '203.0.113.9', capabilities: ['x'], expiresAt: now() + 3600 });
    const good = live(41, ['x']);
    await put(refused, good);
    const reconcile = container('reconcile', { capabilities: ['x'], allowedCidrs: ['10.0.0.0/8', '203.0.113.0/24'] });

    // Act
    const first = (await pass(reconcile)).result[0];
    const again: Invocation<{ elbCalls: number }[]>[] = [await pass(reconcile), await pass(reconcile)];

    // Assess: the good one registered in the first pass; later passes send nothing
    expect(first.driftRegistered).toBe(1);
    expect(await inRotation('x')).toEqual([key(good)]);
    expect(again.map((inv) => inv.result[0].elbCalls)).toEqual([0, 0]);

    // Act: a new agent acquires the refused address (a new lease version): tried again, once
    await put({ ...refused, leaseToken: { S: 'new-holder' } });
    const changed = (await pass(reconcile)).result[0];
    expect(changed.elbCalls).toBe(1);
    for (const item of [refused, good]) await del(item);
  });
});

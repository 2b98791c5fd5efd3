import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateNetworkInterfaceCommand, CreateSecurityGroupCommand, DeleteNetworkInterfaceCommand, DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeRejection } from '../../lib/core/rejection';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { LocalStack } from '../../lib/local/local-stack';
import type { StreamPollerBatchInfo } from '../../lib/local/stream/stream-poller-options';
import { awsError, insert, Item as FixtureItem, streamEvent } from '../support/lease-fixtures';
import { contractItem, Item, targetKeys, waitFor } from '../support/local-harness';

/**
 * Admission against moto's EC2, through local mode's real handlers: the VPC and the agents'
 * security group are the ones the template provisioned into moto; the test adds network
 * interfaces in and out of that group, and writes leases with the raw AWS SDK as any agent (or
 * attacker holding the agent grant) would. Loopback admission is off, so every address is
 * checked. Reconcile runs only when the test says.
 */

const WAIT_MS = 30_000;
let stack: LocalStack;
let ec2: EC2Client;
let subnetId: string;
let agentsGroup: string;
let otherGroup: string;
const throttled = { sync: false, reconcile: false };
const ec2Calls = { sync: 0, reconcile: 0 };
const batches: StreamPollerBatchInfo[] = [];
const logger = new Logger({ serviceName: 'admission-test', logLevel: 'SILENT' });
const warn = vi.spyOn(logger, 'warn');

beforeAll(async () => {
  stack = await LocalStack.start({
    admitLoopback: false,
    reconcileIntervalMs: 3_600_000,
    rotationPollIntervalMs: 0,
    logger,
    onBatch: (info) => batches.push(info),
    // The handlers' EC2 clients: counted, and throttled while the test says so.
    wrapEc2Client: (client, handler) => {
      const send = client.send.bind(client) as (...args: unknown[]) => Promise<unknown>;
      (client as unknown as { send: unknown }).send = (...args: unknown[]) => {
        ec2Calls[handler]++;
        return throttled[handler] ? Promise.reject(awsError('RequestLimitExceeded', 503, 'Request limit exceeded.')) : send(...args);
      };
      return client;
    },
  });
  ec2 = new EC2Client({ ...stack.elbv2ClientConfig });
  const admission = stack.runtimeConfig.admission!;
  agentsGroup = admission.securityGroups[0];
  const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [admission.vpcId] }] }));
  subnetId = subnets.Subnets![0].SubnetId!;
  otherGroup = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'database', Description: 'not an agent', VpcId: admission.vpcId }))).GroupId!;
}, 180_000);

afterAll(async () => {
  ec2?.destroy();
  await stack?.stop();
});

async function networkInterface(address: string, groups: string[]): Promise<string> {
  const out = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnetId, PrivateIpAddress: address, Groups: groups }));
  return out.NetworkInterface!.NetworkInterfaceId!;
}

async function put(item: Item): Promise<void> {
  await stack.dynamodb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: item }));
}

const visionTargets = () => targetKeys(stack.elbv2, stack.state.targetGroups.vision);
const rejected = (target: string) => warn.mock.calls.some(([m, d]) => m === 'lease rejected' && (d as { target?: string }).target === target && (d as { reason?: string }).reason === 'NOT_ADMITTED');

describe('admission against moto\'s EC2', () => {
  it('registers an address whose interface carries the agents\' group; refuses one outside it and one no interface holds', async () => {
    await networkInterface('10.0.200.1', [agentsGroup]);
    await networkInterface('10.0.200.2', [otherGroup]);
    for (const address of ['10.0.200.1', '10.0.200.2', '10.0.200.3']) await put(contractItem({ address, port: 8080, capabilities: ['vision'] }));
    await stack.drain();

    expect(await visionTargets()).toEqual(['10.0.200.1:8080']);
    expect(rejected('10.0.200.2:8080')).toBe(true);
    expect(rejected('10.0.200.3:8080')).toBe(true);
    // Each writer is told, in its own lease (as for an unknown capability): not-admitted, for vision.
    const rejectionOf = async (target: string) =>
      decodeRejection((await stack.dynamodb.send(new GetItemCommand({ TableName: stack.state.tableName, Key: { target: { S: target } }, ConsistentRead: true }))).Item?.rejection);
    expect(await rejectionOf('10.0.200.1:8080')).toBeUndefined();
    for (const target of ['10.0.200.2:8080', '10.0.200.3:8080']) expect(await rejectionOf(target)).toMatchObject({ reason: 'not-admitted', capabilities: ['vision'] });
  });

  it('asks EC2 nothing for heartbeats', async () => {
    const before = ec2Calls.sync;
    const lease = contractItem({ address: '10.0.200.1', port: 8080, capabilities: ['vision'] });
    await put({ ...lease, expiresAt: { N: String(Number(lease.expiresAt.N) + 10) } });
    await stack.drain();
    expect(ec2Calls.sync).toBe(before);
  });

  it('EC2 throttled: the registration waits (its batch is retried), then lands once EC2 answers', async () => {
    await networkInterface('10.0.200.4', [agentsGroup]);
    throttled.sync = true;
    const seen = batches.length;
    await put(contractItem({ address: '10.0.200.4', port: 8080, capabilities: ['vision'] }));
    await waitFor(() => batches.slice(seen).filter((b) => b.outcome !== 'success').length >= 2, WAIT_MS, 'two failed deliveries of the throttled batch');
    expect(await visionTargets()).not.toContain('10.0.200.4:8080');

    throttled.sync = false;
    await waitFor(async () => (await visionTargets()).includes('10.0.200.4:8080'), WAIT_MS, 'the registration after EC2 answers again');
  });

  it('an interface deleted and its address reused by a non-agent: reconcile removes the target once two passes agree, never while EC2 fails', async () => {
    const eni = await networkInterface('10.0.200.5', [agentsGroup]);
    await put(contractItem({ address: '10.0.200.5', port: 8080, capabilities: ['vision'], ttlSeconds: 600 }));
    await waitFor(async () => (await visionTargets()).includes('10.0.200.5:8080'), WAIT_MS, 'the registration');
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni }));
    await networkInterface('10.0.200.5', [otherGroup]);

    // EC2 failing proves nothing: two passes, nothing removed.
    throttled.reconcile = true;
    for (let pass = 0; pass < 2; pass++) expect((await stack.reconcileNow()).ec2Error?.code).toBe('EC2_LOOKUP');
    expect(await visionTargets()).toContain('10.0.200.5:8080');

    throttled.reconcile = false;
    const first = await stack.reconcileNow();
    expect(first.notAdmittedRemoved).toBe(0);
    expect(await visionTargets()).toContain('10.0.200.5:8080');
    const second = await stack.reconcileNow();
    expect(second.notAdmittedRemoved).toBe(1);
    expect(await visionTargets()).not.toContain('10.0.200.5:8080');
    // The lease is live, but it is never registered again.
    const third = await stack.reconcileNow();
    expect(third.driftRegistered).toBe(0);
    expect(await visionTargets()).not.toContain('10.0.200.5:8080');
  });

  it('a capability with its own admitted groups: only interfaces carrying one of them serve it', async () => {
    // A sync handler configured as AgentLb writes `capabilities: [{ name: 'vision', admittedSecurityGroups: [visionSg] }]`.
    const admission = stack.runtimeConfig.admission!;
    const visionGroup = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'vision-service', Description: 'vision tasks', VpcId: admission.vpcId }))).GroupId!;
    await networkInterface('10.0.200.6', [visionGroup]);
    await networkInterface('10.0.200.7', [agentsGroup]);
    const config = { ...stack.runtimeConfig, admission: { ...admission, byCapability: { vision: [visionGroup] } } };
    const ownLogger = new Logger({ serviceName: 'admission-test-vision', logLevel: 'SILENT' });
    const ownWarn = vi.spyOn(ownLogger, 'warn');
    const sync = createSyncHandler({ config, elbClient: stack.elbv2, dynamoClient: stack.dynamodb, ec2Client: ec2, logger: ownLogger });
    const items = ['10.0.200.6', '10.0.200.7'].map((address) => contractItem({ address, port: 8080, capabilities: ['vision', 'speech'] }));
    for (const item of items) await put(item);
    await stack.drain();
    await sync(streamEvent(items.map((item) => insert(item as FixtureItem, Math.floor(Date.now() / 1000)))));

    // Local mode's own sync admits by the agents' group alone, so 10.0.200.6 in vision is this handler's doing.
    expect(await visionTargets()).toContain('10.0.200.6:8080');
    expect(await targetKeys(stack.elbv2, stack.state.targetGroups.speech)).not.toContain('10.0.200.6:8080');
    const refused = ownWarn.mock.calls.filter(([m]) => m === 'lease rejected').map(([, d]) => d as { target: string; capability: string; reason: string });
    expect(refused).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ target: '10.0.200.6:8080', capability: 'speech', reason: 'NOT_ADMITTED' }),
        expect.objectContaining({ target: '10.0.200.7:8080', capability: 'vision', reason: 'NOT_ADMITTED' }),
      ]),
    );
    expect(refused).toHaveLength(2);
  });
});

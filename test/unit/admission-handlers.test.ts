import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DescribeNetworkInterfacesCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  TooManyTargetsException,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { ERROR_METRICS, RECONCILE_METRICS, SYNC_METRICS } from '../../lib/core/metric-names';
import type { RuntimeConfig } from '../../lib/core/runtime-config';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { awsError, captureMetrics, insert, Item, leaseItem, modify, privateIp, renewed, resetSequence, silentLogger, streamEvent, T0, testConfig, TG } from '../support/lease-fixtures';

/**
 * Admission and the target quota through the real handlers, against mocked EC2 and ELB: what a
 * batch and a pass cost in EC2 calls, what they refuse and what they never do (remove a target
 * because EC2 failed).
 */

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const ec2Mock = mockClient(EC2Client);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 1 });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });
const ec2Client = new EC2Client({ region: 'us-east-1', credentials, maxAttempts: 1 });
const NOW_MS = T0 * 1000 + 1_500;

const AGENTS = 'sg-agents';
/** Which interface groups EC2 shows for each address (absent: no interface holds it). */
let interfaces: Map<string, string[]>;
/** Registered targets per group, as DescribeTargetHealth answers. */
let registered: Record<string, string[]>;
let table: FakeLeaseTable;

const config = (patch: Partial<RuntimeConfig> = {}): RuntimeConfig =>
  testConfig({ admission: { vpcId: 'vpc-1', securityGroups: [AGENTS], byCapability: {} }, targetQuota: 1000, ...patch });

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  ec2Mock.reset();
  resetSequence();
  table = new FakeLeaseTable().install(ddbMock);
  interfaces = new Map();
  registered = {};
  ec2Mock.on(DescribeNetworkInterfacesCommand).callsFake((input: { Filters: { Name: string; Values: string[] }[] }) => {
    const asked = input.Filters.find((f) => f.Name === 'addresses.private-ip-address')!.Values;
    return {
      NetworkInterfaces: asked
        .filter((a) => interfaces.has(a))
        .map((a, i) => ({ NetworkInterfaceId: `eni-${i}`, VpcId: 'vpc-1', PrivateIpAddress: a, Groups: interfaces.get(a)!.map((GroupId) => ({ GroupId })) })),
    };
  });
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
  elbMock.on(DescribeTargetHealthCommand).callsFake((input: { TargetGroupArn: string }) => ({
    TargetHealthDescriptions: (registered[input.TargetGroupArn] ?? []).map((id) => ({ Target: { Id: id, Port: 8080 }, TargetHealth: { State: 'healthy' } })),
  }));
});

function syncHandler(c: RuntimeConfig = config()) {
  const emf = captureMetrics();
  const logger = silentLogger();
  const warn = vi.spyOn(logger, 'warn');
  const sync = createSyncHandler({ config: c, elbClient, dynamoClient, ec2Client, logger, metrics: emf.metrics, now: () => NOW_MS });
  const handler = (event: DynamoDBStreamEvent) => {
    table.applyRecords(event.Records);
    return sync(event);
  };
  return { handler, emf, warn };
}

const registeredIds = () => elbMock.commandCalls(RegisterTargetsCommand).flatMap((c) => c.args[0].input.Targets!.map((t) => t.Id));

describe('stream sync: admission', () => {
  it('asks EC2 once for a batch of new leases, registers the admitted ones only, and asks nothing for heartbeats', async () => {
    // Prepare: 50 new leases, every fifth on an interface outside the agents' group, one on no interface at all
    const items = Array.from({ length: 50 }, (_, i) => leaseItem({ address: privateIp(i + 1) }));
    items.forEach((item, i) => {
      if (i !== 49) interfaces.set(item.address.S!, i % 5 === 0 ? ['sg-database'] : [AGENTS]);
    });
    const { handler, emf, warn } = syncHandler();

    // Act
    const first = await handler(streamEvent(items.map((item) => insert(item))));
    const beat = await handler(streamEvent(items.map((item) => modify(item, renewed(item), T0 + 10))));

    // Assess
    expect(first).toEqual({ batchItemFailures: [] });
    expect(beat).toEqual({ batchItemFailures: [] });
    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeNetworkInterfacesCommand, 1);
    expect(emf.all(SYNC_METRICS.ec2Calls)).toEqual([1, 0]);
    const admitted = items.filter((_, i) => i % 5 !== 0 && i !== 49).map((item) => item.address.S!);
    expect(registeredIds().sort()).toEqual(admitted.sort());
    expect(emf.all(SYNC_METRICS.notAdmitted)).toEqual([11, 0]);
    const rejected = warn.mock.calls.filter(([message]) => message === 'lease rejected').map(([, detail]) => detail as { reason: string; target: string; detail: string });
    expect(rejected).toHaveLength(11);
    expect(rejected.every((r) => r.reason === 'NOT_ADMITTED')).toBe(true);
    expect(rejected.find((r) => r.target === `${privateIp(50)}:8080`)?.detail).toMatch(/EC2 shows no network interface in vpc-1 holding it/);
  });

  it('a lease that comes back within the cache\'s 30 s costs no EC2 call', async () => {
    const item = leaseItem({ address: '10.0.0.7' });
    interfaces.set('10.0.0.7', [AGENTS]);
    const drained = { ...item, status: { S: 'draining' } };
    const { handler, emf } = syncHandler();

    await handler(streamEvent([insert(item)]));
    await handler(streamEvent([modify(item, drained, T0 + 1)]));
    await handler(streamEvent([modify(drained, item, T0 + 2)]));

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeNetworkInterfacesCommand, 1);
    expect(emf.all(SYNC_METRICS.ec2Calls)).toEqual([1, 0, 0]);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 2);
  });

  it('EC2 throttling delays the registrations (their records are retried) and sends nothing for them', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).rejects(awsError('RequestLimitExceeded', 503));
    const gone = leaseItem({ address: '10.0.0.9' });
    table.put(gone);
    const event = streamEvent([modify(gone, { ...gone, status: { S: 'draining' } }, T0 + 1), insert(leaseItem({ address: '10.0.0.8' }))]);
    const { handler, emf } = syncHandler();

    const result = await handler(event);

    expect(result.batchItemFailures).toEqual([{ itemIdentifier: event.Records[1].dynamodb!.SequenceNumber }]);
    expect(elbMock).not.toHaveReceivedCommand(RegisterTargetsCommand);
    // The drain in the same batch still goes out: EC2 failing holds back registrations only.
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
    expect(emf.last(ERROR_METRICS.EC2_LOOKUP)).toBe(1);
  });

  it('a capability with its own admitted groups takes only interfaces carrying one of them', async () => {
    const c = config({ admission: { vpcId: 'vpc-1', securityGroups: [AGENTS], byCapability: { vision: ['sg-vision'] } } });
    interfaces.set('10.0.0.1', [AGENTS]);
    interfaces.set('10.0.0.2', ['sg-vision']);
    const { handler } = syncHandler(c);

    await handler(streamEvent([insert(leaseItem({ address: '10.0.0.1', capabilities: ['vision', 'speech'] })), insert(leaseItem({ address: '10.0.0.2' }))]));

    const byGroup = Object.fromEntries(elbMock.commandCalls(RegisterTargetsCommand).map((call) => [call.args[0].input.TargetGroupArn, call.args[0].input.Targets!.map((t) => t.Id)]));
    expect(byGroup).toEqual({ [TG.vision]: ['10.0.0.2'], [TG.speech]: ['10.0.0.1'] });
  });
});

describe('stream sync: the target quota', () => {
  it('takes registrations in the order they came until the load balancer is full; the rest are over-quota', async () => {
    registered[TG.speech] = Array.from({ length: 8 }, (_, i) => privateIp(100 + i));
    const items = Array.from({ length: 5 }, (_, i) => leaseItem({ address: privateIp(i + 1) }));
    for (const item of items) interfaces.set(item.address.S!, [AGENTS]);
    const { handler, emf } = syncHandler(config({ targetQuota: 10 }));

    await handler(streamEvent(items.map((item) => insert(item))));

    expect(registeredIds()).toEqual([privateIp(1), privateIp(2)]);
    expect(emf.last(SYNC_METRICS.overQuota)).toBe(3);
    // The count was read once (every group), at the first registration of this container.
    expect(elbMock).toHaveReceivedCommandTimes(DescribeTargetHealthCommand, 3);
  });

  it('several load balancers: the quota holds on each apart, so one full load balancer refuses nothing on another', async () => {
    // speech's load balancer holds its quota of 10; vision's is empty.
    registered[TG.speech] = Array.from({ length: 10 }, (_, i) => privateIp(100 + i));
    const items = Array.from({ length: 5 }, (_, i) => leaseItem({ address: privateIp(i + 1) }));
    for (const item of items) interfaces.set(item.address.S!, [AGENTS]);
    const loadBalancers = { vision: 'arn:lb/1', ec2: 'arn:lb/1', speech: 'arn:lb/2' };
    const { handler, emf } = syncHandler(config({ targetQuota: 10, loadBalancers }));

    await handler(streamEvent(items.map((item) => insert(item))));

    expect(registeredIds()).toEqual(items.map((i) => i.address.S));
    expect(emf.last(SYNC_METRICS.overQuota)).toBe(0);
    // A speech lease is refused: its own load balancer is full.
    const speech = leaseItem({ address: privateIp(9), capabilities: ['speech'] });
    interfaces.set(privateIp(9), [AGENTS]);
    await handler(streamEvent([insert(speech)]));
    expect(emf.last(SYNC_METRICS.overQuota)).toBe(1);
  });

  it('ELB\'s own TooManyTargets is over-quota, never sent again in the batch, never an error', async () => {
    elbMock.on(RegisterTargetsCommand).rejects(new TooManyTargetsException({ message: 'You\'ve reached the limit on the number of targets', $metadata: { httpStatusCode: 400 } }));
    interfaces.set('10.0.0.1', [AGENTS]);
    const { handler, emf } = syncHandler();

    const result = await handler(streamEvent([insert(leaseItem({ address: '10.0.0.1' }))]));

    expect(result).toEqual({ batchItemFailures: [] });
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(emf.last(SYNC_METRICS.overQuota)).toBe(1);
    expect(emf.last(ERROR_METRICS.ELB_PERMANENT)).toBeUndefined();
  });
});

describe('reconcile: admission and the quota', () => {
  function reconcileHandler(c: RuntimeConfig = config()) {
    const emf = captureMetrics();
    const handler = createReconcileHandler({ config: c, elbClient, dynamoClient, ec2Client, logger: silentLogger(), metrics: emf.metrics, now: () => NOW_MS, sleep: async () => {} });
    return { handler, emf };
  }
  function leases(...items: Item[]) {
    table.put(...items);
    ddbMock.on(ScanCommand).callsFake(() => ({ Items: [...table.items.values()], Count: table.items.size, ConsumedCapacity: { TableName: 'leases', CapacityUnits: 1 } }));
  }

  it('removes a registered target EC2 refuses only when a second pass agrees, and never for an EC2 error', async () => {
    // Prepare: 10.0.0.1's interface was deleted and its address reused by a database's interface
    leases(leaseItem({ address: '10.0.0.1' }), leaseItem({ address: '10.0.0.2' }));
    registered[TG.vision] = ['10.0.0.1', '10.0.0.2'];
    interfaces.set('10.0.0.1', ['sg-database']);
    interfaces.set('10.0.0.2', [AGENTS]);
    const { handler, emf } = reconcileHandler();

    // Act + Assess: pass 1 suspects, an EC2 outage in pass 2 proves nothing, pass 3 agrees and removes
    await handler({});
    expect(elbMock).not.toHaveReceivedCommand(DeregisterTargetsCommand);
    ec2Mock.on(DescribeNetworkInterfacesCommand).rejects(awsError('RequestLimitExceeded', 503));
    await handler({});
    expect(elbMock).not.toHaveReceivedCommand(DeregisterTargetsCommand);
    ec2Mock.on(DescribeNetworkInterfacesCommand).callsFake(() => ({
      NetworkInterfaces: [{ NetworkInterfaceId: 'eni-db', VpcId: 'vpc-1', PrivateIpAddress: '10.0.0.1', Groups: [{ GroupId: 'sg-database' }] }],
    }));
    await handler({});
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.0.0.1', Port: 8080 }] });
    expect(emf.all(RECONCILE_METRICS.notAdmittedRemoved)).toEqual([0, 0, 1]);
    expect(emf.all(ERROR_METRICS.EC2_LOOKUP)).toEqual([1]);
  });

  it('asks EC2 again (past the cache) before it removes a suspect: a passing hiccup of EC2\'s answers removes nothing', async () => {
    leases(leaseItem({ address: '10.0.0.1' }));
    registered[TG.vision] = ['10.0.0.1'];
    const { handler } = reconcileHandler();

    await handler({}); // no interface holds it (EC2 has not caught up)
    interfaces.set('10.0.0.1', [AGENTS]);
    await handler({});

    expect(ec2Mock).toHaveReceivedCommandTimes(DescribeNetworkInterfacesCommand, 2);
    expect(elbMock).not.toHaveReceivedCommand(DeregisterTargetsCommand);
  });

  it('registers missing admitted targets first come first served by registeredAt, up to the quota, and reports the count', async () => {
    const items = [3, 1, 2].map((n) => leaseItem({ address: privateIp(n) }, { registeredAt: { N: String(T0 * 1000 + n) } }));
    leases(...items);
    for (const item of items) interfaces.set(item.address.S!, [AGENTS]);
    registered[TG.speech] = [privateIp(50), privateIp(51), privateIp(52)];
    const { handler, emf } = reconcileHandler(config({ targetQuota: 5 }));

    await handler({});

    expect(registeredIds()).toEqual([privateIp(1), privateIp(2)]);
    expect(emf.last(RECONCILE_METRICS.overQuota)).toBe(1);
    expect(emf.last(RECONCILE_METRICS.registeredTargets)).toBe(3);
    expect(emf.last(RECONCILE_METRICS.ec2Calls)).toBe(1);
  });

  it('counts registered targets per load balancer of each capability, and reports the fullest', async () => {
    const items = [1, 2, 3].map((n) => leaseItem({ address: privateIp(n) }, { registeredAt: { N: String(T0 * 1000 + n) } }));
    leases(...items);
    for (const item of items) interfaces.set(item.address.S!, [AGENTS]);
    // speech's load balancer is at its quota of 4; vision's holds 1.
    registered[TG.speech] = [privateIp(50), privateIp(51), privateIp(52), privateIp(53)];
    registered[TG.vision] = [privateIp(60)];
    const { handler, emf } = reconcileHandler(config({ targetQuota: 4, loadBalancers: { vision: 'arn:lb/1', speech: 'arn:lb/2' } }));

    await handler({});

    // vision's three go on its own load balancer's room (3 of 4), not on the sum of both (5 of 4 already).
    expect(registeredIds()).toEqual([privateIp(1), privateIp(2), privateIp(3)]);
    expect(emf.last(RECONCILE_METRICS.overQuota)).toBe(0);
    expect(emf.last(RECONCILE_METRICS.registeredTargets)).toBe(4);
  });
});

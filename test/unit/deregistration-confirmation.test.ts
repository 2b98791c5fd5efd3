import { DynamoDBClient, GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createReconcileHandler } from '../../lambdas/reconcile';
import { createSyncHandler } from '../../lambdas/stream-sync';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { awsError, captureMetrics, elbTarget, insert, Item, leaseItem, remove, resetSequence, sequenceOf, silentLogger, streamEvent, T0, testConfig, TG } from '../support/lease-fixtures';

/**
 * Found by the chaos run (test/chaos): a deregistration must be confirmed by a read of the
 * lease made right before the call, not by an older one.
 * - sync, with a DynamoDB client: a replayed release/drain record no longer takes out the live
 *   lease that followed it;
 * - reconcile: a lease acquired on the same address:port while the group's registrations were
 *   being retried keeps its target.
 */

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 3, retryMode: 'adaptive' });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });
const NOW_MS = T0 * 1000 + 500;

/** The lease table as a consistent GetItem sees it. */
let table: Map<string, Item>;

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  resetSequence();
  table = new Map();
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
  ddbMock.on(GetItemCommand).callsFake((input: { Key: { target: { S: string } } }) => {
    const item = table.get(input.Key.target.S);
    return item ? { Item: item } : {};
  });
});

function syncHandler() {
  return createSyncHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS });
}

describe('stream sync with a DynamoDB client: deregistrations are confirmed by a consistent read', () => {
  it('a replayed release of an old lease does not deregister the live lease that replaced it', async () => {
    // Prepare: the old lease was released; a new agent holds the same address:port now
    const old = leaseItem({ address: '10.0.9.1', leaseToken: 'old' });
    const current = leaseItem({ address: '10.0.9.1', leaseToken: 'new', expiresAt: T0 + 30 });
    table.set(current.target.S!, current);

    // Act: the release record comes again (a replay from an earlier checkpoint)
    const response = await syncHandler()(streamEvent([remove(old)]));

    // Assess
    expect(ddbMock).toHaveReceivedCommandWith(GetItemCommand, { TableName: 'leases', Key: { target: { S: '10.0.9.1:8080' } }, ConsistentRead: true });
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(response.batchItemFailures).toEqual([]);
  });

  it('a release whose lease is gone is deregistered after the read', async () => {
    // Prepare
    const old = leaseItem({ address: '10.0.9.2' });

    // Act
    await syncHandler()(streamEvent([remove(old)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(old)] });
  });

  it('when the read fails, the record is retried (batchItemFailures) and nothing is deregistered', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).rejects(awsError('InternalServerError', 500));
    const other = insert(leaseItem({ address: '10.0.9.4' }));
    const release = remove(leaseItem({ address: '10.0.9.3' }));

    // Act
    const response = await syncHandler()(streamEvent([other, release]));

    // Assess: the registration before it is applied, the release is retried from its record
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: sequenceOf(release) }]);
  });
});

describe('confirmed deregistration rounds: a call that misses its deadline is read and sent again', () => {
  const abort = () => Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });

  it('a lease acquired while the call was being retried keeps its target', async () => {
    // Prepare: the first call is aborted (deadline); meanwhile a new agent acquires the address:port
    const old = leaseItem({ address: '10.0.7.1' });
    elbMock.on(DeregisterTargetsCommand).callsFake(() => {
      const acquired = leaseItem({ address: '10.0.7.1', leaseToken: 'new', expiresAt: T0 + 30 });
      table.set(acquired.target.S!, acquired);
      throw abort();
    });

    // Act
    const response = await syncHandler()(streamEvent([remove(old)]));

    // Assess: read, aborted call, read again (live now): not sent again, nothing to retry
    expect(ddbMock).toHaveReceivedCommandTimes(GetItemCommand, 2);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
    expect(response.batchItemFailures).toEqual([]);
  });

  it('otherwise the target is read again and deregistered in the next round', async () => {
    // Prepare
    const old = leaseItem({ address: '10.0.7.2' });
    elbMock.on(DeregisterTargetsCommand).rejectsOnce(abort()).resolves({});

    // Act
    const response = await syncHandler()(streamEvent([remove(old)]));

    // Assess: read, aborted call, read, call, read after it landed
    expect(ddbMock).toHaveReceivedCommandTimes(GetItemCommand, 3);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 2);
    expect(response.batchItemFailures).toEqual([]);
  });
});

describe('a lease acquired while its target was being deregistered', () => {
  it('gets the target back at once (read after the call landed)', async () => {
    // Prepare: the lease is gone at the read; a new agent acquires the address:port while the call is in flight
    const old = leaseItem({ address: '10.0.5.1' });
    elbMock.on(DeregisterTargetsCommand).callsFake(() => {
      const acquired = leaseItem({ address: '10.0.5.1', leaseToken: 'new', expiresAt: T0 + 30 });
      table.set(acquired.target.S!, acquired);
      return {};
    });

    // Act
    await syncHandler()(streamEvent([remove(old)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(old)] });
  });
});

describe('ElbTargets with an abort signal', () => {
  it('gives up when the signal fires, even while the SDK would still be waiting to retry', async () => {
    // Prepare: a call that never answers (as one sleeping in a 20 s retry backoff)
    elbMock.on(DeregisterTargetsCommand).callsFake(() => new Promise(() => undefined));
    const started = Date.now();

    // Act
    const outcome = await new ElbTargets(elbClient).deregister(TG.vision, [{ key: '10.0.6.1:8080', id: '10.0.6.1', port: 8080 }], { abortSignal: AbortSignal.timeout(20) });

    // Assess
    expect(Date.now() - started).toBeLessThan(1000);
    expect(outcome.applied).toEqual([]);
    expect(outcome.transientFailures).toEqual(['10.0.6.1:8080']);
    expect(outcome.firstTransientError?.transient).toBe(true);
  });
});

describe('reconcile: the deregistration read is made after the group\'s registrations', () => {
  it('a lease acquired while a registration of the same group was in flight keeps its target', async () => {
    // Prepare: vision holds a stray 10.0.8.9 (no lease in the scan) and misses live 10.0.8.1
    const live = leaseItem({ address: '10.0.8.1' });
    table.set(live.target.S!, live);
    ddbMock.on(ScanCommand).resolves({ Items: [live as never], Count: 1 });
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision }).resolves({
      TargetHealthDescriptions: [{ Target: { Id: '10.0.8.9', Port: 8080 }, TargetHealth: { State: 'unhealthy' } }],
    });
    // While RegisterTargets is retried, a new agent acquires 10.0.8.9:8080.
    elbMock.on(RegisterTargetsCommand).callsFake(() => {
      const acquired = leaseItem({ address: '10.0.8.9', expiresAt: T0 + 30 });
      table.set(acquired.target.S!, acquired);
      return {};
    });
    const handler = createReconcileHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS });

    // Act
    const [report] = await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(report.deregistrationsWithheld).toBe(1);
  });

  it('sends the deregistration with a deadline (an abort signal), so it cannot land long after its read', async () => {
    // Prepare: a stray target with no lease
    ddbMock.on(ScanCommand).resolves({ Items: [], Count: 0 });
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.vision }).resolves({
      TargetHealthDescriptions: [{ Target: { Id: '10.0.8.7', Port: 8080 }, TargetHealth: { State: 'unhealthy' } }],
    });
    const handler = createReconcileHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS });

    // Act
    await handler({});

    // Assess
    const calls = elbMock.commandCalls(DeregisterTargetsCommand);
    expect(calls).toHaveLength(1);
    expect(((calls[0].args as unknown[])[1] as { abortSignal?: unknown } | undefined)?.abortSignal).toBeInstanceOf(AbortSignal);
  });
});

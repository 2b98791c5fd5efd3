import { DynamoDBClient, InternalServerError, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { LeaseStore } from '../../lib/aws/lease-store';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { writeRegistryEntries } from '../../lib/registry/registry-writes';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { captureMetrics, insert, Item, leaseItem, modify, resetSequence, silentLogger, streamEvent, T0, testConfig } from '../support/lease-fixtures';
import { SYNC_METRICS } from '../../lib/core/metric-names';

/**
 * The registry tells each lease's writer why it is refused (docs/lease-contract.md, "Rejections"):
 * stream sync from the images, reconcile from its scan, on change only, conditional on the item
 * judged, with zero ELB calls.
 */
const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });
const NOW_MS = T0 * 1000 + 1_500;
let table: FakeLeaseTable;

function sync() {
  const emf = captureMetrics();
  const handler = createSyncHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: emf.metrics, now: () => NOW_MS });
  const deliver = (records: ReturnType<typeof insert>[]) => {
    table.applyRecords(records);
    return handler(streamEvent(records));
  };
  return { deliver, emf };
}

const unrouted = leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'], leaseToken: 'tok-2' });
const portAsString = leaseItem({ address: '10.0.0.3', leaseToken: 'tok-3' }, { port: { S: '8080' } });
const noToken = (() => {
  const item = leaseItem({ address: '10.0.0.4' });
  delete item.leaseToken;
  return item;
})();
const rejectionOf = (key: string) => table.items.get(key)?.rejection;

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  resetSequence();
  table = new FakeLeaseTable().install(ddbMock);
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
  elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
});

describe('stream sync tells writers why', () => {
  it('an invalid item, a lease without a token and an unrouted capability: one write each, the valid part still registers', async () => {
    // Act
    const { deliver } = sync();
    const result = await deliver([insert(unrouted), insert(portAsString), insert(noToken)]);

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(table.rejectionWrites.sort()).toEqual(['10.0.0.2:8080 unknown-capability[ocr]', '10.0.0.3:8080 invalid', '10.0.0.4:8080 invalid']);
    expect(rejectionOf('10.0.0.3:8080')).toEqual({
      M: { reason: { S: 'invalid' }, message: { S: 'attribute "port" must be Number (N), got S' }, since: { N: String(NOW_MS) } },
    });
    expect(elbMock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.Targets)).toEqual([[{ Id: '10.0.0.2', Port: 8080 }]]);
    const write = ddbMock.commandCalls(UpdateItemCommand).find((c) => c.args[0].input.Key?.target.S === '10.0.0.4:8080')!.args[0].input;
    expect(write.ConditionExpression).toBe('attribute_exists(#key) AND attribute_not_exists(#token) AND #renewedAt = :renewedAt');
  });

  it('the registry\'s own write coming back costs no ELB call, no write, and is not counted again', async () => {
    // Prepare
    const { deliver, emf } = sync();
    await deliver([insert(portAsString)]);
    elbMock.resetHistory();
    ddbMock.resetHistory();

    // Act
    await deliver([modify(portAsString, table.items.get('10.0.0.3:8080')!)]);

    // Assess
    expect(elbMock.calls()).toHaveLength(0);
    expect(ddbMock.commandCalls(UpdateItemCommand)).toHaveLength(0);
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(0);
  });

  it('heartbeats of a refused lease write nothing more; the fixed lease (same token) has its reason removed', async () => {
    // Prepare
    const { deliver } = sync();
    await deliver([insert(unrouted)]);
    const told = table.items.get('10.0.0.2:8080')!;
    const beat = { ...told, expiresAt: { N: String(T0 + 40) }, renewedAt: { N: String(T0 * 1000 + 10_000) } };
    await deliver([modify(told, beat)]);
    const writesAfterHeartbeat = table.rejectionWrites.length;

    // Act: the agent drops "ocr" and writes its lease again (an acquire with its own token)
    const fixed: Item = { ...beat, capabilities: { SS: ['vision'] } };
    await deliver([modify(beat, fixed)]);

    // Assess
    expect(writesAfterHeartbeat).toBe(1);
    expect(table.rejectionWrites).toEqual(['10.0.0.2:8080 unknown-capability[ocr]', '10.0.0.2:8080 removed']);
    expect(rejectionOf('10.0.0.2:8080')).toBeUndefined();
  });

  it('a verdict on an older write never lands on a newer one: the item changed, nothing written', async () => {
    // Prepare: by the time the batch is handled, the agent has written its item again
    const handler = createSyncHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS });
    table.put({ ...portAsString, port: { N: '8080' }, renewedAt: { N: String(T0 * 1000 + 5_000) } });

    // Act
    await handler(streamEvent([insert(portAsString)]));

    // Assess
    expect(table.rejectionWrites).toEqual([]);
    expect(rejectionOf('10.0.0.3:8080')).toBeUndefined();
  });
});

describe('reconcile tells what stream sync missed', () => {
  it('writes the reasons its scan finds and removes one no longer true, without an ELB call for them', async () => {
    // Prepare
    table.put(unrouted, portAsString, { ...leaseItem({ address: '10.0.0.5' }), rejection: { M: { reason: { S: 'unknown-capability' }, message: { S: 'old' }, since: { N: '1700000000000' } } } });
    const handler = createReconcileHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: captureMetrics().metrics, now: () => NOW_MS });

    // Act
    await handler();

    // Assess
    expect(table.rejectionWrites.sort()).toEqual(['10.0.0.2:8080 unknown-capability[ocr]', '10.0.0.3:8080 invalid', '10.0.0.5:8080 removed']);
  });
});

describe('writeRegistryEntries with rejections', () => {
  it('counts what happened and never throws: a DynamoDB failure is reported for the next pass', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).rejects(new InternalServerError({ message: 'boom', $metadata: {} }));
    const write = { target: '10.0.0.3:8080', leaseToken: { S: 'tok-3' }, renewedAt: { N: '1' }, rejection: { reason: 'invalid', message: 'x', since: NOW_MS }, judged: portAsString };

    // Act
    const report = await writeRegistryEntries(new LeaseStore(dynamoClient, 'leases'), [], [write]);

    // Assess
    expect(report).toMatchObject({ planned: 1, rejections: 1, written: 0, changed: 0, failed: 1 });
    expect(report.firstError?.message).toMatch(/^writeEntries on table leases failed: InternalServerError: boom/);
  });
});

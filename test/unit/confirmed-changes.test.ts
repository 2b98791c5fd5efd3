import { BatchGetItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeregisterTargetsCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { CONFIRM_ROUNDS } from '../../lib/registry/confirmed-changes';
import { FakeLeaseTable } from '../support/fake-lease-table';
import {
  awsError,
  captureMetrics,
  elbTarget,
  insert,
  leaseItem,
  modify,
  remove,
  renewed,
  resetSequence,
  sequenceOf,
  silentLogger,
  streamEvent,
  T0,
  testConfig,
  TG,
} from '../support/lease-fixtures';
import { SYNC_METRICS } from '../../lib/core/metric-names';

/**
 * "The stream says which leases changed; the table says what is true." Each case is one the
 * issue found against the built handler (issue 9), or a kind of it: the images plan, a
 * consistent read of the lease decides.
 */

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 3, retryMode: 'adaptive' });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });
const NOW = T0 + 200;
const NOW_MS = NOW * 1000 + 500;

let table: FakeLeaseTable;

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  resetSequence();
  table = new FakeLeaseTable().install(ddbMock);
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
});

function syncHandler(nowMs = NOW_MS) {
  const emf = captureMetrics();
  const handler = createSyncHandler({ config: testConfig(), elbClient, dynamoClient, logger: silentLogger(), metrics: emf.metrics, now: () => nowMs });
  return { handler, emf };
}

/** A record as Lambda delivers it, but without ApproximateCreationDateTime. */
function untimed(record: DynamoDBRecord): DynamoDBRecord {
  const { ApproximateCreationDateTime: _omit, ...dynamodb } = record.dynamodb!;
  return { ...record, dynamodb };
}

describe('issue 9, case 1: a late or replayed record never puts a dead lease into rotation', () => {
  // The lease 10.0.6.11:8080 was written at now − 121 s with expiresAt = now − 91.
  const dead = leaseItem({ address: '10.0.6.11', expiresAt: NOW - 91 });

  it.each<[string, DynamoDBRecord, () => void]>([
    ['a late INSERT, the item gone from the table', insert(dead, NOW - 121), () => undefined],
    ['a late INSERT, the expired item still in the table', insert(dead, NOW - 121), () => table.put(dead)],
    ['the INSERT of a released lease replayed after the item was deleted', insert(leaseItem({ address: '10.0.6.11', expiresAt: NOW + 30 }), NOW - 10), () => undefined],
    ['an INSERT without ApproximateCreationDateTime, expired item in the table', untimed(insert(dead)), () => table.put(dead)],
    ['a late re-activation (draining → active) of a lease since drained again', modify({ ...dead, status: { S: 'draining' } }, dead, NOW - 121), () => table.put({ ...dead, status: { S: 'draining' }, expiresAt: { N: String(NOW + 30) } })],
    ['a late INSERT of a lease since taken over by one without this capability', insert(leaseItem({ address: '10.0.6.11', expiresAt: NOW + 30 }), NOW - 5), () => table.put(leaseItem({ address: '10.0.6.11', capabilities: ['speech'], expiresAt: NOW + 30, leaseToken: 'other' }))],
  ])('%s: not registered, nothing to retry', async (_name, record, prepare) => {
    // Prepare
    prepare();
    const { handler, emf } = syncHandler();

    // Act
    const response = await handler(streamEvent([record]));

    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(ddbMock).toHaveReceivedCommandWith(BatchGetItemCommand, { RequestItems: { leases: { Keys: [{ target: { S: '10.0.6.11:8080' } }], ConsistentRead: true } } });
    expect(emf.last(SYNC_METRICS.changesWithheld)).toBe(1);
  });

  it('the same late INSERT registers the target when the lease is live now (renewed since)', async () => {
    // Prepare
    table.put(renewed(dead, 200));
    const { handler } = syncHandler();

    // Act
    await handler(streamEvent([insert(dead, NOW - 121)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(dead)] });
  });

  it('a record without a timestamp registers a lease that is live now', async () => {
    // Prepare
    const live = leaseItem({ address: '10.0.6.12', expiresAt: NOW + 30 });
    table.put(live);
    const { handler } = syncHandler();

    // Act
    await handler(streamEvent([untimed(insert(live))]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(live)] });
  });
});

describe('deregistrations: a replayed release never takes out the live lease that followed it', () => {
  it('a replayed release of an old lease does not deregister the live lease that replaced it', async () => {
    // Prepare: the old lease was released; a new agent holds the same address:port now
    const old = leaseItem({ address: '10.0.9.1', leaseToken: 'old' });
    table.put(leaseItem({ address: '10.0.9.1', leaseToken: 'new', expiresAt: NOW + 30 }));
    const { handler } = syncHandler();

    // Act: the release record comes again (a replay from an earlier checkpoint)
    const response = await handler(streamEvent([remove(old)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(response.batchItemFailures).toEqual([]);
  });

  it('a release whose lease is gone is deregistered after the read', async () => {
    // Prepare
    const old = leaseItem({ address: '10.0.9.2' });
    const { handler } = syncHandler();

    // Act
    await handler(streamEvent([remove(old)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(old)] });
  });

  it('when the read fails, nothing is sent and the batch is retried from the first changed record', async () => {
    // Prepare
    ddbMock.on(BatchGetItemCommand).rejects(awsError('InternalServerError', 500));
    const heartbeat = leaseItem({ address: '10.0.9.5' });
    const other = insert(leaseItem({ address: '10.0.9.4', expiresAt: NOW + 30 }));
    const release = remove(leaseItem({ address: '10.0.9.3' }));

    // Act
    const response = await syncHandler().handler(streamEvent([modify(heartbeat, renewed(heartbeat)), other, release]));

    // Assess
    expect(elbMock).not.toHaveReceivedAnyCommand();
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: sequenceOf(other) }]);
  });
});

describe('batched reads', () => {
  it('reads at most 100 keys per BatchGetItem, and reads keys DynamoDB left unprocessed again', async () => {
    // Prepare: 250 new live leases; the first call leaves 30 keys unprocessed
    const items = Array.from({ length: 250 }, (_, i) => leaseItem({ address: `10.20.${i >> 8}.${i & 255}`, expiresAt: NOW + 30 }));
    table.put(...items);
    table.unprocessedOnce = 30;

    // Act
    const response = await syncHandler().handler(streamEvent(items.map((item) => insert(item))));

    // Assess: every target registered once, the 30 unprocessed keys read again
    expect(response.batchItemFailures).toEqual([]);
    const sent = elbMock.commandCalls(RegisterTargetsCommand).flatMap((c) => c.args[0].input.Targets ?? []);
    expect(sent).toHaveLength(250);
    const confirming = table.batchGets.slice(0, 4);
    expect(confirming.map((keys) => keys.length).sort()).toEqual([100, 100, 30, 50].sort());
    expect(new Set(confirming.flat()).size).toBe(250);
  });

  it('costs one read per changed target, none for heartbeats or no-op changes', async () => {
    // Prepare
    const a = leaseItem({ address: '10.0.3.1', expiresAt: NOW + 30 });
    const b = leaseItem({ address: '10.0.3.2', expiresAt: NOW + 30 });
    table.put(a, renewed(b));
    const records = [insert(a), modify(b, renewed(b)), modify(b, { ...renewed(b), agentId: { S: 'renamed' } })];

    // Act
    await syncHandler().handler(streamEvent(records));

    // Assess: one confirming read, of a
    expect(table.batchGets).toEqual([['10.0.3.1:8080']]);
  });
});

describe('confirmed rounds: a call that misses its deadline is read and sent again', () => {
  const abort = () => Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });

  it('a lease acquired while the deregistration was being retried keeps its target', async () => {
    // Prepare: the first call is aborted (deadline); meanwhile a new agent acquires the address:port
    const old = leaseItem({ address: '10.0.7.1' });
    elbMock.on(DeregisterTargetsCommand).callsFake(() => {
      table.put(leaseItem({ address: '10.0.7.1', leaseToken: 'new', expiresAt: NOW + 30 }));
      throw abort();
    });

    // Act
    const response = await syncHandler().handler(streamEvent([remove(old)]));

    // Assess: read, aborted call, read again (live now): not sent again, nothing to retry
    expect(table.batchGets).toHaveLength(2);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
    expect(response.batchItemFailures).toEqual([]);
  });

  it('a lease released while the registration was being retried is not registered', async () => {
    // Prepare
    const item = leaseItem({ address: '10.0.7.3', expiresAt: NOW + 30 });
    table.put(item);
    elbMock.on(RegisterTargetsCommand).callsFake(() => {
      table.delete('10.0.7.3:8080');
      throw abort();
    });

    // Act
    const response = await syncHandler().handler(streamEvent([insert(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(response.batchItemFailures).toEqual([]);
  });

  it('otherwise the target is read again and sent in the next round', async () => {
    // Prepare
    const old = leaseItem({ address: '10.0.7.2' });
    elbMock.on(DeregisterTargetsCommand).rejectsOnce(abort()).resolves({});

    // Act
    const response = await syncHandler().handler(streamEvent([remove(old)]));

    // Assess: read, aborted call, read, call (sync does not read again after a call: the stream does)
    expect(table.batchGets).toHaveLength(2);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 2);
    expect(response.batchItemFailures).toEqual([]);
  });

  it(`gives up after ${CONFIRM_ROUNDS} rounds and reports the record for retry`, async () => {
    // Prepare
    const old = remove(leaseItem({ address: '10.0.7.4' }));
    elbMock.on(DeregisterTargetsCommand).rejects(abort());

    // Act
    const response = await syncHandler().handler(streamEvent([old]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, CONFIRM_ROUNDS);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: sequenceOf(old) }]);
  });
});

describe('a lease that changed while its call was in flight: the record of that change, next in the stream, repairs it', () => {
  it('deregistered, then acquired again while the call was in flight: the acquire that follows registers it (two calls, never an undo as a third)', async () => {
    // Prepare: the lease is gone at the read; a new agent acquires the address:port while the call is in flight
    const old = leaseItem({ address: '10.0.5.1' });
    const acquired = leaseItem({ address: '10.0.5.1', leaseToken: 'new', expiresAt: NOW + 30 });
    elbMock.on(DeregisterTargetsCommand).callsFake(() => {
      table.put(acquired);
      return {};
    });
    const { handler } = syncHandler();

    // Act: the REMOVE, then the INSERT the acquire wrote (it follows in the stream)
    await handler(streamEvent([remove(old)]));
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    await handler(streamEvent([insert(acquired)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(old)] });
  });

  it('registered, then released while the call was in flight: the release record that follows takes it out', async () => {
    // Prepare
    const item = leaseItem({ address: '10.0.5.2', expiresAt: NOW + 30 });
    table.put(item);
    elbMock.on(RegisterTargetsCommand).callsFake(() => {
      table.delete('10.0.5.2:8080');
      return {};
    });
    const { handler } = syncHandler();

    // Act: the INSERT, then the REMOVE the release wrote (it follows in the stream)
    await handler(streamEvent([insert(item)]));
    await handler(streamEvent([remove(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 1);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
  });
});

describe('issue 9, case 4: no throttle budget wasted', () => {
  it('a batch redelivered after a partial failure does not re-register the targets already applied', async () => {
    // Prepare: 10 leases in vision, 1 in speech; speech is throttled through every round of the first delivery
    const vision = Array.from({ length: 10 }, (_, i) => leaseItem({ address: `10.0.4.${i + 1}`, expiresAt: NOW + 30 }));
    const speech = leaseItem({ address: '10.0.4.99', capabilities: ['speech'], expiresAt: NOW + 30 });
    table.put(...vision, speech);
    const records = [insert(speech), ...vision.map((item) => insert(item))];
    let throttled = 0;
    elbMock.on(RegisterTargetsCommand).callsFake((input: { TargetGroupArn: string }) => {
      if (input.TargetGroupArn === TG.speech && throttled++ < CONFIRM_ROUNDS) throw awsError('ThrottlingException', 400, 'Rate exceeded');
      return {};
    });
    const { handler, emf } = syncHandler();
    const first = await handler(streamEvent(records));
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: sequenceOf(records[0]) }]);
    elbMock.resetHistory();

    // Act: Lambda redelivers from the failed record: the whole batch again
    const second = await handler(streamEvent(records));

    // Assess: only speech is sent; vision's 10 registrations are not
    expect(second.batchItemFailures).toEqual([]);
    expect(elbMock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.TargetGroupArn)).toEqual([TG.speech]);
    expect(emf.last(SYNC_METRICS.changesAlreadyApplied)).toBe(10);
  });

  it('a later record of an applied target is a new decision', async () => {
    // Prepare
    const item = leaseItem({ address: '10.0.4.50', expiresAt: NOW + 30 });
    table.put(item);
    const { handler } = syncHandler();
    await handler(streamEvent([insert(item)]));
    table.delete('10.0.4.50:8080');

    // Act
    await handler(streamEvent([remove(item)]));
    table.put(item);
    await handler(streamEvent([insert(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 2);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 1);
  });

  it('a target ELB refused for good is not sent again, by replays, until its lease changes', async () => {
    // Prepare: ELB refuses 10.0.4.66 whenever it is in a call
    const bad = leaseItem({ address: '10.0.4.66', expiresAt: NOW + 30 });
    const good = leaseItem({ address: '10.0.4.67', expiresAt: NOW + 30 });
    table.put(bad, good);
    elbMock.on(RegisterTargetsCommand).callsFake((input: { Targets: { Id: string }[] }) => {
      if (input.Targets.some((t) => t.Id === '10.0.4.66')) throw awsError('ValidationError', 400, 'The IP address 10.0.4.66 is not valid');
      return {};
    });
    const { handler } = syncHandler();
    await handler(streamEvent([insert(bad), insert(good)]));
    elbMock.resetHistory();

    // Act: a replay with new good target beside it, then the bad address acquired by a new lease
    const other = leaseItem({ address: '10.0.4.68', expiresAt: NOW + 30 });
    table.put(other);
    await handler(streamEvent([insert(bad), insert(other)]));
    const replayCalls = elbMock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.Targets?.map((t) => t.Id));
    elbMock.resetHistory();
    const reacquired = leaseItem({ address: '10.0.4.66', expiresAt: NOW + 30, leaseToken: 'again' });
    table.put(reacquired);
    await handler(streamEvent([insert(reacquired)]));

    // Assess: the replay sends only the new good target, in one call; the new lease is tried again
    expect(replayCalls).toEqual([['10.0.4.68']]);
    expect(elbMock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.Targets?.map((t) => t.Id))).toEqual([['10.0.4.66']]);
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

import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  InvalidTargetException,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { CONFIRM_ROUNDS } from '../../lib/registry/confirmed-changes';
import type { RuntimeConfig } from '../../lib/core/runtime-config';
import {
  awsError,
  captureMetrics,
  elbTarget,
  insert,
  instanceId,
  Item,
  leaseItem,
  localTtlRemove,
  modify,
  privateIp,
  remove,
  renewed,
  resetSequence,
  sequenceOf,
  silentLogger,
  streamEvent,
  T0,
  testConfig,
  TG,
  ttlRemove,
} from '../support/lease-fixtures';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { ERROR_METRICS, METRICS_NAMESPACE, SYNC_METRICS } from '../../lib/core/metric-names';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
/** The lease table the handler confirms against; by default it agrees with the records delivered. */
let table: FakeLeaseTable;
// A real client: mockClient patches `send`, so the SDK's own retries never run in these tests.
const elbClient = new ElasticLoadBalancingV2Client({
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  maxAttempts: 3,
  retryMode: 'adaptive',
});

/** The wall clock the handler sees; only the lag metric may depend on it. */
const NOW_MS = T0 * 1000 + 1_500;

/**
 * A handler whose table agrees with what it is given: before each delivery the table takes the
 * state the records leave (the ordinary case; tests of a table that disagrees are in
 * confirmed-changes.test.ts).
 */
function setup(config: RuntimeConfig = testConfig(), nowMs = NOW_MS) {
  const emf = captureMetrics();
  const logger = silentLogger();
  const sync = createSyncHandler({ config, elbClient, dynamoClient, logger, metrics: emf.metrics, now: () => nowMs });
  const handler = (event: DynamoDBStreamEvent) => {
    table.applyRecords(event.Records);
    return sync(event);
  };
  return { handler, emf, logger };
}

/** Every ELB command sent, as [command name, input], in order. */
const sentCommands = () => elbMock.calls().map((call) => [call.args[0].constructor.name, call.args[0].input] as const);

const ip = (n: number) => leaseItem({ address: privateIp(n) });

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  table = new FakeLeaseTable().install(ddbMock);
  elbMock.on(RegisterTargetsCommand).resolves({});
  elbMock.on(DeregisterTargetsCommand).resolves({});
  resetSequence();
});

describe('stream-sync handler: call economy', () => {
  it('a batch of heartbeats costs zero ELB calls and zero table reads, and counts as no-op records', async () => {
    // Prepare: five live leases in different groups, each renewed once (only expiresAt/renewedAt move).
    const leases = [
      leaseItem({ address: '10.0.0.1' }),
      leaseItem({ address: '10.0.0.2', capabilities: ['speech'] }),
      leaseItem({ address: '10.0.0.3', capabilities: ['speech', 'vision'] }),
      leaseItem({ address: '192.168.1.4' }),
      leaseItem({ address: instanceId(5), capabilities: ['ec2'] }),
    ];
    const event = streamEvent(leases.map((item) => modify(item, renewed(item), T0 + 10)));
    const { handler, emf } = setup();

    // Act
    const result = await handler(event);

    // Assess
    expect(result).toEqual({ batchItemFailures: [] });
    expect(elbMock).not.toHaveReceivedAnyCommand();
    expect(ddbMock).not.toHaveReceivedAnyCommand();
    expect(emf.last(SYNC_METRICS.records)).toBe(5);
    expect(emf.last(SYNC_METRICS.noopRecords)).toBe(5);
    expect(emf.last(SYNC_METRICS.elbCalls)).toBe(0);
    expect(emf.last(SYNC_METRICS.registrations)).toBe(0);
    expect(emf.last(SYNC_METRICS.deregistrations)).toBe(0);
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(0);
  });

  it('N new leases across K groups cost at most 2K calls and register exactly the right targets per group', async () => {
    // Prepare: a fourth ip capability, 60 IP agents with 1–3 capabilities each, 7 instance agents.
    const base = testConfig();
    const textTg = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/text/4';
    const config: RuntimeConfig = {
      ...base,
      routing: { ...base.routing, capabilities: { ...base.routing.capabilities, text: { targetGroupArn: textTg, targetType: 'ip' } } },
    };
    const ipCaps = ['vision', 'speech', 'text'];
    const items: Item[] = [];
    for (let i = 0; i < 60; i++) {
      const count = 1 + (i % 3);
      const capabilities = Array.from({ length: count }, (_, j) => ipCaps[(i + j * 2) % 3]);
      items.push(leaseItem({ address: privateIp(1000 + i), capabilities: [...new Set(capabilities)] }));
    }
    for (let i = 0; i < 7; i++) items.push(leaseItem({ address: instanceId(i + 1), capabilities: ['ec2'] }));
    const expected = new Map<string, ReturnType<typeof elbTarget>[]>();
    const arnOf: Record<string, string> = { vision: TG.vision, speech: TG.speech, text: textTg, ec2: TG.ec2 };
    for (const item of items) {
      for (const cap of item.capabilities.SS!) {
        const list = expected.get(arnOf[cap]) ?? [];
        list.push(elbTarget(item));
        expected.set(arnOf[cap], list);
      }
    }
    const K = expected.size;
    const { handler, emf } = setup(config);

    // Act
    const result = await handler(streamEvent(items.map((item) => insert(item))));

    // Assess
    expect(K).toBe(4);
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock.calls().length).toBeLessThanOrEqual(2 * K);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, K);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    for (const [arn, targets] of expected) {
      // Exactly these targets, in the order their records arrived.
      expect(elbMock).toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: arn, Targets: targets });
    }
    const total = [...expected.values()].reduce((n, t) => n + t.length, 0);
    expect(emf.last(SYNC_METRICS.registrations)).toBe(total);
    expect(emf.last(SYNC_METRICS.elbCalls)).toBe(K);
  });

  it('450 new leases in one group are sent as 3 RegisterTargets calls of 200, 200 and 50 targets', async () => {
    // Prepare
    const items = Array.from({ length: 450 }, (_, i) => ip(i + 1));
    const { handler, emf } = setup();

    // Act
    const result = await handler(streamEvent(items.map((item) => insert(item))));

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 3);
    const targets = items.map(elbTarget);
    expect(elbMock).toHaveReceivedNthCommandWith(RegisterTargetsCommand, 1, { TargetGroupArn: TG.vision, Targets: targets.slice(0, 200) });
    expect(elbMock).toHaveReceivedNthCommandWith(RegisterTargetsCommand, 2, { TargetGroupArn: TG.vision, Targets: targets.slice(200, 400) });
    expect(elbMock).toHaveReceivedNthCommandWith(RegisterTargetsCommand, 3, { TargetGroupArn: TG.vision, Targets: targets.slice(400) });
    expect(emf.last(SYNC_METRICS.registrations)).toBe(450);
    expect(emf.last(SYNC_METRICS.elbCalls)).toBe(3);
    // Confirmed by consistent reads of 100 keys at most per call.
    expect(table.batchGets.map((keys) => keys.length)).toEqual([100, 100, 100, 100, 50]);
  });

  it('a change that does not move the target between groups (metadata, agentId) costs zero calls', async () => {
    // Prepare
    const item = ip(8);
    const changed: Item = { ...item, agentId: { S: 'renamed' }, metadata: { M: { version: { S: '2' } } } };
    const { handler, emf } = setup();

    // Act
    await handler(streamEvent([modify(item, changed, T0 + 1)]));

    // Assess
    expect(elbMock).not.toHaveReceivedAnyCommand();
    expect(emf.last(SYNC_METRICS.noopRecords)).toBe(1);
  });

  it('insert and remove of the same target in one batch cost no Register/Deregister call', async () => {
    // Prepare: a flap (insert, heartbeat, release) of one target, which its group does not hold
    const item = ip(7);
    const event = streamEvent([insert(item, T0), modify(item, renewed(item), T0 + 1), remove(renewed(item), T0 + 2)]);
    elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
    const { handler } = setup();

    // Act
    const result = await handler(event);

    // Assess: one look at the group (the batch may be a retry whose first delivery registered the target), no call
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).toHaveReceivedCommandTimes(DescribeTargetHealthCommand, 1);
    expect(elbMock).not.toHaveReceivedCommand(RegisterTargetsCommand);
    expect(elbMock).not.toHaveReceivedCommand(DeregisterTargetsCommand);
  });
});

describe('stream-sync handler: removals and state changes', () => {
  it('a graceful release (REMOVE) sends one DeregisterTargets and counts as a release', async () => {
    // Prepare
    const item = leaseItem({ address: '10.1.2.3', port: 9000 });
    const { handler, emf } = setup();

    // Act
    const result = await handler(streamEvent([remove(item, T0 + 5)]));

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, {
      TargetGroupArn: TG.vision,
      Targets: [{ Id: '10.1.2.3', Port: 9000 }],
    });
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(emf.last(SYNC_METRICS.releases)).toBe(1);
    expect(emf.last(SYNC_METRICS.ttlDeletions)).toBe(0);
    expect(emf.last(SYNC_METRICS.deregistrations)).toBe(1);
  });

  it('a lease in two groups is deregistered from both on release', async () => {
    // Prepare
    const item = leaseItem({ address: '10.1.2.4', capabilities: ['speech', 'vision'] });
    const { handler } = setup();

    // Act
    await handler(streamEvent([remove(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 2);
    expect(elbMock).toHaveReceivedCommandWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
    expect(elbMock).toHaveReceivedCommandWith(DeregisterTargetsCommand, { TargetGroupArn: TG.speech, Targets: [elbTarget(item)] });
  });

  it('a TTL deletion (REMOVE signed by dynamodb.amazonaws.com) counts as TtlDeletions, not Releases', async () => {
    // Prepare: a TTL removal and a graceful release of live leases in one batch
    const swept = leaseItem({ address: '10.1.2.5', expiresAt: T0 + 30 });
    const released = leaseItem({ address: '10.1.2.9', expiresAt: T0 + 30 });
    const { handler, emf } = setup();

    // Act
    const result = await handler(streamEvent([ttlRemove(swept, T0 + 1), remove(released, T0 + 2)]));

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(emf.last(SYNC_METRICS.ttlDeletions)).toBe(1);
    expect(emf.last(SYNC_METRICS.releases)).toBe(1);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, {
      TargetGroupArn: TG.vision,
      Targets: [elbTarget(swept), elbTarget(released)],
    });
  });

  // A real TTL deletion always carries an old image that had expired before the sweeper removed it
  // (TTL only deletes expired items, often hours later), and nothing else deregistered it at expiry.
  //
  it('a TTL deletion of an expired lease (the real case) deregisters the target', async () => {
    // Prepare: lease expired at T0+30, swept an hour later
    const item = leaseItem({ address: '10.1.2.5', expiresAt: T0 + 30 });
    const { handler } = setup(testConfig(), (T0 + 3600) * 1000);

    // Act
    await handler(streamEvent([ttlRemove(item, T0 + 3600)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
  });

  it("DynamoDB Local's TTL deletion (eventName UNKNOWN_TO_SDK_VERSION, only an OldImage, expired) deregisters", async () => {
    // Prepare: lease expired at T0+30, swept 5 minutes later
    const item = leaseItem({ address: '10.1.2.6', expiresAt: T0 + 30 });
    const { handler } = setup(testConfig(), (T0 + 330) * 1000);

    // Act
    await handler(streamEvent([localTtlRemove(item, T0 + 330)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
  });

  it('a record with only an OldImage is a removal whatever its eventName (UNKNOWN_TO_SDK_VERSION) and deregisters', async () => {
    // Prepare: UNKNOWN_TO_SDK_VERSION removal of a lease still live at the record's time
    const item = leaseItem({ address: '10.1.2.7', expiresAt: T0 + 30 });
    const { handler } = setup();

    // Act
    await handler(streamEvent([localTtlRemove(item, T0 + 1)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
  });

  it('a drain (status → draining) deregisters the target and registers nothing', async () => {
    // Prepare
    const item = leaseItem({ address: '10.1.2.8', capabilities: ['vision'] });
    const drained: Item = { ...item, status: { S: 'draining' } };
    const { handler, emf } = setup();

    // Act
    await handler(streamEvent([modify(item, drained, T0 + 3)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(emf.last(SYNC_METRICS.deregistrations)).toBe(1);
  });

  it('keeps the AvailabilityZone of targets outside the VPC', async () => {
    // Prepare
    const item = leaseItem({ address: '192.168.7.7', availabilityZone: 'all' });
    const { handler } = setup();

    // Act
    await handler(streamEvent([insert(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, {
      TargetGroupArn: TG.vision,
      Targets: [{ Id: '192.168.7.7', Port: 8080, AvailabilityZone: 'all' }],
    });
  });
});

describe('stream-sync handler: invalid leases', () => {
  it('a lease with [vision, unknowncap] registers in vision and is counted in RejectedLeases', async () => {
    // Prepare
    const item = leaseItem({ address: '10.2.0.1', capabilities: ['unknowncap', 'vision'] });
    const { handler, emf, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');

    // Act
    const result = await handler(streamEvent([insert(item)]));

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(1);
    expect(warn).toHaveBeenCalledWith('lease rejected', expect.objectContaining({ reason: 'UNKNOWN_CAPABILITY', capability: 'unknowncap', target: '10.2.0.1:8080' }));
  });

  it('invalid leases in the middle of a batch are rejected; valid ones around them still register; the batch does not fail', async () => {
    // Prepare
    const good = [ip(1), ip(2), ip(3)];
    const publicIp = leaseItem({ address: '8.8.8.8' });
    const portZero = leaseItem({ address: '10.3.0.2', port: 0 });
    const portAsString = leaseItem({ address: '10.3.0.3' }, { port: { S: '8080' } });
    const expiresAtAsString = leaseItem({ address: '10.3.0.4' }, { expiresAt: { S: String(T0 + 30) } });
    const event = streamEvent([
      insert(good[0]),
      insert(publicIp),
      insert(good[1]),
      insert(portZero),
      insert(portAsString),
      insert(expiresAtAsString),
      insert(good[2]),
    ]);
    const { handler, emf, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');

    // Act
    const result = await handler(event);

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: good.map(elbTarget) });
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(emf.last(SYNC_METRICS.registrations)).toBe(3);
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(4);
    const reasons = warn.mock.calls.filter(([message]) => message === 'lease rejected').map(([, extra]) => (extra as { target: string; reason: string }));
    expect(reasons).toEqual([
      expect.objectContaining({ target: '8.8.8.8:8080', reason: 'ADDRESS_NOT_ALLOWED' }),
      expect.objectContaining({ target: '10.3.0.2:0', reason: 'BAD_PORT' }),
      expect.objectContaining({ target: '10.3.0.3:8080', reason: 'WRONG_TYPE' }),
      expect.objectContaining({ target: '10.3.0.4:8080', reason: 'WRONG_TYPE' }),
    ]);
  });

  it('an instance id is rejected for an ip capability while the instance capability takes it', async () => {
    // Prepare
    const id = instanceId(42);
    const item = leaseItem({ address: id, capabilities: ['ec2', 'vision'] });
    const { handler, emf, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');

    // Act
    await handler(streamEvent([insert(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.ec2, Targets: [{ Id: id, Port: 8080 }] });
    expect(elbMock).not.toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision });
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(1);
    expect(warn).toHaveBeenCalledWith('lease rejected', expect.objectContaining({ reason: 'TARGET_TYPE_MISMATCH', capability: 'vision' }));
  });

  it('an IP address is rejected for an instance capability while the ip capability takes it', async () => {
    // Prepare
    const item = leaseItem({ address: '10.4.0.1', capabilities: ['ec2', 'vision'] });
    const { handler, emf } = setup();

    // Act
    await handler(streamEvent([insert(item)]));

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(item)] });
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(1);
  });

  it('a lease written already expired (expiresAt < ApproximateCreationDateTime) is not registered', async () => {
    // Prepare
    const item = leaseItem({ address: '10.5.0.1', expiresAt: T0 - 1 });
    const { handler } = setup();

    // Act
    const result = await handler(streamEvent([insert(item, T0)]));

    // Assess
    expect(result.batchItemFailures).toEqual([]);
    expect(elbMock).not.toHaveReceivedAnyCommand();
  });
});

describe('stream-sync handler: ELB failures', () => {
  /** speech, vision, speech, vision: the vision group's first target arrives in the second record. */
  function twoGroupBatch() {
    const b = leaseItem({ address: '10.6.0.2', capabilities: ['speech'] });
    const a = leaseItem({ address: '10.6.0.1', capabilities: ['vision'] });
    const d = leaseItem({ address: '10.6.0.4', capabilities: ['speech'] });
    const c = leaseItem({ address: '10.6.0.3', capabilities: ['vision'] });
    const records = [insert(b), insert(a), insert(d), insert(c)];
    return { a, b, c, d, records };
  }

  it.each([
    ['Throttling', 400],
    ['ThrottlingException', 400],
  ])('%s on one group reports the first record of that group; the other group is applied; the redelivered suffix succeeds', async (name, status) => {
    // Prepare: vision's RegisterTargets is throttled through every round of the first delivery (SDK retries exhausted), then works
    const { a, b, c, d, records } = twoGroupBatch();
    let throttled = 0;
    elbMock.on(RegisterTargetsCommand).callsFake((input: { TargetGroupArn: string }) => {
      if (input.TargetGroupArn !== TG.vision || throttled === CONFIRM_ROUNDS) return {};
      throttled++;
      throw awsError(name, status, 'Rate exceeded');
    });
    const { handler, emf, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');

    // Act: first delivery
    const first = await handler(streamEvent(records));

    // Assess: the retry starts at vision's first record (index 1), speech was applied
    expect(first).toEqual({ batchItemFailures: [{ itemIdentifier: sequenceOf(records[1]) }] });
    expect(elbMock).toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: TG.speech, Targets: [elbTarget(b), elbTarget(d)] });
    expect(elbMock).toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(a), elbTarget(c)] });
    expect(emf.last(SYNC_METRICS.registrations)).toBe(2);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('retried'), expect.objectContaining({ firstFailedRecordId: sequenceOf(records[1]) }));

    // Act: Lambda redelivers the batch from the reported record on
    const sentBefore = sentCommands().length;
    const second = await handler(streamEvent(records.slice(1)));

    // Assess: vision gets both targets; speech's d, already applied for this very record, is not sent again
    expect(second).toEqual({ batchItemFailures: [] });
    expect(sentCommands().slice(sentBefore)).toEqual([['RegisterTargetsCommand', { TargetGroupArn: TG.vision, Targets: [elbTarget(a), elbTarget(c)] }]]);
    expect(emf.last(SYNC_METRICS.registrations)).toBe(2);
    expect(emf.last(SYNC_METRICS.changesAlreadyApplied)).toBe(1);
  });

  it('a persistent 5xx on every group reports the first changed record', async () => {
    // Prepare: a heartbeat first (no change), then changes in two groups; every call fails with 5xx
    const hb = ip(9);
    const a = leaseItem({ address: '10.7.0.1', capabilities: ['vision'] });
    const b = leaseItem({ address: '10.7.0.2', capabilities: ['speech'] });
    const records = [modify(hb, renewed(hb), T0 + 1), insert(a), insert(b)];
    elbMock.on(RegisterTargetsCommand).rejects(awsError('InternalFailure', 500));
    const { handler, emf } = setup();

    // Act
    const result = await handler(streamEvent(records));

    // Assess: one call per group and round, each after a fresh read (no per-target isolation for transient errors)
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: sequenceOf(records[1]) }] });
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 2 * CONFIRM_ROUNDS);
    expect(emf.last(SYNC_METRICS.registrations)).toBe(0);
    // Counted under the metric its error code maps to: one batch met ELB_TRANSIENT.
    expect(emf.last(ERROR_METRICS.ELB_TRANSIENT)).toBe(1);
  });

  it('a 503 on deregistration reports the release record', async () => {
    // Prepare
    const a = ip(11);
    const records = [insert(ip(12)), remove(a, T0 + 1)];
    elbMock.on(DeregisterTargetsCommand).rejects(awsError('ServiceUnavailable', 503));
    const { handler } = setup();

    // Act
    const result = await handler(streamEvent(records));

    // Assess
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: sequenceOf(records[1]) }] });
  });

  it('a permanent error (InvalidTargetException) is isolated per target: valid targets register, the bad one is reported, no batch failure', async () => {
    // Prepare: ELB refuses 10.8.0.2 (e.g. not in the VPC), accepts the others
    const items = [leaseItem({ address: '10.8.0.1' }), leaseItem({ address: '10.8.0.2' }), leaseItem({ address: '10.8.0.3' })];
    elbMock.on(RegisterTargetsCommand).callsFake((input: { Targets: { Id: string }[] }) => {
      if (input.Targets.some((t) => t.Id === '10.8.0.2')) {
        throw new InvalidTargetException({ message: 'The following targets are not in the target group VPC: 10.8.0.2', $metadata: { httpStatusCode: 400 } });
      }
      return {};
    });
    const { handler, emf, logger } = setup();
    const error = vi.spyOn(logger, 'error');

    // Act
    const result = await handler(streamEvent(items.map((item) => insert(item))));

    // Assess: the chunk, then halves until the refused target is alone: [1,2,3] → [1,2] → [1], [2]; [3]
    expect(result).toEqual({ batchItemFailures: [] });
    expect(sentCommands().map(([, input]) => (input as { Targets: { Id: string }[] }).Targets.map((t) => t.Id))).toEqual([
      ['10.8.0.1', '10.8.0.2', '10.8.0.3'],
      ['10.8.0.1', '10.8.0.2'],
      ['10.8.0.1'],
      ['10.8.0.2'],
      ['10.8.0.3'],
    ]);
    expect(emf.last(SYNC_METRICS.registrations)).toBe(2);
    expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(1);
    expect(emf.last(ERROR_METRICS.ELB_PERMANENT)).toBe(1);
    expect(emf.last(ERROR_METRICS.ELB_TRANSIENT)).toBeUndefined();
    expect(error).toHaveBeenCalledWith('target refused by ELB', expect.objectContaining({ target: '10.8.0.2:8080' }));
  });
});

describe('stream-sync handler: determinism and telemetry', () => {
  function mixedBatch(): DynamoDBRecord[] {
    resetSequence();
    const a = leaseItem({ address: '10.9.0.1', capabilities: ['speech', 'vision'] });
    const b = leaseItem({ address: '10.9.0.2' });
    const c = leaseItem({ address: instanceId(9), capabilities: ['ec2'] });
    return [insert(a), modify(b, renewed(b), T0 + 1), remove(b, T0 + 2), insert(c), modify(a, { ...a, capabilities: { SS: ['speech'] } }, T0 + 3)];
  }

  it('replaying the same batch against the same table gives the same ELB commands (in a new container)', async () => {
    // Prepare
    const event = streamEvent(mixedBatch());

    // Act: first delivery, then a replay seen by a fresh container (one that remembers nothing)
    const first = await setup(testConfig(), NOW_MS).handler(event);
    const firstCommands = sentCommands();
    elbMock.resetHistory();
    const replay = await setup(testConfig(), NOW_MS + 1_000).handler(streamEvent(mixedBatch()));
    const replayCommands = sentCommands();

    // Assess
    expect(replay).toEqual(first);
    expect(replayCommands).toEqual(firstCommands);
    expect(firstCommands.length).toBeGreaterThan(0);
  });

  it('a lease live at its write but expired now is not registered, however the record reads', async () => {
    // Prepare: the record is an hour old; the item is still in the table, expired
    const item = ip(21);
    const { handler, emf } = setup(testConfig(), (T0 + 3600) * 1000);

    // Act
    const result = await handler(streamEvent([insert(item, T0)]));

    // Assess
    expect(result).toEqual({ batchItemFailures: [] });
    expect(elbMock).not.toHaveReceivedAnyCommand();
    expect(emf.last(SYNC_METRICS.changesWithheld)).toBe(1);
  });

  it('publishes Records, ElbCalls and SyncLagMs (now − oldest ApproximateCreationDateTime) as EMF', async () => {
    // Prepare: records written at T0 and T0+1; the handler runs 1.5 s after T0
    const { handler, emf } = setup();

    // Act
    await handler(streamEvent([insert(ip(31), T0), insert(ip(32), T0 + 1)]));

    // Assess
    expect(emf.documents).toHaveLength(1);
    expect(emf.last(SYNC_METRICS.records)).toBe(2);
    expect(emf.last(SYNC_METRICS.elbCalls)).toBe(1);
    expect(emf.last(SYNC_METRICS.syncLagMs)).toBe(1_500);
    expect(emf.unit(SYNC_METRICS.syncLagMs)).toBe('Milliseconds');
    expect(emf.documents[0]).toMatchObject({ service: 'test', _aws: { CloudWatchMetrics: [expect.objectContaining({ Namespace: METRICS_NAMESPACE })] } });
  });
});

import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  ScanCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  type TargetHealthStateEnum,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { ElbTargets } from '../../lib/aws/elb-targets';
import { LeaseStore } from '../../lib/aws/lease-store';
import { AddressPolicy } from '../../lib/core/address-policy';
import { reconcileOnce } from '../../lib/registry/reconcile';
import type { RuntimeConfig } from '../../lib/core/runtime-config';
import { awsError, captureMetrics, elbTarget, Item, leaseItem, silentLogger, T0, targetKey, testConfig, TG } from '../support/lease-fixtures';
import { ERROR_METRICS, RECONCILE_METRICS } from '../../lib/core/metric-names';
import { ConfigError } from '../../lib/core/errors';
import { CONFIG_ENV } from '../../lib/core/runtime-config';
import { publishReconcileReport } from '../../lib/handlers/telemetry';

const elbMock = mockClient(ElasticLoadBalancingV2Client);
const ddbMock = mockClient(DynamoDBClient);
const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 3, retryMode: 'adaptive' });
const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials });

/** The pass runs at T0 + 0.5 s, so its `now` in seconds is T0. */
const NOW_MS = T0 * 1000 + 500;

interface Registered {
  id: string;
  port?: number;
  state?: TargetHealthStateEnum | string;
  reason?: string;
}

/** Shared, ordered log of every AWS call both clients received. */
let order: string[];
/** What each target group holds, as DescribeTargetHealth reports it. */
let groups: Record<string, Registered[]>;
/** The lease table as Scan sees it (pages of items). */
let scanPages: Item[][];
/** The lease table as a later consistent BatchGetItem sees it (absent = no item). */
let table: Map<string, Item>;

function setup(config: RuntimeConfig = testConfig(), extra: { sleep?: (ms: number) => Promise<void>; now?: () => number } = {}) {
  const emf = captureMetrics();
  const logger = silentLogger();
  const handler = createReconcileHandler({
    config,
    elbClient,
    dynamoClient,
    logger,
    metrics: emf.metrics,
    now: extra.now ?? (() => NOW_MS),
    sleep: extra.sleep ?? (async () => {}),
  });
  return { handler, emf, logger };
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 2));

/** One pass's dependencies, for tests that call `reconcileOnce` with a pass budget of their own. */
const passDeps = () => ({
  elb: new ElbTargets(elbClient),
  store: new LeaseStore(dynamoClient, 'leases'),
  routing: testConfig().routing,
  policy: new AddressPolicy(testConfig().routing.allowedCidrs),
  safetyValveShare: 0.5,
  now: () => NOW_MS,
});

beforeEach(() => {
  elbMock.reset();
  ddbMock.reset();
  order = [];
  groups = {};
  scanPages = [[]];
  table = new Map();

  elbMock.on(DescribeTargetHealthCommand).callsFake(async (input: { TargetGroupArn: string }) => {
    // Answer late, so a pass that did not wait for every group before scanning would be caught.
    await tick();
    order.push(`describe ${input.TargetGroupArn}`);
    return {
      TargetHealthDescriptions: (groups[input.TargetGroupArn] ?? []).map((t) => ({
        Target: { Id: t.id, Port: t.port ?? 8080 },
        TargetHealth: { State: t.state ?? 'healthy', ...(t.reason ? { Reason: t.reason } : {}) },
      })),
    };
  });
  elbMock.on(RegisterTargetsCommand).callsFake((input: { TargetGroupArn: string }) => {
    order.push(`register ${input.TargetGroupArn}`);
    return {};
  });
  elbMock.on(DeregisterTargetsCommand).callsFake((input: { TargetGroupArn: string }) => {
    order.push(`deregister ${input.TargetGroupArn}`);
    return {};
  });
  ddbMock.on(ScanCommand).callsFake((input: { ExclusiveStartKey?: Record<string, AttributeValue> }) => {
    order.push('scan');
    const page = input.ExclusiveStartKey ? Number(input.ExclusiveStartKey.page.N) : 0;
    const last = page === scanPages.length - 1;
    return {
      Items: scanPages[page],
      Count: scanPages[page].length,
      ConsumedCapacity: { TableName: 'leases', CapacityUnits: 1 },
      ...(last ? {} : { LastEvaluatedKey: { page: { N: String(page + 1) } } }),
    };
  });
  ddbMock.on(BatchGetItemCommand).callsFake((input: { RequestItems: Record<string, { Keys: { target: { S: string } }[]; ConsistentRead: boolean }> }) => {
    const { Keys, ConsistentRead } = input.RequestItems.leases;
    if (!ConsistentRead) throw new Error('an inconsistent read');
    for (const k of Keys) order.push(`get ${k.target.S}`);
    return { Responses: { leases: Keys.flatMap((k) => (table.has(k.target.S) ? [table.get(k.target.S)!] : [])) }, UnprocessedKeys: {} };
  });
  ddbMock.on(DeleteItemCommand).callsFake((input: { Key: { target: { S: string } } }) => {
    order.push(`delete ${input.Key.target.S}`);
    return {};
  });
});

/** Puts leases in the table: the scan and later reads both see them. */
function leases(...items: Item[]): Item[] {
  scanPages = [[...scanPages.flat(), ...items]];
  for (const item of items) table.set(item.target.S!, item);
  return items;
}

describe('reconcile handler: join storms', () => {
  it('does not register a lease the stream registered after the group was read', async () => {
    // Prepare: a live lease missing at the first group read; the stream registers it during the scan
    leases(leaseItem({ address: '10.0.3.1' }), leaseItem({ address: '10.0.3.2' }));
    groups[TG.vision] = [];
    ddbMock.on(ScanCommand).callsFake(() => {
      order.push('scan');
      groups[TG.vision] = [{ id: '10.0.3.1' }];
      return { Items: scanPages[0], Count: scanPages[0].length, ConsumedCapacity: { TableName: 'leases', CapacityUnits: 1 } };
    });
    const { handler } = setup();

    // Act
    await handler({});

    // Assess: only the one still missing is registered, after a second look at the group
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.0.3.2', Port: 8080 }] });
    expect(order.filter((o) => o === `describe ${TG.vision}`)).toHaveLength(2);
  });
});

describe('reconcile handler: read order and reads', () => {
  it('reads every target group (DescribeTargetHealth) before it scans the leases', async () => {
    // Prepare
    leases(leaseItem({ address: '10.0.0.1' }));
    groups[TG.vision] = [{ id: '10.0.0.1' }];
    const { handler } = setup();

    // Act
    await handler({});

    // Assess
    const describes = order.filter((o) => o.startsWith('describe'));
    expect(describes.sort()).toEqual([`describe ${TG.ec2}`, `describe ${TG.speech}`, `describe ${TG.vision}`].sort());
    const scanAt = order.indexOf('scan');
    expect(scanAt).toBeGreaterThan(-1);
    for (const d of describes) expect(order.indexOf(d)).toBeLessThan(scanAt);
    expect(elbMock).toHaveReceivedCommandTimes(DescribeTargetHealthCommand, 3);
  });

  it('scans with ConsistentRead and follows pagination', async () => {
    // Prepare: three pages; a live lease on the last page is missing from its group
    const [a, b, c] = [leaseItem({ address: '10.0.0.1' }), leaseItem({ address: '10.0.0.2' }), leaseItem({ address: '10.0.0.3' })];
    scanPages = [[a], [b], [c]];
    for (const item of [a, b, c]) table.set(item.target.S!, item);
    groups[TG.vision] = [{ id: '10.0.0.1' }, { id: '10.0.0.2' }];
    const { handler } = setup();

    // Act
    await handler({});

    // Assess
    expect(ddbMock).toHaveReceivedCommandTimes(ScanCommand, 3);
    expect(ddbMock).toHaveReceivedNthCommandWith(ScanCommand, 1, { TableName: 'leases', ConsistentRead: true });
    expect(ddbMock).toHaveReceivedNthCommandWith(ScanCommand, 2, { TableName: 'leases', ConsistentRead: true, ExclusiveStartKey: { page: { N: '1' } } });
    expect(ddbMock).toHaveReceivedNthCommandWith(ScanCommand, 3, { TableName: 'leases', ConsistentRead: true, ExclusiveStartKey: { page: { N: '2' } } });
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(c)] });
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
  });

  it('a target group that cannot be read is left alone (reads retried until the deadline); the others are repaired', async () => {
    // Prepare: speech cannot be read; vision misses a live lease and holds a stray; an expired lease waits to be swept
    const [a] = leases(
      leaseItem({ address: '10.0.0.1' }),
      leaseItem({ address: '10.0.0.2', capabilities: ['speech'] }),
      leaseItem({ address: '10.0.0.3', expiresAt: T0 - 5 }),
      leaseItem({ address: '10.0.0.4' }),
      leaseItem({ address: '10.0.0.5' }),
    );
    groups[TG.vision] = [{ id: '10.0.0.4' }, { id: '10.0.0.5' }, { id: '10.0.0.9' }];
    groups[TG.speech] = [{ id: '10.0.0.8' }];
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.speech }).rejects(awsError('InternalFailure', 500));

    // Act: a 300 ms pass budget bounds the retries of the unreadable group
    const report = await reconcileOnce({ ...passDeps(), passBudgetMs: 300 });

    // Assess
    expect(elbMock.commandCalls(DescribeTargetHealthCommand, { TargetGroupArn: TG.speech }).length).toBeGreaterThan(1);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(a)] });
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.0.0.9', Port: 8080 }] });
    expect(elbMock).not.toHaveReceivedCommandWith(DeregisterTargetsCommand, { TargetGroupArn: TG.speech });
    expect(report.errors.map((e) => e.message)).toEqual([expect.stringMatching(/describe on .*speech/)]);
    // With a group unread its targets may still be in, so no expired lease is swept (they stay as proof).
    expect(ddbMock).toHaveReceivedCommandTimes(DeleteItemCommand, 0);
  });

  it('when no target group can be read, the pass fails without scanning or changing anything', async () => {
    // Prepare
    leases(leaseItem({ address: '10.0.0.1' }));
    elbMock.on(DescribeTargetHealthCommand).rejects(awsError('InternalFailure', 500));

    // Act + Assess
    await expect(reconcileOnce({ ...passDeps(), passBudgetMs: 200 })).rejects.toThrow(/describe on /);
    expect(ddbMock).toHaveReceivedCommandTimes(ScanCommand, 0);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
  });
});

describe('reconcile handler: expired leases', () => {
  it('deletes an expired lease with the condition #expiresAt < :now at the pass time', async () => {
    // Prepare: expired lease, target still registered
    const expired = leaseItem({ address: '10.0.1.1', expiresAt: T0 - 5 });
    const live = leases(leaseItem({ address: '10.0.1.2' }), leaseItem({ address: '10.0.1.3' }), leaseItem({ address: '10.0.1.4' }));
    scanPages = [[...scanPages[0], expired]];
    groups[TG.vision] = [{ id: '10.0.1.1' }, ...live.map((l) => ({ id: l.address.S! }))];
    const { handler, emf } = setup();

    // Act
    await handler({});

    // Assess: deregistration (the consistent read finds no live lease), then the conditional delete
    expect(order.indexOf(`deregister ${TG.vision}`)).toBeLessThan(order.indexOf('delete 10.0.1.1:8080'));
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(DeleteItemCommand, {
      TableName: 'leases',
      Key: { target: { S: '10.0.1.1:8080' } },
      ConditionExpression: '#expiresAt < :now',
      ExpressionAttributeNames: { '#expiresAt': 'expiresAt' },
      ExpressionAttributeValues: { ':now': { N: String(T0) } },
    });
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(expired)] });
    expect(emf.last(RECONCILE_METRICS.expiredLeasesDeleted)).toBe(1);
    expect(emf.last(RECONCILE_METRICS.driftDeregistered)).toBe(1);
    expect(emf.last(RECONCILE_METRICS.liveLeases)).toBe(3);
  });

  it('a renewal that wins the race (ConditionalCheckFailed) is not counted, not an error, and keeps its target', async () => {
    // Prepare: the scan saw the lease expired; by the delete and the second read it was renewed
    const stale = leaseItem({ address: '10.0.1.1', expiresAt: T0 - 5 });
    const fresh = leaseItem({ address: '10.0.1.1', expiresAt: T0 + 30 });
    const live = leases(leaseItem({ address: '10.0.1.2' }), leaseItem({ address: '10.0.1.3' }), leaseItem({ address: '10.0.1.4' }));
    scanPages = [[...scanPages[0], stale]];
    table.set(fresh.target.S!, fresh);
    groups[TG.vision] = [{ id: '10.0.1.1' }, ...live.map((l) => ({ id: l.address.S! }))];
    ddbMock.on(DeleteItemCommand).rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: { httpStatusCode: 400 } }));
    const { handler, emf, logger } = setup();
    const error = vi.spyOn(logger, 'error');

    // Act
    const reports = await handler({});

    // Assess
    expect(ddbMock).toHaveReceivedCommandTimes(DeleteItemCommand, 1);
    expect(emf.last(RECONCILE_METRICS.expiredLeasesDeleted)).toBe(0);
    expect(reports[0].errors).toEqual([]);
    expect(error).not.toHaveBeenCalled();
    expect(order).toContain('get 10.0.1.1:8080');
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
  });

  it('keeps an expired lease whose target could not be deregistered: it stays the proof for the next pass', async () => {
    // Prepare: an expired lease, its deregistration fails in every round (ELB brown-out)
    const expired = leaseItem({ address: '10.0.1.1', expiresAt: T0 - 5 });
    scanPages = [[expired]];
    table.set(expired.target.S!, expired);
    groups[TG.vision] = [{ id: '10.0.1.1' }];
    elbMock.on(DeregisterTargetsCommand).rejects(awsError('ServiceUnavailable', 503));
    const { handler } = setup();

    // Act
    await handler({});

    // Assess
    expect(ddbMock).toHaveReceivedCommandTimes(DeleteItemCommand, 0);
  });
});

describe('reconcile handler: drift', () => {
  it('a registered target with no lease is deregistered after a consistent read confirms it', async () => {
    // Prepare: three live leases registered, one stray target with no lease
    const live = leases(leaseItem({ address: '10.0.2.1' }), leaseItem({ address: '10.0.2.2' }), leaseItem({ address: '10.0.2.3' }));
    groups[TG.vision] = [...live.map((l) => ({ id: l.address.S! })), { id: '10.0.2.99' }];
    const { handler, emf } = setup();

    // Act
    await handler({});

    // Assess
    // (read again after the call too: a lease acquired meanwhile would get its target back)
    expect(ddbMock).toHaveReceivedCommandWith(BatchGetItemCommand, { RequestItems: { leases: { Keys: [{ target: { S: '10.0.2.99:8080' } }], ConsistentRead: true } } });
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.0.2.99', Port: 8080 }] });
    expect(order.indexOf('get 10.0.2.99:8080')).toBeLessThan(order.indexOf(`deregister ${TG.vision}`));
    expect(emf.last(RECONCILE_METRICS.driftDeregistered)).toBe(1);
    expect(emf.last(RECONCILE_METRICS.safetyValveTripped)).toBe(0);
  });

  it('a live lease missing from its group is registered, in each of its groups', async () => {
    // Prepare
    const [a] = leases(leaseItem({ address: '10.0.3.1', capabilities: ['speech', 'vision'] }), leaseItem({ address: '10.0.3.2' }));
    groups[TG.vision] = [{ id: '10.0.3.2' }];
    const { handler, emf } = setup();

    // Act
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 2);
    expect(elbMock).toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(a)] });
    expect(elbMock).toHaveReceivedCommandWith(RegisterTargetsCommand, { TargetGroupArn: TG.speech, Targets: [elbTarget(a)] });
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(emf.last(RECONCILE_METRICS.driftRegistered)).toBe(2);
    expect(emf.last(RECONCILE_METRICS.elbCalls)).toBe(2);
  });

  it('leaves a target ELB is draining alone when no live lease wants it', async () => {
    // Prepare: a draining target with no lease, one with an expired lease, next to healthy live ones
    const live = leases(leaseItem({ address: '10.0.4.1' }), leaseItem({ address: '10.0.4.2' }), leaseItem({ address: '10.0.4.8', expiresAt: T0 - 1 }));
    groups[TG.vision] = [...live.map((l) => ({ id: l.address.S! })).slice(0, 2), { id: '10.0.4.8', state: 'draining' }, { id: '10.0.4.9', state: 'draining' }];
    const { handler } = setup();

    // Act
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(ddbMock).toHaveReceivedCommandTimes(BatchGetItemCommand, 0);
  });

  it('issue 9, case 2: registers a live lease\'s draining target again at once (a release and a re-acquire around the pass)', async () => {
    // Prepare: vision holds 10.0.11.14:8080 draining; the table has a live active lease for it
    const [back] = leases(leaseItem({ address: '10.0.11.14' }));
    groups[TG.vision] = [{ id: '10.0.11.14', state: 'draining', reason: 'Target.DeregistrationInProgress' }];
    const { handler, emf } = setup();

    // Act
    const [report] = await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(back)] });
    expect(report.drainingRevived).toBe(1);
    expect(emf.last(RECONCILE_METRICS.drainingRevived)).toBe(1);
  });

  it.each([
    ['initial', 'Elb.RegistrationInProgress'],
    ['unhealthy', 'Target.FailedHealthChecks'],
    ['unused', 'Target.NotInUse'],
    ['unavailable', 'Target.HealthCheckDisabled'],
  ])('counts a %s (%s) target as registered: a live lease costs nothing, an expired one removes it', async (state, reason) => {
    // Prepare
    leases(leaseItem({ address: '10.0.12.1' }), leaseItem({ address: '10.0.12.2', expiresAt: T0 - 1 }), leaseItem({ address: '10.0.12.3' }));
    groups[TG.vision] = ['10.0.12.1', '10.0.12.2', '10.0.12.3'].map((id) => ({ id, state, reason }));
    const { handler } = setup();

    // Act
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.0.12.2', Port: 8080 }] });
  });

  it('a lease that appears between the scan and the confirming read is never deregistered', async () => {
    // Prepare: the scan does not see 10.0.5.9; the consistent GetItem does, live
    const live = leases(leaseItem({ address: '10.0.5.1' }), leaseItem({ address: '10.0.5.2' }), leaseItem({ address: '10.0.5.3' }));
    groups[TG.vision] = [...live.map((l) => ({ id: l.address.S! })), { id: '10.0.5.9' }];
    table.set(targetKey('10.0.5.9'), leaseItem({ address: '10.0.5.9', expiresAt: T0 + 30 }));
    const { handler, emf } = setup();

    // Act
    const reports = await handler({});

    // Assess
    expect(order).toContain('get 10.0.5.9:8080');
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(reports[0].deregistrationsWithheld).toBe(1);
    expect(emf.last(RECONCILE_METRICS.driftDeregistered)).toBe(0);
  });
});

describe('reconcile handler: safety valve (issue 9, case 3)', () => {
  const ten = Array.from({ length: 10 }, (_, i) => `10.0.6.${i + 1}`);

  it('a wiped table: ten healthy targets stay for one pass, and go when the next pass agrees', async () => {
    // Prepare: the table is really empty
    groups[TG.vision] = ten.map((id) => ({ id, state: 'healthy' }));
    scanPages = [[]];
    const { handler, emf, logger } = setup();
    const warn = vi.spyOn(logger, 'warn');

    // Act: first pass
    const [first] = await handler({});

    // Assess: nothing removed, the valve reported
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    expect(first.safetyValveTripped).toEqual(['vision']);
    expect(first.removalsHeld).toBe(10);
    expect(emf.last(RECONCILE_METRICS.safetyValveTripped)).toBe(1);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('safety valve'), expect.objectContaining({ capabilities: ['vision'] }));

    // Act: second pass of the same container, the table still empty
    const [second] = await handler({});

    // Assess: all ten go, each confirmed by a read
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: ten.map((Id) => ({ Id, Port: 8080 })) });
    expect(second.driftDeregistered).toBe(10);
    for (const id of ten) expect(order).toContain(`get ${id}:8080`);
  });

  it('a cold start waits one more pass; a lease that comes back between passes keeps its target', async () => {
    // Prepare
    groups[TG.vision] = ten.map((id) => ({ id, state: 'healthy' }));
    scanPages = [[]];
    await setup().handler({});
    const { handler } = setup(); // a new container: it saw nothing

    // Act
    await handler({});
    expect(elbMock).toHaveReceivedCommandTimes(DeregisterTargetsCommand, 0);
    leases(leaseItem({ address: '10.0.6.1' }));
    await handler({});

    // Assess: the nine still without a lease go; the one whose lease came back stays
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: ten.slice(1).map((Id) => ({ Id, Port: 8080 })) });
  });

  it('expired leases are proof enough: a crashed fleet (3 of 4 expired) leaves in one pass', async () => {
    // Prepare
    leases(...[1, 2, 3].map((n) => leaseItem({ address: `10.0.6.${n}`, expiresAt: T0 - 10 })), leaseItem({ address: '10.0.6.4' }));
    groups[TG.vision] = [1, 2, 3, 4].map((n) => ({ id: `10.0.6.${n}` }));
    const { handler, emf } = setup();

    // Act
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [1, 2, 3].map((n) => ({ Id: `10.0.6.${n}`, Port: 8080 })) });
    expect(emf.last(RECONCILE_METRICS.safetyValveTripped)).toBe(0);
  });

  it('leases that exist and say no (draining status) are proof enough too', async () => {
    // Prepare: 2 healthy targets whose leases were switched to draining
    const items = leases(leaseItem({ address: '10.0.7.1', status: 'draining' }), leaseItem({ address: '10.0.7.2', status: 'draining' }));
    groups[TG.vision] = items.map((i) => ({ id: i.address.S! }));
    const { handler, emf } = setup();

    // Act
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: items.map(elbTarget) });
    expect(emf.last(RECONCILE_METRICS.safetyValveTripped)).toBe(0);
  });

  it('a few targets without a lease (below the share) go at once, whatever their health', async () => {
    // Prepare: 3 live targets, 1 unhealthy one without a lease
    leases(leaseItem({ address: '10.0.8.1' }), leaseItem({ address: '10.0.8.2' }), leaseItem({ address: '10.0.8.3' }));
    groups[TG.vision] = [{ id: '10.0.8.1' }, { id: '10.0.8.2' }, { id: '10.0.8.3' }, { id: '10.0.8.4', state: 'unhealthy' }];
    const { handler, emf } = setup();

    // Act
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [{ Id: '10.0.8.4', Port: 8080 }] });
    expect(emf.last(RECONCILE_METRICS.safetyValveTripped)).toBe(0);
  });
});

describe('reconcile handler: targets ELB refused for good (issue 9, case 4)', () => {
  it('are not sent again until their lease changes, and do not drag the other targets into one call each', async () => {
    // Prepare: eight live leases missing from vision; ELB refuses 10.0.13.5 whenever it is in a call
    const items = leases(...Array.from({ length: 8 }, (_, i) => leaseItem({ address: `10.0.13.${i + 1}` })));
    groups[TG.vision] = [];
    elbMock.on(RegisterTargetsCommand).callsFake((input: { Targets: { Id: string }[] }) => {
      if (input.Targets.some((t) => t.Id === '10.0.13.5')) throw awsError('ValidationError', 400, 'The IP address 10.0.13.5 is not valid');
      groups[TG.vision] = [...(groups[TG.vision] ?? []), ...input.Targets.map((t) => ({ id: t.Id }))];
      return {};
    });
    const { handler } = setup();
    const sent = () => elbMock.commandCalls(RegisterTargetsCommand).map((c) => c.args[0].input.Targets!.length);

    // Act: first pass
    await handler({});
    // Assess: halves, not one call per target: [1–8] ✗ → [1–4] ✓, [5–8] ✗ → [5,6] ✗ → [5] ✗, [6] ✓; [7,8] ✓
    expect(sent()).toEqual([8, 4, 4, 2, 1, 1, 2]);
    elbMock.resetHistory();

    // Act: more passes; then a new agent acquires the refused address (a new lease version)
    await handler({});
    await handler({});
    expect(elbMock).toHaveReceivedCommandTimes(RegisterTargetsCommand, 0);
    leases({ ...items[4], leaseToken: { S: 'new-holder' } });
    await handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(items[4])] });
  });
});

describe('reconcile: a pass keeps to its budget', () => {
  it('stops sending and waiting when the budget is spent, whatever ELB does; the next pass takes over', async () => {
    // Prepare: a stray target whose DeregisterTargets never answers
    leases(leaseItem({ address: '10.0.14.1' }), leaseItem({ address: '10.0.14.2' }));
    groups[TG.vision] = [{ id: '10.0.14.1' }, { id: '10.0.14.2' }, { id: '10.0.14.9' }];
    elbMock.on(DeregisterTargetsCommand).callsFake(() => new Promise(() => undefined));
    const started = Date.now();

    // Act: the real clock, a 300 ms budget
    const report = await reconcileOnce({ ...passDeps(), now: Date.now, passBudgetMs: 300 });

    // Assess
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(report.driftDeregistered).toBe(0);
    expect(report.errors.map((e) => e.transient)).toEqual([true]);
  });
});

describe('reconcile: a lease that ends while its registration is in flight', () => {
  it('is taken out again at once (the read after the call)', async () => {
    // Prepare: vision misses a live lease, which is released while RegisterTargets is in flight
    const [a] = leases(leaseItem({ address: '10.0.16.1' }));
    elbMock.on(RegisterTargetsCommand).callsFake(() => {
      table.delete('10.0.16.1:8080');
      return {};
    });

    // Act
    const [report] = await setup().handler({});

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(DeregisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(a)] });
    expect(report.driftRegistered).toBe(0);
    expect(report.driftDeregistered).toBe(1);
  });
});

describe('reconcile: a call abandoned at its deadline that landed all the same', () => {
  it('is not sent again: the group is looked at first', async () => {
    // Prepare: vision misses a live lease; its RegisterTargets lands but the answer never comes
    const [a] = leases(leaseItem({ address: '10.0.15.1' }));
    elbMock.on(RegisterTargetsCommand).callsFake(() => {
      groups[TG.vision] = [{ id: '10.0.15.1' }];
      return new Promise(() => undefined);
    });

    // Act: a 100 ms decision deadline
    const report = await reconcileOnce({ ...passDeps(), deadlineMs: 100 });

    // Assess
    expect(elbMock).toHaveReceivedCommandExactlyOnceWith(RegisterTargetsCommand, { TargetGroupArn: TG.vision, Targets: [elbTarget(a)] });
    expect(report.driftRegistered).toBe(1);
    expect(report.errors).toEqual([]);
  });
});

describe('reconcile handler: repeat mode', () => {
  it('with reconcileRepeatSeconds 5 it runs several passes, sleeping 5 s between them, and stops before the invocation runs out', async () => {
    // Prepare: the invocation has 40 s left; only the injected sleep advances time
    let remainingMs = 40_000;
    let clockMs = NOW_MS;
    const sleeps: number[] = [];
    const sleep = async (ms: number) => {
      sleeps.push(ms);
      remainingMs -= ms;
      clockMs += ms;
    };
    leases(leaseItem({ address: '10.0.9.1', expiresAt: T0 + 3600 }));
    groups[TG.vision] = [{ id: '10.0.9.1' }];
    const { handler, emf } = setup(testConfig({ reconcileRepeatSeconds: 5 }), { sleep, now: () => clockMs });

    // Act
    const reports = await handler({}, { getRemainingTimeInMillis: () => remainingMs });

    // Assess: a pass starts while ≥ 2 × 5 s + 5 s remain after the previous one
    // (40, 35, 30, 25, 20, 15 → sleep; 10 → stop): 7 passes, 6 sleeps of 5 s.
    expect(reports).toHaveLength(7);
    expect(sleeps).toEqual(Array(6).fill(5_000));
    expect(remainingMs).toBeGreaterThan(0);
    expect(ddbMock).toHaveReceivedCommandTimes(ScanCommand, 7);
    expect(elbMock).toHaveReceivedCommandTimes(DescribeTargetHealthCommand, 7 * 3);
    expect(emf.all(RECONCILE_METRICS.liveLeases)).toEqual(Array(7).fill(1));
  });

  it('with reconcileRepeatSeconds 0 it runs exactly one pass however much time is left', async () => {
    // Prepare
    const sleep = vi.fn(async () => {});
    const { handler } = setup(testConfig({ reconcileRepeatSeconds: 0 }), { sleep });

    // Act
    const reports = await handler({}, { getRemainingTimeInMillis: () => 900_000 });

    // Assess
    expect(reports).toHaveLength(1);
    expect(sleep).not.toHaveBeenCalled();
    expect(ddbMock).toHaveReceivedCommandTimes(ScanCommand, 1);
  });
});

describe('reconcile handler: errors reach metrics by their code', () => {
  it('an invocation whose configuration cannot be resolved counts under ConfigErrors, logs the code, and fails', async () => {
    // Prepare: no explicit configuration, and an environment that says nothing usable
    const previous = process.env[CONFIG_ENV];
    process.env[CONFIG_ENV] = '{"tableName": ""}';
    const emf = captureMetrics();
    const logger = silentLogger();
    const error = vi.spyOn(logger, 'error');
    const handler = createReconcileHandler({ elbClient, dynamoClient, logger, metrics: emf.metrics });

    try {
      // Act + Assess
      await expect(handler()).rejects.toThrow(ConfigError);
      expect(emf.last(ERROR_METRICS.INVALID_CONFIG)).toBe(1);
      expect(error).toHaveBeenCalledWith('invocation failed', expect.objectContaining({ code: 'INVALID_CONFIG' }));
      expect(elbMock.calls()).toHaveLength(0);
    } finally {
      if (previous === undefined) delete process.env[CONFIG_ENV];
      else process.env[CONFIG_ENV] = previous;
    }
  });

  it('a target group that cannot be read counts its ELB error under ElbTransientErrors', async () => {
    // Prepare
    leases(leaseItem({ address: '10.0.0.1' }), leaseItem({ address: '10.0.0.2', capabilities: ['speech'] }));
    elbMock.on(DescribeTargetHealthCommand, { TargetGroupArn: TG.speech }).rejects(awsError('InternalFailure', 500));
    const emf = captureMetrics();
    const deps = { ...passDeps(), passBudgetMs: 200 };
    const report = await reconcileOnce(deps);

    // Act
    publishReconcileReport(report, silentLogger(), emf.metrics);

    // Assess
    expect(report.errors.map((e) => e.code)).toEqual(['ELB_TRANSIENT']);
    expect(emf.last(ERROR_METRICS.ELB_TRANSIENT)).toBe(1);
  });
});

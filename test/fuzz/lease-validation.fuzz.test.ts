/**
 * Bad input, pure level: lease items as any writer could put them in the table (wrong types,
 * missing keys, 400 KB items, control characters, every IPv4/IPv6 edge, unknown and malformed
 * capabilities, keys that lie about the address, expiries in milliseconds), checked against
 * the codec, the planner and both handlers (with aws-sdk-client-mock).
 *
 * Expected outcomes come from the generators (test/fuzz/lease-cases.ts), never from the code
 * under test. Seeded: set FUZZ_SEED to explore other inputs, FUZZ_RUNS_FACTOR to run more.
 */
import { DeleteItemCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  type RegisterTargetsCommandInput,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { decodeLease, LeaseChangeRecord, LeaseRejectionReason, planStreamBatch, RawItem, routeItem } from '../../lib/core';
import { addressPolicyFor, RuntimeConfig } from '../../lib/core/runtime-config';
import { ALLOWED_CIDRS, captureMetrics, Item, silentLogger, T0, testConfig, TG } from '../support/lease-fixtures';
import { FakeLeaseTable } from '../support/fake-lease-table';
import { anyLease, arbitraryItem, FuzzEnv, invalidLease, LeaseCase, leaseBatch, validLease } from './lease-cases';
import { RECONCILE_METRICS, SYNC_METRICS } from '../../lib/core/metric-names';

const SEED = Number(process.env.FUZZ_SEED ?? 20_260_401);
const FACTOR = Number(process.env.FUZZ_RUNS_FACTOR ?? 1);
const runs = (n: number) => ({ seed: SEED, numRuns: Math.max(1, Math.round(n * FACTOR)) });

/** The unit-test deployment: vision and speech take IPs, ec2 takes instances; fd00::/8 is allowed too. */
const config: RuntimeConfig = testConfig({ routing: { ...testConfig().routing, allowedCidrs: [...ALLOWED_CIDRS, 'fd00::/8'] } });
const routing = config.routing;
const policy = addressPolicyFor(routing);
const ENV: FuzzEnv = { ipCapabilities: ['vision', 'speech'], instanceCapabilities: ['ec2'], ipv6: true, loopback: false, storable: false, nowSeconds: T0 };
const ARN: Record<string, string> = { vision: TG.vision, speech: TG.speech, ec2: TG.ec2 };

const REASONS = new Set<LeaseRejectionReason>([
  'MISSING_ATTRIBUTE',
  'WRONG_TYPE',
  'TARGET_MISMATCH',
  'BAD_PORT',
  'BAD_ADDRESS',
  'ADDRESS_NOT_ALLOWED',
  'BAD_CAPABILITIES',
  'BAD_STATUS',
  'BAD_EXPIRY',
  'METADATA_TOO_LARGE',
  'UNKNOWN_CAPABILITY',
  'TARGET_TYPE_MISMATCH',
]);
/** A rejection message fits one readable log line, whatever the item held. */
const MAX_MESSAGE = 1024;
// eslint-disable-next-line no-control-regex
const C0_CONTROL = /[\u0000-\u001f]/;

/** Expected members per target group ARN: sorted `id:port` keys of every routable, live case. */
function expectedMembers(cases: readonly LeaseCase[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of cases) {
    for (const capability of c.groups) {
      const arn = ARN[capability];
      out.set(arn, [...(out.get(arn) ?? []), `${c.target!.Id}:${c.target!.Port}`].sort());
    }
  }
  return out;
}

function insertRecord(c: LeaseCase, index: number): LeaseChangeRecord {
  return { id: String(index), newImage: c.item as RawItem, writtenAtSeconds: T0 };
}

/** A record exactly as Lambda delivers it; items without a readable key get no Keys. */
function lambdaInsert(c: LeaseCase, index: number): DynamoDBRecord {
  const seq = String(100_000_000 + index).padStart(21, '0');
  return {
    eventID: `event-${seq}`,
    eventName: 'INSERT',
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    dynamodb: {
      ApproximateCreationDateTime: T0,
      ...(c.key === undefined ? {} : { Keys: { target: { S: c.key } } }),
      NewImage: c.item as never,
      SequenceNumber: seq,
      SizeBytes: 256,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  };
}

describe('decodeLease on anything at all', () => {
  it('never throws; every rejection has a known reason and a bounded, single-line message', () => {
    const input = fc.oneof(
      fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true }),
      arbitraryItem,
      anyLease(ENV).map((f) => f(1).item),
      // Callers other than the stream (the SDK, tests, tools) can hand over values JSON cannot hold.
      anyLease(ENV).chain((f) => fc.anything({ withBigInt: true, withMap: true, withDate: true }).map((m) => ({ ...f(2).item, metadata: { M: { m } } }))),
    );
    fc.assert(
      fc.property(input, (item) => {
        const decoded = decodeLease(item, policy);
        const routed = routeItem(item as RawItem, policy, routing);
        const rejections = decoded.ok ? routed.rejections : decoded.rejections;
        if (!decoded.ok) {
          expect(decoded.rejections.length).toBeGreaterThan(0);
          expect(routed.memberships).toEqual([]);
        }
        for (const r of rejections) {
          expect(REASONS.has(r.reason), r.reason).toBe(true);
          expect(r.message.length).toBeGreaterThan(0);
          expect(r.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
          expect(r.message).not.toMatch(C0_CONTROL);
        }
      }),
      runs(3000),
    );
  });
});

describe('each kind of bad lease', () => {
  it('is rejected with its specific reason and routes to no group', () => {
    fc.assert(
      fc.property(invalidLease(ENV), fc.nat(60_000), (factory, slot) => {
        const c = factory(slot);
        const routed = routeItem(c.item as RawItem, policy, routing);
        expect(routed.memberships, c.label).toEqual([]);
        expect(
          routed.rejections.map((r) => r.reason),
          c.label,
        ).toContain(c.reason);
        // Rejections name the lease key whenever the item has one, so an operator can find it.
        if (c.key !== undefined) for (const r of routed.rejections) expect(r.target, c.label).toBe(c.key);
      }),
      runs(3000),
    );
  });

  it('a valid lease routes to exactly the groups it names, with its own target and no rejection', () => {
    fc.assert(
      fc.property(validLease(ENV), fc.nat(60_000), (factory, slot) => {
        const c = factory(slot);
        const routed = routeItem(c.item as RawItem, policy, routing);
        expect(routed.rejections, c.label).toEqual([]);
        expect(routed.memberships.map((m) => m.targetGroupArn).sort()).toEqual(c.groups.map((g) => ARN[g]).sort());
        for (const m of routed.memberships) {
          expect(m.target).toEqual({
            key: c.key,
            id: c.target!.Id,
            port: c.target!.Port,
            ...(c.target!.AvailabilityZone ? { availabilityZone: c.target!.AvailabilityZone } : {}),
          });
        }
      }),
      runs(1000),
    );
  });
});

describe('planStreamBatch with bad leases among good ones', () => {
  it('registers exactly the valid live leases, deregisters nothing, and reports every rejected lease by key and reason', () => {
    fc.assert(
      fc.property(leaseBatch(ENV, 0, 30), (cases) => {
        const plan = planStreamBatch(cases.map(insertRecord), policy, routing);
        const planned = new Map(plan.groups.map((g) => [g.targetGroupArn, g.register.map((t) => `${t.id}:${t.port}`).sort()]));
        expect(planned).toEqual(expectedMembers(cases));
        expect(plan.groups.flatMap((g) => g.deregister)).toEqual([]);
        expect(plan.kinds).toHaveLength(cases.length);
        for (const c of cases) {
          const mine = plan.rejections.filter((r) => c.key !== undefined && r.target === c.key);
          if (c.reason === undefined) expect(mine, c.label).toEqual([]);
          else if (c.key !== undefined) expect(mine.map((r) => r.reason), c.label).toContain(c.reason);
        }
      }),
      runs(500),
    );
  });

  it('a lease that turns invalid leaves all its groups; written valid-then-invalid in one batch it never joins', () => {
    const objectCase = invalidLease(ENV).filter((f) => {
      const item = f(0).item as unknown;
      return typeof item === 'object' && item !== null && !Array.isArray(item);
    });
    fc.assert(
      fc.property(validLease(ENV), objectCase, fc.nat(30_000), (validFactory, invalidFactory, slot) => {
        const before = validFactory(2 * slot);
        // Same key, invalid body: whatever else is wrong, the key no longer matches the address.
        const after = { ...invalidFactory(2 * slot + 1).item, target: { S: before.key } } as RawItem;
        const oldImage = before.item as RawItem;

        const turned = planStreamBatch([{ id: '1', key: before.key, oldImage, newImage: after, writtenAtSeconds: T0 }], policy, routing);
        expect(turned.groups.flatMap((g) => g.register)).toEqual([]);
        expect(turned.groups.map((g) => g.targetGroupArn).sort()).toEqual(before.groups.map((g) => ARN[g]).sort());
        for (const g of turned.groups) expect(g.deregister.map((t) => t.key)).toEqual([before.key]);

        const both = planStreamBatch(
          [
            { id: '1', key: before.key, newImage: oldImage, writtenAtSeconds: T0 },
            { id: '2', key: before.key, oldImage, newImage: after, writtenAtSeconds: T0 },
          ],
          policy,
          routing,
        );
        // Nothing to send; only if the batch is a retry after the join landed, its removal (B7's fix).
        expect(both.groups.flatMap((g) => [...g.register, ...g.deregister])).toEqual([]);
        for (const g of both.groups) expect(g.ifReplayed?.register ?? []).toEqual([]);
      }),
      runs(500),
    );
  });
});

describe('the handlers on bad leases (aws-sdk-client-mock)', () => {
  const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
  const elbClient = new ElasticLoadBalancingV2Client({ region: 'us-east-1', credentials, maxAttempts: 1 });
  const dynamoClient = new DynamoDBClient({ region: 'us-east-1', credentials, maxAttempts: 1 });
  const elbMock = mockClient(ElasticLoadBalancingV2Client);
  const ddbMock = mockClient(DynamoDBClient);
  /** Keyed cases only: every item DynamoDB stores or streams has its key. */
  const keyedBatch = leaseBatch(ENV, 0, 25).map((cases) => cases.filter((c) => c.key !== undefined));

  /** `id:port` of every target each group received in RegisterTargets calls, sorted. */
  function registered(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const call of elbMock.commandCalls(RegisterTargetsCommand)) {
      const input = call.args[0].input as RegisterTargetsCommandInput;
      const keys = (input.Targets ?? []).map((t) => `${t.Id}:${t.Port}`);
      out.set(input.TargetGroupArn!, [...(out.get(input.TargetGroupArn!) ?? []), ...keys].sort());
    }
    return out;
  }

  it('stream sync: registers only the valid leases, never fails the batch, logs each rejected lease with its reason and counts them in RejectedLeases', async () => {
    await fc.assert(
      fc.asyncProperty(keyedBatch, async (cases) => {
        elbMock.reset();
        elbMock.on(RegisterTargetsCommand).resolves({});
        elbMock.on(DeregisterTargetsCommand).resolves({});
        const emf = captureMetrics();
        const logger = silentLogger();
        const warn = vi.spyOn(logger, 'warn');
        ddbMock.reset();
        const table = new FakeLeaseTable().install(ddbMock);
        for (const c of cases) if (c.key !== undefined) table.items.set(c.key, c.item as Item);
        const handler = createSyncHandler({ config, elbClient, dynamoClient, logger, metrics: emf.metrics, now: () => T0 * 1000 });

        const result = await handler({ Records: cases.map(lambdaInsert) });

        expect(result.batchItemFailures).toEqual([]);
        expect(registered()).toEqual(expectedMembers(cases));
        expect(elbMock.commandCalls(DeregisterTargetsCommand)).toHaveLength(0);
        // At most one RegisterTargets per group (no batch here exceeds 200 targets).
        expect(elbMock.commandCalls(RegisterTargetsCommand)).toHaveLength(expectedMembers(cases).size);
        const rejected = cases.filter((c) => c.reason !== undefined);
        expect(emf.last(SYNC_METRICS.rejectedLeases)).toBe(rejected.length);
        const logged = warn.mock.calls.filter(([m]) => m === 'lease rejected').map(([, extra]) => extra as { reason: string; target: string; detail: string });
        for (const c of rejected) {
          expect(logged, c.label).toContainEqual(expect.objectContaining({ target: c.key, reason: c.reason, detail: expect.any(String) }));
        }
        expect(new Set(logged.map((l) => l.target))).toEqual(new Set(rejected.map((c) => c.key)));
      }),
      runs(150),
    );
  });

  it('reconcile: repairs drift for valid leases only, whatever else the scan returns', async () => {
    await fc.assert(
      fc.asyncProperty(keyedBatch, async (cases) => {
        elbMock.reset();
        ddbMock.reset();
        elbMock.on(DescribeTargetHealthCommand).resolves({ TargetHealthDescriptions: [] });
        elbMock.on(RegisterTargetsCommand).resolves({});
        elbMock.on(DeregisterTargetsCommand).resolves({});
        const table = new FakeLeaseTable().install(ddbMock);
        for (const c of cases) if (c.key !== undefined) table.items.set(c.key, c.item as Item);
        ddbMock.on(ScanCommand).resolves({ Items: cases.map((c) => c.item) as never, Count: cases.length });
        ddbMock.on(DeleteItemCommand).resolves({});
        const emf = captureMetrics();
        const handler = createReconcileHandler({ config, elbClient, dynamoClient, logger: silentLogger(), metrics: emf.metrics, now: () => T0 * 1000 + 500 });

        const [report] = await handler();

        expect(registered()).toEqual(expectedMembers(cases));
        expect(elbMock.commandCalls(DeregisterTargetsCommand)).toHaveLength(0);
        expect(report.errors).toEqual([]);
        expect(emf.last(RECONCILE_METRICS.rejectedLeases)).toBe(cases.filter((c) => c.reason !== undefined).length);
        expect(report.liveLeases).toBe(cases.filter((c) => c.groups.length > 0 || (c.reason !== undefined && ['UNKNOWN_CAPABILITY', 'TARGET_TYPE_MISMATCH'].includes(c.reason))).length);
      }),
      runs(100),
    );
  });
});

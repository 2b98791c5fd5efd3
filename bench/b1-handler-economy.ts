import { performance } from 'node:perf_hooks';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createSyncHandler } from '../lib/handlers/stream-sync-handler';
import { RoutingConfig } from '../lib/core/lease-schema';
import { CountingElb } from '../test/support/counting-elb';
import { InMemoryLeaseTable } from '../test/support/in-memory-lease-table';
import { createNaiveRegistrar } from './naive-registrar';
import { capabilityNames, streamWorkload, WorkloadMix } from './stream-workload';

/** One batch size of B1. */
export interface B1Run {
  readonly batchSize: number;
  readonly batches: number;
  readonly ours: {
    readonly elbCalls: number;
    readonly recordsPerSecond: number;
    readonly heapPeakMiB: number;
    /** The most Register+Deregister calls any one target group got in any one batch. */
    readonly maxCallsToOneGroupPerBatch: number;
    /** Calls per batch over groups that got a call, averaged over batches with calls. */
    readonly meanCallsPerCalledGroup: number;
  };
  readonly naive: { readonly elbCalls: number; readonly recordsPerSecond: number };
  /** naive.elbCalls / ours.elbCalls */
  readonly callRatio: number;
  /** Every heartbeat record of the mix replayed on its own, in batches of the same size. */
  readonly heartbeatsAlone: { readonly records: number; readonly oursCalls: number; readonly naiveCalls: number };
  /** Both registrars end with the same target groups. */
  readonly finalStateEqual: boolean;
}

export interface B1Result {
  readonly scenario: 'B1';
  readonly records: number;
  readonly mix: Omit<WorkloadMix, 'batchSize'>;
  readonly runs: readonly B1Run[];
}

export function b1Routing(capabilities: number): RoutingConfig {
  return {
    allowedCidrs: ['10.0.0.0/8'],
    capabilities: Object.fromEntries(capabilityNames(capabilities).map((c) => [c, { targetGroupArn: `arn:tg/${c}`, targetType: 'ip' as const }])),
  };
}

/** The workload's clock starts here (stream-workload.ts); its leases live a day from it. */
const WORKLOAD_START_MS = 1_800_000_000_000;

/**
 * Our sync handler against the counting ELB and an in-memory lease table that agrees with the
 * stream (each batch's records are applied to it before the batch is handled), so its
 * confirming reads see what DynamoDB would.
 */
export function benchSyncHandler(routing: RoutingConfig, elb: CountingElb, table = new InMemoryLeaseTable('bench')) {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const handler = createSyncHandler({
    config: { tableName: 'bench', routing, safetyValveShare: 0.5, reconcileRepeatSeconds: 0 },
    elbClient: elb.asClient(),
    dynamoClient: table.asClient(),
    logger: new Logger({ logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'AgentLbBench', serviceName: 'bench' }),
    now: () => WORKLOAD_START_MS,
  });
  return (event: DynamoDBStreamEvent) => {
    table.applyRecords(event.Records);
    return handler(event);
  };
}

/**
 * B1 for one batch size: the same Lambda-shaped stream batches through our sync handler and
 * through the per-event baseline, both against an in-memory counting ELB. Throughput is timed
 * in a pass with nothing else in the loop, after an instrumented pass that also warms the JIT.
 */
export async function runB1Batch(mix: WorkloadMix): Promise<B1Run> {
  const routing = b1Routing(mix.capabilities);
  const events = [...streamWorkload(mix)];

  // Instrumented pass: calls per group per batch and heap.
  const probe = new CountingElb();
  const probeHandler = benchSyncHandler(routing, probe);
  let heapPeak = 0;
  let maxPerGroup = 0;
  let calledGroups = 0;
  let batchesWithCalls = 0;
  let callsInBatchesWithCalls = 0;
  for (const event of events) {
    const before = new Map(probe.mutatingByGroup);
    const callsBefore = probe.mutating;
    await probeHandler(event);
    let groupsThisBatch = 0;
    for (const [arn, n] of probe.mutatingByGroup) {
      const d = n - (before.get(arn) ?? 0);
      if (d > 0) groupsThisBatch++;
      maxPerGroup = Math.max(maxPerGroup, d);
    }
    if (groupsThisBatch > 0) {
      batchesWithCalls++;
      calledGroups += groupsThisBatch;
      callsInBatchesWithCalls += probe.mutating - callsBefore;
    }
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }

  const ours = new CountingElb();
  const handler = benchSyncHandler(routing, ours);
  const t0 = performance.now();
  for (const event of events) await handler(event);
  const oursSeconds = (performance.now() - t0) / 1000;

  const naiveElb = new CountingElb();
  const naive = createNaiveRegistrar(naiveElb.asClient(), routing);
  const t1 = performance.now();
  for (const event of events) await naive(event);
  const naiveSeconds = (performance.now() - t1) / 1000;

  const heartbeats = heartbeatBatches(events, mix.batchSize);
  const hbOurs = new CountingElb();
  const hbHandler = benchSyncHandler(routing, hbOurs);
  const hbNaive = new CountingElb();
  const hbBaseline = createNaiveRegistrar(hbNaive.asClient(), routing);
  for (const event of heartbeats) {
    await hbHandler(event);
    await hbBaseline(event);
  }

  const same = [...new Set([...ours.groups.keys(), ...naiveElb.groups.keys()])].every((arn) => {
    const a = ours.groups.get(arn) ?? new Set();
    const b = naiveElb.groups.get(arn) ?? new Set();
    return a.size === b.size && [...a].every((k) => b.has(k));
  });
  return {
    batchSize: mix.batchSize,
    batches: events.length,
    ours: {
      elbCalls: ours.mutating,
      recordsPerSecond: Math.round(mix.records / oursSeconds),
      heapPeakMiB: Math.round((heapPeak / 2 ** 20) * 10) / 10,
      maxCallsToOneGroupPerBatch: maxPerGroup,
      meanCallsPerCalledGroup: calledGroups === 0 ? 0 : Math.round((callsInBatchesWithCalls / calledGroups) * 100) / 100,
    },
    naive: { elbCalls: naiveElb.mutating, recordsPerSecond: Math.round(mix.records / naiveSeconds) },
    callRatio: Math.round((naiveElb.mutating / Math.max(1, ours.mutating)) * 10) / 10,
    heartbeatsAlone: { records: heartbeats.reduce((s, e) => s + e.Records.length, 0), oursCalls: hbOurs.mutating, naiveCalls: hbNaive.mutating },
    finalStateEqual: same,
  };
}

/** The heartbeat (MODIFY) records of the workload, in their order, re-batched on their own. */
function heartbeatBatches(events: readonly DynamoDBStreamEvent[], batchSize: number): DynamoDBStreamEvent[] {
  const records = events.flatMap((e) => e.Records.filter((r) => r.eventName === 'MODIFY'));
  const out: DynamoDBStreamEvent[] = [];
  for (let i = 0; i < records.length; i += batchSize) out.push({ Records: records.slice(i, i + batchSize) });
  return out;
}

/** B1 at each batch size, on the same seeded mix. */
export async function runB1(mix: Omit<WorkloadMix, 'batchSize'>, batchSizes: readonly number[]): Promise<B1Result> {
  const runs: B1Run[] = [];
  for (const batchSize of batchSizes) runs.push(await runB1Batch({ ...mix, batchSize }));
  return { scenario: 'B1', records: mix.records, mix, runs };
}

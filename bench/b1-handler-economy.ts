import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createSyncHandler } from '../lambdas/stream-sync';
import { RoutingConfig } from '../lib/core/lease-schema';
import { CountingElb } from './counting-elb';
import { createNaiveRegistrar } from './naive-registrar';
import { capabilityNames, streamWorkload, WorkloadMix } from './stream-workload';

export interface B1Result {
  readonly scenario: 'B1';
  readonly records: number;
  readonly batches: number;
  readonly mix: WorkloadMix;
  readonly ours: { elbCalls: number; recordsPerSecond: number; heapPeakMiB: number; maxCallsPerTouchedGroupPerBatch: number; heartbeatBatchCalls: number };
  readonly naive: { elbCalls: number; recordsPerSecond: number };
  readonly callRatio: number;
  readonly finalStateEqual: boolean;
}

export async function runB1(mix: WorkloadMix): Promise<B1Result> {
  const routing: RoutingConfig = {
    allowedCidrs: ['10.0.0.0/8'],
    capabilities: Object.fromEntries(capabilityNames(mix.capabilities).map((c) => [c, { targetGroupArn: `arn:tg/${c}`, targetType: 'ip' as const }])),
  };
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const events = [...streamWorkload(mix)];

  const oursElb = new CountingElb();
  const handler = createSyncHandler({
    config: { tableName: 'bench', routing, safetyValveShare: 0.5, reconcileRepeatSeconds: 0 },
    elbClient: oursElb.asClient(),
    logger: new Logger({ logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'AgentLbBench', serviceName: 'bench' }),
  });
  let heapPeak = 0;
  let maxPerGroup = 0;
  let heartbeatBatchCalls = 0;
  const t0 = process.hrtime.bigint();
  for (const event of events) {
    const before = oursElb.mutating;
    await handler(event);
    const calls = oursElb.mutating - before;
    const touched = new Set<string>();
    for (const r of event.Records) {
      const img = (r.dynamodb?.NewImage ?? r.dynamodb?.OldImage) as { capabilities?: { SS?: string[] } } | undefined;
      for (const c of img?.capabilities?.SS ?? []) touched.add(c);
    }
    if (touched.size > 0) maxPerGroup = Math.max(maxPerGroup, calls / touched.size);
    if (event.Records.every((r) => r.eventName === 'MODIFY')) heartbeatBatchCalls += calls;
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }
  const oursSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  const naiveElb = new CountingElb();
  const naive = createNaiveRegistrar(naiveElb.asClient(), routing);
  const t1 = process.hrtime.bigint();
  for (const event of events) await naive(event);
  const naiveSeconds = Number(process.hrtime.bigint() - t1) / 1e9;

  const same = [...oursElb.groups].every(([arn, g]) => {
    const other = naiveElb.groups.get(arn) ?? new Set();
    return g.size === other.size && [...g].every((k) => other.has(k));
  });
  return {
    scenario: 'B1',
    records: mix.records,
    batches: events.length,
    mix,
    ours: {
      elbCalls: oursElb.mutating,
      recordsPerSecond: Math.round(mix.records / oursSeconds),
      heapPeakMiB: Math.round((heapPeak / 2 ** 20) * 10) / 10,
      maxCallsPerTouchedGroupPerBatch: Math.round(maxPerGroup * 100) / 100,
      heartbeatBatchCalls,
    },
    naive: { elbCalls: naiveElb.mutating, recordsPerSecond: Math.round(mix.records / naiveSeconds) },
    callRatio: Math.round((naiveElb.mutating / Math.max(1, oursElb.mutating)) * 10) / 10,
    finalStateEqual: same,
  };
}

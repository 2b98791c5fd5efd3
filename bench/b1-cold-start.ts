import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createSyncHandler } from '../lambdas/stream-sync';
import { RoutingConfig } from '../lib/core/lease-schema';
import { CountingElb } from './counting-elb';
import { createNaiveRegistrar } from './naive-registrar';
import { capabilityNames, streamWorkload } from './stream-workload';
import { backlogGrowthPerSecond, secondsToSend } from './throttle-projection';

export interface ProjectionResult {
  readonly scenario: 'projection';
  readonly agents: number;
  readonly batchSize: number;
  readonly coldStart: { oursCalls: number; naiveCalls: number; oursSeconds: number; naiveSeconds: number; formula: string };
  readonly heartbeats: { perSecond: number; oursCallsPerSecond: number; naiveCallsPerSecond: number; oursBacklogGrowth: number; naiveBacklogGrowth: number };
}

/** Counts the calls of a cold start (every agent acquires once) and of pure heartbeat traffic, then projects them onto the AWS throttle. */
export async function runProjection(agents: number, batchSize: number, capabilities = 20): Promise<ProjectionResult> {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const routing: RoutingConfig = {
    allowedCidrs: ['10.0.0.0/8'],
    capabilities: Object.fromEntries(capabilityNames(capabilities).map((c) => [c, { targetGroupArn: `arn:tg/${c}`, targetType: 'ip' as const }])),
  };
  const ours = new CountingElb();
  const naive = new CountingElb();
  const handler = createSyncHandler({
    config: { tableName: 'bench', routing, safetyValveShare: 0.5, reconcileRepeatSeconds: 0 },
    elbClient: ours.asClient(),
    logger: new Logger({ logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'AgentLbBench', serviceName: 'bench' }),
  });
  const baseline = createNaiveRegistrar(naive.asClient(), routing);
  const cold = [...streamWorkload({ records: agents, batchSize, capabilities, seed: 7, heartbeatShare: 0, registrationShare: 1 })];
  for (const event of cold) {
    await handler(event);
    await baseline(event);
  }
  const coldOurs = ours.mutating;
  const coldNaive = naive.mutating;
  // One second of 1 000 heartbeats/s: every agent renews once (only expiresAt/renewedAt change).
  const inserted = cold.flatMap((e) => e.Records.map((r) => r.dynamodb!.NewImage!));
  const heartbeats = inserted.map((img, i) => ({
    eventName: 'MODIFY' as const,
    dynamodb: {
      Keys: { target: img.target },
      OldImage: img,
      NewImage: { ...img, expiresAt: { N: String(Number(img.expiresAt.N) + 10) }, renewedAt: { N: String(Number(img.renewedAt.N) + 10_000) } },
      SequenceNumber: String(1e9 + i),
      ApproximateCreationDateTime: 1_800_000_001,
    },
  }));
  for (let i = 0; i < heartbeats.length; i += batchSize) {
    const event = { Records: heartbeats.slice(i, i + batchSize) };
    await handler(event);
    await baseline(event);
  }
  const hbOurs = ours.mutating - coldOurs;
  const hbNaive = naive.mutating - coldNaive;
  const perSecond = agents;
  return {
    scenario: 'projection',
    agents,
    batchSize,
    coldStart: {
      oursCalls: coldOurs,
      naiveCalls: coldNaive,
      oursSeconds: secondsToSend(coldOurs),
      naiveSeconds: secondsToSend(coldNaive),
      formula: 'seconds = max(0, (calls − 20) / 4)',
    },
    heartbeats: {
      perSecond,
      oursCallsPerSecond: hbOurs,
      naiveCallsPerSecond: hbNaive,
      oursBacklogGrowth: backlogGrowthPerSecond(hbOurs),
      naiveBacklogGrowth: backlogGrowthPerSecond(hbNaive),
    },
  };
}

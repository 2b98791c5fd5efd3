import { b1Routing, benchSyncHandler } from './b1-handler-economy';
import { CountingElb } from '../test/support/counting-elb';
import { createNaiveRegistrar } from './naive-registrar';
import { streamWorkload } from './stream-workload';
import { BACKLOG_FORMULA, backlogGrowthPerSecond, COLD_START_FORMULA, ELB_BURST, ELB_REFILL_PER_SECOND, secondsToSend } from './throttle-projection';

/** One batch size of the projection. */
export interface ProjectionRun {
  readonly batchSize: number;
  /** Calls measured for a cold start (every agent acquires once), and the seconds the throttle makes them take. */
  readonly coldStart: { readonly oursCalls: number; readonly naiveCalls: number; readonly oursSeconds: number; readonly naiveSeconds: number };
  /** Calls measured for one second of heartbeats (every agent renews once), and how fast the backlog grows. */
  readonly heartbeats: {
    readonly perSecond: number;
    readonly oursCallsPerSecond: number;
    readonly naiveCallsPerSecond: number;
    readonly oursBacklogGrowth: number;
    readonly naiveBacklogGrowth: number;
  };
}

export interface ProjectionResult {
  readonly scenario: 'projection';
  readonly agents: number;
  readonly capabilities: number;
  readonly throttle: { readonly burst: number; readonly refillPerSecond: number };
  readonly formulas: { readonly coldStart: string; readonly heartbeats: string };
  readonly runs: readonly ProjectionRun[];
}

/**
 * Counts (does not estimate) the calls of a cold start and of one second of heartbeats through
 * both registrars on the counting ELB, then projects those counts onto the AWS throttle.
 */
export async function runProjectionBatch(agents: number, batchSize: number, capabilities: number): Promise<ProjectionRun> {
  const routing = b1Routing(capabilities);
  const ours = new CountingElb();
  const naive = new CountingElb();
  const handler = benchSyncHandler(routing, ours);
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
  return {
    batchSize,
    coldStart: { oursCalls: coldOurs, naiveCalls: coldNaive, oursSeconds: secondsToSend(coldOurs), naiveSeconds: secondsToSend(coldNaive) },
    heartbeats: {
      perSecond: agents,
      oursCallsPerSecond: hbOurs,
      naiveCallsPerSecond: hbNaive,
      oursBacklogGrowth: backlogGrowthPerSecond(hbOurs),
      naiveBacklogGrowth: backlogGrowthPerSecond(hbNaive),
    },
  };
}

export async function runProjection(agents: number, batchSizes: readonly number[], capabilities = 20): Promise<ProjectionResult> {
  const runs: ProjectionRun[] = [];
  for (const batchSize of batchSizes) runs.push(await runProjectionBatch(agents, batchSize, capabilities));
  return {
    scenario: 'projection',
    agents,
    capabilities,
    throttle: { burst: ELB_BURST, refillPerSecond: ELB_REFILL_PER_SECOND },
    formulas: { coldStart: COLD_START_FORMULA, heartbeats: BACKLOG_FORMULA },
    runs,
  };
}

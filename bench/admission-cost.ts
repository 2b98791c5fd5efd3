import { performance } from 'node:perf_hooks';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createSyncHandler } from '../lib/handlers/stream-sync-handler';
import { b1Routing } from './b1-handler-economy';
import { CountingElb } from '../test/support/counting-elb';
import { InMemoryLeaseTable } from '../test/support/in-memory-lease-table';
import { streamWorkload, WorkloadMix } from './stream-workload';

/**
 * What admission costs in EC2 calls: the B1 workload (mostly heartbeats, some new agents, some
 * leaving) through the real sync handler with admission on, against an in-memory EC2 that holds
 * every agent's address on an interface in the agents' security group. Ours: one
 * DescribeNetworkInterfaces per batch for the addresses the batch registers (per 200), answers
 * cached 30 s per container, nothing for heartbeats. The naive baseline asks EC2 once per
 * registering record, as a per-event check would.
 */

export interface AdmissionRun {
  readonly batchSize: number;
  readonly batches: number;
  /** Batches that registered something. */
  readonly batchesWithRegistrations: number;
  readonly registrations: number;
  readonly ours: {
    readonly ec2Calls: number;
    /** The most EC2 calls one batch made. */
    readonly maxEc2CallsPerBatch: number;
    /** EC2 calls of the heartbeat records replayed on their own, in batches of the same size. */
    readonly heartbeatEc2Calls: number;
    /** DescribeTargetHealth calls for the quota's count (once per container here: the load balancer stays far below 80 %). */
    readonly quotaCountCalls: number;
    readonly recordsPerSecond: number;
  };
  readonly naive: { readonly ec2Calls: number };
}

export interface AdmissionResult {
  readonly scenario: 'admission';
  readonly records: number;
  readonly runs: readonly AdmissionRun[];
}

const START_MS = 1_800_000_000_000;
const VPC = 'vpc-bench';
const AGENTS = 'sg-agents';

/** An EC2 stand-in: every address asked about is held by an interface in the agents' group. */
function countingEc2(): { client: EC2Client; calls: () => number } {
  let calls = 0;
  const send = async (command: { input: { Filters?: { Name: string; Values: string[] }[] } }) => {
    calls++;
    const addresses = command.input.Filters?.find((f) => f.Name === 'addresses.private-ip-address')?.Values ?? [];
    return { NetworkInterfaces: addresses.map((a, i) => ({ NetworkInterfaceId: `eni-${i}`, VpcId: VPC, PrivateIpAddress: a, Groups: [{ GroupId: AGENTS }] })) };
  };
  return { client: { send } as unknown as EC2Client, calls: () => calls };
}

function handlerFor(mix: WorkloadMix, elb: CountingElb, ec2: EC2Client, table = new InMemoryLeaseTable()) {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const routing = b1Routing(mix.capabilities);
  const handler = createSyncHandler({
    config: {
      tableName: 'bench',
      routing,
      safetyValveShare: 0.5,
      reconcileRepeatSeconds: 0,
      admission: { vpcId: VPC, securityGroups: [AGENTS], byCapability: {} },
      targetQuota: 100_000,
    },
    elbClient: elb.asClient(),
    dynamoClient: table.asClient(),
    ec2Client: ec2,
    logger: new Logger({ logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'AgentLbBench', serviceName: 'bench' }),
    now: () => START_MS,
  });
  return (event: DynamoDBStreamEvent) => {
    table.applyRecords(event.Records);
    return handler(event);
  };
}

async function runBatchSize(mix: WorkloadMix): Promise<AdmissionRun> {
  const events = [...streamWorkload(mix)];
  const elb = new CountingElb();
  const ec2 = countingEc2();
  const handle = handlerFor(mix, elb, ec2.client);
  let maxPerBatch = 0;
  let withRegistrations = 0;
  let registrations = 0;
  const t0 = performance.now();
  for (const event of events) {
    const before = ec2.calls();
    const registeredBefore = elb.calls.RegisterTargetsCommand ?? 0;
    await handle(event);
    maxPerBatch = Math.max(maxPerBatch, ec2.calls() - before);
    if ((elb.calls.RegisterTargetsCommand ?? 0) > registeredBefore) withRegistrations++;
  }
  const seconds = (performance.now() - t0) / 1000;
  for (const g of elb.groups.values()) registrations += g.size;

  // Naive: one lookup per record that registers a lease (an INSERT, or a MODIFY that makes it live).
  const naiveCalls = events.reduce((n, e) => n + e.Records.filter((r) => r.eventName === 'INSERT').length, 0);

  const heartbeats = events.flatMap((e) => e.Records.filter((r) => r.eventName === 'MODIFY'));
  const hbEc2 = countingEc2();
  const hbHandle = handlerFor(mix, new CountingElb(), hbEc2.client);
  for (let i = 0; i < heartbeats.length; i += mix.batchSize) await hbHandle({ Records: heartbeats.slice(i, i + mix.batchSize) });

  return {
    batchSize: mix.batchSize,
    batches: events.length,
    batchesWithRegistrations: withRegistrations,
    registrations,
    ours: {
      ec2Calls: ec2.calls(),
      maxEc2CallsPerBatch: maxPerBatch,
      heartbeatEc2Calls: hbEc2.calls(),
      quotaCountCalls: elb.calls.DescribeTargetHealthCommand ?? 0,
      recordsPerSecond: Math.round(mix.records / seconds),
    },
    naive: { ec2Calls: naiveCalls },
  };
}

/** The admission scenario at each batch size, on the same seeded mix as B1. */
export async function runAdmission(mix: Omit<WorkloadMix, 'batchSize'>, batchSizes: readonly number[]): Promise<AdmissionResult> {
  const runs: AdmissionRun[] = [];
  for (const batchSize of batchSizes) runs.push(await runBatchSize({ ...mix, batchSize }));
  return { scenario: 'admission', records: mix.records, runs };
}

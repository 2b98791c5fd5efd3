/**
 * What agent-lb costs to run in DynamoDB and Lambda, from counts: the writes, reads and
 * invocations a fleet makes in a month, times prices. The bench measures the counts (bench B7,
 * `costPer1000AgentsMonthUsd` in bench/results.json); {@link modelCounts} derives them from the
 * settings for the README's table. Prices are settings; the defaults are us-east-1 list prices
 * as of {@link US_EAST_1_PRICES}.date. ALB hours and LCUs are not counted: they are the same for
 * any registrar of the same load balancer.
 */

/** Seconds in the month the model bills (30 days). */
export const SECONDS_PER_MONTH = 30 * 24 * 3600;
/** Hours in a month as AWS bills provisioned capacity. */
export const HOURS_PER_MONTH = 730;

/** Unit prices in USD. */
export interface PriceList {
  /** When these prices were the list prices (ISO date), stated with every figure derived from them. */
  readonly date: string;
  readonly region: string;
  /** DynamoDB on-demand, per million write request units (one per write of ≤ 1 KB). */
  readonly writeRequestPerMillion: number;
  /** DynamoDB on-demand, per million read request units (one per consistent read of ≤ 4 KB). */
  readonly readRequestPerMillion: number;
  /** DynamoDB provisioned, per write capacity unit and hour. */
  readonly writeCapacityUnitHour: number;
  /** DynamoDB provisioned, per read capacity unit and hour. */
  readonly readCapacityUnitHour: number;
  /** Lambda, per million requests. */
  readonly lambdaRequestPerMillion: number;
  /** Lambda on Arm (the registry's functions), per GB-second. */
  readonly lambdaGbSecond: number;
}

/**
 * us-east-1 list prices: DynamoDB Standard table class after the on-demand price cut of
 * 1 November 2024 (writes $0.625, reads $0.125 per million); Lambda on Arm. DynamoDB Streams
 * reads by a Lambda trigger are free; the free tiers are not counted.
 */
export const US_EAST_1_PRICES: PriceList = {
  date: '2024-11-01',
  region: 'us-east-1',
  writeRequestPerMillion: 0.625,
  readRequestPerMillion: 0.125,
  writeCapacityUnitHour: 0.00065,
  readCapacityUnitHour: 0.00013,
  lambdaRequestPerMillion: 0.2,
  lambdaGbSecond: 0.0000133334,
};

/** The lease table's billing mode: on-demand, or provisioned with auto scaling at a target utilization (a steady fleet). */
export type BillingMode = { readonly mode: 'on-demand' } | { readonly mode: 'provisioned'; readonly targetUtilization: number };

export const ON_DEMAND: BillingMode = { mode: 'on-demand' };
/** Auto scaling's usual target: 70 % of provisioned capacity used on average. */
export const PROVISIONED_AUTO_SCALING: BillingMode = { mode: 'provisioned', targetUtilization: 0.7 };

/** What a fleet does in a month (request units; a write of ≤ 1 KB is one, a consistent read of ≤ 4 KB one). */
export interface MonthlyCounts {
  readonly agents: number;
  /** Renewals: UpdateItem of `expiresAt`/`renewedAt`. */
  readonly heartbeatWrites: number;
  /** Every other write: agents' acquire, drain, release; the registry's `rotation` writes and expired-lease deletes; the registry table's catalog and ELB budget writes. */
  readonly leaseWrites: number;
  /** Read request units: sync's confirming reads, reconcile's consistent scans, agents' reads. */
  readonly readUnits: number;
  readonly lambdaInvocations: number;
  readonly lambdaGbSeconds: number;
}

export interface MonthlyCost {
  readonly dynamoDbUsd: number;
  readonly lambdaUsd: number;
  readonly totalUsd: number;
  /** The same fleet scaled to 1 000 agents. */
  readonly per1000AgentsUsd: number;
  /** Provisioned capacity the counts need (provisioned mode only). */
  readonly capacity?: { readonly writeUnits: number; readonly readUnits: number };
}

const cents = (usd: number) => Math.round(usd * 100) / 100;

/** The month's cost of `counts` at `prices` in `billing` mode. */
export function monthlyCost(counts: MonthlyCounts, prices: PriceList = US_EAST_1_PRICES, billing: BillingMode = ON_DEMAND): MonthlyCost {
  const writes = counts.heartbeatWrites + counts.leaseWrites;
  let dynamoDbUsd: number;
  let capacity: MonthlyCost['capacity'];
  if (billing.mode === 'on-demand') {
    dynamoDbUsd = (writes / 1e6) * prices.writeRequestPerMillion + (counts.readUnits / 1e6) * prices.readRequestPerMillion;
  } else {
    // Auto scaling keeps the average at the target; bursts (a scan) draw on DynamoDB's burst capacity (300 s of unused units).
    const writeUnits = Math.max(1, Math.ceil(writes / SECONDS_PER_MONTH / billing.targetUtilization));
    const readUnits = Math.max(1, Math.ceil(counts.readUnits / SECONDS_PER_MONTH / billing.targetUtilization));
    capacity = { writeUnits, readUnits };
    dynamoDbUsd = (writeUnits * prices.writeCapacityUnitHour + readUnits * prices.readCapacityUnitHour) * HOURS_PER_MONTH;
  }
  const lambdaUsd = (counts.lambdaInvocations / 1e6) * prices.lambdaRequestPerMillion + counts.lambdaGbSeconds * prices.lambdaGbSecond;
  const totalUsd = dynamoDbUsd + lambdaUsd;
  return {
    dynamoDbUsd: cents(dynamoDbUsd),
    lambdaUsd: cents(lambdaUsd),
    totalUsd: cents(totalUsd),
    per1000AgentsUsd: counts.agents > 0 ? cents((totalUsd * 1000) / counts.agents) : 0,
    ...(capacity ? { capacity } : {}),
  };
}

/** Counts measured over `seconds` scaled to a month. */
export function scaleToMonth(counts: MonthlyCounts, seconds: number): MonthlyCounts {
  const k = SECONDS_PER_MONTH / seconds;
  return {
    agents: counts.agents,
    heartbeatWrites: counts.heartbeatWrites * k,
    leaseWrites: counts.leaseWrites * k,
    readUnits: counts.readUnits * k,
    lambdaInvocations: counts.lambdaInvocations * k,
    lambdaGbSeconds: counts.lambdaGbSeconds * k,
  };
}

/** What a deployment is set to, for {@link modelCounts}. */
export interface FleetSettings {
  readonly agents: number;
  /** Lease TTL; agents renew every third of it (the SDK's cadence). */
  readonly leaseTtlSeconds: number;
  /** Lease changes (join, leave, drain, capability change) per agent and day; each costs the agent's write and one registry write. */
  readonly changesPerAgentDay: number;
  readonly reconcileIntervalSeconds: number;
  /** Size of a lease item, bytes (a scan reads 4 KB per unit). */
  readonly leaseItemBytes: number;
  /** The stream's batching window: with records flowing, one invocation per reader, shard and window. */
  readonly batchingWindowSeconds: number;
  readonly streamShards: number;
  /**
   * Lambda readers of the stream: the sync and, with the capability catalog on (the default), the
   * catalog stream function; each is invoked for the same records (heartbeats included: a filter
   * cannot tell them from changes).
   */
  readonly streamReaders: number;
  /** Member index writes per lease change with the catalog on (one per capability of the lease), each with a lease read. */
  readonly catalogWritesPerChange: number;
  /**
   * Register/DeregisterTargets calls per lease change (at the defaults' trickle a change is its own
   * call) and what each costs the shared ELB budget's item in the registry table: a hold and its
   * spend (two writes) and a consistent read (lib/registry/shared-bucket-gate.ts).
   */
  readonly elbCallsPerChange: number;
  readonly budgetWritesPerCall: number;
  readonly budgetReadsPerCall: number;
  /** Billed duration of one sync invocation and one reconcile pass, seconds, and the functions' memory. */
  readonly syncSeconds: number;
  readonly reconcileSeconds: number;
  readonly lambdaMemoryGb: number;
}

/** The defaults agent-lb ships: 1 000 agents cost ≤ $20 a month on-demand (see the README, "What it costs"). */
export const DEFAULT_FLEET_SETTINGS: FleetSettings = {
  agents: 1000,
  leaseTtlSeconds: 300,
  changesPerAgentDay: 4,
  reconcileIntervalSeconds: 60,
  leaseItemBytes: 400,
  batchingWindowSeconds: 1,
  streamShards: 1,
  streamReaders: 2,
  catalogWritesPerChange: 2,
  elbCallsPerChange: 1,
  budgetWritesPerCall: 2,
  budgetReadsPerCall: 1,
  syncSeconds: 0.02,
  reconcileSeconds: 0.5,
  lambdaMemoryGb: 0.25,
};

/** Lambda bills an invocation's duration rounded up to the next millisecond. */
export const billedSeconds = (seconds: number): number => Math.ceil(Math.round(seconds * 1e6) / 1e3) / 1000;

/** A month's counts from the settings alone (the bench measures them instead). */
export function modelCounts(s: FleetSettings): MonthlyCounts {
  const renewEvery = s.leaseTtlSeconds / 3;
  const heartbeatWrites = (s.agents * SECONDS_PER_MONTH) / renewEvery;
  const changes = (s.agents * s.changesPerAgentDay * SECONDS_PER_MONTH) / 86_400;
  const passes = SECONDS_PER_MONTH / s.reconcileIntervalSeconds;
  const scanUnits = Math.ceil((s.agents * s.leaseItemBytes) / 4096);
  const records = heartbeatWrites + 2 * changes;
  // Per reader: one invocation per record at a trickle, one per shard and window under a flow.
  const streamInvocations = Math.min(records, (SECONDS_PER_MONTH / s.batchingWindowSeconds) * s.streamShards) * s.streamReaders;
  const catalogOn = s.streamReaders > 1;
  return {
    agents: s.agents,
    heartbeatWrites,
    // The agent's write and the registry's `rotation` write per change; with the catalog, its member
    // writes; the ELB budget's writes per call.
    leaseWrites: 2 * changes + (catalogOn ? s.catalogWritesPerChange * changes : 0) + changes * s.elbCallsPerChange * s.budgetWritesPerCall,
    // A consistent scan per pass, a confirming read per change (and the catalog's read of the
    // lease), the ELB budget's read per call.
    readUnits: passes * scanUnits + changes * (catalogOn ? 2 : 1) + changes * s.elbCallsPerChange * s.budgetReadsPerCall,
    lambdaInvocations: streamInvocations + passes,
    lambdaGbSeconds: (streamInvocations * billedSeconds(s.syncSeconds) + passes * billedSeconds(s.reconcileSeconds)) * s.lambdaMemoryGb,
  };
}

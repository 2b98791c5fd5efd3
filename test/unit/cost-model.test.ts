import { describe, expect, test } from 'vitest';
import {
  billedSeconds,
  DEFAULT_FLEET_SETTINGS,
  modelCounts,
  MonthlyCounts,
  monthlyCost,
  ON_DEMAND,
  PROVISIONED_AUTO_SCALING,
  scaleToMonth,
  SECONDS_PER_MONTH,
  US_EAST_1_PRICES,
} from '../../lib/core/cost-model';

const counts = (c: Partial<MonthlyCounts>): MonthlyCounts => ({ agents: 1000, heartbeatWrites: 0, leaseWrites: 0, readUnits: 0, lambdaInvocations: 0, lambdaGbSeconds: 0, ...c });

describe('monthlyCost: counts × prices', () => {
  test.each<[string, MonthlyCounts, Partial<ReturnType<typeof monthlyCost>>]>([
    ['nothing costs nothing', counts({}), { totalUsd: 0 }],
    ['259.2 M on-demand writes (30 s TTL, renewals every 10 s) ≈ $162', counts({ heartbeatWrites: 259.2e6 }), { dynamoDbUsd: 162, totalUsd: 162 }],
    ['a million reads: $0.125', counts({ readUnits: 1e6 }), { dynamoDbUsd: 0.13 }],
    ['a million invocations: $0.20', counts({ lambdaInvocations: 1e6 }), { lambdaUsd: 0.2 }],
    ['100 000 GB-s on Arm: $1.33', counts({ lambdaGbSeconds: 100_000 }), { lambdaUsd: 1.33 }],
    ['per 1 000 agents: 2 000 agents halve it', counts({ agents: 2000, heartbeatWrites: 64e6 }), { totalUsd: 40, per1000AgentsUsd: 20 }],
  ])('%s', (_, c, expected) => {
    expect(monthlyCost(c)).toMatchObject(expected);
  });

  test.each<[string, MonthlyCounts, { writeUnits: number; readUnits: number }, number]>([
    // 100 writes/s at 70 %: 143 WCU × 730 h × $0.00065 = $67.85, plus 1 RCU.
    ['100 writes/s', counts({ heartbeatWrites: 100 * SECONDS_PER_MONTH }), { writeUnits: 143, readUnits: 1 }, 67.95],
    ['an idle table still pays one unit each', counts({}), { writeUnits: 1, readUnits: 1 }, 0.57],
  ])('provisioned with auto scaling: %s', (_, c, capacity, usd) => {
    const cost = monthlyCost(c, US_EAST_1_PRICES, PROVISIONED_AUTO_SCALING);
    expect(cost.capacity).toEqual(capacity);
    expect(cost.dynamoDbUsd).toBe(usd);
  });

  test('prices are settings', () => {
    const doubled = { ...US_EAST_1_PRICES, writeRequestPerMillion: 1.25 };
    expect(monthlyCost(counts({ heartbeatWrites: 1e6 }), doubled).totalUsd).toBe(1.25);
  });

  test('the prices state their date and Region', () => {
    expect([US_EAST_1_PRICES.date, US_EAST_1_PRICES.region]).toEqual(['2024-11-01', 'us-east-1']);
  });

  test('counts measured over a window scale to a month', () => {
    expect(scaleToMonth(counts({ heartbeatWrites: 600, lambdaInvocations: 60 }), 60)).toMatchObject({ heartbeatWrites: 10 * SECONDS_PER_MONTH, lambdaInvocations: SECONDS_PER_MONTH, agents: 1000 });
  });
});

describe('modelCounts and the defaults', () => {
  test('the defaults: 1 000 agents cost at most $20 a month in DynamoDB and Lambda, on-demand', () => {
    const cost = monthlyCost(modelCounts(DEFAULT_FLEET_SETTINGS), US_EAST_1_PRICES, ON_DEMAND);
    expect(cost.per1000AgentsUsd).toBeLessThanOrEqual(20);
    expect(cost.per1000AgentsUsd).toBe(18.69);
  });

  test.each<[number, number, number]>([
    // TTL, on-demand, provisioned: heartbeats dominate, and cost falls as the TTL grows.
    [30, 164.49, 70.08],
    [90, 56.49, 25],
    [180, 29.49, 13.61],
    [300, 18.69, 8.87],
    [600, 10.59, 5.54],
  ])('TTL %d s: $%d on-demand, $%d provisioned', (ttl, onDemand, provisioned) => {
    const c = modelCounts({ ...DEFAULT_FLEET_SETTINGS, leaseTtlSeconds: ttl });
    expect(monthlyCost(c).per1000AgentsUsd).toBe(onDemand);
    expect(monthlyCost(c, US_EAST_1_PRICES, PROVISIONED_AUTO_SCALING).per1000AgentsUsd).toBe(provisioned);
  });

  test('renewals every third of the TTL: 300 s → 25.92 M heartbeats per 1 000 agents and month', () => {
    expect(modelCounts(DEFAULT_FLEET_SETTINGS).heartbeatWrites).toBe(25.92e6);
  });

  test('stream invocations, per reader (sync, catalog stream): one per record at a trickle, one per shard and batching window under a flow', () => {
    const trickle = modelCounts({ ...DEFAULT_FLEET_SETTINGS, agents: 1, leaseTtlSeconds: 3000, changesPerAgentDay: 0, reconcileIntervalSeconds: SECONDS_PER_MONTH });
    expect(trickle.lambdaInvocations).toBe(2 * (SECONDS_PER_MONTH / 1000) + 1);
    const flow = modelCounts({ ...DEFAULT_FLEET_SETTINGS, agents: 100_000, reconcileIntervalSeconds: SECONDS_PER_MONTH });
    expect(flow.lambdaInvocations).toBe(2 * SECONDS_PER_MONTH + 1);
    // The catalog switched off: the sync alone reads the stream, and no member index is written.
    const noCatalog = modelCounts({ ...DEFAULT_FLEET_SETTINGS, agents: 100_000, reconcileIntervalSeconds: SECONDS_PER_MONTH, streamReaders: 1 });
    expect(noCatalog.lambdaInvocations).toBe(SECONDS_PER_MONTH + 1);
    expect(noCatalog.leaseWrites).toBeLessThan(flow.leaseWrites);
  });

  test('the shared ELB budget costs two writes and a read per Register/DeregisterTargets call', () => {
    const none = modelCounts({ ...DEFAULT_FLEET_SETTINGS, elbCallsPerChange: 0 });
    const one = modelCounts(DEFAULT_FLEET_SETTINGS);
    const changes = (1000 * 4 * SECONDS_PER_MONTH) / 86_400;
    expect(one.leaseWrites - none.leaseWrites).toBeCloseTo(2 * changes, 6);
    expect(one.readUnits - none.readUnits).toBeCloseTo(changes, 6);
  });
});

describe('billedSeconds: Lambda bills duration in whole milliseconds, rounded up', () => {
  test.each<[number, number]>([
    [0.0014, 0.002],
    [0.002, 0.002],
    [0.02, 0.02],
    [0.5, 0.5],
    [0.000003, 0.001],
    [0, 0],
  ])('%s s → %s s', (seconds, billed) => {
    expect(billedSeconds(seconds)).toBe(billed);
  });
});

import type { DynamoDBRecord } from 'aws-lambda';
import { callsOverBudget, DEFAULT_ACCOUNT_ELB_BUCKET, DEFAULT_ELB_CALL_BUDGET, DEFAULT_SYNC_BATCH_SIZE, ElbCallBudget } from '../lib/core/elb-call-budget';
import { DEFAULT_FLEET_SETTINGS, modelCounts, monthlyCost, US_EAST_1_PRICES } from '../lib/core/cost-model';
import { RuntimeConfig } from '../lib/core/runtime-config';
import { createSyncHandler } from '../lib/handlers/stream-sync-handler';
import { BucketGate } from '../lib/registry/elb-call-gate';
import { SYNC_BATCH_BUDGET_MS } from '../lib/registry/stream-sync';
import { CountingElb } from '../test/support/counting-elb';
import { InMemoryLeaseTable } from '../test/support/in-memory-lease-table';
import { createNaiveRegistrar } from './naive-registrar';
import { distribution, Distribution } from './percentiles';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DEFAULT_ALLOWED_CIDRS } from '../lib/core/address-policy';

/**
 * B7: registration latency under churn near the ELB call budget. G target groups change at c
 * changes per second (70 % joins of new agents, 30 % leaves); agent-lb's sync handler, with the
 * default budget (2 calls/s, burst 10: half the account's bucket), against an ELB front that
 * enforces the account's Register/Deregister bucket (burst 20, 4/s, 1/s of it taken by another
 * registrar) and throttles as AWS does; the per-event registrar in the same run, same front.
 * No registrar does better than about G'/B seconds per round, G' the groups that change in a
 * round: {@link roundBound}. Time runs `TIME_SCALE` times faster than AWS's (rates × 10, the
 * burst unchanged); every figure is reported back in AWS seconds.
 */

export const TIME_SCALE = 10;
const OTHER_REGISTRAR_PER_SECOND = 1;

export interface B7Case {
  readonly groups: number;
  readonly churnPerSecond: number;
  /** Changes, AWS seconds. */
  readonly seconds: number;
}

export interface B7Side {
  readonly elbCalls: number;
  readonly callsPerSecond: number;
  readonly throttles: number;
  /** Calls the budget's bucket would have refused (0: never above the budget). */
  readonly callsOverBudget: number;
  /** Joins never registered (lost to throttling, for the per-event registrar). */
  readonly lostJoins: number;
  /** Registration latency, AWS ms: from the lease write to the RegisterTargets call that carried it. */
  readonly registrationMs: Distribution;
  /** Every group equal to its live leases at the end (the stream drained, every change reported applied). */
  readonly groupsExact: boolean;
  /** At the end: targets in a group without a live lease naming it, and live leases' targets missing from their group. */
  readonly extraTargets: number;
  readonly missingTargets: number;
  /** DescribeTargetHealth calls (sync reads a group before a change only a retried batch may need). */
  readonly describeCalls: number;
  readonly syncInvocations: number;
  readonly syncMsPerInvocation: number;
}

export interface B7CaseResult extends B7Case {
  readonly boundSeconds: number;
  readonly agentLb: B7Side;
  readonly perEvent: B7Side;
  readonly callsOverBudget: number;
  readonly p99OverBoundRatio: number;
}

export interface B7Result {
  readonly scenario: 'B7';
  readonly budget: ElbCallBudget;
  readonly account: { readonly burst: number; readonly perSecond: number; readonly otherRegistrarPerSecond: number };
  readonly timeScale: number;
  readonly cases: readonly B7CaseResult[];
  /** DynamoDB + Lambda per 1 000 agents and month at the defaults, with the sync duration measured here. */
  readonly costPer1000AgentsMonthUsd: number;
  readonly cost: { readonly leaseTtlSeconds: number; readonly billing: string; readonly pricesDated: string; readonly syncMsPerInvocation: number };
}

/**
 * The best round time on `budget`: with c changes/s spread over G groups, a round of T seconds
 * touches G·(1 − e^(−cT/G)) groups, each needing a call, at B calls/s: the fixed point of
 * T = G·(1 − e^(−cT/G)) / B. Never under 1 s: at light churn the target is 1.5 s absolute.
 */
export function roundBound(groups: number, churnPerSecond: number, budget: ElbCallBudget): number {
  let t = groups / budget.callsPerSecond;
  for (let i = 0; i < 200; i++) t = (groups * (1 - Math.exp((-churnPerSecond * t) / groups))) / budget.callsPerSecond;
  return Math.max(1, t);
}

/** Lease items and stream records as an agent writes them and Lambda delivers them (the bench cannot load the test fixtures, which need vitest). */
type Item = Record<string, { S?: string; N?: string; SS?: string[] }>;
const T0 = 1_800_000_000;
const privateIp = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
function leaseItem(address: string, capability: string): Item {
  return {
    target: { S: `${address}:8080` },
    address: { S: address },
    port: { N: '8080' },
    capabilities: { SS: [capability] },
    expiresAt: { N: String(T0 + 3600) },
    leaseToken: { S: `token-${address}` },
    agentId: { S: `agent-${address}` },
    status: { S: 'active' },
    renewedAt: { N: String(T0 * 1000) },
    registeredAt: { N: String(T0 * 1000) },
  };
}
let sequence = 0;
function record(eventName: 'INSERT' | 'REMOVE', item: Item): DynamoDBRecord {
  const seq = String(++sequence).padStart(21, '0');
  return {
    eventID: `event-${seq}`,
    eventName,
    eventSource: 'aws:dynamodb',
    dynamodb: {
      ApproximateCreationDateTime: T0,
      Keys: { target: { S: item.target.S! } },
      ...(eventName === 'INSERT' ? { NewImage: item } : { OldImage: item }),
      SequenceNumber: seq,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  } as DynamoDBRecord;
}
const streamEvent = (records: DynamoDBRecord[]) => ({ Records: records });
const silentLogger = () => new Logger({ serviceName: 'b7', logLevel: 'SILENT' });

const arn = (g: number) => `arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b7-c${g}/${g}`;

function configOf(groups: number): RuntimeConfig {
  return {
    tableName: 'leases',
    routing: { capabilities: Object.fromEntries(Array.from({ length: groups }, (_, g) => [`c${g}`, { targetGroupArn: arn(g), targetType: 'ip' as const }])), allowedCidrs: DEFAULT_ALLOWED_CIDRS },
    safetyValveShare: 0.5,
    reconcileRepeatSeconds: 0,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A deterministic stream of changes: joins of new agents (random group), leaves of live ones. */
function* changes(groups: number, seed: number): Generator<{ kind: 'join' | 'leave'; item: Item }> {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const live: Item[] = [];
  for (let n = 1; ; n++) {
    if (live.length > 0 && rand() < 0.3) {
      const [item] = live.splice(Math.floor(rand() * live.length), 1);
      yield { kind: 'leave', item };
    } else {
      const item = leaseItem(privateIp(n), `c${Math.floor(rand() * groups)}`);
      live.push(item);
      yield { kind: 'join', item };
    }
  }
}

async function runSide(c: B7Case, budget: ElbCallBudget, side: 'agentLb' | 'perEvent'): Promise<B7Side> {
  const config = configOf(c.groups);
  const elb = new CountingElb();
  elb.bucket = { burst: DEFAULT_ACCOUNT_ELB_BUCKET.burst, perSecond: DEFAULT_ACCOUNT_ELB_BUCKET.refillPerSecond * TIME_SCALE, otherPerSecond: OTHER_REGISTRAR_PER_SECOND * TIME_SCALE };
  const table = new InMemoryLeaseTable('leases', () => T0);
  const written = new Map<string, number>();
  const latencies: number[] = [];
  elb.onAccepted = (command, targetGroupArn, targets) => {
    if (command !== 'RegisterTargetsCommand') return;
    for (const t of targets) {
      const at = written.get(`${targetGroupArn} ${t}`);
      if (at === undefined) continue;
      latencies.push((performance.now() - at) * TIME_SCALE);
      written.delete(`${targetGroupArn} ${t}`);
    }
  };
  const scaled = { callsPerSecond: budget.callsPerSecond * TIME_SCALE, burst: budget.burst };
  const metrics = new Metrics({ namespace: 'bench', serviceName: 'b7' });
  (metrics as unknown as { console: { log: () => void } }).console.log = () => undefined;
  const sync =
    side === 'agentLb'
      ? createSyncHandler({ config, elbClient: elb.asClient(), dynamoClient: table.asClient(), logger: silentLogger(), metrics, now: () => T0 * 1000 + 1500, elbGate: new BucketGate(scaled, () => performance.now()), batchBudgetMs: SYNC_BATCH_BUDGET_MS / TIME_SCALE })
      : undefined;
  const naive = side === 'perEvent' ? createNaiveRegistrar(elb.asClient(), config.routing, { onCallError: () => undefined }) : undefined;

  // The stream: records wait here until the shard's poller hands them to the function, one batch at a time.
  const pending: DynamoDBRecord[] = [];
  let producing = true;
  let invocations = 0;
  let handlerMs = 0;
  const poller = (async () => {
    while (producing || pending.length > 0) {
      if (pending.length === 0) {
        await sleep(2);
        continue;
      }
      // As many records as the deployed event source mapping hands the function at most.
      const batch = pending.splice(0, DEFAULT_SYNC_BATCH_SIZE);
      const started = performance.now();
      invocations++;
      if (sync) {
        const failures = (await sync(streamEvent(batch))).batchItemFailures;
        if (failures.length > 0) {
          const from = batch.findIndex((r) => r.dynamodb?.SequenceNumber === failures[0].itemIdentifier);
          pending.unshift(...batch.slice(Math.max(0, from)));
        }
      } else await naive!(streamEvent(batch));
      handlerMs += performance.now() - started;
    }
  })();

  const started = performance.now();
  const stream = changes(c.groups, 42 + c.groups + c.churnPerSecond);
  const total = Math.round(c.churnPerSecond * c.seconds);
  for (let n = 0; n < total; n++) {
    const due = started + ((n / c.churnPerSecond) * 1000) / TIME_SCALE;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const { kind, item } = stream.next().value as { kind: 'join' | 'leave'; item: Item };
    const change = record(kind === 'join' ? 'INSERT' : 'REMOVE', item);
    table.applyRecords([change]);
    if (kind === 'join') written.set(`${arn(Number(item.capabilities.SS![0].slice(1)))} ${item.target.S}`, performance.now());
    else written.delete(`${arn(Number(item.capabilities.SS![0].slice(1)))} ${item.target.S}`);
    pending.push(change);
  }
  producing = false;
  await poller;
  const elapsedAwsSeconds = ((performance.now() - started) / 1000) * TIME_SCALE;

  // Replayed through the budget's own bucket at the times ELB accepted them, as ELB counts: a call it would refuse was over the budget.
  const over = callsOverBudget(elb.acceptedAt, scaled);
  const want = new Map<string, Set<string>>();
  for (const item of table.items.values()) {
    const g = arn(Number(item.capabilities.SS![0].slice(1)));
    want.set(g, (want.get(g) ?? new Set()).add(item.target.S!));
  }
  const have = new Map([...elb.groups].filter(([, s]) => s.size > 0));
  const extra = [...have].reduce((n, [g, s]) => n + [...s].filter((k) => !want.get(g)?.has(k)).length, 0);
  const missing = [...want].reduce((n, [g, s]) => n + [...s].filter((k) => !have.get(g)?.has(k)).length, 0);
  return {
    elbCalls: elb.acceptedAt.length,
    callsPerSecond: Math.round((elb.acceptedAt.length / elapsedAwsSeconds) * 100) / 100,
    throttles: elb.throttled,
    callsOverBudget: over,
    lostJoins: written.size,
    registrationMs: distribution(latencies, written.size, elapsedAwsSeconds * 1000),
    groupsExact: extra === 0 && missing === 0,
    extraTargets: extra,
    missingTargets: missing,
    describeCalls: elb.calls.DescribeTargetHealthCommand ?? 0,
    syncInvocations: invocations,
    syncMsPerInvocation: invocations === 0 ? 0 : Math.round((handlerMs / invocations) * 10) / 10,
  };
}

export const B7_CASES: readonly B7Case[] = [10, 40, 100].flatMap((groups) => [1, 10, 50].map((churnPerSecond) => ({ groups, churnPerSecond, seconds: groups === 100 ? 120 : 60 })));

export async function runB7(options: { readonly cases?: readonly B7Case[]; readonly log?: (line: string) => void } = {}): Promise<B7Result> {
  const budget = DEFAULT_ELB_CALL_BUDGET;
  const cases: B7CaseResult[] = [];
  for (const c of options.cases ?? B7_CASES) {
    const agentLb = await runSide(c, budget, 'agentLb');
    const perEvent = await runSide(c, budget, 'perEvent');
    const boundSeconds = Math.round(roundBound(c.groups, c.churnPerSecond, budget) * 10) / 10;
    const p99 = agentLb.registrationMs.p99;
    const ratio = p99 === null ? Infinity : Math.round((p99 / 1000 / boundSeconds) * 100) / 100;
    options.log?.(
      `B7 ${c.groups} groups, ${c.churnPerSecond}/s: ${agentLb.callsPerSecond} calls/s, p50 ${agentLb.registrationMs.p50} ms, p99 ${p99} ms, bound ${boundSeconds} s, ratio ${ratio}, exact ${agentLb.groupsExact} (+${agentLb.extraTargets} −${agentLb.missingTargets}), ${agentLb.describeCalls} describes; per-event ${perEvent.callsPerSecond} calls/s, ${perEvent.throttles} throttled`,
    );
    cases.push({ ...c, boundSeconds, agentLb, perEvent, callsOverBudget: agentLb.callsOverBudget, p99OverBoundRatio: ratio });
  }
  // The cost at the defaults, with the sync function's duration measured in these runs at the
  // lightest churn: the defaults' fleet changes ~0.05 times a second (4 changes per agent and day),
  // far below it; near the budget an invocation's duration is mostly its wait for tokens.
  const lightest = Math.min(...cases.map((c) => c.churnPerSecond));
  const measured = cases.flatMap((c) => (c.churnPerSecond === lightest && c.agentLb.syncInvocations > 0 ? [c.agentLb.syncMsPerInvocation] : []));
  const syncMs = measured.length === 0 ? DEFAULT_FLEET_SETTINGS.syncSeconds * 1000 : Math.max(...measured);
  const settings = { ...DEFAULT_FLEET_SETTINGS, syncSeconds: syncMs / 1000 };
  const cost = monthlyCost(modelCounts(settings), US_EAST_1_PRICES);
  return {
    scenario: 'B7',
    budget,
    account: { burst: DEFAULT_ACCOUNT_ELB_BUCKET.burst, perSecond: DEFAULT_ACCOUNT_ELB_BUCKET.refillPerSecond, otherRegistrarPerSecond: OTHER_REGISTRAR_PER_SECOND },
    timeScale: TIME_SCALE,
    cases,
    costPer1000AgentsMonthUsd: cost.per1000AgentsUsd,
    cost: { leaseTtlSeconds: settings.leaseTtlSeconds, billing: 'on-demand', pricesDated: US_EAST_1_PRICES.date, syncMsPerInvocation: syncMs },
  };
}

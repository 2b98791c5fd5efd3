import { performance } from 'node:perf_hooks';
import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { CreateTargetGroupCommand, DescribeTargetGroupsCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { createElbClient } from '../lib/aws/clients';
import { RoutingConfig } from '../lib/core/lease-schema';
import { LOCAL_CREDENTIALS, MOTO_CREDENTIALS } from '../lib/local/emulators';
import { localMetrics } from '../lib/local/handler-telemetry';
import { LocalStack } from '../lib/local/local-stack';
import { StreamPoller } from '../lib/local/stream/stream-poller';
import { ReconcileReport } from '../lib/registry/reconcile';
import { FleetPhase, FleetRunResult, planFleet, runFleet } from './b2-fleet';
import { CommandCounts, countCommands, mutatingCalls } from './command-counter';
import { warmUpDynamoDb } from './ddb-warm-up';
import { createNaiveRegistrar } from './naive-registrar';
import { Distribution, distribution } from './percentiles';
import { TargetObserver } from './target-observer';
import { secondsToSend } from './throttle-projection';

export interface B2Options {
  readonly agents: number;
  /** @default agents / 5 */
  readonly crashes?: number;
  /** @default agents / 5 */
  readonly releases?: number;
  /** Lease TTL of the agents; they renew every ttl/3. @default 15 */
  readonly ttlSeconds?: number;
  /** Stream poll interval, as Lambda's ~4 polls/s. @default 250 */
  readonly pollIntervalMs?: number;
  /** @default 5000 */
  readonly reconcileIntervalMs?: number;
  /** @default 100 agents/s */
  readonly joinRatePerSecond?: number;
  /** Heartbeat-only window between join and crash. @default ttlSeconds */
  readonly steadySeconds?: number;
  /** @default 50 */
  readonly observerIntervalMs?: number;
  /**
   * Seconds of requests to a scratch table of each fresh DynamoDB Local before the fleet joins
   * (bench/ddb-warm-up.ts): a cold JVM is the emulator's cost, not the registry's. 0: none. @default 10
   */
  readonly warmUpSeconds?: number;
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

/** One registrar's figures on the fleet workload. */
export interface B2RegistrarFigures {
  readonly registrationMs: Distribution;
  readonly registrationFromAckMs: Distribution;
  /** Write issued → the registrar's RegisterTargets call for the target returned: its latency without the observer's. */
  readonly registrationElbAckMs: Distribution;
  readonly crashRemovalElbAckMs: Distribution;
  readonly releaseRemovalElbAckMs: Distribution;
  readonly crashRemovalMs: Distribution;
  readonly crashRemovalAfterExpiryMs: Distribution;
  readonly releaseRemovalMs: Distribution;
  readonly missing: Readonly<Record<FleetPhase, number>>;
  /** Register+Deregister calls per phase and in all four phases. */
  readonly elbCalls: Readonly<Record<FleetPhase | 'total', number>>;
  /** Every ELB request of the registrar, per phase and command (DescribeTargetHealth are reconcile's). */
  readonly requests: Readonly<Record<FleetPhase, CommandCounts>>;
  readonly elbErrors: CommandCounts;
  readonly heartbeats: { readonly duringSteady: number; readonly total: number; readonly elbCallsDuringSteady: number };
  /** Seconds the join phase's calls would wait for the AWS throttle (burst 20, 4/s) from a full bucket. */
  readonly joinSecondsOnAwsThrottle: number;
  readonly pollerLagMs: Distribution;
  /** Ours: per batch, the sync handler's confirming read of the changed leases (BatchGetItem, consistent), ms. */
  readonly confirmReadMs: Distribution;
  readonly batches: number;
  /** The most Register+Deregister calls one target group got from one sync invocation (ours: the sync handler's own client; baseline: its registrar's). */
  readonly maxCallsToOneGroupPerBatch: number;
  readonly finalGroupsMatchLeases: boolean;
  readonly agentErrors: FleetRunResult['agentErrors'];
  /** The observer's own DescribeTargetHealth calls, their mean duration, and the mean time between its polls of a group. */
  readonly observer: { readonly describeCalls: number; readonly meanCallMs: number; readonly meanRoundMs: number; readonly errors: number };
}

export interface B2Result {
  readonly scenario: 'B2';
  readonly setup: {
    readonly agents: number;
    /** The load balancer's target quota the stack was synthesized with (room for every agent's targets). */
    readonly targetQuota: number;
    readonly capabilities: readonly string[];
    readonly crashes: number;
    readonly releases: number;
    readonly ttlSeconds: number;
    readonly pollIntervalMs: number;
    readonly reconcileIntervalMs: number;
    readonly batchSize: number;
    readonly batchingWindowMs: number;
    readonly joinRatePerSecond: number;
    readonly steadySeconds: number;
    readonly observerIntervalMs: number;
    /** Seconds each fresh DynamoDB Local was warmed up before the fleet joined. */
    readonly warmUpSeconds: number;
    /** ttl + reconcile interval + 1 s: the crash-removal bound. */
    readonly crashRemovalBoundMs: number;
    readonly seed: number;
  };
  readonly ours: B2RegistrarFigures & {
    readonly reconcile: {
      readonly runs: number;
      readonly elbCalls: number;
      /** Register+Deregister calls of the passes that finished in each phase. */
      readonly elbCallsByPhase: Readonly<Record<FleetPhase, number>>;
      readonly describeCalls: number;
      readonly driftRegistered: number;
      readonly driftDeregistered: number;
      readonly expiredLeasesDeleted: number;
      /** The most Register+Deregister calls one group got from one reconcile pass. */
      readonly maxCallsToOneGroupPerPass?: number;
    };
  };
  readonly naive: B2RegistrarFigures & { readonly callErrors: number };
  /** Ours again with the deployed event source mapping's batching (1000 records, 1 s window) instead of local mode's (100, 0): fewer, bigger batches, later registrations. */
  readonly oursDeployedBatching: B2RegistrarFigures & Batching & { readonly reconcile: B2Result['ours']['reconcile'] };
  /** Ours with the deployed batch size and a shorter window (SHORT_WINDOW): what a lower window buys in latency and costs in calls. */
  readonly oursShortWindow?: B2RegistrarFigures & Batching & { readonly reconcile: B2Result['ours']['reconcile'] };
  /** naive.elbCalls.total / ours.elbCalls.total */
  readonly callRatio: number;
}

/** Local mode's defaults (LocalStack, `agent-lb local`): batches of up to 100, handed over as soon as read. */
export const LOCAL_BATCHING = { batchSize: 100, batchingWindowMs: 0 } as const;
/** The deployed event source mapping's defaults (RegistrySync: BatchSize 1000, MaximumBatchingWindow 1 s). */
export const DEPLOYED_BATCHING = { batchSize: 1000, batchingWindowMs: 1000 } as const;
/** The deployed batch size with a quarter of the window (`maxBatchingWindowSeconds`: 0.25). */
export const SHORT_WINDOW = { batchSize: 1000, batchingWindowMs: 250 } as const;

type Batching = { readonly batchSize: number; readonly batchingWindowMs: number };

/**
 * B2: the whole system locally (DynamoDB Local + its stream + the poller + the real sync and
 * reconcile handlers + moto), a fleet of SDK agents joining, heartbeating, crashing and
 * releasing. Run three times on fresh stacks with the same seeded fleet:
 * 1. watching our target groups, with local mode's batching (up to 100 records, no window);
 * 2. watching mirror groups that a per-event registrar maintains from the same stream through
 *    a second poller (our handler still runs on the stack's own groups);
 * 3. ours again with the deployed event source mapping's batching (up to 1000 records, 1 s window);
 * 4. ours with the deployed batch size and a 0.25 s window.
 * Sequential rather than side by side so the baseline's call volume does not slow down moto
 * while ours is being timed.
 */
export async function runB2(options: B2Options): Promise<B2Result> {
  const o = {
    ttlSeconds: 15,
    pollIntervalMs: 250,
    reconcileIntervalMs: 5000,
    joinRatePerSecond: 100,
    observerIntervalMs: 50,
    warmUpSeconds: 10,
    seed: 5,
    log: () => undefined,
    ...options,
  };
  const crashes = o.crashes ?? Math.round(o.agents / 5);
  const releases = o.releases ?? Math.round(o.agents / 5);
  const steadySeconds = o.steadySeconds ?? o.ttlSeconds;
  const settings = { ...o, crashes, releases, steadySeconds };

  o.log(`B2 ours: ${o.agents} agents`);
  const ours = await runOnce('ours', settings, LOCAL_BATCHING);
  o.log(`B2 per-event baseline: ${o.agents} agents`);
  const naive = await runOnce('naive', settings, LOCAL_BATCHING);
  o.log(`B2 ours with the deployed batching (${DEPLOYED_BATCHING.batchSize} records, ${DEPLOYED_BATCHING.batchingWindowMs} ms window): ${o.agents} agents`);
  const deployed = await runOnce('ours', settings, DEPLOYED_BATCHING);
  o.log(`B2 ours with a ${SHORT_WINDOW.batchingWindowMs} ms window (${SHORT_WINDOW.batchSize} records): ${o.agents} agents`);
  const short = await runOnce('ours', settings, SHORT_WINDOW);

  return {
    scenario: 'B2',
    setup: {
      agents: o.agents,
      targetQuota: b2TargetQuota(o.agents),
      capabilities: ours.capabilities,
      crashes,
      releases,
      ttlSeconds: o.ttlSeconds,
      pollIntervalMs: o.pollIntervalMs,
      reconcileIntervalMs: o.reconcileIntervalMs,
      batchSize: LOCAL_BATCHING.batchSize,
      batchingWindowMs: LOCAL_BATCHING.batchingWindowMs,
      joinRatePerSecond: o.joinRatePerSecond,
      steadySeconds,
      observerIntervalMs: o.observerIntervalMs,
      warmUpSeconds: o.warmUpSeconds,
      crashRemovalBoundMs: o.ttlSeconds * 1000 + o.reconcileIntervalMs + 1000,
      seed: o.seed,
    },
    ours: { ...ours.figures, reconcile: ours.reconcile! },
    naive: { ...naive.figures, callErrors: naive.callErrors },
    oursDeployedBatching: { ...deployed.figures, ...DEPLOYED_BATCHING, reconcile: deployed.reconcile! },
    oursShortWindow: { ...short.figures, ...SHORT_WINDOW, reconcile: short.reconcile! },
    callRatio: Math.round((naive.figures.elbCalls.total / Math.max(1, ours.figures.elbCalls.total)) * 10) / 10,
  };
}

export type Settings = Required<Omit<B2Options, 'crashes' | 'releases' | 'steadySeconds'>> & { crashes: number; releases: number; steadySeconds: number };

interface OnceResult {
  readonly capabilities: string[];
  readonly figures: B2RegistrarFigures;
  readonly reconcile?: B2Result['ours']['reconcile'];
  readonly callErrors: number;
}

/** The target quota B2's stack is synthesized with: three targets an agent, rounded up to a thousand. */
export function b2TargetQuota(agents: number): number {
  return Math.max(1000, Math.ceil((agents * 3) / 1000) * 1000);
}

export async function runOnce(kind: 'ours' | 'naive', s: Settings, batching: Batching): Promise<OnceResult> {
  type Phase = FleetPhase | 'setup';
  let phase = 'setup' as Phase;
  const reconciles: { phase: Phase; report: ReconcileReport }[] = [];
  const oursLags: number[] = [];
  const confirmReads: number[] = [];
  let oursBatches = 0;
  let handlerCounter: ReturnType<typeof countCommands>['counter'] | undefined;
  /** Each handler's own calls: the sync's between its invocations' ends are exactly one invocation's; reconcile's between its reports, one pass's. */
  const own: Partial<Record<'sync' | 'reconcile', ReturnType<typeof countCommands>['counter']>> = {};
  const perBatch = { ours: new BatchGroupCalls(), naive: new BatchGroupCalls() };
  const perPass = new BatchGroupCalls();
  const acks: ElbAcks = { register: new Map(), deregister: new Map() };
  const reconcileWaiters: (() => void)[] = [];
  /** Resolves when the next reconcile pass reports (or after a pass' worth of time at most). */
  const nextReconcilePass = () =>
    new Promise<void>((resolve) => {
      reconcileWaiters.push(resolve);
      setTimeout(resolve, 2 * s.reconcileIntervalMs + 10_000);
    });

  const stack = await LocalStack.start({
    // At most three capabilities an agent: 500 agents hold ~1 000 targets, ALB's default quota of
    // 1 000 a load balancer (adjustable); the fleet is synthesized with room, or its last few
    // registrations are refused over-quota (as they were until e02d80c's run found them missing).
    targetQuota: b2TargetQuota(s.agents),
    pollIntervalMs: s.pollIntervalMs,
    reconcileIntervalMs: s.reconcileIntervalMs,
    batchSize: batching.batchSize,
    batchingWindowMs: batching.batchingWindowMs,
    wrapElbClient: (client, handler) => {
      // Both handlers' clients count into one counter, as their calls share one throttle.
      const counted = countCommands(client, handlerCounter ? { into: handlerCounter } : {});
      handlerCounter = counted.counter;
      own[handler] = countCommands(counted.client, { name: 'benchCountOwnCommands' }).counter;
      if (kind === 'ours') recordAcks(counted.client, acks);
      return counted.client;
    },
    onBatch: (info) => {
      oursBatches++;
      oursLags.push(info.pollerLagMs);
      if (own.sync) perBatch.ours.batchEnded(own.sync.mutatingByGroup, phase !== 'setup');
    },
    onReconcile: (report) => {
      reconciles.push({ phase, report });
      if (own.reconcile) perPass.batchEnded(own.reconcile.mutatingByGroup, phase !== 'setup');
      for (const wake of reconcileWaiters.splice(0)) wake();
    },
    // The sync handler's own figure for its confirming read, from its metrics.
    metrics: (handler) => {
      const metrics = localMetrics(new Logger({ serviceName: 'bench', logLevel: 'SILENT' }), 'agent-lb-bench');
      if (handler === 'sync') {
        const add = metrics.addMetric.bind(metrics);
        metrics.addMetric = (name, unit, value, resolution) => {
          if (name === 'ConfirmReadMs' && phase !== 'setup') confirmReads.push(value);
          return add(name, unit, value, resolution);
        };
      }
      return metrics;
    },
    onError: (where, error) => s.log(`  ${where} error: ${(error as Error)?.message ?? String(error)}`),
  });
  if (s.warmUpSeconds > 0) {
    const warm = await warmUpDynamoDb(stack.dynamodbClientConfig, s.warmUpSeconds);
    s.log(`  DynamoDB Local warmed up: ${warm.requests} requests in ${warm.seconds} s, p50 ${warm.firstSecondP50Ms} ms in the first second, ${warm.lastSecondP50Ms} ms in the last`);
  }
  const region = stack.state.region;
  const elbConfig = { endpoint: stack.state.elbv2Endpoint, region, credentials: { ...MOTO_CREDENTIALS } };
  const ddbConfig = { endpoint: stack.state.dynamodbEndpoint, region, credentials: { ...LOCAL_CREDENTIALS } };
  const plainElb = new ElasticLoadBalancingV2Client({ ...elbConfig, maxAttempts: 3 });
  const agentsDdb = new DynamoDBClient({ ...ddbConfig, maxAttempts: 5 });
  const capabilities = Object.keys(stack.state.targetGroups).sort();
  let naivePoller: StreamPoller | undefined;
  let observer: TargetObserver | undefined;
  try {
    let groups: Record<string, string> = { ...stack.state.targetGroups };
    let calls = () => handlerCounter!.snapshot();
    let naiveCounter: ReturnType<typeof countCommands>['counter'] | undefined;
    const naiveLags: number[] = [];
    let naiveBatches = 0;
    let callErrors = 0;
    if (kind === 'naive') {
      groups = await createMirrorGroups(plainElb, stack.state.targetGroups);
      const counted = countCommands(createElbClient({ ...elbConfig }));
      recordAcks(counted.client, acks);
      naiveCounter = counted.counter;
      calls = () => counted.counter.snapshot();
      const routing: RoutingConfig = {
        ...stack.runtimeConfig.routing,
        capabilities: Object.fromEntries(Object.entries(groups).map(([c, arn]) => [c, { targetGroupArn: arn, targetType: 'ip' as const }])),
      };
      naivePoller = new StreamPoller({
        streamArn: stack.deployment.streamArn,
        client: new DynamoDBStreamsClient({ ...ddbConfig }),
        handler: createNaiveRegistrar(counted.client, routing, { onCallError: () => callErrors++ }),
        batchSize: batching.batchSize,
        batchingWindowMs: batching.batchingWindowMs,
        pollIntervalMs: s.pollIntervalMs,
        onBatch: (info) => {
          naiveBatches++;
          naiveLags.push(info.pollerLagMs);
          perBatch.naive.batchEnded(counted.counter.mutatingByGroup, true);
        },
        onError: (error) => s.log(`  baseline poller error: ${(error as Error)?.message ?? String(error)}`),
      }).start();
    }
    observer = new TargetObserver(plainElb, Object.values(groups), s.observerIntervalMs);
    observer.start();

    const plan = planFleet(s.agents, capabilities, s.crashes, s.releases, s.seed);
    const deadlineMs = 30_000;
    const crashDeadlineMs = s.ttlSeconds * 1000 + s.reconcileIntervalMs + 30_000;
    const fleet = await runFleet({
      plan,
      tableName: stack.state.tableName,
      dynamodb: agentsDdb,
      groups,
      observer,
      elb: plainElb,
      ttlSeconds: s.ttlSeconds,
      joinRatePerSecond: s.joinRatePerSecond,
      steadySeconds: s.steadySeconds,
      crashDeadlineMs,
      deadlineMs,
      calls,
      elbAck: (action, arn, id, port) => acks[action].get(`${arn}|${id}:${port}`),
      onPhase: (p) => (phase = p),
      beforeSteady: nextReconcilePass,
      log: (line) => s.log(`  ${kind}: ${line}`),
    });

    const elbCalls = {
      join: mutatingCalls(fleet.phases.join.calls),
      steady: mutatingCalls(fleet.phases.steady.calls),
      crash: mutatingCalls(fleet.phases.crash.calls),
      release: mutatingCalls(fleet.phases.release.calls),
      total: 0,
    };
    elbCalls.total = elbCalls.join + elbCalls.steady + elbCalls.crash + elbCalls.release;
    const phases = ['join', 'steady', 'crash', 'release'] as const;
    const figures: B2RegistrarFigures = {
      // Waits that timed out rank above every measured value (see distribution()).
      registrationMs: distribution(fleet.registrationMs, fleet.missing.join, deadlineMs),
      registrationFromAckMs: distribution(fleet.registrationFromAckMs, fleet.missing.join, deadlineMs),
      registrationElbAckMs: distribution(fleet.registrationElbAckMs),
      crashRemovalElbAckMs: distribution(fleet.crashRemovalElbAckMs),
      releaseRemovalElbAckMs: distribution(fleet.releaseRemovalElbAckMs),
      crashRemovalMs: distribution(fleet.crashRemovalMs, fleet.missing.crash, crashDeadlineMs),
      crashRemovalAfterExpiryMs: distribution(fleet.crashRemovalAfterExpiryMs, fleet.missing.crash),
      releaseRemovalMs: distribution(fleet.releaseRemovalMs, fleet.missing.release, deadlineMs),
      missing: fleet.missing,
      elbCalls,
      requests: Object.fromEntries(phases.map((p) => [p, fleet.phases[p].calls])) as Record<FleetPhase, CommandCounts>,
      elbErrors: { ...(kind === 'ours' ? handlerCounter!.errors : naiveCounter!.errors) },
      heartbeats: {
        duringSteady: fleet.phases.steady.renewals,
        total: phases.reduce((sum, p) => sum + fleet.phases[p].renewals, 0),
        elbCallsDuringSteady: elbCalls.steady,
      },
      joinSecondsOnAwsThrottle: secondsToSend(elbCalls.join),
      pollerLagMs: distribution(kind === 'ours' ? oursLags : naiveLags),
      confirmReadMs: distribution(confirmReads),
      batches: kind === 'ours' ? oursBatches : naiveBatches,
      maxCallsToOneGroupPerBatch: perBatch[kind].max,
      finalGroupsMatchLeases: fleet.finalGroupsMatchLeases,
      agentErrors: fleet.agentErrors,
      observer: { describeCalls: observer.describeCalls, meanCallMs: observer.meanCallMs, meanRoundMs: observer.meanRoundMs, errors: observer.describeErrors },
    };
    const inRun = reconciles.filter((r) => r.phase !== 'setup').map((r) => r.report);
    const sum = (f: (r: ReconcileReport) => number) => inRun.reduce((t, r) => t + f(r), 0);
    return {
      capabilities,
      figures,
      callErrors,
      ...(kind === 'ours'
        ? {
            reconcile: {
              runs: inRun.length,
              elbCalls: sum((r) => r.elbCalls),
              elbCallsByPhase: Object.fromEntries(phases.map((p) => [p, reconciles.filter((r) => r.phase === p).reduce((t, r) => t + r.report.elbCalls, 0)])) as Record<FleetPhase, number>,
              describeCalls: sum((r) => r.describeCalls),
              driftRegistered: sum((r) => r.driftRegistered),
              driftDeregistered: sum((r) => r.driftDeregistered),
              expiredLeasesDeleted: sum((r) => r.expiredLeasesDeleted),
              maxCallsToOneGroupPerPass: perPass.max,
            },
          }
        : {}),
    };
  } finally {
    await observer?.stop();
    await naivePoller?.stop().catch(() => undefined);
    agentsDdb.destroy();
    plainElb.destroy();
    await stack.stop();
  }
}

/** A second set of target groups, like the stack's, for the per-event registrar to maintain. */
async function createMirrorGroups(elb: ElasticLoadBalancingV2Client, groups: Readonly<Record<string, string>>): Promise<Record<string, string>> {
  const { TargetGroups = [] } = await elb.send(new DescribeTargetGroupsCommand({ TargetGroupArns: Object.values(groups) }));
  const mirror: Record<string, string> = {};
  for (const [capability, arn] of Object.entries(groups)) {
    const tg = TargetGroups.find((g) => g.TargetGroupArn === arn);
    const out = await elb.send(
      new CreateTargetGroupCommand({
        Name: `naive-${capability}`.slice(0, 32),
        Protocol: tg?.Protocol ?? 'HTTP',
        Port: tg?.Port ?? 8080,
        VpcId: tg?.VpcId,
        TargetType: 'ip',
      }),
    );
    mirror[capability] = out.TargetGroups![0].TargetGroupArn!;
  }
  return mirror;
}

/** Tracks the most calls any one group got between consecutive batch ends (or passes), counting only those that end while `measured`. */
class BatchGroupCalls {
  public max = 0;
  private last: CommandCounts = {};

  public batchEnded(byGroup: CommandCounts, measured: boolean): void {
    if (measured) for (const [arn, n] of Object.entries(byGroup)) this.max = Math.max(this.max, n - (this.last[arn] ?? 0));
    this.last = { ...byGroup };
  }
}

type ElbAcks = Record<'register' | 'deregister', Map<string, number>>;

/**
 * Notes when each target's first successful RegisterTargets / DeregisterTargets returned
 * (outermost middleware: after the SDK's retries), keyed `<group arn>|<id>:<port>`.
 */
function recordAcks(client: ElasticLoadBalancingV2Client, acks: ElbAcks): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      const action = context.commandName === 'RegisterTargetsCommand' ? 'register' : context.commandName === 'DeregisterTargetsCommand' ? 'deregister' : undefined;
      if (action) {
        const at = performance.now();
        const input = args.input as { TargetGroupArn?: string; Targets?: { Id?: string; Port?: number }[] };
        for (const t of input.Targets ?? []) {
          const key = `${input.TargetGroupArn}|${t.Id}:${t.Port}`;
          if (!acks[action].has(key)) acks[action].set(key, at);
        }
      }
      return result;
    },
    { step: 'initialize', name: 'benchRecordAcks' },
  );
}

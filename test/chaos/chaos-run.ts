import { writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DECISION_DEADLINE_MS } from '../../lib/registry/confirmed-changes';
import { PASS_BUDGET_MS } from '../../lib/registry/reconcile';
import { CpuHogs } from './cpu-hogs';
import { AgentFleet, EndAction, FleetCounters } from './agent-fleet';
import { ChaosHarness, RestartReport, StackCounters } from './chaos-harness';
import { check, Verdict } from './checker';
import { FaultKind, FaultRates } from './fault-proxy';
import { HandlerChaosCounters } from './handler-chaos';
import { buildLeaseTruth } from './lease-truth';
import { stream } from '../support/prng';
import { Sampler } from './sampler';
import { recordLeaseWrites } from './write-log';
import { sleep } from '../../lib/core/concurrency';

/** One chaos run: the stack, the fleet, the faults on a schedule, quiescence, then the checker's verdict. */

export interface ChaosOptions {
  readonly agents: number;
  readonly durationSeconds: number;
  readonly seed: number;
  readonly ttlSeconds: number;
  readonly reconcileIntervalMs: number;
  readonly sampleIntervalMs: number;
  readonly capabilities: readonly string[];
  readonly faults: FaultRates;
  readonly hangMs: readonly [number, number];
  /** Emulate AWS's Register/Deregister bucket (burst 20, 4/s) in the proxy. */
  readonly awsBucket: boolean;
  /** Every this many seconds, an ELB brown-out (every request fails) of `outageSeconds`. 0: none. */
  readonly outageEverySeconds: number;
  readonly outageSeconds: number;
  readonly killRate: number;
  readonly duplicateRate: number;
  /** Every this many seconds, the poller is replaced by one resumed `replayBackSeconds` back. 0: none. */
  readonly replayEverySeconds: number;
  readonly replayBackSeconds: number;
  /** DynamoDB Local is killed and restarted at these fractions of the duration. */
  readonly dynamoRestartsAt: readonly number[];
  readonly lifetimeSeconds: readonly [number, number];
  readonly downSeconds: readonly [number, number];
  readonly endWeights: Readonly<Record<EndAction, number>>;
  readonly drainCycleChance: number;
  /** Every target group's deregistration delay (ELB model in the moto launcher). */
  readonly deregistrationDelaySeconds: number;
  /** CPU hogs run beside the whole run (each a Node process spinning), killed at its end. */
  readonly cpuLoad: number;
  readonly onProgress?: (line: string) => void;
  /** Write the raw logs (agents' writes, proxy log, samples) here as JSON, for post-mortems. */
  readonly dumpFile?: string;
}

/** Long run defaults (`npm run test:chaos`). */
export const LONG_RUN: ChaosOptions = {
  agents: 200,
  durationSeconds: 210,
  seed: 20260501,
  ttlSeconds: 15,
  reconcileIntervalMs: 5000,
  sampleIntervalMs: 1000,
  capabilities: ['vision', 'speech', 'search'],
  faults: { throttle: 0.05, serverError: 0.03, timeout: 0.02, reset: 0.02 },
  hangMs: [1000, 3000],
  awsBucket: true,
  outageEverySeconds: 60,
  outageSeconds: 6,
  killRate: 0.05,
  duplicateRate: 0.05,
  replayEverySeconds: 40,
  replayBackSeconds: 15,
  dynamoRestartsAt: [0.35, 0.7],
  lifetimeSeconds: [10, 70],
  downSeconds: [0.1, 8],
  endWeights: { release: 35, crash: 30, takeover: 20, leave: 15 },
  drainCycleChance: 0.2,
  deregistrationDelaySeconds: 3,
  cpuLoad: 0,
};

/** The seeded minute that runs in `npm test`. */
export const SHORT_RUN: ChaosOptions = {
  ...LONG_RUN,
  agents: 40,
  durationSeconds: 45,
  seed: 7,
  ttlSeconds: 8,
  reconcileIntervalMs: 3000,
  outageEverySeconds: 20,
  outageSeconds: 4,
  replayEverySeconds: 15,
  replayBackSeconds: 8,
  dynamoRestartsAt: [0.5],
  lifetimeSeconds: [4, 20],
  downSeconds: [0.1, 4],
};

/**
 * The retry budget of the staleness bound, from the design (RELIABILITY.md, "Promises and
 * bounds"): a dead lease's target is removed by the first pass that reads the lease dead. That
 * pass starts at most one interval after the pass running when the lease died — or when that one
 * ends, if it ran longer (passes run one at a time) — and a pass stops sending after its budget
 * (PASS_BUDGET_MS): so the interval plus two pass budgets. While ELB or the table is down (a
 * brown-out, a DynamoDB Local restart) nothing can be removed: the longest such outage is added.
 */
export function retryBudgetOf(options: ChaosOptions, restarts: readonly RestartReport[] = []): number {
  const outageMs = Math.max(options.outageEverySeconds > 0 ? options.outageSeconds * 1000 : 0, ...restarts.map((r) => r.downMs));
  return 2 * PASS_BUDGET_MS + outageMs;
}

export interface ChaosFigures {
  readonly agents: number;
  readonly durationSeconds: number;
  readonly seed: number;
  readonly fleet: FleetCounters;
  readonly leaseWrites: { total: number; ok: number; conditionFailed: number; unknown: number };
  readonly stack: StackCounters;
  readonly handler: HandlerChaosCounters;
  readonly faults: Readonly<Record<FaultKind, number>>;
  readonly outages: number;
  readonly restarts: readonly RestartReport[];
  /** Why reconcile passes failed (message → count). */
  readonly reconcileFailureReasons: Readonly<Record<string, number>>;
  readonly elb: { register: number; deregister: number; describe: number; landedMutations: number; bySync: number; byReconcile: number };
}

export interface ChaosResult {
  readonly options: ChaosOptions;
  readonly figures: ChaosFigures;
  readonly verdict: Verdict;
  readonly passed: boolean;
}


export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const progress = options.onProgress ?? (() => undefined);
  // Bounded by themselves too: the run, its quiescence (≤ 3 drains of 120 s) and a margin.
  const hogs = CpuHogs.start(options.cpuLoad, options.durationSeconds + options.ttlSeconds + 600);
  if (hogs.count > 0) progress(`${hogs.count} CPU hogs running beside the run`);
  try {
    return await runWithStack(options, progress);
  } finally {
    await hogs.stop();
  }
}

async function runWithStack(options: ChaosOptions, progress: (line: string) => void): Promise<ChaosResult> {
  progress(`starting DynamoDB Local (file-backed), moto, the fault proxy; synthesizing the stack`);
  const stack = await ChaosHarness.start({
    capabilities: options.capabilities,
    reconcileIntervalMs: options.reconcileIntervalMs,
    proxy: {
      rates: options.faults,
      random: stream(options.seed, 'proxy'),
      hangMs: options.hangMs,
      ...(options.awsBucket ? { bucket: { burst: 20, perSecond: 4 } } : {}),
    },
    handlerRandom: stream(options.seed, 'handler'),
    killRate: options.killRate,
    duplicateRate: options.duplicateRate,
    deregistrationDelaySeconds: options.deregistrationDelaySeconds,
  });
  stack.traceInvocations = options.dumpFile !== undefined;
  // One client for the whole fleet (real agents each have their own): enough sockets that agents never queue behind each other.
  const agentsClient = new DynamoDBClient({ ...stack.stack.dynamodbClientConfig, maxAttempts: 3, requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 512 }) } });
  const writes = recordLeaseWrites(agentsClient);
  const sampler = new Sampler({
    elbConfig: { ...stack.stack.elbv2ClientConfig },
    dynamoConfig: { ...stack.stack.dynamodbClientConfig },
    tableName: stack.stack.deployment.tableName,
    targetGroups: stack.stack.deployment.targetGroups,
    intervalMs: options.sampleIntervalMs,
  });
  const fleet = new AgentFleet({
    agents: options.agents,
    capabilities: options.capabilities,
    tableName: stack.stack.deployment.tableName,
    client: agentsClient,
    ttlSeconds: options.ttlSeconds,
    seed: options.seed,
    lifetimeSeconds: options.lifetimeSeconds,
    downSeconds: options.downSeconds,
    startSpreadSeconds: Math.min(10, options.durationSeconds / 4),
    endWeights: options.endWeights,
    drainCycleChance: options.drainCycleChance,
  });
  const timers: NodeJS.Timeout[] = [];
  const pending: Promise<unknown>[] = [];
  let outages = 0;
  try {
    sampler.start();
    fleet.start();
    const started = Date.now();
    progress(`${options.agents} agents starting; chaos for ${options.durationSeconds} s (seed ${options.seed})`);

    for (const at of options.dynamoRestartsAt) {
      timers.push(
        setTimeout(() => {
          pending.push(
            stack.restartDynamoDb().then(
              (r) => progress(`DynamoDB Local killed and restarted in ${r.downMs} ms; stream ARN ${r.streamArnAfter === r.streamArnBefore ? 'unchanged' : 'CHANGED'}, shards ${r.shardsBefore.length} → ${r.shardsAfter.length}`),
              (error: unknown) => progress(`DynamoDB Local restart failed: ${String(error)}`),
            ),
          );
        }, at * options.durationSeconds * 1000),
      );
    }
    if (options.replayEverySeconds > 0) {
      timers.push(
        setInterval(() => {
          pending.push(stack.replay(options.replayBackSeconds * 1000).then(() => progress(`poller replaced, resumed ${options.replayBackSeconds} s back`)));
        }, options.replayEverySeconds * 1000),
      );
    }
    if (options.outageEverySeconds > 0) {
      timers.push(
        setInterval(() => {
          outages++;
          stack.proxy.outage = true;
          progress(`ELB brown-out for ${options.outageSeconds} s`);
          timers.push(setTimeout(() => (stack.proxy.outage = false), options.outageSeconds * 1000));
        }, options.outageEverySeconds * 1000),
      );
    }
    timers.push(
      setInterval(() => {
        const s = stack.counters;
        const f = fleet.counters;
        const top = [...stack.handlerWarnings].sort((a, b) => b[1] - a[1]).slice(0, 3);
        if (top.length > 0) progress(`handler warnings so far: ${top.map(([w, n]) => `${n}× ${w}`).join(' | ')}`);
        const failed = [...stack.reconcileFailureReasons];
        if (failed.length > 0) progress(`reconcile failures so far: ${failed.map(([w, n]) => `${n}× ${w}`).join(' | ')}`);
        progress(
          `t+${Math.round((Date.now() - started) / 1000)} s: holding ${fleet.holding()}, acquires ${f.acquires}, crashes ${f.crashes}, releases ${f.releases}, ` +
            `records ${s.streamRecords}, invocations ${s.handlerInvocations} (${s.failedInvocations} failed), reconcile ${s.reconcilePasses}/${s.reconcileFailures} failed`,
        );
      }, 15_000),
    );

    await sleep(options.durationSeconds * 1000);
    for (const t of timers) clearTimeout(t);
    await Promise.allSettled(pending);

    progress('churn stopped, faults off; waiting for quiescence');
    await fleet.freeze();
    stack.proxy.enabled = false;
    stack.proxy.outage = false;
    stack.handlerChaos.enabled.value = false;
    await stack.drain(120_000);
    // Leases of agents that crashed last expire within a TTL; the next reconcile passes clean them up.
    await sleep(options.ttlSeconds * 1000 + 2 * options.reconcileIntervalMs);
    await stack.drain(120_000);
    await stack.reconcileNow();
    await stack.drain(120_000);
    await sampler.stop();
    const final = await sampler.sample();
    fleet.stop();

    const truth = buildLeaseTruth(writes);
    const verdict = check({
      truth,
      samples: sampler.samples,
      proxyLog: stack.proxy.log,
      targetGroups: stack.stack.deployment.targetGroups,
      final,
      bounds: {
        decisionWindowMs: DECISION_DEADLINE_MS,
        ttlMs: options.ttlSeconds * 1000,
        reconcileIntervalMs: options.reconcileIntervalMs,
        retryBudgetMs: retryBudgetOf(options, stack.restarts),
      },
    });
    const log = stack.proxy.log;
    const figures: ChaosFigures = {
      agents: options.agents,
      durationSeconds: options.durationSeconds,
      seed: options.seed,
      fleet: { ...fleet.counters },
      leaseWrites: {
        total: writes.length,
        ok: writes.filter((w) => w.outcome === 'ok').length,
        conditionFailed: writes.filter((w) => w.outcome === 'condition').length,
        unknown: writes.filter((w) => w.outcome === 'error').length,
      },
      stack: { ...stack.counters },
      handler: { ...stack.handlerChaos.counters, kills: { ...stack.handlerChaos.counters.kills } },
      faults: { ...stack.proxy.faults },
      outages,
      restarts: [...stack.restarts],
      reconcileFailureReasons: Object.fromEntries(stack.reconcileFailureReasons),
      elb: {
        register: log.filter((e) => e.action === 'RegisterTargets').length,
        deregister: log.filter((e) => e.action === 'DeregisterTargets').length,
        describe: log.filter((e) => e.action === 'DescribeTargetHealth').length,
        landedMutations: stack.proxy.landedMutations().length,
        bySync: log.filter((e) => e.origin === 'sync' && e.action !== 'DescribeTargetHealth').length,
        byReconcile: log.filter((e) => e.origin === 'reconcile' && e.action !== 'DescribeTargetHealth').length,
      },
    };
    if (options.dumpFile) {
      const samples = sampler.samples.map((x) => ({
        startedAt: x.startedAt,
        endedAt: x.endedAt,
        groups: x.groups ? Object.fromEntries([...x.groups].map(([c, set]) => [c, [...set]])) : null,
        leases: x.leases ? Object.fromEntries(x.leases) : null,
      }));
      writeFileSync(options.dumpFile, JSON.stringify({ targetGroups: stack.stack.deployment.targetGroups, writes, proxyLog: log, samples, verdict, invocations: stack.invocationTrace }));
    }
    const passed =
      verdict.falseDeregistrations.length === 0 && verdict.lostRegistrations.length === 0 && verdict.stalenessViolations.length === 0 && verdict.unregisteredLiveSpells.length === 0;
    return { options, figures, verdict, passed };
  } finally {
    for (const t of timers) clearTimeout(t);
    fleet.stop();
    await sampler.stop();
    sampler.destroy();
    await stack.stop();
    agentsClient.destroy();
  }
}

/** The figures as a two-column table, for people and for RELIABILITY.md. */
export function formatTable(result: ChaosResult): string {
  const { figures: f, verdict: v, options: o } = result;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const faultsTotal = Object.values(f.faults).reduce((a, b) => a + b, 0);
  const rows: [string, string][] = [
    ['seed / duration', `${f.seed} / ${f.durationSeconds} s of churn (+ quiescence)`],
    ['agents (slots) / incarnations', `${f.agents} / ${f.fleet.incarnations}`],
    ['lease TTL / reconcile interval', `${o.ttlSeconds} s / ${s(o.reconcileIntervalMs)}`],
    ['deregistration delay (ELB model)', `${o.deregistrationDelaySeconds} s (deregistered targets drain, then go; draining counts as out of rotation)`],
    ['CPU hogs beside the run', `${o.cpuLoad}`],
    ['lease events', `${f.fleet.acquires} acquires (${f.fleet.takeovers} takeovers), ${f.fleet.renewals} renewals, ${f.fleet.drains} drains, ${f.fleet.activates} re-activations, ${f.fleet.releases} releases, ${f.fleet.crashes} crashes, ${f.fleet.lost} lost, ${f.fleet.reacquired} re-acquired`],
    ['lease writes (agents)', `${f.leaseWrites.total}: ${f.leaseWrites.ok} ok, ${f.leaseWrites.conditionFailed} condition failed, ${f.leaseWrites.unknown} unknown outcome`],
    ['stream records', `${f.stack.streamRecords} distinct; ${f.handler.recordsDelivered} deliveries in ${f.stack.handlerInvocations} invocations (${f.stack.failedInvocations} failed)`],
    ['faults injected (ELB)', `${faultsTotal}: ` + Object.entries(f.faults).map(([k, n]) => `${k} ${n}`).join(', ')],
    ['ELB brown-outs', `${f.outages} × ${o.outageSeconds} s (every request fails)`],
    ['handler kills', `${f.handler.kills.before + f.handler.kills.mid + f.handler.kills.after}: before ${f.handler.kills.before}, mid-batch ${f.handler.kills.mid}, after work ${f.handler.kills.after}`],
    ['duplicate deliveries', `${f.handler.duplicates} batches delivered twice`],
    ['replays from an earlier checkpoint', `${f.stack.replays} (${o.replayBackSeconds} s back), ${f.stack.recordsRedelivered} records redelivered after acknowledgement`],
    ['DynamoDB Local restarts', f.restarts.length === 0 ? '0' : f.restarts.map((r) => `down ${s(r.downMs)}, stream ARN ${r.streamArnAfter === r.streamArnBefore ? 'same' : 'changed'}, shards ${r.shardsBefore.length}→${r.shardsAfter.length}`).join('; ')],
    [
      'reconcile passes',
      `${f.stack.reconcilePasses} ok, ${f.stack.reconcileFailures} failed` +
        (f.stack.reconcileFailures > 0 ? ` (${Object.entries(f.reconcileFailureReasons).map(([why, n]) => `${n}× ${why.replace(/arn:\S+/g, '…')}`).join('; ')})` : ''),
    ],
    ['ELB calls (attempts at the proxy)', `${f.elb.register} Register, ${f.elb.deregister} Deregister, ${f.elb.describe} Describe; ${f.elb.landedMutations} mutations landed; sync ${f.elb.bySync}, reconcile ${f.elb.byReconcile}`],
    ['checker samples', `${v.samples} (every ${s(o.sampleIntervalMs)}); ${v.deregistrationsChecked} landed deregistrations checked exactly`],
    ['false deregistrations', `${v.falseDeregistrations.filter((d) => d.how === 'exact').length} exact, ${v.falseDeregistrations.filter((d) => d.how === 'sampled').length} sampled (decision window ${s(DECISION_DEADLINE_MS)})`],
    ['lost registrations (after quiescence)', `${v.lostRegistrations.length}`],
    ['live leases never registered within bound', `${v.unregisteredLiveSpells.length}`],
    ['dead-lease re-registrations', `${v.staleReappearances} (a target registered again after its lease had died)`],
    [
      'worst staleness after lease death',
      `${v.worstStaleness ? s(v.worstStaleness.until - v.worstStaleness.from) : '0 s'} (bound ${s(v.stalenessBoundMs)} = reconcile interval + 2 × pass budget ${s(PASS_BUDGET_MS)} + longest outage ${s(retryBudgetOf(o, f.restarts) - 2 * PASS_BUDGET_MS)}); ${v.staleEpisodes} stale episodes`,
    ],
    ['worst staleness after the agent last act', `${s(v.worstSinceLastActMs)} (bound ${s(v.lastActBoundMs)} = TTL + the above)`],
    ['staleness bound violations', `${v.stalenessViolations.length}`],
    ['worst registration delay (sampled)', s(v.worstRegistrationDelayMs)],
    ['racing deregistrations (lease new within the decision window)', `${v.racingDeregistrations}, back in rotation within ${s(v.worstRacingGapMs)} at worst`],
    ['verdict', result.passed ? 'PASS' : 'FAIL'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, val]) => `${k.padEnd(width)}  ${val}`).join('\n');
}

import type { AdmissionResult } from './admission-cost';
import type { B1Result } from './b1-handler-economy';
import type { ProjectionResult } from './b1-cold-start';
import type { B2Result } from './b2-end-to-end';
import type { B3Result } from './b3-reconcile-cost';
import type { B4Result } from './b4-data-plane';
import type { B5Result } from './b5-rolling-restart';
import type { B6Result, B6VariantFigures } from './b6-long-requests';
import type { B7Result } from './b7-budget';
import type { CatalogBenchResult } from './catalog';
import type { Distribution } from './percentiles';

export type ScenarioResult = B1Result | B2Result | B3Result | B4Result | B5Result | B6Result | B7Result | CatalogBenchResult | ProjectionResult | AdmissionResult;

/** One line of the table. `target` and `verdict` only on lines that check one of the issue's targets. */
export interface Row {
  readonly scenario: string;
  readonly figure: string;
  readonly ours: string;
  readonly naive: string;
  readonly target?: string;
  readonly verdict?: string;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isNaN(n) ? '–' : n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${int(n)} ms`);
/** A percentile that fell on timed-out waits prints as "> deadline". */
const pct = (d: Distribution, v: number | null) => (v !== null ? ms(v) : d.timedOutAfter !== undefined ? `> ${ms(d.timedOutAfter)}` : '–');
const quartet = (d: Distribution) => (d.n + d.timedOut === 0 ? '–' : [d.p50, d.p95, d.p99, d.max].map((v) => pct(d, v)).join(' / '));
const percent = (x: number) => (x < 10 ? x.toFixed(1) : String(Math.round(x)));
const missedBy = (value: number, limit: number, unit: (n: number) => string) =>
  value <= limit ? 'met' : `MISSED by ${unit(value - limit)} (${percent(((value - limit) / limit) * 100)} %)`;
/** What each batch size stands for: RegistrySync deploys 1000 (1 s window); local mode and Lambda's own default use 100. */
const batchLabel = (size: number) => (size === 1000 ? `batch ${size} (deployed)` : size === 100 ? `batch ${size} (local mode)` : `batch ${size}`);
const missedIfZero = (value: number) => (value === 0 ? 'met' : `MISSED: ${int(value)} calls`);

function b1Rows(r: B1Result): Row[] {
  return r.runs.flatMap((run): Row[] => {
    const s = `B1 ${batchLabel(run.batchSize)}`;
    return [
      { scenario: s, figure: `ELB calls for ${int(r.records)} records (${int(run.batches)} batches)`, ours: int(run.ours.elbCalls), naive: int(run.naive.elbCalls) },
      {
        scenario: s,
        figure: 'per-event calls / agent-lb calls',
        ours: `${run.callRatio}×`,
        naive: '1×',
        target: '≥ 20×',
        verdict: run.callRatio >= 20 ? 'met' : `MISSED: ${run.callRatio}× is ${(20 / run.callRatio).toFixed(1)}× short`,
      },
      {
        scenario: s,
        figure: 'records/s (one core)',
        ours: int(run.ours.recordsPerSecond),
        naive: int(run.naive.recordsPerSecond),
        target: '≥ 50 000',
        verdict: run.ours.recordsPerSecond >= 50_000 ? 'met' : `MISSED by ${int(50_000 - run.ours.recordsPerSecond)}/s`,
      },
      {
        scenario: s,
        figure: `heartbeat records alone (${int(run.heartbeatsAlone.records)}): ELB calls`,
        ours: int(run.heartbeatsAlone.oursCalls),
        naive: int(run.heartbeatsAlone.naiveCalls),
        target: '0',
        verdict: missedIfZero(run.heartbeatsAlone.oursCalls),
      },
      {
        scenario: s,
        figure: 'most calls to one group in one batch',
        ours: String(run.ours.maxCallsToOneGroupPerBatch),
        naive: '–',
        target: '≤ 2',
        verdict: run.ours.maxCallsToOneGroupPerBatch <= 2 ? 'met' : `MISSED by ${run.ours.maxCallsToOneGroupPerBatch - 2}`,
      },
      { scenario: s, figure: 'heap peak MiB / final groups identical', ours: `${run.ours.heapPeakMiB} / ${run.finalStateEqual}`, naive: '–' },
    ];
  });
}

function b2Rows(r: B2Result): Row[] {
  const s = `B2 ${r.setup.agents} agents`;
  const { ours, naive, setup } = r;
  const missing = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
  return [
    {
      scenario: s,
      figure: `registration p50/p95/p99/max (write → seen; poll ${setup.pollIntervalMs} ms, batches ≤ ${setup.batchSize}, window ${setup.batchingWindowMs} ms)`,
      ours: quartet(ours.registrationMs),
      naive: quartet(naive.registrationMs),
      target: 'p99 ≤ 1 500 ms',
      verdict: ours.registrationMs.p99 === null ? `MISSED: ${ours.missing.join} never seen` : missedBy(ours.registrationMs.p99, 1500, ms),
    },
    { scenario: s, figure: 'registration p50/p95/p99/max (write acknowledged → seen)', ours: quartet(ours.registrationFromAckMs), naive: quartet(naive.registrationFromAckMs) },
    { scenario: s, figure: '  registrar alone: write → its RegisterTargets returned', ours: quartet(ours.registrationElbAckMs), naive: quartet(naive.registrationElbAckMs) },
    {
      scenario: s,
      figure: `registration p50/p95/p99/max (write → seen), deployed batching (${r.oursDeployedBatching.batchSize} records, ${r.oursDeployedBatching.batchingWindowMs / 1000} s window)`,
      ours: quartet(r.oursDeployedBatching.registrationMs),
      naive: '–',
      target: 'p99 ≤ 1 500 ms',
      verdict:
        r.oursDeployedBatching.registrationMs.p99 === null
          ? `MISSED: ${r.oursDeployedBatching.missing.join} never seen`
          : missedBy(r.oursDeployedBatching.registrationMs.p99, 1500, ms),
    },
    {
      scenario: s,
      figure: '  registrar alone, deployed batching',
      ours: quartet(r.oursDeployedBatching.registrationElbAckMs),
      naive: '–',
      target: 'p99 ≤ 1 500 ms',
      verdict: r.oursDeployedBatching.registrationElbAckMs.p99 === null ? 'MISSED: no registration returned' : missedBy(r.oursDeployedBatching.registrationElbAckMs.p99, 1500, ms),
    },
    ...(r.oursShortWindow
      ? [
          {
            scenario: s,
            figure: `registration (write → seen), ${r.oursShortWindow.batchingWindowMs / 1000} s window (${r.oursShortWindow.batchSize} records); join calls`,
            ours: `${quartet(r.oursShortWindow.registrationMs)}; ${int(r.oursShortWindow.elbCalls.join)} calls`,
            naive: '–',
            target: 'p99 ≤ 1 500 ms',
            verdict: r.oursShortWindow.registrationMs.p99 === null ? `MISSED: ${r.oursShortWindow.missing.join} never seen` : missedBy(r.oursShortWindow.registrationMs.p99, 1500, ms),
          },
        ]
      : []),
    ...(ours.confirmReadMs
      ? [
          {
            scenario: s,
            figure: '  sync: confirming read per batch p50/p95/p99/max (local batching; deployed)',
            ours: `${quartet(ours.confirmReadMs)}; ${quartet(r.oursDeployedBatching.confirmReadMs)}`,
            naive: '–',
          },
        ]
      : []),
    {
      scenario: s,
      figure: `crash → removed p50/p95/p99/max (ttl ${setup.ttlSeconds} s, reconcile ${setup.reconcileIntervalMs / 1000} s)`,
      ours: quartet(ours.crashRemovalMs),
      naive: quartet(naive.crashRemovalMs),
      target: `max ≤ ${ms(setup.crashRemovalBoundMs)}`,
      verdict: ours.crashRemovalMs.max === null ? `MISSED: ${ours.missing.crash} never removed` : missedBy(ours.crashRemovalMs.max, setup.crashRemovalBoundMs, ms),
    },
    { scenario: s, figure: 'crash: removed after lease expiry p50/p95/p99/max', ours: quartet(ours.crashRemovalAfterExpiryMs), naive: quartet(naive.crashRemovalAfterExpiryMs) },
    { scenario: s, figure: '  registrar alone: crash → its DeregisterTargets returned', ours: quartet(ours.crashRemovalElbAckMs), naive: quartet(naive.crashRemovalElbAckMs) },
    { scenario: s, figure: 'release → removed p50/p95/p99/max', ours: quartet(ours.releaseRemovalMs), naive: quartet(naive.releaseRemovalMs) },
    { scenario: s, figure: '  registrar alone: release → its DeregisterTargets returned', ours: quartet(ours.releaseRemovalElbAckMs), naive: quartet(naive.releaseRemovalElbAckMs) },
    { scenario: s, figure: '  the same, deployed batching', ours: quartet(r.oursDeployedBatching.releaseRemovalMs), naive: '–' },
    {
      scenario: s,
      figure: 'ELB calls: join / steady / crash / release',
      ours: ['join', 'steady', 'crash', 'release'].map((p) => int(ours.elbCalls[p as 'join'])).join(' / '),
      naive: ['join', 'steady', 'crash', 'release'].map((p) => int(naive.elbCalls[p as 'join'])).join(' / '),
    },
    {
      scenario: s,
      figure: '  the same, deployed batching',
      ours: ['join', 'steady', 'crash', 'release'].map((p) => int(r.oursDeployedBatching.elbCalls[p as 'join'])).join(' / '),
      naive: '–',
    },
    { scenario: s, figure: 'ELB calls in all four phases; ratio', ours: int(ours.elbCalls.total), naive: `${int(naive.elbCalls.total)} (${r.callRatio}×)` },
    {
      scenario: s,
      figure: `heartbeat-only window: ${int(ours.heartbeats.duringSteady)} / ${int(naive.heartbeats.duringSteady)} renewals, ELB calls`,
      ours: int(ours.heartbeats.elbCallsDuringSteady),
      naive: int(naive.heartbeats.elbCallsDuringSteady),
      target: '0',
      verdict: missedIfZero(ours.heartbeats.elbCallsDuringSteady),
    },
    {
      scenario: s,
      figure: 'most calls to one group in one batch (one sync invocation; local batching; deployed)',
      ours: `${ours.maxCallsToOneGroupPerBatch}; ${r.oursDeployedBatching.maxCallsToOneGroupPerBatch}`,
      naive: String(naive.maxCallsToOneGroupPerBatch),
      target: '≤ 2',
      verdict:
        Math.max(ours.maxCallsToOneGroupPerBatch, r.oursDeployedBatching.maxCallsToOneGroupPerBatch) <= 2
          ? 'met'
          : `MISSED by ${Math.max(ours.maxCallsToOneGroupPerBatch, r.oursDeployedBatching.maxCallsToOneGroupPerBatch) - 2}`,
    },
    ...(ours.reconcile.maxCallsToOneGroupPerPass === undefined
      ? []
      : [{ scenario: s, figure: '  reconcile: most calls to one group in one pass (local batching; deployed)', ours: `${ours.reconcile.maxCallsToOneGroupPerPass}; ${r.oursDeployedBatching.reconcile.maxCallsToOneGroupPerPass ?? '–'}`, naive: '–' }]),
    {
      scenario: s,
      figure: 'ELB error responses (all kinds)',
      ours: int(Object.values(ours.elbErrors).reduce((a, b) => a + b, 0)),
      naive: int(Object.values(naive.elbErrors).reduce((a, b) => a + b, 0)),
    },
    { scenario: s, figure: "join phase's calls on the AWS throttle (s)", ours: ours.joinSecondsOnAwsThrottle.toFixed(1), naive: naive.joinSecondsOnAwsThrottle.toFixed(1) },
    {
      scenario: s,
      figure: 'reconcile: passes; Register+Deregister by phase; Describe',
      ours: `${ours.reconcile.runs}; ${['join', 'steady', 'crash', 'release'].map((p) => ours.reconcile.elbCallsByPhase[p as 'join']).join('/')}; ${ours.reconcile.describeCalls}`,
      naive: '–',
    },
    {
      scenario: s,
      figure: 'waits timed out / final groups = leases',
      ours: `${missing(ours.missing)} / ${ours.finalGroupsMatchLeases}`,
      naive: `${missing(naive.missing)} / ${naive.finalGroupsMatchLeases}`,
    },
  ];
}

function b3Rows(r: B3Result): Row[] {
  const s = `B3 ${int(r.setup.leases)} leases`;
  const range = (d: Distribution) => `${pct(d, d.p50)} (max ${pct(d, d.max)})`;
  return [
    ...(r.setup.setupMs === undefined
      ? []
      : [{ scenario: s, figure: `setup: ${int(r.setup.leases)} leases written, registered by the stream sync${r.setup.targetQuota === undefined ? '' : ` (targetQuota ${int(r.setup.targetQuota)})`}`, ours: ms(r.setup.setupMs), naive: '–' }]),
    ...(r.warmUp.registryWrites === undefined
      ? []
      : [{ scenario: s, figure: "first pass: writes every lease's rotation (UpdateItems into leases) / wall time", ours: `${int(r.warmUp.registryWrites)} / ${ms(r.warmUp.wallMs)}`, naive: '–' }]),
    { scenario: s, figure: `steady: wall time per pass, median (max), ${r.setup.runs} passes`, ours: range(r.steady.wallMs), naive: '–' },
    {
      scenario: s,
      figure: 'steady: read units (scan) / Describe calls / Register+Deregister / writes into leases',
      ours: `${int(r.steady.medianTotalReadUnits)} / ${r.steady.describeCallsPerPass} / ${r.steady.elbMutatingCallsPerPass} / ${r.steady.passes.reduce((m, p) => Math.max(m, p.registryWrites ?? 0), 0)}`,
      naive: '–',
    },
    {
      scenario: s,
      figure: `${r.setup.driftTargets} drifted targets: wall time per pass, median (max)`,
      ours: range(r.drift.wallMs),
      naive: '–',
    },
    {
      scenario: s,
      figure: 'drift: read units (scan + second reads) / Describe / Register+Deregister',
      ours: `${int(r.drift.medianTotalReadUnits)} / ${r.drift.describeCallsPerPass} / ${r.drift.elbMutatingCallsPerPass}`,
      naive: '–',
    },
    {
      scenario: s,
      figure: 'drift: most calls to one group in one pass',
      ours: String(r.drift.maxCallsToOneGroup),
      naive: '–',
      target: '≤ 2',
      verdict: r.drift.maxCallsToOneGroup <= 2 ? 'met' : `MISSED by ${r.drift.maxCallsToOneGroup - 2}`,
    },
    { scenario: s, figure: 'alone: 20 Describe in parallel / consistent scan (ms)', ours: `${int(r.parts.describeAllMs)} / ${int(r.parts.scanMs)}`, naive: '–' },
  ];
}

function projectionRows(r: ProjectionResult): Row[] {
  return r.runs.flatMap((run): Row[] => {
    const s = `AWS projection, ${batchLabel(run.batchSize)}`;
    return [
      { scenario: s, figure: `cold start of ${int(r.agents)} agents: ELB calls (measured)`, ours: int(run.coldStart.oursCalls), naive: int(run.coldStart.naiveCalls) },
      { scenario: s, figure: '  seconds on the throttle', ours: run.coldStart.oursSeconds.toFixed(1), naive: run.coldStart.naiveSeconds.toFixed(1) },
      { scenario: s, figure: `${int(run.heartbeats.perSecond)} heartbeats/s: ELB calls/s (measured)`, ours: int(run.heartbeats.oursCallsPerSecond), naive: int(run.heartbeats.naiveCallsPerSecond) },
      { scenario: s, figure: '  backlog growth, calls/s', ours: int(run.heartbeats.oursBacklogGrowth), naive: int(run.heartbeats.naiveBacklogGrowth) },
    ];
  });
}

function b4Rows(r: B4Result): Row[] {
  const { setup } = r;
  const s = `B4 ${setup.agents} agents`;
  const hc = setup.healthCheck;
  const failed = (c: B4Result['crash']['ours']) =>
    `${int(c.failed)} of ${int(c.sent)}${c.failed > 0 ? ` (${Object.entries(c.failures).map(([k, n]) => `${k}: ${int(n)}`).join(', ')}; for ${ms(c.failingForMs)})` : ''}`;
  return [
    {
      scenario: s,
      figure: `acquire() returned → first request served through the endpoint p50/p95/p99/max (checks every ${ms(hc.intervalMs)}, timeout ${ms(hc.timeoutMs)}, ${hc.healthyThreshold}/${hc.unhealthyThreshold}; ${setup.requestsPerSecond} req/s round robin)`,
      ours: quartet(r.firstRequestMs.ours),
      naive: quartet(r.firstRequestMs.naive),
    },
    {
      scenario: s,
      figure: `requests failed while ${setup.crashes} agents crash, until deregistered (${ms(r.crashDeregisteredMs)}; ttl ${setup.ttlSeconds} s, reconcile ${setup.reconcileIntervalMs / 1000} s)`,
      ours: failed(r.crash.ours),
      naive: failed(r.crash.naive),
    },
  ];
}

function b5Rows(r: B5Result): Row[] {
  const { setup } = r;
  const s = `B5 rolling restart, ${setup.agents} agents`;
  const failed = (c: B5Result['agentLb']) => `${int(c.failed)} of ${int(c.sent)}${c.failed > 0 ? ` (${Object.entries(c.failures).map(([k, n]) => `${k}: ${int(n)}`).join(', ')})` : ''}`;
  // Registration (sync, under a second locally) + one health-check interval + 1 s; the healthy threshold's further checks come on top.
  const servingLimit = setup.healthCheck.intervalMs * setup.healthCheck.healthyThreshold + 1000;
  const p50 = r.agentLb.startToServingMs.p50;
  return [
    {
      scenario: s,
      figure: `requests failed during the restart (surge one, retire one; ${setup.requestsPerSecond} req/s through the endpoint; ${r.agentLb.restartSeconds} s / ${r.baseline.restartSeconds} s)${r.sidecarExitFailures > 0 ? `; ${r.sidecarExitFailures} sidecars did not exit 0` : ''}`,
      ours: failed(r.agentLb),
      naive: failed(r.baseline),
      target: '0 failed',
      verdict: r.agentLb.failed === 0 && r.sidecarExitFailures === 0 ? 'met' : `MISSED: ${int(r.agentLb.failed)} failed`,
    },
    {
      scenario: s,
      figure: `new agent started → serving p50/p95/p99/max (ours: sidecar spawned → ready file; baseline: acquire → serving(); checks every ${ms(setup.healthCheck.intervalMs)}, healthy after ${setup.healthCheck.healthyThreshold})`,
      ours: quartet(r.agentLb.startToServingMs),
      naive: quartet(r.baseline.startToServingMs),
      target: `p50 ≤ ${ms(servingLimit)}`,
      verdict: p50 === null ? 'MISSED' : missedBy(p50, servingLimit, ms),
    },
    {
      scenario: s,
      figure: `old agent told to stop → gone p50/p95/p99/max (ours: SIGTERM → sidecar exited, margin ${ms(setup.propagationMarginMs)}; baseline: release and stop at once)`,
      ours: quartet(r.agentLb.retireMs),
      naive: quartet(r.baseline.retireMs),
    },
  ];
}

function admissionRows(r: AdmissionResult): Row[] {
  return r.runs.flatMap((run): Row[] => {
    const s = `admission ${batchLabel(run.batchSize)}`;
    return [
      {
        scenario: s,
        figure: `EC2 calls for ${int(r.records)} records (${int(run.batchesWithRegistrations)} of ${int(run.batches)} batches register, ${int(run.registrations)} targets)`,
        ours: int(run.ours.ec2Calls),
        naive: int(run.naive.ec2Calls),
      },
      { scenario: s, figure: 'EC2 calls per batch, most (one DescribeNetworkInterfaces per 200 new addresses)', ours: int(run.ours.maxEc2CallsPerBatch), naive: '–', target: '≤ 1 per 200 new addresses', verdict: run.ours.maxEc2CallsPerBatch <= Math.ceil(run.batchSize / 200) ? 'met' : 'MISSED' },
      { scenario: s, figure: 'EC2 calls for the heartbeats alone', ours: int(run.ours.heartbeatEc2Calls), naive: '0', target: '0', verdict: missedIfZero(run.ours.heartbeatEc2Calls) },
      { scenario: s, figure: 'DescribeTargetHealth for the target quota\'s count (far below 80 %: once per container)', ours: int(run.ours.quotaCountCalls), naive: '–' },
      { scenario: s, figure: 'records/s with admission', ours: int(run.ours.recordsPerSecond), naive: '–' },
    ];
  });
}

function b6Rows(r: B6Result): Row[] {
  const { setup, variants: v } = r;
  const s = `B6 long requests, ${setup.agents} agents`;
  const cut = (c: B6VariantFigures) => `${int(c.cut)} of ${int(c.sent)}${c.cut > 0 ? ` (${Object.entries(c.cutBy).map(([k, n]) => `${k}: ${int(n)}`).join(', ')})` : ''}`;
  const exits = (c: B6VariantFigures) => (c.sidecarExitFailures > 0 ? `; ${c.sidecarExitFailures} sidecars did not exit 0` : '');
  const how = `requests of ${setup.wallSeconds[0]}–${setup.wallSeconds[1]} s (${setup.requestSeconds[0]}–${setup.requestSeconds[1]} s × ${setup.timeScale}), every third streamed; rolling restart, then scale-in to ${setup.scaleInTo}; ${setup.requestsPerSecond} req/s`;
  return [
    {
      scenario: s,
      figure: `requests cut (${how}): sidecar --forward-to vs agents that release at SIGTERM${exits(v.proxy)}`,
      ours: cut(v.proxy),
      naive: cut(v.baselineRelease),
      target: '0 cut',
      verdict: v.proxy.cut === 0 && v.proxy.sidecarExitFailures === 0 ? 'met' : `MISSED: ${int(v.proxy.cut)} cut`,
    },
    {
      scenario: s,
      figure: `requests cut: sidecar beside the app, waiting for the load balancer's draining vs the sidecar before (released once out of rotation)${exits(v.nonProxy)}`,
      ours: cut(v.nonProxy),
      naive: cut(v.baselineNonProxy),
    },
    {
      scenario: s,
      figure: 'SIGTERM → agent gone p50/p95/p99/max (--forward-to; the sidecar before)',
      ours: quartet(v.proxy.leaveMs),
      naive: quartet(v.baselineNonProxy.leaveMs),
    },
    {
      scenario: s,
      figure: 'longest request in flight at SIGTERM, still to run p50/p95/p99/max (--forward-to; the sidecar before)',
      ours: quartet(v.proxy.longestInFlightMs),
      naive: quartet(v.baselineNonProxy.longestInFlightMs),
    },
    {
      scenario: s,
      figure: `leave time − longest request in flight p50/p95/p99/max (--forward-to; beside the app, waiting for the draining; deregistration delay ${ms(setup.deregistrationDelayMs)})`,
      ours: quartet(v.proxy.leaveOverLongestMs),
      naive: quartet(v.nonProxy.leaveOverLongestMs),
    },
  ];
}

/** The account's DescribeTargetHealth budget (ELB-FACTS.md): refill per second. */
const DESCRIBE_REFILL_PER_SECOND = 10;

function catalogRows(r: CatalogBenchResult): Row[] {
  const s = `catalog, ${int(r.setup.leases)} leases in ${r.setup.capabilities} capabilities`;
  const u = (x: { readUnits: number; writeUnits: number }) => `${x.readUnits} R / ${x.writeUnits} W`;
  const us = (d: Distribution) => `${d.p50 === null ? '–' : (d.p50 / 1000).toFixed(2)} / ${d.p99 === null ? '–' : (d.p99 / 1000).toFixed(2)} ms`;
  const calls = (c: Readonly<Record<string, number>>) => Object.entries(c).map(([k, n]) => `${k} ${n}`).join(', ');
  const o = r.serving.ours;
  const n = r.serving.naive;
  const naiveElbPerRequest = n.elbCalls / n.requests;
  return [
    {
      scenario: s,
      figure: `GET /agents: ELB calls and table scans per request (${int(r.serving.requests)} requests in ${o.seconds.toFixed(1)} s; naive: scan the leases and Describe each group per request)`,
      ours: `${o.elbCalls / r.serving.requests} ELB, ${(o.calls.Scan ?? 0) + (o.calls.Query ?? 0)} scans`,
      naive: `${naiveElbPerRequest} ELB, ${int((n.calls.Scan ?? 0) / n.requests)} scan pages`,
      target: 'no ELB call, no scan per request',
      verdict: o.elbCalls === 0 && o.calls.Scan === undefined && o.calls.Query === undefined ? 'met' : 'MISSED',
    },
    {
      scenario: s,
      figure: `GET /agents: read units per 1000 requests (cache ${r.setup.cacheMs} ms: GetItem calls in all)`,
      ours: `${((o.readUnits / r.serving.requests) * 1000).toFixed(3)} (${o.calls.GetItem ?? 0} GetItem)`,
      naive: int((n.readUnits / n.requests) * 1000),
    },
    {
      scenario: s,
      figure: `GET /agents: requests/s served (one client, in process; naive's sustained ceiling on the account's Describe refill of ${DESCRIBE_REFILL_PER_SECOND}/s)`,
      ours: int(o.requestsPerSecond),
      naive: `${n.requestsPerSecond} (ceiling ${(DESCRIBE_REFILL_PER_SECOND / naiveElbPerRequest).toFixed(2)})`,
    },
    { scenario: s, figure: `GET /agents: handler latency p50 / p99 in process (document ${int(r.setup.documentBytes)} bytes)`, ours: us(o.latency), naive: us(n.latency) },
    { scenario: s, figure: "one health change: the stream batch's catalog step (units; calls; ELB calls)", ours: `${u(r.healthChange)}; ${calls(r.healthChange.calls)}; ${r.healthChange.elbCalls} ELB`, naive: '–' },
    { scenario: s, figure: "a reconcile pass's catalog step, nothing to repair (units; ms; ELB calls)", ours: `${u(r.reconcilePass)}; ${int(r.reconcilePass.ms)} ms; ${r.reconcilePass.elbCalls} ELB`, naive: '–' },
    { scenario: s, figure: 'first build of index and document (units; s)', ours: `${u(r.build)}; ${r.build.seconds} s`, naive: '–' },
    {
      scenario: s,
      figure: `discovery of one capability (${r.discovery.agents} agents): calls, items read, read units (naive: scan the leases)`,
      ours: `${calls(r.discovery.oursCalls)}, ${int(r.discovery.oursScanned)}, ${r.discovery.oursReadUnits}`,
      naive: `Scan, ${int(r.discovery.naiveScanned)}, ${r.discovery.naiveReadUnits}`,
      target: 'no scan of the whole table',
      verdict: r.discovery.oursScanned < r.setup.leases && r.discovery.oursCalls.Scan === undefined ? 'met' : 'MISSED',
    },
  ];
}

export function rowsOf(result: ScenarioResult): Row[] {
  switch (result.scenario) {
    case 'B1':
      return b1Rows(result);
    case 'B2':
      return b2Rows(result);
    case 'B3':
      return b3Rows(result);
    case 'B4':
      return b4Rows(result);
    case 'catalog':
      return catalogRows(result);
    case 'B5-rolling-restart':
      return b5Rows(result);
    case 'B6-long-requests':
      return b6Rows(result);
    case 'B7':
      return b7Rows(result);
    case 'projection':
      return projectionRows(result);
    case 'admission':
      return admissionRows(result);
  }
}

function b7Rows(r: B7Result): Row[] {
  const rows = r.cases.flatMap((c): Row[] => {
    const s = `B7 ${c.groups} groups, ${c.churnPerSecond} changes/s`;
    const sec = (d: B7Result['cases'][number]['agentLb']['registrationMs']) => (d.p99 === null ? `> ${ms(d.timedOutAfter ?? NaN)}` : `${ms(d.p50 ?? NaN)} / ${ms(d.p99)}`);
    return [
      { scenario: s, figure: `ELB calls/s (budget ${r.budget.callsPerSecond}/s), throttled`, ours: `${c.agentLb.callsPerSecond}, ${int(c.agentLb.throttles)}`, naive: `${c.perEvent.callsPerSecond}, ${int(c.perEvent.throttles)}` },
      { scenario: s, figure: 'calls over the budget', ours: int(c.callsOverBudget), naive: '–', target: '0', verdict: missedIfZero(c.callsOverBudget) },
      { scenario: s, figure: 'registration p50 / p99', ours: sec(c.agentLb.registrationMs), naive: sec(c.perEvent.registrationMs) },
      {
        scenario: s,
        figure: `p99 / bound (${c.boundSeconds} s)`,
        ours: String(c.p99OverBoundRatio),
        naive: `${int(c.perEvent.lostJoins)} joins lost`,
        target: '≤ 1.5',
        verdict: c.p99OverBoundRatio <= 1.5 ? 'met' : `MISSED (${c.p99OverBoundRatio})`,
      },
      { scenario: s, figure: 'every group exact at the end', ours: c.agentLb.groupsExact ? 'yes' : 'NO', naive: c.perEvent.groupsExact ? 'yes' : 'no' },
    ];
  });
  return [
    ...rows,
    {
      scenario: 'B7 cost',
      figure: `DynamoDB + Lambda per 1 000 agents and month (TTL ${r.cost.leaseTtlSeconds} s, ${r.cost.billing}, prices of ${r.cost.pricesDated})`,
      ours: `$${r.costPer1000AgentsMonthUsd.toFixed(2)}`,
      naive: '–',
      target: '≤ $20',
      verdict: r.costPer1000AgentsMonthUsd <= 20 ? 'met' : 'MISSED',
    },
  ];
}

const HEAD = ['scenario', 'figure', 'agent-lb', 'per-event', 'target', 'verdict'] as const;
const cells = (r: Row) => [r.scenario, r.figure, r.ours, r.naive, r.target ?? '', r.verdict ?? ''];

/** Plain-text table for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const all = [[...HEAD], ...rows.map(cells)];
  const widths = HEAD.map((_, i) => Math.max(...all.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i >= 2 && i <= 3 ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  ')];
  let last = '';
  for (const c of all.slice(1)) {
    out.push(line(c[0] === last ? ['', ...c.slice(1)] : c));
    last = c[0];
  }
  return out.join('\n');
}

/** The same table in Markdown. */
export function markdownTable(rows: readonly Row[]): string {
  const esc = (v: string) => v.replace(/\|/g, '\\|');
  const out = [`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i >= 2 && i <= 3 ? '---:' : '---')).join('|')}|`];
  let last = '';
  for (const r of rows) {
    const c = cells(r).map(esc);
    out.push(`| ${c[0] === last ? '' : c[0]} | ${c.slice(1).join(' | ')} |`);
    last = cells(r)[0];
  }
  return out.join('\n');
}

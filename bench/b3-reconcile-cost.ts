import { performance } from 'node:perf_hooks';
import { AttributeValue, BatchWriteItemCommand, DynamoDBClient, WriteRequest } from '@aws-sdk/client-dynamodb';
import { DeregisterTargetsCommand, ElasticLoadBalancingV2Client, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ElbTargets } from '../lib/aws/elb-targets';
import { LeaseStore } from '../lib/aws/lease-store';
import { encodeLease } from '../lib/core/lease-codec';
import { countRegistered } from '../lib/core/target-quota';
import { Lease, RawAttributeValue } from '../lib/core/lease-schema';
import { LOCAL_CREDENTIALS, MOTO_CREDENTIALS } from '../lib/local/emulators';
import { LocalStack } from '../lib/local/local-stack';
import { ReconcileReport } from '../lib/registry/reconcile';
import { CommandCounter, countCommands, countsDelta, mutatingCalls } from './command-counter';
import { Distribution, distribution, median } from './percentiles';
import { capabilityNames, prng } from './stream-workload';

export interface B3Options {
  /** @default 10 000 */
  readonly leases?: number;
  /** @default 20 */
  readonly capabilities?: number;
  /** Measured passes per case. @default 5 */
  readonly runs?: number;
  /** Share of leases whose targets drift before each drift pass: half missing from a group, half stale targets with no lease. @default 0.01 */
  readonly driftShare?: number;
  readonly seed?: number;
  /**
   * The load balancer's target quota the stack is synthesized with (cdk.json's `targetQuota`).
   * B3's fleet (20 023 memberships at the defaults) is far over ALB's default quota of 1 000
   * targets per load balancer, an adjustable one: it models a deployment that raised it.
   * @default the memberships plus room for the drift's targets, rounded up to a thousand ({@link b3TargetQuota})
   */
  readonly targetQuota?: number;
  readonly log?: (line: string) => void;
}

/** One reconcile pass as measured. */
export interface B3Pass {
  readonly wallMs: number;
  /** ConsumedCapacity of the lease scan, as ReconcileReport.consumedReadUnits (LeaseStore.scanAll asks for it). */
  readonly scanReadUnits: number;
  /** ConsumedCapacity of every DynamoDB read of the pass: the scan plus the second reads (GetItem) before each repair. */
  readonly totalReadUnits: number;
  readonly scanPages: number;
  readonly getItems: number;
  readonly describeCalls: number;
  readonly elbMutatingCalls: number;
  readonly driftRegistered: number;
  readonly driftDeregistered: number;
  /** Groups the injected drift touched; groups the pass sent Register/Deregister to; the most such calls any one group got. */
  readonly touchedGroups: number;
  readonly groupsCalled: number;
  readonly maxCallsToOneGroup: number;
  /** UpdateItems of the pass into leases (`rotation`, one per lease whose state changed). */
  readonly registryWrites: number;
}

export interface B3Case {
  readonly passes: readonly B3Pass[];
  readonly wallMs: Distribution;
  readonly medianWallMs: number;
  readonly medianScanReadUnits: number;
  readonly medianTotalReadUnits: number;
  readonly describeCallsPerPass: number;
  readonly elbMutatingCallsPerPass: number;
  /** Register+Deregister calls to any one target group in any one pass. */
  readonly maxCallsToOneGroup: number;
}

export interface B3Result {
  readonly scenario: 'B3';
  readonly setup: {
    readonly leases: number;
    readonly capabilities: number;
    readonly memberships: number;
    readonly runs: number;
    readonly driftTargets: number;
    readonly meanItemBytes: number;
    readonly seed: number;
    /** From the first BatchWriteItem to the stream sync having handled every record (each lease registered in its groups). */
    readonly setupMs?: number;
    /** The target quota the deployment was synthesized with (the runtime configuration's, as the handlers got it). */
    readonly targetQuota?: number;
    /** Lease expiry, seconds after the write: half the deployment's maximum lease TTL (a lease further out than the maximum is refused `expiry-too-far`). */
    readonly leaseTtlSeconds?: number;
  };
  /** Drift the first (unmeasured) pass found after the stream sync registered everything: 0 when the sync was exact. */
  readonly warmUp: { readonly driftRegistered: number; readonly driftDeregistered: number; readonly wallMs: number; readonly registryWrites: number };
  readonly steady: B3Case;
  readonly drift: B3Case;
  /** The two halves of a pass, timed alone (median of the runs): all DescribeTargetHealth in parallel, and the consistent scan. */
  readonly parts: { readonly describeAllMs: number; readonly scanMs: number };
}

/**
 * B3: the cost of one reconcile pass over a large table: 10 000 leases over 20 capabilities
 * (each lease 1–3 of them), written with BatchWriteItem and registered in their groups by the
 * stream sync, then the real reconcile handler run several times with no drift and with 1 %
 * drift injected straight into moto before each pass.
 */
export async function runB3(options: B3Options = {}): Promise<B3Result> {
  const o = { leases: 10_000, capabilities: 20, runs: 5, driftShare: 0.01, seed: 3, log: () => undefined, ...options };
  const caps = capabilityNames(o.capabilities);
  const rand = prng(o.seed);
  const fleet = makeLeases(o.leases, caps, rand);
  const memberships = fleet.reduce((s, l) => s + l.capabilities.length, 0);
  const driftTargets = Math.max(2, Math.round(o.leases * o.driftShare));
  const targetQuota = o.targetQuota ?? b3TargetQuota(memberships, driftTargets, o.runs);
  let elbCounter: CommandCounter | undefined;
  o.log(`B3: starting a local stack with ${caps.length} capabilities, synthesized with targetQuota ${targetQuota} (${memberships} memberships; ALB's default quota is 1 000)`);
  const stack = await LocalStack.start({
    capabilities: caps,
    targetQuota,
    reconcileIntervalMs: 0, // passes run only when measured
    // Nor local mode's rotation poll (20 DescribeTargetHealth of 1 000 targets a second): a pass is measured alone.
    rotationPollIntervalMs: 0,
    // Setup only: bigger batches get the 10 000 registrations in faster. Passes do not use the stream.
    batchSize: 1000,
    wrapElbClient: (client) => {
      // Both handlers' clients count into one counter, as their calls share one throttle.
      const counted = countCommands(client, elbCounter ? { into: elbCounter } : {});
      elbCounter = counted.counter;
      return counted.client;
    },
  });
  const ddb = countCommands(stack.dynamodb, { askConsumedCapacity: true }).counter;
  const region = stack.state.region;
  const writer = new DynamoDBClient({ endpoint: stack.state.dynamodbEndpoint, region, credentials: { ...LOCAL_CREDENTIALS }, maxAttempts: 8 });
  const elb = new ElasticLoadBalancingV2Client({ endpoint: stack.state.elbv2Endpoint, region, credentials: { ...MOTO_CREDENTIALS } });
  try {
    // Live for the whole benchmark (B3 measures repair, not expiry), and well within the
    // deployment's maximum lease TTL (an hour by default): a lease further out is refused
    // `expiry-too-far` and routes nowhere. Not the maximum itself: the sync judges a record at its
    // ApproximateCreationDateTime, which DynamoDB Local rounds down to the minute, so a lease
    // written with the full maximum looks up to a minute further out than it is.
    const leaseTtlSeconds = Math.floor((stack.runtimeConfig.routing.maxLeaseTtlSeconds ?? 3600) / 2);
    const expiresAt = Math.floor(Date.now() / 1000) + leaseTtlSeconds;
    const leases = fleet.map((l) => ({ ...l, expiresAt }));
    const meanItemBytes = Math.round(leases.reduce((s, l) => s + itemBytes(encodeLease(l)), 0) / leases.length);
    o.log(`B3: writing ${o.leases} leases with BatchWriteItem`);
    const setupStarted = performance.now();
    await batchWrite(writer, stack.state.tableName, leases);
    o.log('B3: waiting for the stream sync to register them');
    await stack.drain(600_000);
    const setupMs = Math.round(performance.now() - setupStarted);
    const registered = await countRegisteredTargets(new ElbTargets(elb), Object.values(stack.state.targetGroups));
    o.log(`B3: written and registered in ${setupMs} ms (${registered} targets in the groups)`);
    // A pass over leases the registry refused would measure nothing: say so instead.
    if (registered !== memberships) {
      throw new Error(`B3: the stream sync registered ${registered} of the fleet's ${memberships} memberships (targetQuota ${stack.runtimeConfig.targetQuota}): leases were refused`);
    }

    const pass = async (touched: Set<string>): Promise<B3Pass> => {
      const d0 = { ...ddb.sent };
      const c0 = { ...ddb.capacityUnits };
      const e0 = elbCounter!.snapshot();
      const g0 = { ...elbCounter!.mutatingByGroup };
      const t0 = performance.now();
      const report: ReconcileReport = await stack.reconcileNow();
      const wallMs = Math.round(performance.now() - t0);
      const dSent = countsDelta(d0, ddb.sent);
      const dCap = countsDelta(c0, ddb.capacityUnits);
      const calls = mutatingCalls(countsDelta(e0, elbCounter!.snapshot()));
      const perGroup = countsDelta(g0, elbCounter!.mutatingByGroup);
      return {
        wallMs,
        scanReadUnits: report.consumedReadUnits,
        totalReadUnits: Object.values(dCap).reduce((s, v) => s + v, 0),
        scanPages: dSent.Scan ?? 0,
        getItems: dSent.GetItem ?? 0,
        describeCalls: report.describeCalls,
        elbMutatingCalls: calls,
        driftRegistered: report.driftRegistered,
        driftDeregistered: report.driftDeregistered,
        touchedGroups: touched.size,
        groupsCalled: Object.keys(perGroup).length,
        maxCallsToOneGroup: Math.max(0, ...Object.values(perGroup)),
        registryWrites: report.registryWrites.updates,
      };
    };

    const warm = await pass(new Set());
    o.log(`B3: warm-up pass ${warm.wallMs} ms, drift +${warm.driftRegistered} −${warm.driftDeregistered}, ${warm.registryWrites} UpdateItems into leases`);
    // The warm-up pass wrote each lease's first `rotation` entries: their stream records reach the sync handler before any pass is timed.
    await stack.drain(600_000);
    const steady: B3Pass[] = [];
    for (let r = 0; r < o.runs; r++) steady.push(await pass(new Set()));
    o.log(`B3: steady passes ${steady.map((p) => p.wallMs).join(', ')} ms`);

    const drift: B3Pass[] = [];
    for (let r = 0; r < o.runs; r++) {
      const touched = await injectDrift(elb, stack.state.targetGroups, leases, driftTargets, r, rand);
      drift.push(await pass(touched));
    }
    o.log(`B3: drift passes ${drift.map((p) => p.wallMs).join(', ')} ms`);

    const parts = await timeParts(new ElbTargets(elb), new LeaseStore(writer, stack.state.tableName), Object.values(stack.state.targetGroups), o.runs);
    return {
      scenario: 'B3',
      setup: {
        leases: o.leases,
        capabilities: caps.length,
        memberships,
        runs: o.runs,
        driftTargets,
        meanItemBytes,
        seed: o.seed,
        setupMs,
        ...(stack.runtimeConfig.targetQuota === undefined ? {} : { targetQuota: stack.runtimeConfig.targetQuota }),
        leaseTtlSeconds,
      },
      warmUp: { driftRegistered: warm.driftRegistered, driftDeregistered: warm.driftDeregistered, wallMs: warm.wallMs, registryWrites: warm.registryWrites },
      steady: summarize(steady),
      drift: summarize(drift),
      parts,
    };
  } finally {
    writer.destroy();
    elb.destroy();
    await stack.stop();
  }
}

function summarize(passes: B3Pass[]): B3Case {
  return {
    passes,
    wallMs: distribution(passes.map((p) => p.wallMs)),
    medianWallMs: median(passes.map((p) => p.wallMs)),
    medianScanReadUnits: median(passes.map((p) => p.scanReadUnits)),
    medianTotalReadUnits: median(passes.map((p) => p.totalReadUnits)),
    describeCallsPerPass: median(passes.map((p) => p.describeCalls)),
    elbMutatingCallsPerPass: median(passes.map((p) => p.elbMutatingCalls)),
    maxCallsToOneGroup: Math.max(...passes.map((p) => p.maxCallsToOneGroup)),
  };
}

/**
 * The quota B3 synthesizes with: room for every membership, and for the drift passes' targets
 * (stale ones registered behind the registrar's back, and deregistered ones still draining, both
 * count against the quota), rounded up to a thousand.
 */
export function b3TargetQuota(memberships: number, driftTargets: number, runs: number): number {
  return Math.ceil((memberships + 2 * driftTargets * runs) / 1000) * 1000;
}

/** Registered targets (draining ones too) in all the groups, as the quota counts them. */
async function countRegisteredTargets(elb: ElbTargets, arns: readonly string[]): Promise<number> {
  return countRegistered(await Promise.all(arns.map(async (arn) => ({ targets: await elb.describe(arn) }))));
}

function makeLeases(count: number, caps: readonly string[], rand: () => number): Lease[] {
  const nowMs = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const want = 1 + Math.floor(rand() * 3);
    const chosen = new Set<string>();
    while (chosen.size < want) chosen.add(caps[Math.floor(rand() * caps.length)]);
    // Loopback: local mode admits it without a network interface (the admission scenario measures admission on its own).
    const address = `127.2.${Math.floor(i / 250)}.${(i % 250) + 1}`;
    return {
      target: `${address}:8080`,
      address,
      port: 8080,
      capabilities: [...chosen],
      // Set once the stack is up, from its maximum lease TTL.
      expiresAt: 0,
      leaseToken: `bench-${i}`,
      agentId: `bench-agent-${i}`,
      status: 'active' as const,
      renewedAt: nowMs,
      registeredAt: nowMs,
    };
  });
}

/** DynamoDB's item size rule: attribute names plus values (strings in UTF-8, numbers ~1 byte per 2 digits + 1). */
function itemBytes(item: Readonly<Record<string, RawAttributeValue>>): number {
  let bytes = 0;
  for (const [name, v] of Object.entries(item)) {
    bytes += Buffer.byteLength(name);
    if (v.S !== undefined) bytes += Buffer.byteLength(v.S);
    else if (v.N !== undefined) bytes += Math.ceil(v.N.replace(/[-.]/g, '').length / 2) + 1;
    else if (v.SS !== undefined) bytes += v.SS.reduce((s, x) => s + Buffer.byteLength(x), 0);
  }
  return bytes;
}

/** BatchWriteItem, 25 items a request, 4 requests in flight, unprocessed items sent again. */
async function batchWrite(client: DynamoDBClient, tableName: string, leases: readonly Lease[]): Promise<void> {
  const requests: WriteRequest[] = leases.map((l) => ({ PutRequest: { Item: encodeLease(l) as Record<string, AttributeValue> } }));
  let next = 0;
  const worker = async () => {
    while (next < requests.length) {
      let batch = requests.slice(next, next + 25);
      next += 25;
      while (batch.length > 0) {
        const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [tableName]: batch } }));
        batch = out.UnprocessedItems?.[tableName] ?? [];
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

/**
 * Half the drift is targets missing from a group their live lease names (deregistered behind
 * the registrar's back), half stale targets registered with no lease at all. Returns the groups touched.
 */
async function injectDrift(
  elb: ElasticLoadBalancingV2Client,
  groups: Readonly<Record<string, string>>,
  leases: readonly Lease[],
  count: number,
  run: number,
  rand: () => number,
): Promise<Set<string>> {
  const missing = new Map<string, { Id: string; Port: number }[]>();
  const picked = new Set<string>();
  while (picked.size < Math.floor(count / 2)) {
    const lease = leases[Math.floor(rand() * leases.length)];
    const capability = lease.capabilities[Math.floor(rand() * lease.capabilities.length)];
    const k = `${lease.target}|${capability}`;
    if (picked.has(k)) continue;
    picked.add(k);
    const arn = groups[capability];
    missing.set(arn, [...(missing.get(arn) ?? []), { Id: lease.address, Port: lease.port }]);
  }
  const stale = new Map<string, { Id: string; Port: number }[]>();
  const arns = Object.values(groups);
  for (let j = 0; j < count - picked.size; j++) {
    const arn = arns[Math.floor(rand() * arns.length)];
    stale.set(arn, [...(stale.get(arn) ?? []), { Id: `10.250.${run}.${j + 1}`, Port: 8080 }]);
  }
  for (const [arn, targets] of missing) await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: targets }));
  for (const [arn, targets] of stale) await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: targets }));
  return new Set([...missing.keys(), ...stale.keys()]);
}

/** Times the two halves of a pass on their own, to say where the wall time goes. */
async function timeParts(elb: ElbTargets, store: LeaseStore, arns: readonly string[], runs: number): Promise<B3Result['parts']> {
  const describe: number[] = [];
  const scan: number[] = [];
  for (let r = 0; r < runs; r++) {
    let t = performance.now();
    await Promise.all(arns.map((arn) => elb.describe(arn)));
    describe.push(performance.now() - t);
    t = performance.now();
    await store.scanAll(true);
    scan.push(performance.now() - t);
  }
  return { describeAllMs: Math.round(median(describe)), scanMs: Math.round(median(scan)) };
}

import { performance } from 'node:perf_hooks';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AgentLease } from '../lib/sdk/agent-lease';
import { CommandCounts, countsDelta } from './command-counter';
import { prng } from './stream-workload';
import { TargetObserver, Want } from './target-observer';
import { sleep } from '../lib/core/concurrency';

export interface FleetAgent {
  readonly index: number;
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly capabilities: readonly string[];
}

/** Who joins with which capabilities, who crashes and who releases: fixed by the seed, so both registrars see the same fleet. */
export interface FleetPlan {
  readonly agents: readonly FleetAgent[];
  readonly crash: readonly number[];
  readonly release: readonly number[];
}

export type FleetPhase = 'join' | 'steady' | 'crash' | 'release';

export function planFleet(count: number, capabilities: readonly string[], crashes: number, releases: number, seed: number): FleetPlan {
  if (crashes + releases > count) throw new Error(`cannot crash ${crashes} and release ${releases} of ${count} agents`);
  if (count > 250 * 256) throw new Error('at most 64 000 agents (127.1.0.1 – 127.1.255.250)');
  const rand = prng(seed);
  const agents = Array.from({ length: count }, (_, index): FleetAgent => {
    const want = 1 + Math.floor(rand() * Math.min(3, capabilities.length));
    const chosen = new Set<string>();
    while (chosen.size < want) chosen.add(capabilities[Math.floor(rand() * capabilities.length)]);
    // Loopback addresses that need no server: moto never connects to them, and local mode admits
    // loopback agents without a network interface (the admission scenario measures its EC2 calls on its own).
    return { index, id: `bench-agent-${index}`, address: `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}`, port: 8080, capabilities: [...chosen].sort() };
  });
  const order = agents.map((a) => a.index);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { agents, crash: order.slice(0, crashes), release: order.slice(crashes, crashes + releases) };
}

export interface FleetRunOptions {
  readonly plan: FleetPlan;
  readonly tableName: string;
  /** The agents' DynamoDB client (one shared client, as many agents in one process would). */
  readonly dynamodb: DynamoDBClient;
  /** capability → target group ARN the registrar under test maintains. */
  readonly groups: Readonly<Record<string, string>>;
  readonly observer: TargetObserver;
  /** Plain client for the final full DescribeTargetHealth check. */
  readonly elb: ElasticLoadBalancingV2Client;
  readonly ttlSeconds: number;
  readonly joinRatePerSecond: number;
  readonly steadySeconds: number;
  /** How long to wait for crashed agents to leave their groups before giving up. */
  readonly crashDeadlineMs: number;
  /** How long to wait for joins and releases to show before giving up. */
  readonly deadlineMs: number;
  /** The registrar's ELB requests so far, per command. */
  readonly calls: () => CommandCounts;
  /**
   * When the registrar's first successful Register (or Deregister) call for this target in this
   * group returned, if it made one: the registrar's own latency, free of the observer's.
   */
  readonly elbAck?: (action: 'register' | 'deregister', groupArn: string, id: string, port: number) => number | undefined;
  readonly onPhase?: (phase: FleetPhase) => void;
  /**
   * Awaited between join and steady, outside both: lets work that started during the join (a
   * reconcile pass that read the groups mid-join) finish, so the steady window holds heartbeats only.
   */
  readonly beforeSteady?: () => Promise<void>;
  readonly log?: (line: string) => void;
}

export interface PhaseFigures {
  readonly durationMs: number;
  /** The registrar's ELB requests in this phase, per command. */
  readonly calls: CommandCounts;
  /** Heartbeats (successful renewals) the agents wrote in this phase. */
  readonly renewals: number;
}

export interface FleetRunResult {
  /** Per (agent, capability): ms from the PutItem being issued (acquire() called) to the target seen in the group. */
  readonly registrationMs: number[];
  /** The same, from the PutItem's acknowledgement. */
  readonly registrationFromAckMs: number[];
  /** Per (agent, capability): ms from the PutItem being issued to the registrar's RegisterTargets call for it returning. */
  readonly registrationElbAckMs: number[];
  /** Per (agent, capability): ms from abandon() (the crash) to the target seen gone. */
  readonly crashRemovalMs: number[];
  /** The same, from the lease's expiresAt: the part the TTL does not explain. */
  readonly crashRemovalAfterExpiryMs: number[];
  /** Per (agent, capability): ms from release() called to the target seen gone. */
  readonly releaseRemovalMs: number[];
  /** From the crash / the release to the registrar's DeregisterTargets call for the target returning. */
  readonly crashRemovalElbAckMs: number[];
  readonly releaseRemovalElbAckMs: number[];
  /** Waits that timed out, per phase. */
  readonly missing: Readonly<Record<FleetPhase, number>>;
  readonly phases: Readonly<Record<FleetPhase, PhaseFigures>>;
  readonly agentErrors: { readonly acquire: number; readonly renewFailed: number; readonly lost: number; readonly release: number };
  /** After the release phase, every watched group holds exactly the memberships of the agents still up. */
  readonly finalGroupsMatchLeases: boolean;
}


/**
 * Runs the fleet through its four phases against a running local stack, timing every target's
 * arrival in and departure from its groups with the observer:
 * 1. join: agents acquire at `joinRatePerSecond`;
 * 2. steady: nothing but heartbeats (every ttl/3) for `steadySeconds`;
 * 3. crash: the crash set abandons its leases at once (no release; the leases lapse);
 * 4. release: the release set releases at once.
 * The agents still up are abandoned at the end (the caller stops the stack).
 */
export async function runFleet(o: FleetRunOptions): Promise<FleetRunResult> {
  const log = o.log ?? (() => undefined);
  const leases: AgentLease[] = [];
  const agentErrors = { acquire: 0, renewFailed: 0, lost: 0, release: 0 };
  let renewals = 0;
  const missing: Record<FleetPhase, number> = { join: 0, steady: 0, crash: 0, release: 0 };
  const phases = {} as Record<FleetPhase, PhaseFigures>;

  let phaseStart = 0;
  let phaseCalls: CommandCounts = {};
  let phaseRenewals = 0;
  const begin = (phase: FleetPhase) => {
    o.onPhase?.(phase);
    phaseStart = performance.now();
    phaseCalls = o.calls();
    phaseRenewals = renewals;
    log(`${phase}…`);
  };
  const end = (phase: FleetPhase) => {
    phases[phase] = { durationMs: Math.round(performance.now() - phaseStart), calls: countsDelta(phaseCalls, o.calls()), renewals: renewals - phaseRenewals };
  };
  /** Waits for all, up to the deadline; what is still open then counts as missing. */
  const settle = async (phase: FleetPhase, waits: Promise<unknown>[], deadlineMs: number) => {
    let done = false;
    await Promise.race([Promise.all(waits).then(() => (done = true)), sleep(deadlineMs)]);
    if (!done) missing[phase] += o.observer.abandonWaits();
  };
  /** One wait per capability of the agent; each resolves with the time the target was seen in the wanted state. */
  const expect = (agent: FleetAgent, want: Want) => agent.capabilities.map((c) => o.observer.waitFor(o.groups[c], agent.address, agent.port, want));

  // 1. join
  begin('join');
  const registration: number[] = [];
  const registrationFromAck: number[] = [];
  const issuedAt = new Map<number, number>();
  const joinWaits: Promise<unknown>[] = [];
  const t0 = performance.now();
  for (const agent of o.plan.agents) {
    await sleep(t0 + (agent.index * 1000) / o.joinRatePerSecond - performance.now());
    const lease = new AgentLease({
      tableName: o.tableName,
      address: agent.address,
      port: agent.port,
      capabilities: agent.capabilities,
      agentId: agent.id,
      ttl: o.ttlSeconds,
      allowLoopback: true, // 127.1.x.y: local mode admits loopback agents, the SDK needs telling
      client: o.dynamodb,
      keepProcessAlive: false,
    });
    lease.on('renewed', () => renewals++);
    lease.on('renewFailed', () => agentErrors.renewFailed++);
    lease.on('lost', () => agentErrors.lost++);
    leases[agent.index] = lease;
    const issued = performance.now();
    issuedAt.set(agent.index, issued);
    let acked: number | undefined;
    const acquired = lease.acquire().then(
      () => (acked = performance.now()),
      () => agentErrors.acquire++,
    );
    for (const seen of expect(agent, 'present')) {
      joinWaits.push(
        Promise.all([seen, acquired]).then(([at]) => {
          registration.push(at - issued);
          if (acked !== undefined) registrationFromAck.push(at - acked);
        }),
      );
    }
  }
  await settle('join', joinWaits, o.deadlineMs);
  end('join');
  const registrationElbAck = elbAckSamples(o, 'register', o.plan.agents.map((a) => [a, issuedAt.get(a.index)]));

  // 2. steady: heartbeats only
  await o.beforeSteady?.();
  begin('steady');
  await sleep(o.steadySeconds * 1000);
  end('steady');

  // 3. crash
  begin('crash');
  const crashRemoval: number[] = [];
  const afterExpiry: number[] = [];
  const crashWaits: Promise<unknown>[] = [];
  const crashedAt = new Map<number, number>();
  for (const index of o.plan.crash) {
    const agent = o.plan.agents[index];
    const lease = leases[index];
    const at = performance.now();
    crashedAt.set(index, at);
    // expiresAt is epoch seconds; carry it onto the monotonic clock.
    const expiry = lease.expiresAt === undefined ? undefined : at + (lease.expiresAt * 1000 - Date.now());
    crashWaits.push(
      ...expect(agent, 'absent').map((p) =>
        p.then((seen) => {
          crashRemoval.push(seen - at);
          if (expiry !== undefined) afterExpiry.push(seen - expiry);
        }),
      ),
    );
    lease.abandon();
  }
  await settle('crash', crashWaits, o.crashDeadlineMs);
  end('crash');
  const crashElbAck = elbAckSamples(o, 'deregister', o.plan.crash.map((i) => [o.plan.agents[i], crashedAt.get(i)]));

  // 4. release
  begin('release');
  const releaseRemoval: number[] = [];
  const releaseWaits: Promise<unknown>[] = [];
  const releasedAt = new Map<number, number>();
  for (const index of o.plan.release) {
    const at = performance.now();
    releasedAt.set(index, at);
    releaseWaits.push(...expect(o.plan.agents[index], 'absent').map((p) => p.then((seen) => releaseRemoval.push(seen - at))));
    leases[index].release().catch(() => agentErrors.release++);
  }
  await settle('release', releaseWaits, o.deadlineMs);
  end('release');
  const releaseElbAck = elbAckSamples(o, 'deregister', o.plan.release.map((i) => [o.plan.agents[i], releasedAt.get(i)]));

  const gone = new Set([...o.plan.crash, ...o.plan.release]);
  const finalGroupsMatchLeases = await groupsMatch(o, (a) => !gone.has(a.index));
  for (const lease of leases) lease?.abandon();
  return {
    registrationMs: registration,
    registrationFromAckMs: registrationFromAck,
    registrationElbAckMs: registrationElbAck,
    crashRemovalElbAckMs: crashElbAck,
    releaseRemovalElbAckMs: releaseElbAck,
    crashRemovalMs: crashRemoval,
    crashRemovalAfterExpiryMs: afterExpiry,
    releaseRemovalMs: releaseRemoval,
    missing,
    phases,
    agentErrors,
    finalGroupsMatchLeases,
  };
}

/** Per (agent, capability) with a start time: ms from the start to the registrar's acknowledged call, when there was one after the start. */
function elbAckSamples(o: FleetRunOptions, action: 'register' | 'deregister', starts: readonly (readonly [FleetAgent, number | undefined])[]): number[] {
  const out: number[] = [];
  if (!o.elbAck) return out;
  for (const [agent, start] of starts) {
    if (start === undefined) continue;
    for (const c of agent.capabilities) {
      const at = o.elbAck(action, o.groups[c], agent.address, agent.port);
      if (at !== undefined && at >= start) out.push(at - start);
    }
  }
  return out;
}

/** A full DescribeTargetHealth of every watched group (targets in rotation), compared with the memberships of the agents still up. */
async function groupsMatch(o: FleetRunOptions, up: (a: FleetAgent) => boolean): Promise<boolean> {
  for (const [capability, arn] of Object.entries(o.groups)) {
    const want = new Set(o.plan.agents.filter((a) => up(a) && a.capabilities.includes(capability)).map((a) => `${a.address}:${a.port}`));
    const out = await o.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn }));
    // In rotation: draining targets (deregistered, waiting out the delay) are out.
    const inRotation = (out.TargetHealthDescriptions ?? []).filter((d) => d.TargetHealth?.State !== 'draining' && d.TargetHealth?.Reason !== 'Target.NotRegistered');
    const have = new Set(inRotation.map((d) => `${d.Target?.Id}:${d.Target?.Port}`));
    if (have.size !== want.size || [...want].some((k) => !have.has(k))) return false;
  }
  return true;
}

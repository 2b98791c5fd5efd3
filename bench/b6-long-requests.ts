import { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sidecar } from '../lib/cli/sidecar';
import { mapLimit } from '../lib/core/concurrency';
import { freePorts } from '../lib/local/emulators/free-port';
import { LocalStack } from '../lib/local/local-stack';
import { AgentLease } from '../lib/sdk/agent-lease';
import { mulberry32 } from '../test/support/prng';
import { spawnCli } from '../test/support/local-harness';
import { LongRequestApp, longRequestMix } from './long-request-app';
import { Distribution, distribution } from './percentiles';
import { failureCounts, LoadOutcome, SteadyLoad } from './steady-load';

/**
 * B6: requests that last minutes and stream, through a rolling restart and a scale-in. Four
 * fleets of `agents` agents (plain HTTP servers whose requests last 1–60 s of ALB time, × the
 * time scale; every third streamed as server-sent events for its whole length) each under a
 * steady load through local mode's `loadBalancerEndpoint`, restarted one by one (surge one,
 * retire one) and then scaled in by half, at the same time, differing only in how an agent leaves:
 *
 * - `proxy` (capability `vision`): `agent-lb sidecar --forward-to` in front of each server (the
 *   CLI): on SIGTERM it drains, waits until out of rotation, then until nothing is in flight
 *   through it, releases and exits; the server is stopped once the sidecar has exited;
 * - `nonProxy` (`search`): `agent-lb sidecar` beside the server, which cannot see its requests and
 *   waits instead until the load balancer's draining of the target has ended;
 * - `baselineNonProxy` (`speech`): the sidecar as it was before it could wait for either (the
 *   `Sidecar` class with `waitForDraining: false`, in the bench's process): it releases once out
 *   of rotation plus the margin, and the server is stopped then;
 * - `baselineRelease` (`chat`): the SDK lease released at SIGTERM and the server stopped at once.
 *
 * Figures: requests cut (any answer but a whole 200: a 502, a truncated stream, …) among those
 * sent while the fleet restarted and scaled in; per leave, how long it took (SIGTERM → gone)
 * against how long the longest request in flight on that agent still had to run.
 */
export interface B6Options {
  /** @default 10 */
  readonly agents?: number;
  /** @default 0.2 */
  readonly timeScale?: number;
  /** Requests per second to each fleet. @default 6 */
  readonly requestsPerSecond?: number;
  /** @default 1000 (the local data plane stops routing at deregistration; ALB nodes take seconds: keep 5 s there) */
  readonly propagationMarginMs?: number;
  /** @default 6 */
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

export const B6_VARIANTS = ['proxy', 'nonProxy', 'baselineNonProxy', 'baselineRelease'] as const;
export type B6Variant = (typeof B6_VARIANTS)[number];
const CAPABILITY: Record<B6Variant, string> = { proxy: 'vision', nonProxy: 'search', baselineNonProxy: 'speech', baselineRelease: 'chat' };

/** One leave: SIGTERM → the agent gone (its server stopped), against the longest request it was serving. */
export interface B6Leave {
  readonly leaveMs: number;
  readonly longestInFlightMs: number;
  readonly inFlightAtSignal: number;
}

export interface B6VariantFigures {
  readonly capability: string;
  readonly sent: number;
  readonly cut: number;
  /** Cut requests by what the client got: a status, `truncated`, `error`, `timeout`. */
  readonly cutBy: Readonly<Record<string, number>>;
  /** Each cut request: when it was sent, what it asked for (`sse 5400` = streamed, 5.4 s), what it got, after how long. */
  readonly cutRequests: readonly LoadOutcome[];
  readonly leaves: readonly B6Leave[];
  readonly leaveMs: Distribution;
  readonly longestInFlightMs: Distribution;
  /** Per leave: leave time − longest request in flight (what the leave added beyond the work it waited for). */
  readonly leaveOverLongestMs: Distribution;
  readonly sidecarExitFailures: number;
  readonly seconds: number;
}

export interface B6Result {
  readonly scenario: 'B6-long-requests';
  readonly setup: {
    readonly agents: number;
    readonly timeScale: number;
    readonly requestSeconds: readonly [number, number];
    readonly wallSeconds: readonly [number, number];
    readonly sseShare: string;
    readonly requestsPerSecond: number;
    readonly propagationMarginMs: number;
    readonly deregistrationDelayMs: number;
    readonly idleTimeoutMs: number;
    readonly scaleInTo: number;
  };
  /** Requests cut per variant: what the issue asks about. */
  readonly cutRequests: { readonly proxy: number; readonly baselineNonProxy: number; readonly baselineRelease: number };
  readonly variants: Readonly<Record<B6Variant, B6VariantFigures>>;
}

interface Member {
  readonly app: LongRequestApp;
  /** SIGTERM (or its equivalent) → gone; resolves when the server is stopped. */
  retire(): Promise<void>;
}

export async function runB6(options: B6Options = {}): Promise<B6Result> {
  const log = options.log ?? (() => undefined);
  const agents = options.agents ?? 10;
  const timeScale = options.timeScale ?? 0.2;
  const rps = options.requestsPerSecond ?? 6;
  const marginMs = options.propagationMarginMs ?? 1000;
  const [minSeconds, maxSeconds] = [1, 60] as const;
  const dir = mkdtempSync(join(tmpdir(), 'agent-lb-b6-'));
  const stateFile = join(dir, 'state.json');
  const stack = await LocalStack.start({ stateFile, capabilities: B6_VARIANTS.map((v) => CAPABILITY[v]), dataPlane: { timeScale } });
  const endpoint = stack.dataPlane!.endpoint;
  const children: ChildProcess[] = [];
  const live = new Set<Member>();
  const exitFailures: Record<B6Variant, number> = { proxy: 0, nonProxy: 0, baselineNonProxy: 0, baselineRelease: 0 };
  let serial = 0;

  /** A sidecar CLI process for `app` (proxying when `proxy`), serving once its ready file appears. */
  const sidecarMember = async (variant: 'proxy' | 'nonProxy'): Promise<Member> => {
    const app = await new LongRequestApp().start();
    const port = variant === 'proxy' ? (await freePorts(1))[0] : app.port;
    const readyFile = join(dir, `ready-${port}`);
    const args = ['sidecar', '--state-file', stateFile, '--address', '127.0.0.1', '--port', String(port), '--capability', CAPABILITY[variant]];
    args.push('--health-url', `http://127.0.0.1:${app.port}/health`, '--ttl', '10', '--interval', '250', '--ready-file', readyFile, '--propagation-margin', String(marginMs));
    if (variant === 'proxy') args.push('--forward-to', `http://127.0.0.1:${app.port}`, '--listen-host', '127.0.0.1');
    args.push('--agent-id', `b6-${variant}-${serial++}`);
    const child = spawnCli(args);
    children.push(child);
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
    child.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await until(() => existsSync(readyFile) || child.exitCode !== null, 120_000, () => `a ${variant} sidecar to serve (${output})`);
    if (child.exitCode !== null) throw new Error(`B6: a ${variant} sidecar exited with ${child.exitCode} before serving: ${output}`);
    return {
      app,
      retire: async () => {
        child.kill('SIGTERM');
        const code = await withTimeout(exited, 400_000, 'a sidecar to exit').catch(() => 'hang' as const);
        if (code !== 0) {
          exitFailures[variant]++;
          log(`B6: a ${variant} sidecar ended with ${code}: ${output.trim().split('\n').slice(-3).join(' | ')}`);
          if (code === 'hang') child.kill('SIGKILL');
        }
        await app.stop();
      },
    };
  };

  /** Today's sidecar before it could wait for in-flight work: out of rotation + margin, then release. */
  const legacySidecarMember = async (): Promise<Member> => {
    const app = await new LongRequestApp().start();
    const sidecar = new Sidecar({
      lease: { tableName: stack.state.tableName, address: '127.0.0.1', port: app.port, capabilities: [CAPABILITY.baselineNonProxy], ttl: 10, client: stack.dynamodb, agentId: `b6-legacy-${serial++}`, allowLoopback: true, rotationPollIntervalMs: 250 },
      healthUrl: `http://127.0.0.1:${app.port}/health`,
      intervalMs: 250,
      leave: { propagationMarginMs: marginMs },
      waitForDraining: false,
    });
    const serving = new Promise<void>((resolve) => sidecar.on('event', (e) => e.kind === 'serving' && resolve()));
    sidecar.start();
    await withTimeout(serving, 120_000, 'a baselineNonProxy sidecar to serve');
    return {
      app,
      retire: async () => {
        await sidecar.stop().catch(() => exitFailures.baselineNonProxy++);
        await app.stop();
      },
    };
  };

  /** An agent without a graceful exit: releases and stops at SIGTERM. */
  const releasingMember = async (): Promise<Member> => {
    const app = await new LongRequestApp().start();
    const lease = new AgentLease({ tableName: stack.state.tableName, address: '127.0.0.1', port: app.port, capabilities: [CAPABILITY.baselineRelease], ttl: 10, client: stack.dynamodb, agentId: `b6-release-${serial++}`, allowLoopback: true, keepProcessAlive: false, rotationPollIntervalMs: 250 });
    await lease.acquire();
    await lease.serving({ timeoutMs: 120_000 });
    return { app, retire: async () => void (await Promise.all([lease.release(), app.stop()])) };
  };

  const starters: Record<B6Variant, () => Promise<Member>> = {
    proxy: () => sidecarMember('proxy'),
    nonProxy: () => sidecarMember('nonProxy'),
    baselineNonProxy: legacySidecarMember,
    baselineRelease: releasingMember,
  };
  const loads = Object.fromEntries(
    B6_VARIANTS.map((v, i) => [
      v,
      new SteadyLoad({
        endpoint,
        requestsPerSecond: rps,
        idleTimeoutMs: 30_000, // a plain request is silent for up to 12 s
        next: longRequestMix({ capability: CAPABILITY[v], minSeconds, maxSeconds, timeScale, sseEvery: 3, random: mulberry32((options.seed ?? 6) * 10 + i) }),
      }),
    ]),
  ) as Record<B6Variant, SteadyLoad>;

  /** SIGTERM to `m` and the agent gone, measured against the longest request it was serving. */
  const leave = async (m: Member): Promise<B6Leave> => {
    const longestInFlightMs = m.app.longestRemainingMs();
    const inFlightAtSignal = m.app.inFlight;
    const t0 = Date.now();
    await m.retire();
    live.delete(m);
    return { leaveMs: Date.now() - t0, longestInFlightMs, inFlightAtSignal };
  };

  try {
    await stack.dataPlane!.loadBalancer.refresh();
    const group = stack.dataPlane!.loadBalancer.engine.groups.get(stack.state.targetGroups.vision)!;
    log(`B6: starting ${agents} agents in each of ${B6_VARIANTS.join(', ')}`);
    const fleets = {} as Record<B6Variant, Member[]>;
    for (const v of B6_VARIANTS) {
      fleets[v] = await mapLimit(Array.from({ length: agents }), 3, () => starters[v]());
      fleets[v].forEach((m) => live.add(m));
    }
    for (const l of Object.values(loads)) l.start();
    await sleep(maxSeconds * 1000 * timeScale); // every length of request in flight
    log(`B6: rolling restart and scale-in of every fleet under ${rps} req/s each, requests of ${minSeconds}–${maxSeconds} s × ${timeScale}`);
    const windows = {} as Record<B6Variant, { from: number; to: number; leaves: B6Leave[] }>;
    await Promise.all(
      B6_VARIANTS.map(async (v) => {
        const w = (windows[v] = { from: Date.now(), to: 0, leaves: [] as B6Leave[] });
        const members = fleets[v];
        for (let i = 0; i < agents; i++) {
          const fresh = await starters[v](); // surge one...
          live.add(fresh);
          w.leaves.push(await leave(members[i])); // ...retire one
          members.push(fresh);
        }
        // Scale in by half, all at once.
        w.leaves.push(...(await Promise.all(members.slice(agents, agents + Math.floor(agents / 2)).map(leave))));
        w.to = Date.now();
      }),
    );
    await sleep(2000);
    for (const l of Object.values(loads)) l.stop();
    await Promise.all(Object.values(loads).map((l) => l.settled(maxSeconds * 1000 * timeScale + 15_000)));
    const figures = (v: B6Variant): B6VariantFigures => {
      const w = windows[v];
      const sent = loads[v].outcomes.filter((o) => o.at >= w.from && o.at <= w.to);
      const cut = sent.filter((o) => o.result !== '200');
      return {
        capability: CAPABILITY[v],
        sent: sent.length,
        cut: cut.length,
        cutBy: failureCounts(cut),
        cutRequests: cut,
        leaves: w.leaves,
        leaveMs: distribution(w.leaves.map((l) => l.leaveMs)),
        longestInFlightMs: distribution(w.leaves.map((l) => l.longestInFlightMs)),
        leaveOverLongestMs: distribution(w.leaves.map((l) => l.leaveMs - l.longestInFlightMs)),
        sidecarExitFailures: exitFailures[v],
        seconds: Math.round((w.to - w.from) / 1000),
      };
    };
    const variants = Object.fromEntries(B6_VARIANTS.map((v) => [v, figures(v)])) as Record<B6Variant, B6VariantFigures>;
    const result: B6Result = {
      scenario: 'B6-long-requests',
      setup: {
        agents,
        timeScale,
        requestSeconds: [minSeconds, maxSeconds],
        wallSeconds: [minSeconds * timeScale, maxSeconds * timeScale],
        sseShare: 'every third request, streamed for its whole length',
        requestsPerSecond: rps,
        propagationMarginMs: marginMs,
        deregistrationDelayMs: group.policy.deregistrationDelayMs,
        idleTimeoutMs: stack.dataPlane!.loadBalancer.idleTimeoutMs,
        scaleInTo: agents - Math.floor(agents / 2),
      },
      cutRequests: { proxy: variants.proxy.cut, baselineNonProxy: variants.baselineNonProxy.cut, baselineRelease: variants.baselineRelease.cut },
      variants,
    };
    log(`B6: cut requests ${B6_VARIANTS.map((v) => `${v} ${variants[v].cut}/${variants[v].sent}`).join(', ')}`);
    return result;
  } finally {
    for (const l of Object.values(loads)) l.destroy();
    await Promise.allSettled([...live].map((m) => m.retire()));
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`B6: timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(25);
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`B6: timed out after ${ms} ms waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

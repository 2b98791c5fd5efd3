import { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mapLimit } from '../lib/core/concurrency';
import { LocalStack } from '../lib/local/local-stack';
import { AgentLease } from '../lib/sdk/agent-lease';
import { spawnCli } from '../test/support/local-harness';
import { Distribution, distribution } from './percentiles';
import { failureCounts, SteadyLoad } from './steady-load';

/**
 * B5: a rolling restart under steady load, on local mode with the data plane, as a user with
 * agents in any language runs it. Two fleets of `agents` plain HTTP servers, restarted one by one
 * at the same time (surge one, retire one), each with a steady client load through
 * `loadBalancerEndpoint`:
 *
 * - **agent-lb** (capability `vision`): each server behind an `agent-lb sidecar` process (the
 *   CLI, `--state-file`, `--ready-file`). A new server and its sidecar start; once the ready file
 *   appears (serving: healthy in the group as the registry reports it) the old sidecar gets
 *   SIGTERM; the old server is stopped once its sidecar has exited.
 * - **baseline** (capability `speech`): each server holds its lease through the SDK, and at
 *   "SIGTERM" releases it and stops at once (what an agent without a graceful exit does). The new
 *   one is started the same way and waited for with `serving()` first, so only the exit differs.
 *
 * Figures: failed requests (anything but 200, or no answer) of each fleet's load during its
 * restart; time from a new agent's start (its sidecar spawned, or its lease acquired) to serving.
 */
export interface B5Options {
  /** @default 20 */
  readonly agents?: number;
  /** Factor on ALB's timing (health check interval and timeout, deregistration delay). @default 0.2 */
  readonly timeScale?: number;
  /** Requests per second to each fleet. @default 50 */
  readonly requestsPerSecond?: number;
  /** The sidecars' `--propagation-margin`: the local data plane stops routing at deregistration (ALB nodes take seconds: keep the 5 s default there). @default 1000 */
  readonly propagationMarginMs?: number;
  readonly log?: (line: string) => void;
}

type Fleet = 'agentLb' | 'baseline';

export interface B5FleetFigures {
  readonly sent: number;
  readonly failed: number;
  /** Failed requests by what the client got: a status code, or `error` / `timeout`. */
  readonly failures: Readonly<Record<string, number>>;
  /** New agent started → serving, ms. */
  readonly startToServingMs: Distribution;
  /** Old agent told to stop → gone (sidecar exited and server stopped; for the baseline: released and stopped), ms. */
  readonly retireMs: Distribution;
  readonly restartSeconds: number;
}

export interface B5Result {
  readonly scenario: 'B5-rolling-restart';
  readonly setup: {
    readonly agents: number;
    readonly timeScale: number;
    readonly healthCheck: { readonly intervalMs: number; readonly healthyThreshold: number };
    readonly requestsPerSecond: number;
    readonly propagationMarginMs: number;
  };
  readonly agentLb: B5FleetFigures;
  readonly baseline: B5FleetFigures;
  /** Sidecars that did not exit 0 on SIGTERM. */
  readonly sidecarExitFailures: number;
}

/** A plain HTTP server: 200 to everything (its `/health` included). */
class PlainServer {
  public port = 0;
  private server?: Server;

  public async start(): Promise<this> {
    this.server = createServer((_req, res) => void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'));
    await new Promise<void>((resolve) => this.server!.listen({ host: '127.0.0.1', port: 0 }, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** As a killed process: connections cut. */
  public stop(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`B5: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One member of a fleet: its server and what holds its lease. */
interface Member {
  readonly server: PlainServer;
  readonly startedAt: number;
  servingAfterMs?: number;
  retire(): Promise<void>;
}

export async function runB5(options: B5Options = {}): Promise<B5Result> {
  const log = options.log ?? (() => undefined);
  const agents = options.agents ?? 20;
  const timeScale = options.timeScale ?? 0.2;
  const rps = options.requestsPerSecond ?? 50;
  const marginMs = options.propagationMarginMs ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), 'agent-lb-b5-'));
  const stateFile = join(dir, 'state.json');
  const stack = await LocalStack.start({ stateFile, dataPlane: { timeScale } });
  const endpoint = stack.dataPlane!.endpoint;
  const children: ChildProcess[] = [];
  const live: Member[] = [];
  let sidecarExitFailures = 0;
  let serial = 0;

  const startSidecarMember = async (): Promise<Member> => {
    const server = await new PlainServer().start();
    const readyFile = join(dir, `ready-${server.port}`);
    const startedAt = Date.now();
    const args = ['sidecar', '--state-file', stateFile, '--address', '127.0.0.1', '--port', String(server.port), '--capability', 'vision'];
    args.push('--health-url', `http://127.0.0.1:${server.port}/health`, '--ttl', '10', '--interval', '250', '--ready-file', readyFile, '--propagation-margin', String(marginMs));
    args.push('--agent-id', `b5-sidecar-${serial++}`);
    const child = spawnCli(args);
    children.push(child);
    let output = '';
    child.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
    child.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const member: Member = {
      server,
      startedAt,
      retire: async () => {
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([exited, new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), 60_000)))]).finally(() => clearTimeout(timer));
        if (code !== 0) {
          sidecarExitFailures++;
          log(`B5: a sidecar ended with ${code}: ${output.trim().split('\n').slice(-3).join(' | ')}`);
          if (code === 'hang') child.kill('SIGKILL');
        }
        await server.stop();
      },
    };
    await until(() => existsSync(readyFile) || child.exitCode !== null, 90_000, `a sidecar to be serving (${output})`);
    if (child.exitCode !== null) throw new Error(`B5: a sidecar exited with ${child.exitCode} before serving: ${output}`);
    member.servingAfterMs = Date.now() - startedAt;
    return member;
  };

  const startBaselineMember = async (): Promise<Member> => {
    const server = await new PlainServer().start();
    const lease = new AgentLease({
      tableName: stack.state.tableName,
      address: '127.0.0.1',
      port: server.port,
      capabilities: ['speech'],
      ttl: 10,
      client: stack.dynamodb,
      agentId: `b5-baseline-${serial++}`,
      allowLoopback: true,
      keepProcessAlive: false,
      rotationPollIntervalMs: 250,
    });
    const startedAt = Date.now();
    await lease.acquire();
    await lease.serving({ timeoutMs: 90_000 });
    // Releases and exits at SIGTERM: no drain, no wait.
    return { server, startedAt, servingAfterMs: Date.now() - startedAt, retire: async () => void (await Promise.all([lease.release(), server.stop()])) };
  };

  const fleets: Record<Fleet, { start: () => Promise<Member>; members: Member[]; capability: string }> = {
    agentLb: { start: startSidecarMember, members: [], capability: 'vision' },
    baseline: { start: startBaselineMember, members: [], capability: 'speech' },
  };
  const loads = Object.fromEntries(
    Object.entries(fleets).map(([f, v]) => [f, new SteadyLoad({ endpoint, requestsPerSecond: rps, maxSockets: 100, next: () => ({ path: '/work', headers: { 'X-Agent-Capability': v.capability } }) })]),
  ) as Record<Fleet, SteadyLoad>;
  try {
    const vision = stack.state.targetGroups.vision;
    await stack.dataPlane!.loadBalancer.refresh();
    const settings = stack.dataPlane!.loadBalancer.engine.groups.get(vision)!.settings;
    log(`B5: starting ${agents} agents behind sidecars (vision) and ${agents} baseline agents (speech)`);
    for (const fleet of Object.values(fleets)) fleet.members.push(...(await mapLimit(Array.from({ length: agents }), 4, () => fleet.start())));
    live.push(...fleets.agentLb.members, ...fleets.baseline.members);

    for (const l of Object.values(loads)) l.start();
    await new Promise((r) => setTimeout(r, 2000));
    log(`B5: rolling restart of both fleets under ${rps} req/s each`);
    const windows = {} as Record<Fleet, { from: number; to: number; serving: number[]; retire: number[] }>;
    await Promise.all(
      (Object.keys(fleets) as Fleet[]).map(async (name) => {
        const fleet = fleets[name];
        const w = (windows[name] = { from: Date.now(), to: 0, serving: [] as number[], retire: [] as number[] });
        for (let i = 0; i < agents; i++) {
          const fresh = await fleet.start(); // surge one...
          live.push(fresh);
          w.serving.push(fresh.servingAfterMs!);
          const old = fleet.members[i];
          const retiring = Date.now();
          await old.retire(); // ...retire one
          live.splice(live.indexOf(old), 1);
          w.retire.push(Date.now() - retiring);
          fleet.members.push(fresh);
        }
        w.to = Date.now();
      }),
    );
    await new Promise((r) => setTimeout(r, 2000));
    for (const l of Object.values(loads)) l.stop();
    await Promise.all(Object.values(loads).map((l) => l.settled(5500))); // the last requests answer or time out
    const figures = (name: Fleet): B5FleetFigures => {
      const w = windows[name];
      const sent = loads[name].outcomes.filter((o) => o.at >= w.from && o.at <= w.to + 2000);
      const failedOnes = sent.filter((o) => o.result !== '200');
      return {
        sent: sent.length,
        failed: failedOnes.length,
        failures: failureCounts(failedOnes),
        startToServingMs: distribution(w.serving),
        retireMs: distribution(w.retire),
        restartSeconds: Math.round((w.to - w.from) / 1000),
      };
    };
    const result: B5Result = {
      scenario: 'B5-rolling-restart',
      setup: { agents, timeScale, healthCheck: { intervalMs: settings.intervalMs, healthyThreshold: settings.healthyThreshold }, requestsPerSecond: rps, propagationMarginMs: marginMs },
      agentLb: figures('agentLb'),
      baseline: figures('baseline'),
      sidecarExitFailures,
    };
    log(`B5: failed requests agent-lb ${result.agentLb.failed}/${result.agentLb.sent}, baseline ${result.baseline.failed}/${result.baseline.sent}`);
    return result;
  } finally {
    for (const l of Object.values(loads)) l.destroy();
    await Promise.allSettled(live.map((m) => m.retire()));
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

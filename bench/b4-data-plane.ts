import { createServer, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LoadBalancer, LoadBalancerSnapshot, LoadBalancerStateSource } from '../lib/local/data-plane';
import { LocalStack } from '../lib/local/local-stack';
import { AgentLease } from '../lib/sdk/agent-lease';
import { targetKeys } from '../test/support/local-harness';
import { Distribution, distribution } from './percentiles';
import { failureCounts, SteadyLoad } from './steady-load';

/**
 * B4: what a client of the load balancer feels, on local mode with the data plane. Agents are
 * real HTTP servers holding leases through the SDK; a client sends a steady load by
 * `X-Agent-Capability` header to two load balancers over the same moto state, at once:
 *
 * - **ours**: the local data plane as `agent-lb local` runs it, with the target group's health
 *   checks (the example's vision group: `/health` every 10 s, timeout 5 s, thresholds 2/2,
 *   deregistration delay 30 s, all × `timeScale`), reporting the states into moto;
 * - **naive**: the same data plane with health checks off (every registered target routable), i.e.
 *   routing by the registry alone: a crashed agent stays in rotation until its lease expires and
 *   reconcile deregisters it.
 *
 * Figures: per agent, the time from `acquire()` returning to the first request it served through
 * each load balancer; and the requests each load balancer failed (any answer but 200, or no
 * answer) while `crashes` agents crash at once (stop renewing, port closed) until both had them
 * out. The first request also waits for the client's next request to come round to the agent:
 * with round robin over `agents` targets and `requestsPerSecond`, up to agents / rps seconds.
 */
export interface B4Options {
  /** @default 20 */
  readonly agents?: number;
  /** @default agents / 2 */
  readonly crashes?: number;
  /** @default 10 */
  readonly ttlSeconds?: number;
  /** Factor on ALB's timing (health check interval and timeout, deregistration delay). @default 0.2 */
  readonly timeScale?: number;
  /** Requests per second the client sends to each load balancer. @default 100 */
  readonly requestsPerSecond?: number;
  /** Pause between two agents joining, ms. @default 300 */
  readonly joinGapMs?: number;
  /** @default 5000 */
  readonly reconcileIntervalMs?: number;
  readonly log?: (line: string) => void;
}

type Side = 'ours' | 'naive';

export interface B4CrashFigures {
  readonly sent: number;
  readonly failed: number;
  /** Failed requests by what the client got: a status code, or `error` / `timeout`. */
  readonly failures: Readonly<Record<string, number>>;
  /** From the crash to the last failed request, ms (0 when none failed). */
  readonly failingForMs: number;
}

export interface B4Result {
  readonly scenario: 'B4';
  readonly setup: {
    readonly agents: number;
    readonly crashes: number;
    readonly ttlSeconds: number;
    readonly timeScale: number;
    readonly healthCheck: { readonly intervalMs: number; readonly timeoutMs: number; readonly healthyThreshold: number; readonly unhealthyThreshold: number };
    readonly requestsPerSecond: number;
    readonly reconcileIntervalMs: number;
  };
  /** acquire() returned → first request served through the endpoint, ms. */
  readonly firstRequestMs: Readonly<Record<Side, Distribution>>;
  readonly crash: Readonly<Record<Side, B4CrashFigures>>;
  /** Crash → the last crashed target out of moto's group (deregistered), ms. */
  readonly crashDeregisteredMs: number;
}

/** A bench agent: `/health` answers 200; any other request 200, noting the first one per load balancer. */
class BenchAgent {
  public port = 0;
  public readonly first: Partial<Record<Side, number>> = {};
  private server?: Server;
  public lease?: AgentLease;

  public async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res) => {
      if (req.url !== '/health') {
        const side = req.headers['x-bench-lb'] as Side | undefined;
        if (side !== undefined) this.first[side] ??= Date.now();
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((resolve) => this.server!.listen({ host: '127.0.0.1', port: 0 }, resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  public async crash(): Promise<void> {
    this.lease?.abandon();
    await new Promise<void>((resolve) => {
      this.server?.closeAllConnections();
      this.server?.close(() => resolve());
    });
  }
}

/** The data plane's state source with every group's health checks off: routing by the registry alone. */
function registryOnly(source: LoadBalancerStateSource): LoadBalancerStateSource {
  return {
    snapshot: async (): Promise<LoadBalancerSnapshot> => {
      const s = await source.snapshot();
      return { ...s, targetGroups: s.targetGroups.map((g) => ({ ...g, targetGroup: { ...g.targetGroup, HealthCheckEnabled: false } })) };
    },
    ...(source.subscribe ? { subscribe: (onChange: () => void) => source.subscribe!(onChange) } : {}),
  };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export async function runB4(options: B4Options = {}): Promise<B4Result> {
  const log = options.log ?? (() => undefined);
  const agentsCount = options.agents ?? 20;
  const crashes = options.crashes ?? Math.floor(agentsCount / 2);
  const ttlSeconds = options.ttlSeconds ?? 10;
  const timeScale = options.timeScale ?? 0.2;
  const rps = options.requestsPerSecond ?? 100;
  const reconcileIntervalMs = options.reconcileIntervalMs ?? 5000;
  const stack = await LocalStack.start({ reconcileIntervalMs, dataPlane: { timeScale } });
  const ours = stack.dataPlane!;
  const naive = await LoadBalancer.start({ source: registryOnly(ours.source), timeScale, pollIntervalMs: 1000 });
  const steady = (endpoint: string, side: Side) =>
    new SteadyLoad({ endpoint, requestsPerSecond: rps, next: () => ({ path: '/bench', headers: { 'X-Agent-Capability': 'vision', 'X-Bench-Lb': side } }) });
  const loads: Record<Side, SteadyLoad> = { ours: steady(ours.endpoint, 'ours'), naive: steady(naive.endpoint, 'naive') };
  const agents: BenchAgent[] = [];
  try {
    const vision = stack.state.targetGroups.vision;
    await ours.loadBalancer.refresh();
    const settings = ours.loadBalancer.engine.groups.get(vision)!.settings;
    for (const l of Object.values(loads)) l.start();

    log(`B4: ${agentsCount} agents join vision, ${rps} req/s to each load balancer (health checks every ${settings.intervalMs} ms)`);
    const acquired = new Map<BenchAgent, number>();
    for (let i = 0; i < agentsCount; i++) {
      const agent = new BenchAgent();
      agents.push(agent);
      await agent.start();
      agent.lease = new AgentLease({
        tableName: stack.state.tableName,
        address: '127.0.0.1',
        port: agent.port,
        capabilities: ['vision'],
        ttl: ttlSeconds,
        client: stack.dynamodb,
        agentId: `b4-${i}`,
        allowLoopback: true,
        keepProcessAlive: false,
      });
      await agent.lease.acquire();
      acquired.set(agent, Date.now());
      await new Promise((r) => setTimeout(r, options.joinGapMs ?? 300));
    }
    const firstDeadlineMs = 30_000;
    await until(() => agents.every((a) => a.first.ours !== undefined && a.first.naive !== undefined), firstDeadlineMs);
    const firstRequestMs = Object.fromEntries(
      (['ours', 'naive'] as const).map((side) => {
        const seen = agents.filter((a) => a.first[side] !== undefined).map((a) => Math.max(0, a.first[side]! - acquired.get(a)!));
        return [side, distribution(seen, agents.length - seen.length, firstDeadlineMs)];
      }),
    ) as Record<Side, Distribution>;
    log(`B4: first request p50 ours ${firstRequestMs.ours.p50} ms, naive ${firstRequestMs.naive.p50} ms`);

    // Steady for a moment, then `crashes` agents crash at once.
    await new Promise((r) => setTimeout(r, 2000));
    const crashed = agents.slice(0, crashes);
    const crashAt = Date.now();
    await Promise.all(crashed.map((a) => a.crash()));
    log(`B4: ${crashes} agents crashed; waiting for their leases to expire and reconcile to deregister them`);
    const keys = crashed.map((a) => `127.0.0.1:${a.port}`);
    await until(async () => {
      const listed = await targetKeys(stack.elbv2, vision);
      return keys.every((k) => !listed.includes(k));
    }, ttlSeconds * 1000 + reconcileIntervalMs * 3 + 30_000);
    const crashDeregisteredMs = Date.now() - crashAt;
    // Requests sent until then have answered (or timed out) a few seconds later.
    const endAt = Date.now() + 1000;
    await new Promise((r) => setTimeout(r, 1000));
    for (const l of Object.values(loads)) l.stop();
    await Promise.all(Object.values(loads).map((l) => l.settled(5500)));
    const crash = Object.fromEntries(
      (['ours', 'naive'] as const).map((side) => {
        const window = loads[side].outcomes.filter((o) => o.at >= crashAt && o.at < endAt);
        const failedOnes = window.filter((o) => o.result !== '200');
        const last = failedOnes.reduce((m, o) => Math.max(m, o.at), crashAt);
        return [side, { sent: window.length, failed: failedOnes.length, failures: failureCounts(failedOnes), failingForMs: last - crashAt }];
      }),
    ) as Record<Side, B4CrashFigures>;
    log(`B4: failed requests ours ${crash.ours.failed}/${crash.ours.sent}, naive ${crash.naive.failed}/${crash.naive.sent}`);
    return {
      scenario: 'B4',
      setup: {
        agents: agentsCount,
        crashes,
        ttlSeconds,
        timeScale,
        healthCheck: { intervalMs: settings.intervalMs, timeoutMs: settings.timeoutMs, healthyThreshold: settings.healthyThreshold, unhealthyThreshold: settings.unhealthyThreshold },
        requestsPerSecond: rps,
        reconcileIntervalMs,
      },
      firstRequestMs,
      crash,
      crashDeregisteredMs,
    };
  } finally {
    for (const l of Object.values(loads)) l.destroy();
    await Promise.allSettled(agents.map((a) => a.crash()));
    await naive.stop();
    await stack.stop();
  }
}

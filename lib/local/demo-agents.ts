import { createServer, IncomingMessage, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AgentLease } from '../sdk/agent-lease';

export interface DemoFleetOptions {
  readonly count: number;
  readonly capabilities: readonly string[];
  readonly tableName: string;
  readonly dynamodb: DynamoDBClient;
  readonly ttlSeconds: number;
  /** Every `crashEvery`-th agent crashes (stops renewing) and comes back on a timer. 0 disables crashes. @default 3 */
  readonly crashEvery?: number;
  /**
   * Every `sickEvery`-th agent (from the second on; not one that crashes) fails its health checks
   * now and then: its health paths answer 500, and its other requests 503, for a while. 0 disables it.
   * @default 0
   */
  readonly sickEvery?: number;
  /** Each capability's health check path (its target group's `HealthCheckPath`). @default `/` for all */
  readonly healthPaths?: Readonly<Record<string, string>>;
  /** Seconds up before a crash and down before coming back, as [min, max]. */
  readonly upSeconds?: readonly [number, number];
  readonly downSeconds?: readonly [number, number];
  /** Seconds well before falling sick and sick before recovering, as [min, max]. @default [ttl, 2 × ttl] both */
  readonly wellSeconds?: readonly [number, number];
  readonly sickSeconds?: readonly [number, number];
}

export type DemoEvent = { agent: string; kind: 'up' | 'crashed' | 'back' | 'sick' | 'recovered' | 'error'; detail: string };

/** What a demo agent answers a request with (`GET /agents/vision/hello` → `{ agent, capability: 'vision', … }`). */
export interface DemoAnswer {
  readonly agent: string;
  /** The capability the request asked for (its `X-Agent-Capability` header or `/agents/<name>/` path), else the agent's first. */
  readonly capability: string;
  readonly capabilities: readonly string[];
  readonly method: string;
  readonly path: string;
}

/** The capability a request asked for, as the listener rules read it: the header first, then the path. */
export function askedCapability(req: Pick<IncomingMessage, 'headers' | 'url'>, own: readonly string[]): string {
  const header = req.headers['x-agent-capability'];
  const byHeader = (Array.isArray(header) ? header[0] : header)?.trim().toLowerCase();
  if (byHeader !== undefined && own.includes(byHeader)) return byHeader;
  const byPath = /^\/agents\/([^/?#]+)/.exec(req.url ?? '')?.[1]?.toLowerCase();
  if (byPath !== undefined && own.includes(byPath)) return byPath;
  return own[0];
}

/** One demo agent: a real HTTP server on 127.0.0.1 that holds its lease through the SDK. */
class DemoAgent {
  public lease?: AgentLease;
  private server?: Server;
  public port = 0;
  public up = false;
  /** While true, health paths and requests answer 500. */
  public sick = false;

  public constructor(
    public readonly id: string,
    public readonly capabilities: readonly string[],
    private readonly fleet: DemoFleetOptions,
  ) {}

  public async start(): Promise<void> {
    const healthPaths = new Set(this.capabilities.map((c) => this.fleet.healthPaths?.[c] ?? '/'));
    this.server = createServer((req, res) => {
      if (req.method === 'GET' && healthPaths.has(req.url ?? '')) {
        res.writeHead(this.sick ? 500 : 200, { 'content-type': 'text/plain' }).end(this.sick ? 'sick\n' : 'ok\n');
        return;
      }
      const answer: DemoAnswer = { agent: this.id, capability: askedCapability(req, this.capabilities), capabilities: this.capabilities, method: req.method ?? 'GET', path: req.url ?? '/' };
      res.writeHead(this.sick ? 503 : 200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(this.sick ? { ...answer, error: 'unhealthy' } : answer)}\n`);
    });
    try {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(this.port, '127.0.0.1', () => resolve());
      });
      this.port = (this.server.address() as AddressInfo).port;
      await this.acquire();
    } catch (error) {
      // A server left listening would hold the port (the next try fails EADDRINUSE) and keep
      // local mode from exiting: someone else holding this address:port (a takeover with the
      // agent grant) made every comeback leak one.
      await this.closeServer();
      throw error;
    }
    this.up = true;
  }

  private async acquire(): Promise<void> {
    this.lease = new AgentLease({
      tableName: this.fleet.tableName,
      address: '127.0.0.1',
      port: this.port,
      capabilities: this.capabilities,
      agentId: this.id,
      ttl: this.fleet.ttlSeconds,
      allowLoopback: true,
      client: this.fleet.dynamodb,
      keepProcessAlive: false,
    });
    await this.lease.acquire();
  }

  /** Stops serving and renewing without releasing, as a killed process would. */
  public async crash(): Promise<void> {
    this.lease?.abandon();
    this.up = false;
    this.sick = false;
    await this.closeServer();
  }

  public async stop(): Promise<void> {
    this.up = false;
    if (this.lease?.held) await this.lease.release().catch(() => false);
    else this.lease?.abandon();
    await this.closeServer();
  }

  private closeServer(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}

/**
 * Demo agents across the example capabilities; some crash and come back so removal and
 * re-registration show, some fail their health checks for a while so the load balancer's health
 * checks show (out of rotation with the lease still live, back after the healthy threshold).
 */
export class DemoFleet extends EventEmitter<{ event: [DemoEvent] }> {
  private readonly agents: DemoAgent[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  public constructor(private readonly options: DemoFleetOptions) {
    super();
    const caps = options.capabilities;
    for (let i = 0; i < options.count; i++) {
      // Every fourth agent serves two capabilities, so one lease landing in two groups is visible.
      // The capability shifts by one each round through the list, so the agents that crash (every
      // crashEvery-th) are not all of one capability, which would empty its group at each crash.
      const first = (i + Math.floor(i / caps.length)) % caps.length;
      const own = i % 4 === 3 && caps.length > 1 ? [caps[first], caps[(first + 1) % caps.length]] : [caps[first]];
      this.agents.push(new DemoAgent(`demo-${String(i + 1).padStart(2, '0')}`, own, options));
    }
  }

  public get counts(): { up: number; down: number } {
    const up = this.agents.filter((a) => a.up).length;
    return { up, down: this.agents.length - up };
  }

  public async start(): Promise<void> {
    await Promise.all(
      this.agents.map(async (agent, i) => {
        await agent.start();
        this.emit('event', { agent: agent.id, kind: 'up', detail: `127.0.0.1:${agent.port} ${agent.capabilities.join(',')}` });
        const every = this.options.crashEvery ?? 3;
        const crashes = every > 0 && i % every === every - 1;
        if (crashes) this.scheduleCrash(agent);
        // Not the agents that crash, and not the first (of the first capability): with the
        // default 6 agents it is the second, whose capability has another agent to fail over to.
        const sickEvery = this.options.sickEvery ?? 0;
        if (sickEvery > 0 && i % sickEvery === 1 % sickEvery && !crashes) this.scheduleSickness(agent);
      }),
    );
  }

  public async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all(this.agents.map((a) => a.stop()));
  }

  private later(seconds: readonly [number, number], fn: () => Promise<void>): void {
    const ms = 1000 * (seconds[0] + Math.random() * (seconds[1] - seconds[0]));
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn().catch((e: Error) => this.emit('event', { agent: '-', kind: 'error', detail: e.message }));
    }, ms);
    this.timers.add(t);
  }

  private scheduleCrash(agent: DemoAgent): void {
    const ttl = this.options.ttlSeconds;
    this.later(this.options.upSeconds ?? [ttl, 2 * ttl], async () => {
      await agent.crash();
      this.emit('event', { agent: agent.id, kind: 'crashed', detail: `stopped renewing 127.0.0.1:${agent.port}` });
      this.later(this.options.downSeconds ?? [2 * ttl, 3 * ttl], () => this.comeBack(agent));
    });
  }

  /** Now and then the agent's health path answers 500 for a while: the load balancer takes it out of rotation, its lease stays. */
  private scheduleSickness(agent: DemoAgent): void {
    const ttl = this.options.ttlSeconds;
    this.later(this.options.wellSeconds ?? [ttl, 2 * ttl], async () => {
      if (agent.up) {
        agent.sick = true;
        this.emit('event', { agent: agent.id, kind: 'sick', detail: `127.0.0.1:${agent.port} health checks answer 500` });
      }
      this.later(this.options.sickSeconds ?? [ttl, 2 * ttl], async () => {
        if (agent.sick) {
          agent.sick = false;
          this.emit('event', { agent: agent.id, kind: 'recovered', detail: `127.0.0.1:${agent.port} health checks answer 200` });
        }
        this.scheduleSickness(agent);
      });
    });
  }

  private async comeBack(agent: DemoAgent): Promise<void> {
    try {
      await agent.start();
      this.emit('event', { agent: agent.id, kind: 'back', detail: `127.0.0.1:${agent.port}` });
      this.scheduleCrash(agent);
    } catch (error) {
      // The old lease may not have lapsed yet, or the port was taken: try again shortly.
      this.emit('event', { agent: agent.id, kind: 'error', detail: (error as Error).message });
      this.later([2, 4], () => this.comeBack(agent));
    }
  }
}

import { createServer, Server } from 'node:http';
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
  /** Seconds up before a crash and down before coming back, as [min, max]. */
  readonly upSeconds?: readonly [number, number];
  readonly downSeconds?: readonly [number, number];
}

export type DemoEvent = { agent: string; kind: 'up' | 'crashed' | 'back' | 'error'; detail: string };

/** One demo agent: a real HTTP server on 127.0.0.1 that holds its lease through the SDK. */
class DemoAgent {
  public lease?: AgentLease;
  private server?: Server;
  public port = 0;
  public up = false;

  public constructor(
    public readonly id: string,
    public readonly capabilities: readonly string[],
    private readonly fleet: DemoFleetOptions,
  ) {}

  public async start(): Promise<void> {
    this.server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ agent: this.id, capabilities: this.capabilities, path: req.url }));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
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
    this.up = true;
  }

  /** Stops serving and renewing without releasing, as a killed process would. */
  public async crash(): Promise<void> {
    this.lease?.abandon();
    this.up = false;
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

/** Demo agents across the example capabilities; some crash and come back so removal and re-registration show. */
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
        if (every > 0 && i % every === every - 1) this.scheduleCrash(agent);
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

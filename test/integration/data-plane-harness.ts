import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Rule, TargetGroupAttribute } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { LoadBalancerSnapshot, LoadBalancerStateSource, TargetGroupSnapshot, TargetHealthChange, TargetHealthSink } from '../../lib/local/data-plane';

/**
 * Fixtures of the data plane's integration tests: plain Node HTTP servers as targets, an
 * in-memory state source and a sink that records what the data plane reports.
 */

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** A target: answers `/health` with 200 or 500, everything else with its name as JSON. */
export interface TargetServer {
  readonly name: string;
  readonly port: number;
  /** What `/health` answers. */
  healthy: boolean;
  /** Delay of every other response. */
  delayMs: number;
  /** While true, other requests wait until `release()`. */
  hold: boolean;
  readonly requests: SeenRequest[];
  /** Health checks received (requests to `/health`), with when and what they were answered. */
  readonly healthChecks: { readonly at: number; readonly passed: boolean }[];
  /** Requests waiting for `release()`. */
  readonly held: number;
  release(): void;
  /** Resolves when `n` requests are held. */
  whenHeld(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startTargetServer(name: string): Promise<TargetServer> {
  const waiting: (() => void)[] = [];
  const heldWatchers: { n: number; resolve: () => void }[] = [];
  const state = { healthy: true, delayMs: 0, hold: false };
  const requests: SeenRequest[] = [];
  const healthChecks: { at: number; passed: boolean }[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      healthChecks.push({ at: Date.now(), passed: state.healthy });
      res.writeHead(state.healthy ? 200 : 500).end(state.healthy ? 'ok' : 'sick');
      return;
    }
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const answer = () => {
      const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json' };
      if (req.url?.includes('/login')) headers['Set-Cookie'] = `session=${name}; Path=/`;
      const status = req.url?.includes('/fail') ? 500 : 200;
      res.writeHead(status, headers).end(JSON.stringify({ name, url: req.url }));
    };
    const go = () => (state.delayMs > 0 ? setTimeout(answer, state.delayMs) : answer());
    if (state.hold) {
      waiting.push(go);
      for (const w of heldWatchers.filter((x) => waiting.length >= x.n)) w.resolve();
    } else go();
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    get healthy() {
      return state.healthy;
    },
    set healthy(v: boolean) {
      state.healthy = v;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    get hold() {
      return state.hold;
    },
    set hold(v: boolean) {
      state.hold = v;
    },
    requests,
    healthChecks,
    get held() {
      return waiting.length;
    },
    release() {
      state.hold = false;
      for (const go of waiting.splice(0)) go();
    },
    whenHeld(n: number) {
      return waiting.length >= n ? Promise.resolve() : new Promise<void>((resolve) => heldWatchers.push({ n, resolve }));
    },
    close() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}

/** A state source tests change at will; `set` pushes the change to the data plane. */
export class MemorySource implements LoadBalancerStateSource {
  private readonly listeners = new Set<() => void>();
  public constructor(public current: LoadBalancerSnapshot) {}

  public set(snapshot: LoadBalancerSnapshot): void {
    this.current = snapshot;
    for (const l of this.listeners) l();
  }

  public snapshot(): Promise<LoadBalancerSnapshot> {
    return Promise.resolve(this.current);
  }

  public subscribe(onChange: () => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }
}

/** Records every health change and resolves waits on them. */
export class RecordingSink implements TargetHealthSink {
  public readonly changes: TargetHealthChange[] = [];
  private readonly waiters: { match: (c: TargetHealthChange) => boolean; resolve: (c: TargetHealthChange) => void }[] = [];

  public onTargetHealth(change: TargetHealthChange): void {
    this.changes.push(change);
    for (const w of [...this.waiters]) {
      if (w.match(change)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(change);
      }
    }
  }

  /** The first change from index `from` on that matches (one already recorded counts). */
  public waitFor(match: (c: TargetHealthChange) => boolean, from = 0): Promise<TargetHealthChange> {
    const seen = this.changes.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

export const stateOf = (server: TargetServer, state: string, groupArn?: string) => (c: TargetHealthChange) =>
  c.target.Port === server.port && c.health.State === state && (groupArn === undefined || c.targetGroupArn === groupArn);

/** Polls `check` until it returns true (for conditions no event announces). */
export async function eventually(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A target group with fast health checks: 5 s interval, 4 s timeout, thresholds 2/2 (scaled by the test's timeScale). */
export function targetGroup(arn: string, servers: readonly TargetServer[], attributes: Record<string, string> = {}): TargetGroupSnapshot {
  return {
    targetGroup: {
      TargetGroupArn: arn,
      TargetGroupName: arn.split('/')[1],
      Protocol: 'HTTP',
      Port: 80,
      TargetType: 'ip',
      HealthCheckEnabled: true,
      HealthCheckPath: '/health',
      HealthCheckPort: 'traffic-port',
      HealthCheckIntervalSeconds: 5,
      HealthCheckTimeoutSeconds: 4,
      HealthyThresholdCount: 2,
      UnhealthyThresholdCount: 2,
      Matcher: { HttpCode: '200' },
    },
    attributes: Object.entries({ 'deregistration_delay.timeout_seconds': '10', ...attributes }).map(([Key, Value]): TargetGroupAttribute => ({ Key, Value })),
    targets: servers.map((s) => ({ Id: '127.0.0.1', Port: s.port })),
  };
}

/** The capability router's rules: a header rule and a path rule per capability, 404 JSON by default. */
export function capabilityRules(groups: Record<string, string | Rule['Actions']>): Rule[] {
  const rules: Rule[] = [];
  Object.entries(groups).forEach(([capability, target], i) => {
    const actions: Rule['Actions'] = typeof target === 'string' ? [{ Type: 'forward', TargetGroupArn: target, ForwardConfig: { TargetGroups: [{ TargetGroupArn: target, Weight: 1 }] } }] : target;
    rules.push(
      { RuleArn: `rule/${capability}/header`, Priority: String(i + 1), Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: [capability] } }], Actions: actions },
      { RuleArn: `rule/${capability}/path`, Priority: String(25_001 + i), Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: [`/agents/${capability}`, `/agents/${capability}/*`] } }], Actions: actions },
    );
  });
  rules.push({
    RuleArn: 'rule/default',
    Priority: 'default',
    IsDefault: true,
    Actions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404', ContentType: 'application/json', MessageBody: JSON.stringify({ error: 'unknown capability', capabilities: Object.keys(groups).sort() }) } }],
  });
  return rules;
}

export interface Answer {
  readonly status: number;
  /** Name of the target server that answered, when one did. */
  readonly name?: string;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
  /** The response's Set-Cookie lines. */
  readonly setCookie: string[];
}

/** GET through the load balancer with node:http (which, unlike fetch, may set any Host). */
export function get(endpoint: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${endpoint}${path}`, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let name: string | undefined;
        try {
          name = (JSON.parse(body) as { name?: string }).name;
        } catch {
          name = undefined;
        }
        resolve({ status: response.statusCode ?? 0, ...(name !== undefined ? { name } : {}), body, headers: response.headers, setCookie: response.headers['set-cookie'] ?? [] });
      });
    });
    request.on('error', reject);
    request.end();
  });
}

/** The Cookie header a client sends back after `setCookie`. */
export const cookieJar = (setCookie: readonly string[]) => setCookie.map((c) => c.split(';')[0]).join('; ');

/** Runs `count` requests, at most `concurrency` at once; returns who answered each. */
export async function load(count: number, concurrency: number, send: (i: number) => Promise<{ name?: string; status: number }>): Promise<{ name?: string; status: number }[]> {
  const results: { name?: string; status: number }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await send(i);
      }
    }),
  );
  return results;
}

export const tally = (names: (string | undefined)[]) => names.reduce<Record<string, number>>((acc, n) => ({ ...acc, [n ?? '-']: (acc[n ?? '-'] ?? 0) + 1 }), {});

import { Agent, request } from 'node:http';

/**
 * The steady client load of B4, B5 and B6: requests at a fixed rate through one load balancer
 * endpoint, each recorded with when it was sent and what came back. A request counts as served
 * only when its whole answer arrived: status 200 and, when the request says what its body must
 * end with, that ending (a streamed answer cut mid-way is `truncated`, however it began).
 */

/** One request of the load: where it goes and what a whole answer looks like. */
export interface LoadRequest {
  /** Path and query, e.g. `/work?ms=5000`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A whole answer's body ends with this (e.g. `event: done\n\n` of a server-sent stream). @default - any body */
  readonly bodyEndsWith?: string;
  /** Carried into the outcome (which fleet, how long the request was meant to last, …). */
  readonly tag?: string;
}

export interface SteadyLoadOptions {
  readonly endpoint: string;
  readonly requestsPerSecond: number;
  /** The i-th request (0-based). */
  readonly next: (i: number) => LoadRequest;
  /** Connections kept to the endpoint. @default 200 */
  readonly maxSockets?: number;
  /** A request whose connection stays silent this long is given up as `timeout`. @default 5000 */
  readonly idleTimeoutMs?: number;
}

/** What one request got: `200`, another status, `error` (no answer: refused, reset), `timeout`, or `truncated`. */
export interface LoadOutcome {
  /** When it was sent, epoch ms. */
  readonly at: number;
  readonly result: string;
  /** Sent → last byte (or failure), ms. */
  readonly durationMs: number;
  readonly tag?: string;
}

export class SteadyLoad {
  private readonly agent: Agent;
  private timer?: NodeJS.Timeout;
  private sent = 0;
  private open = 0;
  private idleWaiters: (() => void)[] = [];
  public readonly outcomes: LoadOutcome[] = [];

  public constructor(private readonly options: SteadyLoadOptions) {
    this.agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 200 });
  }

  /** Starts sending; requests due by the clock are sent every 10 ms. */
  public start(): void {
    const started = Date.now();
    const tick = () => {
      const due = Math.floor(((Date.now() - started) / 1000) * this.options.requestsPerSecond);
      while (this.sent < due) this.send();
      this.timer = setTimeout(tick, 10);
    };
    tick();
  }

  /** Stops sending new requests; those in flight go on. */
  public stop(): void {
    clearTimeout(this.timer);
  }

  /** Resolves once every request sent has its outcome (or after `timeoutMs`, whichever is first). */
  public settled(timeoutMs: number): Promise<void> {
    if (this.open === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => (clearTimeout(timer), resolve()));
    });
  }

  /** Stops sending and closes every connection (requests still open are abandoned). */
  public destroy(): void {
    this.stop();
    this.agent.destroy();
  }

  /** Outcomes of the requests sent in [from, to] (epoch ms) that did not get a whole answer. */
  public failedBetween(from: number, to: number): LoadOutcome[] {
    return this.outcomes.filter((o) => o.at >= from && o.at <= to && o.result !== '200');
  }

  private send(): void {
    const spec = this.options.next(this.sent++);
    const at = Date.now();
    this.open++;
    let done = false;
    const finish = (result: string) => {
      if (done) return;
      done = true;
      this.outcomes.push({ at, result, durationMs: Date.now() - at, ...(spec.tag !== undefined ? { tag: spec.tag } : {}) });
      if (--this.open === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    };
    const req = request(`${this.options.endpoint}${spec.path}`, { agent: this.agent, timeout: this.options.idleTimeoutMs ?? 5000, headers: { ...spec.headers } }, (res) => {
      const keep = spec.bodyEndsWith !== undefined;
      let tail = '';
      if (keep) res.setEncoding('utf8');
      res.on('data', (chunk: string | Buffer) => {
        if (keep) tail = (tail + chunk).slice(-256);
      });
      res.on('end', () => {
        const status = String(res.statusCode);
        if (status === '200' && (!res.complete || (keep && !tail.endsWith(spec.bodyEndsWith!)))) finish('truncated');
        else finish(status);
      });
      res.on('aborted', () => finish(res.statusCode === 200 ? 'truncated' : String(res.statusCode)));
      res.on('error', () => finish(res.statusCode === 200 ? 'truncated' : 'error'));
    });
    req.on('timeout', () => {
      finish('timeout');
      req.destroy();
    });
    req.on('error', () => finish('error'));
    req.end();
  }
}

/** Failed outcomes by what the client got: `{ "502": 3, "truncated": 1 }`. */
export function failureCounts(failed: readonly LoadOutcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of failed) out[f.result] = (out[f.result] ?? 0) + 1;
  return out;
}

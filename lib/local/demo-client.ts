import { Agent, request } from 'node:http';

export interface DemoClientOptions {
  /** The load balancer, `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** The endpoint of each capability on another load balancer than `endpoint`'s (local mode runs one per load balancer). @default - every capability on `endpoint` */
  readonly endpoints?: Readonly<Record<string, string>>;
  readonly capabilities: readonly string[];
  /** Requests per second, spread evenly over the capabilities. */
  readonly requestsPerSecond: number;
  /** Requests given up on (the client closes) after this long, ms. @default 5000 */
  readonly timeoutMs?: number;
}

/**
 * A client sending steady traffic through the local load balancer, as a user's clients would:
 * the capabilities in turn, alternately by `X-Agent-Capability` header and by `/agents/<name>/`
 * path. What happened to the requests is read from the load balancer's own counters (the live
 * view does); this client only counts what it could not send. At most 100 requests are in flight:
 * a stalled load balancer slows it down instead of piling up sockets.
 */
export class DemoClient {
  private timer?: NodeJS.Timeout;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 100 });
  private sent = 0;
  private inFlight = 0;
  private skipped = 0;

  public constructor(private readonly options: DemoClientOptions) {}

  public get counts(): { sent: number; skipped: number } {
    return { sent: this.sent, skipped: this.skipped };
  }

  public start(): void {
    const rps = this.options.requestsPerSecond;
    if (rps <= 0 || this.options.capabilities.length === 0) return;
    const started = Date.now();
    // Catch up by the clock, so timer drift on a busy machine does not lower the rate.
    const tick = () => {
      const due = Math.floor(((Date.now() - started) / 1000) * rps);
      while (this.sent + this.skipped < due) this.send();
      this.timer = setTimeout(tick, Math.max(10, Math.min(100, 1000 / rps)));
      this.timer.unref();
    };
    tick();
  }

  public stop(): void {
    clearTimeout(this.timer);
    this.agent.destroy();
  }

  private send(): void {
    if (this.inFlight >= 100) {
      this.skipped++;
      return;
    }
    const n = this.sent++;
    const caps = this.options.capabilities;
    const capability = caps[n % caps.length];
    const byHeader = Math.floor(n / caps.length) % 2 === 0;
    const path = byHeader ? `/demo/${n}` : `/agents/${capability}/demo/${n}`;
    this.inFlight++;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlight--;
    };
    const req = request(`${this.options.endpoints?.[capability] ?? this.options.endpoint}${path}`, { agent: this.agent, timeout: this.options.timeoutMs ?? 5000, headers: byHeader ? { 'X-Agent-Capability': capability } : {} }, (res) => {
      res.resume();
      res.on('close', finish);
    });
    req.on('timeout', () => req.destroy());
    // A refused or cut request shows in the load balancer's counters (or not at all, if it is down).
    req.on('error', finish);
    req.end();
  }
}

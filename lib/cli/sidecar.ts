import { EventEmitter } from 'node:events';
import { awsFailureKind } from '../aws/aws-errors';
import { AgentLease } from '../sdk/agent-lease';
import type { AgentLeaseOptions } from '../sdk/agent-lease-options';

export interface SidecarOptions {
  readonly lease: AgentLeaseOptions;
  /** Local health URL of the process the sidecar stands for; 2xx means healthy. */
  readonly healthUrl: string;
  /** How often the health URL is probed. @default ttl/3 seconds */
  readonly intervalMs?: number;
  /** Consecutive failed probes before the lease is drained. @default 3 */
  readonly unhealthyThreshold?: number;
  /** Per-probe timeout. @default 2000 ms */
  readonly probeTimeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export type SidecarEvent =
  | { kind: 'probe'; ok: boolean; detail: string }
  | { kind: 'acquired' | 'drained' | 'activated' | 'released' | 'lost' | 'error' | 'retrying'; detail: string };

/**
 * Failures no retry can fix: no or refused credentials, a missing permission, a missing table.
 * The sidecar stops on them rather than retrying forever.
 */
export function isFatalLeaseFailure(error: unknown): boolean {
  const kind = awsFailureKind(error);
  return kind === 'no-credentials' || kind === 'bad-credentials' || kind === 'access-denied' || kind === 'not-found';
}

/** Why a probe failed, in words: the status, the socket error (`connect ECONNREFUSED 127.0.0.1:8080`) or the timeout. */
export function probeFailure(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  const cause = e?.cause;
  if (cause?.message) return cause.message;
  if (cause?.code) return cause.code;
  return e?.message ?? String(error);
}

/**
 * Holds a lease for a process written in any language. The lease is acquired on the first
 * healthy probe, drained after `unhealthyThreshold` failures in a row, released when the
 * process stays unhealthy for a whole TTL (so a dead process never keeps a lease by proxy),
 * and re-acquired or re-activated as soon as it answers 2xx again.
 */
export class Sidecar extends EventEmitter<{ event: [SidecarEvent] }> {
  public readonly lease: AgentLease;
  private failures = 0;
  private unhealthySince?: number;
  private timer?: NodeJS.Timeout;
  /** The probe-and-react cycle in progress, which `stop()` waits for. */
  private ticking?: Promise<void>;
  private stopping?: Promise<void>;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly threshold: number;
  private readonly fetchFn: typeof fetch;
  private hurry?: () => void;
  private failFatally: (error: Error) => void = () => undefined;

  /**
   * Settles with the first failure no retry can fix ({@link isFatalLeaseFailure}): whoever runs
   * the sidecar stops it and says why. Never settles otherwise.
   */
  public readonly fatal: Promise<Error>;

  public constructor(private readonly options: SidecarOptions) {
    super();
    this.lease = new AgentLease({ ...options.lease, keepProcessAlive: true });
    this.intervalMs = options.intervalMs ?? Math.max(500, Math.round((this.lease.ttl * 1000) / 3));
    this.threshold = options.unhealthyThreshold ?? 3;
    this.fetchFn = options.fetch ?? fetch;
    this.fatal = new Promise((resolve) => (this.failFatally = resolve));
    this.lease.on('lost', (e) => this.emit('event', { kind: 'lost', detail: e.message }));
    // Heartbeats and re-acquires fail in the background; a fatal one must not be retried forever.
    const background = (error: Error) => {
      if (isFatalLeaseFailure(error)) this.failFatally(error);
      else this.emit('event', { kind: 'retrying', detail: error.message });
    };
    this.lease.on('renewFailed', background);
    this.lease.on('reacquireFailed', background);
  }

  public start(): void {
    this.ticking = this.tick();
  }

  /**
   * SIGTERM path: stop probing; drain a lease in rotation and keep it `drainSeconds` while the
   * load balancer stops sending new requests; release. Idempotent: later calls share the first
   * one's work. Rejects with the DynamoDB failure when the lease could not be released.
   */
  public stop(drainSeconds = 0): Promise<void> {
    return (this.stopping ??= this.shutdown(drainSeconds));
  }

  /** Cuts the drain wait of a stop in progress short (a second signal). */
  public hurryStop(): void {
    this.hurry?.();
  }

  private async shutdown(drainSeconds: number): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A cycle in flight may be acquiring: let it finish, so what it acquires is released below
    // rather than renewed forever by a process that was told to stop.
    await this.ticking;
    let drained = false;
    if (drainSeconds > 0 && this.lease.held && this.lease.status === 'active') {
      try {
        await this.lease.drain();
        drained = true;
        this.emit('event', { kind: 'drained', detail: `shutdown: out of rotation, releasing in ${drainSeconds}s` });
      } catch (error) {
        // Release anyway: it takes the target out too, just without the grace period.
        this.emit('event', { kind: 'error', detail: `drain failed: ${(error as Error).message}` });
      }
    }
    if (drained) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainSeconds * 1000);
        this.hurry = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    // Also when lost or re-acquiring: release() cancels the re-acquire attempts.
    if (this.lease.phase !== 'idle' && this.lease.phase !== 'released') {
      await this.lease.release();
      this.emit('event', { kind: 'released', detail: 'shutdown' });
    }
  }

  private async probe(): Promise<{ ok: boolean; detail: string }> {
    const timeoutMs = this.options.probeTimeoutMs ?? 2000;
    try {
      const res = await this.fetchFn(this.options.healthUrl, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer().catch(() => undefined);
      return { ok: res.status >= 200 && res.status < 300, detail: `HTTP ${res.status}` };
    } catch (error) {
      return { ok: false, detail: probeFailure(error, timeoutMs) };
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const result = await this.probe();
    if (this.stopped) return; // stop() came during the probe: a late 2xx must not re-acquire
    this.emit('event', { kind: 'probe', ...result });
    try {
      await this.react(result.ok);
    } catch (error) {
      if (isFatalLeaseFailure(error)) {
        this.failFatally(error as Error);
        return; // no next cycle: whoever runs the sidecar stops it
      }
      this.emit('event', { kind: 'error', detail: (error as Error).message });
    }
    if (!this.stopped) this.timer = setTimeout(() => (this.ticking = this.tick()), this.intervalMs);
  }

  private async react(healthy: boolean): Promise<void> {
    const phase = this.lease.phase;
    if (healthy) {
      this.failures = 0;
      this.unhealthySince = undefined;
      if (phase === 'idle' || phase === 'released' || phase === 'lost') {
        // Released while drained: come back routable at once, not one probe interval later.
        if (this.lease.status === 'draining') await this.lease.activate();
        await this.lease.acquire();
        this.emit('event', { kind: 'acquired', detail: this.lease.target });
      } else if (this.lease.status === 'draining') {
        await this.lease.activate();
        this.emit('event', { kind: 'activated', detail: this.lease.target });
      }
      return;
    }
    this.failures++;
    this.unhealthySince ??= Date.now();
    if (!this.lease.held) return;
    if (this.failures >= this.threshold && this.lease.status === 'active') {
      await this.lease.drain();
      this.emit('event', { kind: 'drained', detail: `${this.failures} failed probes` });
    }
    if (Date.now() - this.unhealthySince >= this.lease.ttl * 1000) {
      await this.lease.release();
      this.emit('event', { kind: 'released', detail: `unhealthy for ${this.lease.ttl}s` });
    }
  }
}

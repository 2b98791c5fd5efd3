import { EventEmitter } from 'node:events';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { awsFailureKind, rootMessage } from '../aws/aws-errors';
import { LeaseStoreError } from '../core/errors';
import { AgentLease } from '../sdk/agent-lease';
import type { AgentLeaseOptions } from '../sdk/agent-lease-options';
import { untilDrained } from '../sdk/draining';
import type { InFlightSource } from '../sdk/in-flight';
import { formatLeaveStep, LeaveOptions, LeaveReport, leaveRotation } from '../sdk/leave';
import { describeGroups, servingProgress } from '../sdk/rotation-progress';

export interface SidecarOptions {
  /** The lease to hold: its options, or a lease already made (`AgentLease.create()` found its address). */
  readonly lease: AgentLeaseOptions | AgentLease;
  /** Local health URL of the process the sidecar stands for; 2xx means healthy. */
  readonly healthUrl: string;
  /** How often the health URL is probed. @default ttl/3 seconds */
  readonly intervalMs?: number;
  /** Consecutive failed probes before the lease is drained. @default 3 */
  readonly unhealthyThreshold?: number;
  /** Per-probe timeout. @default 2000 ms */
  readonly probeTimeoutMs?: number;
  /**
   * Written (JSON: target, since) while the target is serving — held, `active` and `healthy` in
   * the group of every capability the registry does not refuse, as it reports in `rotation` and
   * `rejection` — and removed as soon as it
   * is not, and when the sidecar starts leaving: what an orchestrator's readiness check looks at.
   * @default - none
   */
  readonly readyFile?: string;
  /** How `stop()` leaves rotation (propagation margin, deadline, …); see `LeaveOptions`. @default the SDK's */
  readonly leave?: Omit<LeaveOptions, 'signal' | 'onStep' | 'inFlight'>;
  /**
   * What the leave waits for before the release: the requests in flight, counted by the proxy in
   * front of the app (`SidecarProxy.tracker`). Without it the sidecar cannot see the app's
   * requests, and waits instead until the load balancer's draining of the target has ended in
   * every group (see `waitForDraining`).
   * @default - the load balancer's draining, as the registry reports it
   */
  readonly inFlight?: InFlightSource;
  /**
   * Without `inFlight`: wait, once out of rotation, until the registry reports the target gone
   * from every group (ALB ended its draining: nothing of the load balancer's is in flight on it
   * any more) before releasing. `false` releases right after the propagation margin, as the
   * sidecar did before it could wait for either: a supervisor that then stops the app cuts any
   * request still running.
   * @default true
   */
  readonly waitForDraining?: boolean;
  readonly fetch?: typeof fetch;
}

export type SidecarEvent =
  | { kind: 'probe'; ok: boolean; detail: string }
  | { kind: 'acquired' | 'drained' | 'activated' | 'released' | 'lost' | 'error' | 'retrying' | 'serving' | 'not-serving' | 'leave' | 'interference' | 'rejected' | 'cut'; detail: string };

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
 * and re-acquired or re-activated as soon as it answers 2xx again. `stop()` leaves rotation the
 * SDK's way (`AgentLease.leave()`): drain, wait until the registry reports the target out of
 * rotation in every group, a propagation margin, then until nothing is in flight — the requests
 * a proxy in front of the app counts (`inFlight`), or else the load balancer's draining of the
 * target — and release; so a supervisor that stops the process once the sidecar has exited
 * loses no request.
 */
export class Sidecar extends EventEmitter<{ event: [SidecarEvent] }> {
  public readonly lease: AgentLease;
  private failures = 0;
  private unhealthySince?: number;
  private timer?: NodeJS.Timeout;
  /** The probe-and-react cycle in progress, which `stop()` waits for. */
  private ticking?: Promise<void>;
  private stopping?: Promise<LeaveReport>;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly threshold: number;
  private readonly fetchFn: typeof fetch;
  private readonly hurry = new AbortController();
  private failFatally: (error: Error) => void = () => undefined;
  /** Whether the target was serving when last looked at (what the ready file says). */
  private servingNow = false;
  /** Stops the rotation poll that runs while held and not yet serving. */
  private unwatch?: () => void;

  /**
   * Settles with the first failure no retry can fix ({@link isFatalLeaseFailure}): whoever runs
   * the sidecar stops it and says why. Never settles otherwise.
   */
  public readonly fatal: Promise<Error>;

  public constructor(private readonly options: SidecarOptions) {
    super();
    this.lease = options.lease instanceof AgentLease ? options.lease : new AgentLease({ ...options.lease, keepProcessAlive: true });
    this.intervalMs = options.intervalMs ?? Math.max(500, Math.round((this.lease.ttl * 1000) / 3));
    this.threshold = options.unhealthyThreshold ?? 3;
    this.fetchFn = options.fetch ?? fetch;
    this.fatal = new Promise((resolve) => (this.failFatally = resolve));
    this.lease.on('lost', (e) => this.emit('event', { kind: 'lost', detail: e.message }));
    this.lease.on('interference', (i) =>
      this.emit('event', {
        kind: 'interference',
        detail: `someone else changed ${i.fields.join(', ')} of ${i.target}${i.storedAgentId ? ` (writing agentId ${i.storedAgentId})` : ''}; ${i.restored ? 'our lease is restored' : 'restoring it at the next heartbeat'}`,
      }),
    );
    // Once per verdict (the SDK reports each new one once): why the registry refuses the lease or some of its capabilities.
    this.lease.on('rejected', (r) =>
      this.emit('event', { kind: 'rejected', detail: `${r.reason}${r.capabilities ? ` (${r.capabilities.join(', ')})` : ' (the whole lease)'}: ${r.message}` }),
    );
    // Heartbeats and re-acquires fail in the background; a fatal one must not be retried forever.
    const background = (error: Error) => {
      if (isFatalLeaseFailure(error)) this.failFatally(error);
      else this.emit('event', { kind: 'retrying', detail: error.message });
    };
    this.lease.on('renewFailed', background);
    this.lease.on('reacquireFailed', background);
    // Serving or not: after every change of what the answer depends on.
    const look = () => this.lookAtServing();
    for (const event of ['rotation', 'rejected', 'acquired', 'reacquired', 'statusChanged', 'lost', 'released'] as const) this.lease.on(event, look);
  }

  public start(): void {
    this.ticking = this.tick();
  }

  /**
   * SIGTERM path: stop probing, remove the ready file, then `leaveRotation`: drain → out of
   * rotation in every group (as the registry reports it) → propagation margin → nothing in
   * flight (see `inFlight`) → release, within the leave deadline (317 s by default: a request of
   * the default 5-minute `maxRequestDuration` finishes). Idempotent: later calls share the first one's work.
   * Resolves to the leave's report; rejects (LeaseStoreError) when a lease held could not be released.
   */
  public stop(): Promise<LeaveReport> {
    return (this.stopping ??= this.shutdown());
  }

  /** Cuts the waits of a stop in progress short and releases at once (a second signal). */
  public hurryStop(): void {
    this.hurry.abort();
  }

  private async shutdown(): Promise<LeaveReport> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A cycle in flight may be acquiring: let it finish, so what it acquires is released below
    // rather than renewed forever by a process that was told to stop.
    await this.ticking;
    this.lookAtServing();
    const inFlight = this.inFlightSource();
    const report = await leaveRotation(this.lease, {
      ...this.options.leave,
      ...(inFlight ? { inFlight } : {}),
      signal: this.hurry.signal,
      onStep: (step) => this.emit('event', { kind: 'leave', detail: formatLeaveStep(step) }),
    });
    this.unwatch?.();
    const release = report.steps.find((s) => s.step === 'release');
    if (release?.outcome === 'failed' || release?.outcome === 'deadline') {
      const cause = report.errors[report.errors.length - 1];
      throw new LeaseStoreError(`could not release the lease on ${this.lease.target} (${cause ? rootMessage(cause) : release.detail}); ${expiryOf(this.lease)}`, { cause });
    }
    if (report.released && report.steps.some((s) => s.step === 'drain' && s.outcome !== 'skipped')) this.emit('event', { kind: 'released', detail: 'shutdown' });
    return report;
  }

  /**
   * What the leave waits on: the proxy's count (each request cut at the deadline gets a `cut`
   * line of its own), or the load balancer's draining, or nothing.
   */
  private inFlightSource(): InFlightSource | undefined {
    const source = this.options.inFlight;
    if (source === undefined) return this.options.waitForDraining === false ? undefined : untilDrained(this.lease);
    const emit = (line: string) => this.emit('event', { kind: 'cut', detail: `${line}: still in flight when the leave had to end (deadline or a second signal)` });
    return {
      get inFlight() {
        return source.inFlight;
      },
      whenIdle: () => source.whenIdle(),
      stopAccepting: () => source.stopAccepting?.(),
      cut: () => {
        const lines = source.cut?.() ?? [];
        lines.forEach(emit);
        return lines;
      },
    };
  }

  /**
   * Serving: held, `active`, `healthy` everywhere, not stopping. Keeps the ready file in step, and
   * polls the lease (one GetItem a second) while held and not serving yet, so readiness shows as
   * soon as the registry reports it rather than at the next heartbeat.
   */
  private lookAtServing(): void {
    const serving = !this.stopped && this.lease.isServing;
    const waiting = !this.stopped && this.lease.held && !serving && this.lease.status === 'active';
    if (waiting && this.unwatch === undefined && this.options.readyFile !== undefined) this.unwatch = this.lease.watchRotation();
    if (!waiting && this.unwatch !== undefined) {
      this.unwatch();
      this.unwatch = undefined;
    }
    if (serving === this.servingNow) return;
    this.servingNow = serving;
    const groups = this.lease.capabilities.join(', ');
    this.emit('event', serving ? { kind: 'serving', detail: `healthy in ${groups}` } : { kind: 'not-serving', detail: this.stopped ? 'leaving' : describeRotation(this.lease) });
    const file = this.options.readyFile;
    if (file === undefined) return;
    try {
      if (serving) writeReadyFile(file, this.lease.target);
      else rmSync(file, { force: true });
    } catch (error) {
      this.emit('event', { kind: 'error', detail: `ready file ${file}: ${(error as Error).message}` });
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

/** Written whole or not at all (a readiness check never reads half a file). */
function writeReadyFile(path: string, target: string): void {
  const partial = `${path}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify({ target, servingSince: new Date().toISOString() })}\n`);
  renameSync(partial, path);
}

/** Why a lease is not serving, group by group: `vision initial for 1.2 s, speech unreported`. */
function describeRotation(lease: AgentLease): string {
  if (!lease.held) return `lease ${lease.phase}`;
  if (lease.status !== 'active') return 'lease draining';
  return describeGroups(servingProgress(lease.rotation, lease.capabilities, lease.rejection).groups, Date.now());
}

/** When a lease left behind goes by itself: `it expires by itself at 2026-…Z`. */
export function expiryOf(lease: AgentLease): string {
  const expiresAt = lease.expiresAt;
  return expiresAt ? `it expires by itself at ${new Date(expiresAt * 1000).toISOString()}` : 'it expires by itself within its ttl';
}

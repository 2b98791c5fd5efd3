import { ConfigError } from '../core/errors';
import type { LeaseView } from './lease-view';
import { trackInFlight } from './in-flight';
import type { TrackableServer } from './in-flight';
import { formatLeaveStep, leaveRotation, resolveLeaveOptions } from './leave';
import type { LeaveOptions, LeaveReport } from './leave';

export interface ShutdownHandlerOptions extends Omit<LeaveOptions, 'signal'> {
  /** Signals that start the shutdown. A second one cuts the waits short and releases at once. @default ['SIGTERM', 'SIGINT'] */
  readonly signals?: readonly NodeJS.Signals[];
  /**
   * Call `process.exit(0)` when done. Installing a signal listener disables Node's default
   * "terminate on SIGTERM", so leave this on unless your own handler ends the process.
   * When off, the handlers remove themselves once the shutdown is done.
   * @default true
   */
  readonly exit?: boolean;
  /**
   * Receives drain/release/in-flight failures; the shutdown goes on regardless (an unreleased
   * lease is draining, and expires after its ttl).
   * @default - `process.emitWarning`
   */
  readonly onError?: (error: Error) => void;
  /**
   * Receives one line per step of the leave and a last one with the total, so operators see
   * where the time went; `false` for silence.
   * @default - written to stderr
   */
  readonly log?: ((line: string) => void) | false;
  /** Called with the report once the leave is done, before the exit. */
  readonly onLeft?: (report: LeaveReport) => void;
  /**
   * The HTTP server whose requests the leave waits for, counted from now on and closed
   * gracefully: Node's `http`/`https` server, what `app.listen()` returns in Express or Koa, or a
   * Fastify instance. The same as `inFlight: trackInFlight(server)`; not together with `inFlight`.
   * @default - see `inFlight`
   */
  readonly server?: TrackableServer;
}

/** Extra time past the deadline before the exit is forced, should a step outlive it. */
const EXIT_GRACE_MS = 1_000;

/**
 * On the first of `signals`, runs `leaveRotation` for every lease in lockstep (drain → out of
 * rotation everywhere → propagation margin → in-flight work done → release, within
 * `deadlineMs`), logs each step's timing, then `process.exit(0)` unless `exit: false`.
 * Returns a function that removes the handlers.
 * @throws ConfigError for a bad option (at install time, not at the signal)
 */
export function installShutdownHandlers(leases: LeaseView | readonly LeaseView[], options: ShutdownHandlerOptions = {}): () => void {
  const all: readonly LeaseView[] = Array.isArray(leases) ? leases : [leases as LeaseView];
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  if (!Array.isArray(signals) || signals.length === 0) {
    throw new ConfigError(`installShutdownHandlers: signals must be a non-empty array, got ${JSON.stringify(signals)}`);
  }
  if ('drainSeconds' in options) {
    throw new ConfigError('installShutdownHandlers: drainSeconds is gone; the wait now ends when the registry reports the target out of rotation (see propagationMarginMs, deadlineMs)');
  }
  if (options.server !== undefined && options.inFlight !== undefined) {
    throw new ConfigError('installShutdownHandlers: give server or inFlight, not both (server is inFlight: trackInFlight(server))');
  }
  const { server, ...leaveOptions } = options;
  const inFlight = server !== undefined ? trackInFlight(server) : options.inFlight;
  const { deadlineMs } = resolveLeaveOptions({ ...leaveOptions, inFlight });
  const exit = options.exit ?? true;
  const reportError = options.onError ?? ((error: Error) => process.emitWarning(`agent-lb shutdown: ${error.message}`));
  const log = options.log === false ? () => undefined : (options.log ?? ((line: string) => void process.stderr.write(`${line}\n`)));

  let shuttingDown = false;
  const hurry = new AbortController();

  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    log(`agent-lb leave ${all.map((l) => l.target).join(', ')}: ${signal}, leaving rotation (deadline ${(deadlineMs / 1000).toFixed(1)} s)`);
    // The last resort should a step outlive the deadline; leaveRotation itself keeps to it.
    const forced = exit ? setTimeout(() => process.exit(0), deadlineMs + EXIT_GRACE_MS) : undefined;
    let report: LeaveReport | undefined;
    try {
      report = await leaveRotation(all, {
        ...leaveOptions,
        ...(inFlight !== undefined ? { inFlight } : {}),
        signal: hurry.signal,
        onStep: (step) => {
          log(formatLeaveStep(step));
          options.onStep?.(step);
        },
      });
      for (const error of report.errors) reportError(error);
      log(`agent-lb leave ${report.targets.join(', ')}: done in ${(report.durationMs / 1000).toFixed(1)} s, ${report.released ? 'released' : 'not released (see above)'}`);
      options.onLeft?.(report);
    } catch (error) {
      reportError(error instanceof Error ? error : new Error(String(error)));
    }
    clearTimeout(forced);
    if (exit) process.exit(0);
    else remove();
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      hurry.abort(); // a second signal: stop waiting, release now
      return;
    }
    shuttingDown = true;
    void shutdown(signal);
  };

  for (const signal of signals) process.on(signal, onSignal);
  const remove = (): void => {
    for (const signal of signals) process.removeListener(signal, onSignal);
  };
  return remove;
}

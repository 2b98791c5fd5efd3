import { ConfigError } from '../core/errors';
import type { AgentLease } from './agent-lease';

/**
 * Default wait between drain and release: the stream-sync Lambda deregisters a draining target
 * within about a second, and the ALB takes a few more to stop sending it new requests. 15 s
 * covers that and still fits in the 30 s that ECS (`stopTimeout`) and Kubernetes
 * (`terminationGracePeriodSeconds`) allow before they kill the process.
 */
export const DEFAULT_DRAIN_SECONDS = 15;

export interface ShutdownHandlerOptions {
  /** Signals that start the shutdown. @default ['SIGTERM', 'SIGINT'] */
  readonly signals?: readonly NodeJS.Signals[];
  /**
   * Seconds to keep serving after `drain()` so the load balancer stops routing here before the
   * lease is released. Skipped for leases that are not held. A second signal cuts the wait short.
   * @default 15
   */
  readonly drainSeconds?: number;
  /**
   * Call `process.exit(0)` when done. Installing a signal listener disables Node's default
   * "terminate on SIGTERM", so leave this on unless your own handler ends the process.
   * When off, the handlers remove themselves once the shutdown is done.
   * @default true
   */
  readonly exit?: boolean;
  /**
   * Receives drain/release failures; the shutdown goes on regardless (an unreleased lease
   * still expires after its ttl).
   * @default - `process.emitWarning`
   */
  readonly onError?: (error: Error) => void;
}

/**
 * On the first of `signals`: drain every lease, wait `drainSeconds` while still serving,
 * release every lease, then `process.exit(0)` unless `exit: false`. Returns a function that
 * removes the handlers.
 */
export function installShutdownHandlers(leases: AgentLease | readonly AgentLease[], options: ShutdownHandlerOptions = {}): () => void {
  const all: readonly AgentLease[] = Array.isArray(leases) ? leases : [leases as AgentLease];
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const drainSeconds = options.drainSeconds ?? DEFAULT_DRAIN_SECONDS;
  if (typeof drainSeconds !== 'number' || !Number.isFinite(drainSeconds) || drainSeconds < 0) {
    throw new ConfigError(`installShutdownHandlers: drainSeconds must be a number ≥ 0, got ${JSON.stringify(drainSeconds)}`);
  }
  if (!Array.isArray(signals) || signals.length === 0) {
    throw new ConfigError(`installShutdownHandlers: signals must be a non-empty array, got ${JSON.stringify(signals)}`);
  }
  const exit = options.exit ?? true;
  const report = options.onError ?? ((error: Error) => process.emitWarning(`agent-lb shutdown: ${error.message}`));

  let shuttingDown = false;
  let hurry = false;
  let cutWaitShort: (() => void) | undefined;

  const settle = async (step: (lease: AgentLease) => Promise<unknown>): Promise<void> => {
    const results = await Promise.allSettled(all.map(step));
    for (const r of results) if (r.status === 'rejected') report(r.reason instanceof Error ? r.reason : new Error(String(r.reason)));
  };

  const shutdown = async (): Promise<void> => {
    const anyHeld = all.some((lease) => lease.held);
    await settle((lease) => lease.drain());
    if (anyHeld && drainSeconds > 0 && !hurry) {
      // Not unref()'d: the release must happen even if nothing else keeps the process alive.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainSeconds * 1000);
        cutWaitShort = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await settle((lease) => lease.release());
    if (exit) process.exit(0);
    else remove();
  };

  const onSignal = (): void => {
    if (shuttingDown) {
      hurry = true; // a second signal: stop waiting, release now
      cutWaitShort?.();
      return;
    }
    shuttingDown = true;
    void shutdown();
  };

  for (const signal of signals) process.on(signal, onSignal);
  const remove = (): void => {
    for (const signal of signals) process.removeListener(signal, onSignal);
  };
  return remove;
}

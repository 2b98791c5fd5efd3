import { ConfigError, LeaseLostError } from '../core/errors';
import type { RotationState } from '../core/lease-schema';
import { DEFAULT_MAX_REQUEST_DURATION_SECONDS } from '../core/request-duration';
import type { InFlightHook, InFlightSource } from './in-flight';
import type { LeaseView } from './lease-view';
import type { LeaveReport, LeaveStepName, LeaveStepOutcome, LeaveStepReport } from './leave-report';

export { formatLeaveStep } from './leave-report';
export type { LeaveReport, LeaveStepName, LeaveStepOutcome, LeaveStepReport } from './leave-report';
import { describeGroups, GroupRotation, OUT_OF_ROTATION_STATES, outOfRotationProgress } from './rotation-progress';

/** ALB nodes keep sending new requests to a deregistered target for a few seconds (ELB-FACTS.md). */
export const DEFAULT_PROPAGATION_MARGIN_MS = 5_000;
/**
 * How long to wait for a group the registry reports nothing fresh about (no `rotation` entry, or
 * only one from before the drain): stream sync deregisters a draining target within about a
 * second, so 10 s covers its retries. This is the whole wait with a registry that predates
 * `rotation`; the propagation margin follows as always.
 */
export const DEFAULT_UNCONFIRMED_ROTATION_WAIT_MS = 10_000;
/** How far the registry's clock (`since`) may run behind ours before a fresh entry looks stale. */
export const DEFAULT_CLOCK_SKEW_TOLERANCE_MS = 2_000;
/** Time kept back from the waits for the release itself. */
const RELEASE_RESERVE_MS = 2_000;
/** The longest request an agent serves unless told otherwise: the capabilities' default `maxRequestDuration` (5 minutes). */
export const DEFAULT_MAX_REQUEST_DURATION_MS = DEFAULT_MAX_REQUEST_DURATION_SECONDS * 1000;

/**
 * The leave deadline that lets a request of `maxRequestDurationMs` finish: the rotation wait (at
 * most the unconfirmed-rotation wait), the propagation margin (a request may still arrive until
 * its end), the longest request itself, and the release. The platform must allow that long
 * between SIGTERM and SIGKILL (ECS `stopTimeout`, at most 120 s on Fargate; Kubernetes
 * `terminationGracePeriodSeconds`).
 */
export function leaveDeadlineFor(options: { readonly maxRequestDurationMs?: number; readonly propagationMarginMs?: number; readonly unconfirmedRotationWaitMs?: number } = {}): number {
  return (
    (options.unconfirmedRotationWaitMs ?? DEFAULT_UNCONFIRMED_ROTATION_WAIT_MS) +
    (options.propagationMarginMs ?? DEFAULT_PROPAGATION_MARGIN_MS) +
    (options.maxRequestDurationMs ?? DEFAULT_MAX_REQUEST_DURATION_MS) +
    RELEASE_RESERVE_MS
  );
}

/** The whole leave, release included, with every default: 317 s, so a 5-minute request in flight at SIGTERM finishes (see {@link leaveDeadlineFor}). */
export const DEFAULT_LEAVE_DEADLINE_MS = leaveDeadlineFor();
const IN_FLIGHT_POLL_MS = 100;
const DRAIN_RETRY_MS = 250;

export interface LeaveOptions {
  /** Milliseconds to keep serving after the target is out of rotation everywhere. @default 5000 */
  readonly propagationMarginMs?: number;
  /**
   * The longest request the agent serves, in milliseconds: the default deadline lets one that
   * arrives at the end of the propagation margin finish. Use the capability's `maxRequestDuration`.
   * @default 300000 (5 minutes, the capabilities' default)
   */
  readonly maxRequestDurationMs?: number;
  /**
   * Milliseconds the whole leave may take, release included. Waits end early enough to leave
   * the release 2 s (a quarter of the deadline when shorter). Requests still in flight then are
   * cut (`InFlightSource.cut`), each with a line in the step's detail.
   * @default - {@link leaveDeadlineFor} the other options: 317 000 with every default
   */
  readonly deadlineMs?: number;
  /** See `DEFAULT_UNCONFIRMED_ROTATION_WAIT_MS`. @default 10000 */
  readonly unconfirmedRotationWaitMs?: number;
  /** See `DEFAULT_CLOCK_SKEW_TOLERANCE_MS`. @default 2000 */
  readonly clockSkewToleranceMs?: number;
  /**
   * Work to let finish before the release: an `InFlightCounter`, `trackInFlight(server)`, or a
   * hook returning the count (polled every 100 ms) or a promise of idleness.
   * @default - nothing is waited for
   */
  readonly inFlight?: InFlightSource | InFlightHook;
  /** When aborted, the remaining waits are skipped and the lease is released at once. */
  readonly signal?: AbortSignal;
  /** Called as each step ends (each lease also emits `leaveStep`). */
  readonly onStep?: (step: LeaveStepReport) => void;
}

export interface ResolvedLeaveOptions {
  readonly marginMs: number;
  readonly deadlineMs: number;
  readonly unconfirmedMs: number;
  readonly skewMs: number;
}

/** Validates leave options (as `leave()` does before anything is written). @throws ConfigError quoting the bad value */
export function resolveLeaveOptions(o: LeaveOptions): ResolvedLeaveOptions {
  const ms = (name: keyof LeaveOptions, fallback: number, min = 0): number => {
    const value = o[name] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (min > 0 && value === 0)) {
      throw new ConfigError(`leave: ${name} must be a number of milliseconds ${min > 0 ? '> 0' : '≥ 0'}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const source = o.inFlight;
  if (source !== undefined && typeof source !== 'function' && typeof (source as InFlightSource)?.whenIdle !== 'function') {
    throw new ConfigError('leave: inFlight must be a function or have whenIdle() (an InFlightCounter, trackInFlight(server))');
  }
  const marginMs = ms('propagationMarginMs', DEFAULT_PROPAGATION_MARGIN_MS);
  const unconfirmedMs = ms('unconfirmedRotationWaitMs', DEFAULT_UNCONFIRMED_ROTATION_WAIT_MS);
  const maxRequestDurationMs = ms('maxRequestDurationMs', DEFAULT_MAX_REQUEST_DURATION_MS);
  return {
    marginMs,
    deadlineMs: ms('deadlineMs', leaveDeadlineFor({ maxRequestDurationMs, propagationMarginMs: marginMs, unconfirmedRotationWaitMs: unconfirmedMs }), 1),
    unconfirmedMs,
    skewMs: ms('clockSkewToleranceMs', DEFAULT_CLOCK_SKEW_TOLERANCE_MS),
  };
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

type Raced<T> = { readonly value: T } | { readonly error: unknown } | 'elapsed' | 'aborted';

/**
 * Settles with `work`'s result, or `'elapsed'` after `ms`, or `'aborted'` when `signal` aborts,
 * whichever comes first; the timer is cleared either way, so nothing lingers after a leave. Not
 * unref()'d: whoever waits bounds the wait.
 */
function within<T>(work: Promise<T> | undefined, ms: number, signal?: AbortSignal): Promise<Raced<T>> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (result: Raced<T>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const onAbort = () => done('aborted');
    const timer = setTimeout(() => done('elapsed'), Math.max(0, ms));
    if (signal?.aborted) return done('aborted');
    signal?.addEventListener('abort', onAbort, { once: true });
    work?.then(
      (value) => done({ value }),
      (error: unknown) => done({ error }),
    );
  });
}

const sleep = (ms: number, signal?: AbortSignal) => within(undefined, ms, signal) as Promise<'elapsed' | 'aborted'>;

/**
 * Drain → out of rotation everywhere → propagation margin → in-flight work done → release, for
 * one lease or several in lockstep (so no lease's connections close while another still routes
 * here), all within `deadlineMs`. Never rejects for an AWS failure: each step reports how it
 * ended (`onStep`, `leaveStep` events) and errors are collected in the report.
 *
 * Out of rotation means `draining`, `absent` or `unused` in every group, in a `rotation` entry
 * written at or after the drain (less `clockSkewToleranceMs`). Groups with no such entry are
 * waited for at most `unconfirmedRotationWaitMs`; groups reported still in rotation until the
 * deadline. A lease lost meanwhile stops being waited for (its key is swept or someone else's).
 * @throws ConfigError for a bad option (before anything is written)
 */
export async function leaveRotation(leaseOrLeases: LeaseView | readonly LeaseView[], options: LeaveOptions = {}): Promise<LeaveReport> {
  const leases: readonly LeaseView[] = Array.isArray(leaseOrLeases) ? leaseOrLeases : [leaseOrLeases as LeaseView];
  const o = resolveLeaveOptions(options);
  const clock = leases.length > 0 ? () => leases[0].now() : Date.now;
  const signal = options.signal;
  const started = clock();
  const finalEnd = started + o.deadlineMs;
  const waitsEnd = finalEnd - Math.min(RELEASE_RESERVE_MS, o.deadlineMs / 4);
  const targets = leases.map((l) => l.target);
  const steps: LeaveStepReport[] = [];
  const errors: Error[] = [];
  const report = (step: LeaveStepName, startedAt: number, outcome: LeaveStepOutcome, detail: string): void => {
    const r: LeaveStepReport = { step, outcome, startedAt, durationMs: clock() - startedAt, detail, targets };
    steps.push(r);
    for (const lease of leases) lease.emit('leaveStep', r);
    options.onStep?.(r);
  };

  // 1. drain: out of rotation while keeping the lease (and its rotation feedback).
  const wasHeld = leases.filter((l) => l.held);
  let drainsWritten = 0;
  let t = clock();
  if (wasHeld.length === 0) report('drain', t, 'skipped', 'no lease held');
  else {
    const results = await Promise.all(wasHeld.map((lease) => drainUntil(lease, waitsEnd, clock, signal)));
    drainsWritten = results.filter((r) => r === undefined).length;
    const lost = results.filter((r) => r instanceof LeaseLostError);
    const failed = results.filter((r): r is Error => r instanceof Error && !(r instanceof LeaseLostError));
    errors.push(...failed);
    const outcome = failed.length > 0 ? 'failed' : lost.length > 0 ? 'lost' : 'done';
    const parts = [`${wasHeld.length - lost.length - failed.length} of ${wasHeld.length} drained`, ...[...lost, ...failed].map((e) => (e as Error).message)];
    report('drain', t, outcome, parts.join('; '));
  }

  // 2. wait until the registry reports the target out of rotation in every group.
  t = clock();
  const drained = wasHeld.filter((l) => l.held && l.status === 'draining');
  if (drained.length === 0) {
    const allLost = wasHeld.length > 0 && wasHeld.every((l) => !l.held);
    report('rotation', t, allLost ? 'lost' : 'skipped', wasHeld.length === 0 ? 'no lease held' : allLost ? 'the lease was lost' : 'no lease drained (see the drain step)');
  } else {
    const { outcome, detail } = await waitOutOfRotation(drained, o, waitsEnd, clock, signal);
    report('rotation', t, outcome, detail);
  }

  // 3. propagation margin: load balancer nodes take a few seconds to stop sending.
  t = clock();
  if (wasHeld.length === 0) report('propagation', t, 'skipped', 'no lease held');
  // Nothing was taken out of rotation by us: a margin would be waited for nothing.
  else if (drainsWritten === 0) report('propagation', t, 'skipped', 'no drain was written (see the drain step)');
  else {
    const waitMs = Math.min(o.marginMs, waitsEnd - t);
    const ended = waitMs > 0 ? await sleep(waitMs, signal) : signal?.aborted ? 'aborted' : 'elapsed';
    const outcome = ended === 'aborted' ? 'hurried' : waitMs < o.marginMs ? 'deadline' : 'done';
    report('propagation', t, outcome, `margin ${seconds(o.marginMs)}${outcome === 'done' ? '' : `, waited ${seconds(clock() - t)}`}`);
  }

  // 4. in-flight work: no new request comes now, so stop accepting and let the rest finish.
  t = clock();
  if (options.inFlight === undefined) report('inFlight', t, 'skipped', 'no in-flight source given');
  else {
    const { outcome, detail, error } = await waitInFlight(options.inFlight, waitsEnd, clock, signal);
    if (error) errors.push(error);
    report('inFlight', t, outcome, detail);
  }

  // 5. release (bounded by the deadline; an unfinished release leaves the lease to expire, draining).
  t = clock();
  const raced = await within(Promise.allSettled(leases.map((l) => l.release())), finalEnd - t);
  let released = false;
  if (typeof raced !== 'object' || !('value' in raced)) report('release', t, 'deadline', 'not done by the deadline; the lease expires within its ttl');
  else {
    const ended = raced.value;
    const failed = ended.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => asError(r.reason));
    errors.push(...failed);
    const deleted = leases.filter((_lease, i) => ended[i].status === 'fulfilled' && (ended[i] as PromiseFulfilledResult<boolean>).value);
    const notOurs = wasHeld.filter((l) => !deleted.includes(l) && ended[leases.indexOf(l)].status === 'fulfilled');
    released = wasHeld.every((l) => deleted.includes(l));
    const outcome = failed.length > 0 ? 'failed' : notOurs.length > 0 ? 'lost' : wasHeld.length === 0 ? 'skipped' : 'done';
    const parts = [`${deleted.length} deleted`, ...notOurs.map((l) => `${l.target} was no longer ours`), ...failed.map((e) => e.message)];
    report('release', t, outcome, parts.join('; '));
  }
  return { targets, steps, durationMs: clock() - started, released, errors };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Drains, retrying transient failures until `until`. Resolves to undefined, or the last error. */
async function drainUntil(lease: LeaseView, until: number, clock: () => number, signal?: AbortSignal): Promise<Error | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      await lease.drain();
      // drain() of a lease not held (lost while the drain was retried, or re-acquiring) records
      // the wish and returns: nothing was written, and the leave must not say it drained.
      if (!lease.held) return new LeaseLostError(lease.target, 'not held when its drain was to be written');
      return undefined;
    } catch (error) {
      if (error instanceof LeaseLostError) return error;
      const retryMs = Math.min(DRAIN_RETRY_MS * 2 ** attempt, 2_000);
      if (clock() + retryMs >= until || (await sleep(retryMs, signal)) === 'aborted') return asError(error);
    }
  }
}

async function waitOutOfRotation(
  leases: readonly LeaseView[],
  o: ResolvedLeaveOptions,
  until: number,
  clock: () => number,
  signal?: AbortSignal,
): Promise<{ outcome: LeaveStepOutcome; detail: string }> {
  const start = clock();
  const lost = new Set<LeaseView>();
  const lastGroups = new Map<LeaseView, readonly GroupRotation[]>();
  const evaluate = () => {
    const inRotation: GroupRotation[] = [];
    const unconfirmed: GroupRotation[] = [];
    for (const lease of leases) {
      if (lost.has(lease)) continue;
      const progress = outOfRotationProgress(lease.rotation, lease.capabilities, (lease.drainedAt ?? start) - o.skewMs, lease.rejection);
      lastGroups.set(lease, progress.groups);
      for (const g of progress.pending) (g.state === 'unreported' || OUT_OF_ROTATION_STATES.includes(g.state as RotationState) ? unconfirmed : inRotation).push(g);
    }
    const unconfirmedDue = clock() - start >= o.unconfirmedMs;
    return { inRotation, unconfirmed, done: inRotation.length === 0 && (unconfirmed.length === 0 || unconfirmedDue) };
  };
  const describe = () =>
    leases
      .map((l) => (lost.has(l) ? `${l.target} lost` : `${leases.length > 1 ? `${l.target}: ` : ''}${describeGroups(lastGroups.get(l) ?? [], clock())}`))
      .join('; ');

  let state = evaluate();
  let ended: 'done' | 'deadline' | 'aborted' = 'done';
  if (!state.done) {
    const stops = leases.map((l) => l.watchRotation());
    ended = await new Promise<'done' | 'deadline' | 'aborted'>((resolve) => {
      const check = () => {
        state = evaluate();
        if (state.done) finish('done');
      };
      const onLost = new Map(leases.map((l) => [l, () => (lost.add(l), check())]));
      const timers = [setTimeout(check, Math.max(0, start + o.unconfirmedMs - clock())), setTimeout(() => finish('deadline'), Math.max(0, until - clock()))];
      const onAbort = () => finish('aborted');
      const finish = (how: 'done' | 'deadline' | 'aborted') => {
        timers.forEach(clearTimeout);
        for (const l of leases) l.off('rotation', check).off('rejected', check).off('lost', onLost.get(l)!);
        signal?.removeEventListener('abort', onAbort);
        resolve(how);
      };
      for (const l of leases) l.on('rotation', check).on('rejected', check).on('lost', onLost.get(l)!);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
    stops.forEach((stop) => stop());
    state = evaluate();
  }
  const detail = describe();
  if (ended === 'aborted') return { outcome: 'hurried', detail };
  if (ended === 'deadline' || state.inRotation.length > 0) return { outcome: 'deadline', detail: `still in rotation at the deadline: ${detail}` };
  if (lost.size === leases.length) return { outcome: 'lost', detail };
  if (state.unconfirmed.length > 0) {
    const names = state.unconfirmed.map((g) => g.capability).join(', ');
    return {
      outcome: 'fallback',
      detail: `no fresh rotation from the registry for ${names} after ${seconds(clock() - start)} (an older registry, or a capability this deployment does not route): waited the conservative ${seconds(o.unconfirmedMs)} instead; ${detail}`,
    };
  }
  return { outcome: 'confirmed', detail };
}

async function waitInFlight(
  source: InFlightSource | InFlightHook,
  until: number,
  clock: () => number,
  signal?: AbortSignal,
): Promise<{ outcome: LeaveStepOutcome; detail: string; error?: Error }> {
  const budget = () => until - clock();
  try {
    if (typeof source === 'function') {
      for (;;) {
        const result = source();
        if (typeof result !== 'number') {
          if (budget() <= 0) return { outcome: signal?.aborted ? 'hurried' : 'deadline', detail: 'the in-flight hook had not resolved' };
          const ended = await within(Promise.resolve(result), budget(), signal);
          if (typeof ended === 'object' && 'error' in ended) throw ended.error;
          return typeof ended === 'object' ? { outcome: 'done', detail: 'the in-flight hook resolved' } : { outcome: ended === 'aborted' ? 'hurried' : 'deadline', detail: 'the in-flight hook had not resolved' };
        }
        if (result <= 0) return { outcome: 'done', detail: 'nothing in flight' };
        if (budget() <= 0) return { outcome: 'deadline', detail: `${result} still in flight` };
        if ((await sleep(Math.min(IN_FLIGHT_POLL_MS, budget()), signal)) === 'aborted') return { outcome: 'hurried', detail: `${result} still in flight` };
      }
    }
    const before = source.inFlight;
    source.stopAccepting?.();
    if (source.inFlight === 0) return { outcome: 'done', detail: before === 0 ? 'nothing in flight' : `${before} in flight at the start, none now` };
    const ended = budget() <= 0 ? (signal?.aborted ? 'aborted' : 'elapsed') : await within(source.whenIdle(), budget(), signal);
    if (typeof ended === 'object' && 'error' in ended) throw ended.error;
    if (typeof ended === 'object') return { outcome: 'done', detail: `${before} in flight at the start, none now` };
    return { outcome: ended === 'aborted' ? 'hurried' : 'deadline', detail: cutDetail(source) };
  } catch (error) {
    return { outcome: 'failed', detail: `in-flight source failed: ${asError(error).message}`, error: asError(error) };
  }
}

/** What is still in flight when the wait ends, cut (`cut()`) when the source can: `1 still in flight, cut: GET /chat (in flight 312.0 s)`. */
function cutDetail(source: InFlightSource): string {
  const left = source.inFlight;
  const cut = source.cut?.() ?? [];
  if (cut.length === 0) return `${left} still in flight`;
  const shown = cut.slice(0, 5).join('; ');
  return `${left} still in flight, cut: ${shown}${cut.length > 5 ? `; and ${cut.length - 5} more` : ''}`;
}

import { ConfigError, LeaseLostError } from '../core/errors';
import { NotServingError, NotServingReason } from './errors';
import type { LeaseView } from './lease-view';
import { describeGroups, GroupRotation, servingProgress } from './rotation-progress';

/** Default wait of `serving()`: registration (about a second) plus a few health-check intervals of the stack's default 10 s. */
export const DEFAULT_SERVING_TIMEOUT_MS = 120_000;

export interface ServingOptions {
  /** Give up after this many milliseconds. @default 120000 */
  readonly timeoutMs?: number;
  /** Stops the wait; it then rejects with reason `aborted`. */
  readonly signal?: AbortSignal;
}

/**
 * Resolves once the lease is held, `active`, and its target is `healthy` in the target group of
 * every capability it lists that the registry does not refuse, as it reports in `rotation` and
 * `rejection`. Resolves to those groups.
 * @throws NotServingError (code `NOT_SERVING`) on timeout, abort, `lost` or `released`, and with
 *   reason `rejected` as soon as the registry refuses every capability (the whole lease included)
 */
export function waitUntilServing(lease: LeaseView, options: ServingOptions = {}): Promise<readonly GroupRotation[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SERVING_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    return Promise.reject(new ConfigError(`serving: timeoutMs must be a number of milliseconds ≥ 0, got ${JSON.stringify(timeoutMs)}`));
  }
  const started = lease.now();
  const progress = () => servingProgress(lease.rotation, lease.capabilities, lease.rejection);
  const failure = (reason: NotServingReason, cause?: unknown): NotServingError => {
    const { pending } = progress();
    const waited = `${((lease.now() - started) / 1000).toFixed(1)} s`;
    const groups = pending.length === 0 || reason === 'rejected' ? '' : `; not healthy: ${describeGroups(pending, lease.now())}`;
    const why: Record<NotServingReason, string> = {
      timeout: `not healthy in every group after ${waited}${lease.status === 'draining' ? ' (the lease is draining)' : ''}`,
      aborted: `the wait was aborted after ${waited}`,
      lost: `the lease was lost after ${waited}`,
      released: 'the lease was released',
      rejected: `the registry refuses ${lease.rejection?.capabilities === undefined ? 'the lease' : 'every capability of the lease'} (${lease.rejection?.reason}: ${lease.rejection?.message})`,
    };
    return new NotServingError(lease.target, reason, why[reason] + groups, pending, cause === undefined ? {} : { cause });
  };

  if (lease.phase === 'released') return Promise.reject(failure('released'));
  if (lease.phase === 'lost') return Promise.reject(failure('lost'));
  const isServing = () => lease.held && lease.status === 'active' && progress().done;
  if (isServing()) return Promise.resolve(progress().groups);
  if (progress().allRejected) return Promise.reject(failure('rejected'));

  return new Promise((resolve, reject) => {
    const stopWatching = lease.watchRotation();
    const check = () => {
      if (progress().allRejected) {
        finish();
        reject(failure('rejected'));
        return;
      }
      if (!isServing()) return;
      finish();
      resolve(progress().groups);
    };
    const onLost = (error: LeaseLostError) => {
      finish();
      reject(failure('lost', error));
    };
    const onReleased = () => {
      finish();
      reject(failure('released'));
    };
    const onAbort = () => {
      finish();
      reject(failure('aborted', options.signal?.reason));
    };
    // Not unref()'d: the caller awaits this, and it ends by itself.
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => {
          finish();
          reject(failure('timeout'));
        }, timeoutMs)
      : undefined;
    const finish = () => {
      stopWatching();
      if (timer !== undefined) clearTimeout(timer);
      lease.off('rotation', check).off('rejected', check).off('statusChanged', check).off('acquired', check).off('reacquired', check);
      lease.off('lost', onLost).off('released', onReleased);
      options.signal?.removeEventListener('abort', onAbort);
    };
    lease.on('rotation', check).on('rejected', check).on('statusChanged', check).on('acquired', check).on('reacquired', check);
    lease.on('lost', onLost).on('released', onReleased);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

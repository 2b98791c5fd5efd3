/**
 * How one batch of a shard is delivered to the handler, as Lambda's DynamoDB event source
 * mapping does it (ReportBatchItemFailures on), as a pure state machine: the poller invokes the
 * handler with the first pending part, tells {@link afterInvocation} how it went, and does what
 * the step says (advance the checkpoint over what was acknowledged, report what was discarded,
 * wait before the retry). No I/O and no clock: the rules are tested table by table.
 *
 * - success: the part is done; the next part (if bisected) is invoked at once;
 * - `batchItemFailures`: records before the earliest reported one are acknowledged, the rest
 *   are retried, in order, from that record;
 * - an error (thrown, rejected): with `bisectOnError` a part of two or more records is split in
 *   two halves, retried in order; otherwise the same part is retried;
 * - retries wait `retryBaseDelayMs` doubled per consecutive failure, up to `retryMaxDelayMs`;
 *   a failure that acknowledged records starts the count again;
 * - after more than `maxRetries` consecutive failures the failing part is discarded (reported
 *   first) and delivery goes on with the next part. With `maxRetries` Infinity (the default of
 *   the poller) no record is ever skipped.
 */

export interface DeliveryPolicy {
  readonly bisectOnError: boolean;
  /** Failed retries of one part before it is discarded; Infinity never discards. */
  readonly maxRetries: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
}

/** What one invocation of the handler did with the part it was given. */
export type InvocationOutcome =
  | { readonly kind: 'success' }
  /** The handler reported `batchItemFailures`; `failedAt` is the index of the earliest reported record in the part. */
  | { readonly kind: 'partial-failure'; readonly failedAt: number }
  /** The handler threw (or its promise rejected). */
  | { readonly kind: 'error' };

export interface DeliveryState<T> {
  /** Parts still to deliver, in order; the first is invoked next. Empty when the batch is delivered. */
  readonly queue: readonly (readonly T[])[];
  /** Consecutive failed invocations of the first part. */
  readonly failures: number;
  /** 1 for the first invocation of the first pending record, 2+ for retries. */
  readonly attempt: number;
}

export interface DeliveryStep<T> {
  readonly state: DeliveryState<T>;
  /** Records the invocation acknowledged (the checkpoint moves past the last of them). */
  readonly acknowledged: readonly T[];
  /** Records given up on after `maxRetries` (the checkpoint moves past them too). */
  readonly discarded?: readonly T[];
  /** Wait this long before invoking the first part again. */
  readonly retryAfterMs?: number;
}

export function startDelivery<T>(batch: readonly T[]): DeliveryState<T> {
  return { queue: batch.length > 0 ? [[...batch]] : [], failures: 0, attempt: 1 };
}

/** Retry delay after `failures` consecutive failures: the base delay doubled per failure, capped. */
export function retryDelayMs(failures: number, policy: Pick<DeliveryPolicy, 'retryBaseDelayMs' | 'retryMaxDelayMs'>): number {
  return Math.min(policy.retryMaxDelayMs, policy.retryBaseDelayMs * 2 ** Math.max(0, failures - 1));
}

/** The next state once the first part of `state.queue` was invoked with `outcome`. */
export function afterInvocation<T>(state: DeliveryState<T>, outcome: InvocationOutcome, policy: DeliveryPolicy): DeliveryStep<T> {
  const [current, ...rest] = state.queue;
  if (current === undefined) throw new RangeError('afterInvocation: nothing is being delivered');
  if (outcome.kind === 'success') return { state: { queue: rest, failures: 0, attempt: 1 }, acknowledged: current };

  const processed = outcome.kind === 'partial-failure' ? Math.max(0, Math.min(outcome.failedAt, current.length)) : 0;
  const acknowledged = current.slice(0, processed);
  const failures = processed > 0 ? 1 : state.failures + 1;
  let queue: (readonly T[])[];
  if (processed > 0) queue = [current.slice(processed), ...rest];
  else if (outcome.kind === 'error' && policy.bisectOnError && current.length > 1) {
    const half = Math.ceil(current.length / 2);
    queue = [current.slice(0, half), current.slice(half), ...rest];
  } else queue = [current, ...rest];

  if (failures > policy.maxRetries) {
    const [dropped, ...after] = queue;
    return { state: { queue: after, failures: 0, attempt: 1 }, acknowledged, discarded: dropped };
  }
  return { state: { queue, failures, attempt: state.attempt + 1 }, acknowledged, retryAfterMs: retryDelayMs(failures, policy) };
}

/**
 * The outcome a handler's response means for `part`, as Lambda reads it: no `batchItemFailures`
 * (or an empty list) is success; otherwise the earliest listed record fails, and an identifier
 * that is missing or not in the part fails the whole part.
 */
export function outcomeOfResponse<T>(
  response: { readonly batchItemFailures?: readonly { readonly itemIdentifier?: string }[] | null } | void | undefined,
  part: readonly T[],
  idOf: (record: T) => string | undefined,
): InvocationOutcome {
  const failures = response?.batchItemFailures;
  if (failures === undefined || failures === null || failures.length === 0) return { kind: 'success' };
  let first = Infinity;
  for (const failure of failures) {
    const id = failure?.itemIdentifier;
    const index = typeof id === 'string' && id !== '' ? part.findIndex((r) => idOf(r) === id) : -1;
    if (index < 0) return { kind: 'partial-failure', failedAt: 0 };
    first = Math.min(first, index);
  }
  return { kind: 'partial-failure', failedAt: first };
}

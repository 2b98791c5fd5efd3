import { describe, expect, it } from 'vitest';
import {
  afterInvocation,
  DeliveryPolicy,
  DeliveryState,
  InvocationOutcome,
  outcomeOfResponse,
  retryDelayMs,
  startDelivery,
} from '../../lib/local/stream/batch-delivery';

const policy: DeliveryPolicy = { bisectOnError: true, maxRetries: Infinity, retryBaseDelayMs: 100, retryMaxDelayMs: 5000 };
const ok: InvocationOutcome = { kind: 'success' };
const error: InvocationOutcome = { kind: 'error' };
const partial = (failedAt: number): InvocationOutcome => ({ kind: 'partial-failure', failedAt });

interface Invocation {
  readonly part: string;
  readonly attempt: number;
  readonly acknowledged: string;
  readonly discarded?: string;
  readonly retryAfterMs?: number;
}

/**
 * Delivers `batch` (one letter per record) answering each invocation with the next outcome
 * (the last one repeats), and records what each invocation was given and what followed.
 */
function deliver(batch: string, outcomes: readonly InvocationOutcome[], p: DeliveryPolicy = policy, limit = 50): Invocation[] {
  let state: DeliveryState<string> = startDelivery([...batch]);
  const log: Invocation[] = [];
  for (let i = 0; state.queue.length > 0 && i < limit; i++) {
    const step = afterInvocation(state, outcomes[Math.min(i, outcomes.length - 1)], p);
    log.push({
      part: state.queue[0].join(''),
      attempt: state.attempt,
      acknowledged: step.acknowledged.join(''),
      ...(step.discarded ? { discarded: step.discarded.join('') } : {}),
      ...(step.retryAfterMs !== undefined ? { retryAfterMs: step.retryAfterMs } : {}),
    });
    state = step.state;
  }
  return log;
}

describe('batch delivery (Lambda event source mapping rules)', () => {
  it.each<[string, string, InvocationOutcome[], DeliveryPolicy, Invocation[]]>([
    ['success acknowledges the whole batch', 'abcd', [ok], policy, [{ part: 'abcd', attempt: 1, acknowledged: 'abcd' }]],
    [
      'batchItemFailures: records before the earliest failure are done, the rest retried from it',
      'abcd',
      [partial(2), ok],
      policy,
      [
        { part: 'abcd', attempt: 1, acknowledged: 'ab', retryAfterMs: 100 },
        { part: 'cd', attempt: 2, acknowledged: 'cd' },
      ],
    ],
    [
      'a failure at the first record acknowledges nothing and retries the same part, backing off',
      'abc',
      [partial(0), partial(0), partial(0), ok],
      policy,
      [
        { part: 'abc', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'abc', attempt: 2, acknowledged: '', retryAfterMs: 200 },
        { part: 'abc', attempt: 3, acknowledged: '', retryAfterMs: 400 },
        { part: 'abc', attempt: 4, acknowledged: 'abc' },
      ],
    ],
    [
      'an error bisects, and the halves are delivered in order',
      'abcde',
      [error, ok, error, ok, ok],
      policy,
      [
        { part: 'abcde', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'abc', attempt: 2, acknowledged: 'abc' },
        { part: 'de', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'd', attempt: 2, acknowledged: 'd' },
        { part: 'e', attempt: 1, acknowledged: 'e' },
      ],
    ],
    [
      'without bisectOnError an error retries the whole part',
      'ab',
      [error, ok],
      { ...policy, bisectOnError: false },
      [
        { part: 'ab', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'ab', attempt: 2, acknowledged: 'ab' },
      ],
    ],
    [
      'a partial failure does not bisect',
      'abcd',
      [partial(0), ok],
      policy,
      [
        { part: 'abcd', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'abcd', attempt: 2, acknowledged: 'abcd' },
      ],
    ],
    [
      'a failure that acknowledged records starts the backoff again',
      'abcd',
      [partial(0), partial(0), partial(1), ok],
      policy,
      [
        { part: 'abcd', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'abcd', attempt: 2, acknowledged: '', retryAfterMs: 200 },
        { part: 'abcd', attempt: 3, acknowledged: 'a', retryAfterMs: 100 },
        { part: 'bcd', attempt: 4, acknowledged: 'bcd' },
      ],
    ],
    [
      'after maxRetries failed retries the part is discarded and delivery goes on',
      'ab',
      [partial(0), partial(0), partial(0), ok],
      { ...policy, bisectOnError: false, maxRetries: 2 },
      [
        { part: 'ab', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'ab', attempt: 2, acknowledged: '', retryAfterMs: 200 },
        { part: 'ab', attempt: 3, acknowledged: '', discarded: 'ab' },
      ],
    ],
    [
      'with bisection, the failing half alone is discarded once it runs out of retries',
      'abcd',
      [error, ok, error, error],
      { ...policy, maxRetries: 2 },
      [
        { part: 'abcd', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'ab', attempt: 2, acknowledged: 'ab' },
        { part: 'cd', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'c', attempt: 2, acknowledged: '', retryAfterMs: 200 },
        { part: 'c', attempt: 3, acknowledged: '', discarded: 'c' },
        { part: 'd', attempt: 1, acknowledged: '', retryAfterMs: 100 },
        { part: 'd', attempt: 2, acknowledged: '', retryAfterMs: 200 },
        { part: 'd', attempt: 3, acknowledged: '', discarded: 'd' },
      ],
    ],
    [
      'maxRetries 0 discards at the first failure',
      'a',
      [error],
      { ...policy, maxRetries: 0 },
      [{ part: 'a', attempt: 1, acknowledged: '', discarded: 'a' }],
    ],
  ])('%s', (_, batch, outcomes, p, expected) => {
    expect(deliver(batch, outcomes, p)).toEqual(expected);
  });

  it('never skips a record by default: a record that keeps failing is retried for as long as it fails', () => {
    const log = deliver('ab', [error], policy, 40);
    expect(log).toHaveLength(40);
    expect(log.every((i) => i.discarded === undefined)).toBe(true);
    expect(log.at(-1)).toMatchObject({ part: 'a', retryAfterMs: 5000 });
  });

  it.each([
    [1, 100],
    [2, 200],
    [6, 3200],
    [7, 5000],
    [50, 5000],
  ])('the retry after %i consecutive failures waits %i ms', (failures, ms) => {
    expect(retryDelayMs(failures, policy)).toBe(ms);
  });

  it('an empty batch has nothing to deliver', () => {
    expect(startDelivery([]).queue).toEqual([]);
    expect(() => afterInvocation(startDelivery<string>([]), ok, policy)).toThrow(RangeError);
  });
});

describe('outcomeOfResponse (what a handler response means)', () => {
  const part = ['s1', 's2', 's3'];
  const id = (r: string) => r;
  it.each<[string, Parameters<typeof outcomeOfResponse>[0], InvocationOutcome]>([
    ['no response', undefined, ok],
    ['no batchItemFailures', {}, ok],
    ['an empty list', { batchItemFailures: [] }, ok],
    ['null', { batchItemFailures: null }, ok],
    ['one failure', { batchItemFailures: [{ itemIdentifier: 's2' }] }, partial(1)],
    ['the earliest of several, in any order', { batchItemFailures: [{ itemIdentifier: 's3' }, { itemIdentifier: 's2' }] }, partial(1)],
    ['an identifier not in the batch fails it all', { batchItemFailures: [{ itemIdentifier: 's3' }, { itemIdentifier: 'other' }] }, partial(0)],
    ['a missing identifier fails it all', { batchItemFailures: [{}] }, partial(0)],
    ['an empty identifier fails it all', { batchItemFailures: [{ itemIdentifier: '' }] }, partial(0)],
  ])('%s', (_, response, expected) => {
    expect(outcomeOfResponse(response, part, id)).toEqual(expected);
  });
});

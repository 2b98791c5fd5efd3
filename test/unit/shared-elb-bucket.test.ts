/**
 * The shared ELB call budget as a pure rule (lib/core/shared-elb-bucket.ts): refill, holds that
 * lapse, spends and releases, how many takes one write grants and how long the rest wait.
 */
import { describe, expect, test } from 'vitest';
import { callsOverBudget, ElbCallBudget } from '../../lib/core/elb-call-budget';
import {
  emptySharedBucket,
  fallbackBudget,
  fallbackDivisorProblem,
  msUntilSharedHold,
  SHARED_HOLD_MS,
  SharedBucket,
  sharedBucketAt,
  SharedTakeRequest,
  takeShared,
} from '../../lib/core/shared-elb-bucket';

const B: ElbCallBudget = { callsPerSecond: 2, burst: 10 };
const bucket = (tokens: number, holds: Record<string, number> = {}, atMs = 0, version = 7): SharedBucket => ({ tokens, atMs, version, holds });

describe('the bucket at a time: refilled, lapsed holds dropped', () => {
  test.each<[string, SharedBucket | undefined, number, SharedBucket]>([
    ['no item: a full bucket, version 0', undefined, 5_000, { tokens: 10, atMs: 5_000, version: 0, holds: {} }],
    ['refills at the rate', bucket(1), 1_500, bucket(4, {}, 1_500)],
    ['up to the burst', bucket(9), 60_000, bucket(10, {}, 60_000)],
    ['a debt refills too', bucket(-2), 1_000, bucket(0, {}, 1_000)],
    ['a clock behind the item refills nothing and never moves it back', bucket(3, {}, 2_000), 1_000, bucket(3, {}, 2_000)],
    ['a stored bucket above a lowered burst is cut to it', bucket(25), 0, bucket(10)],
    ['a hold lapses at its time, not before', bucket(5, { a: 1_000, b: 1_001 }), 1_000, bucket(7, { b: 1_001 }, 1_000)],
  ])('%s', (_, stored, now, expected) => {
    expect(sharedBucketAt(stored, B, now)).toEqual(expected);
  });
});

describe('one write: spends charged, releases freed, takes granted first come first served', () => {
  const H = SHARED_HOLD_MS;
  test.each<[string, SharedBucket | undefined, number, SharedTakeRequest, { tokens: number; holds: string[]; granted: string[]; retryInMs?: number }]>([
    ['a fresh bucket grants a burst of holds at once', undefined, 0, { wanted: ['a', 'b', 'c'] }, { tokens: 10, holds: ['a', 'b', 'c'], granted: ['a', 'b', 'c'] }],
    ['a hold needs a whole token beyond the other holds', bucket(3, { x: H, y: H }), 0, { wanted: ['a', 'b'] }, { tokens: 3, holds: ['x', 'y', 'a'], granted: ['a'], retryInMs: 500 }],
    ['a spend charges its token and ends its hold', bucket(3, { x: H }), 0, { spent: ['x'] }, { tokens: 2, holds: [], granted: [] }],
    ['a release ends its hold and charges nothing', bucket(3, { x: H }), 0, { released: ['x'], wanted: ['a', 'b', 'c', 'd'] }, { tokens: 3, holds: ['a', 'b', 'c'], granted: ['a', 'b', 'c'], retryInMs: 500 }],
    ['spending a lapsed hold still charges: the call left', bucket(1, { x: 100 }), 200, { spent: ['x'] }, { tokens: 0.4, holds: [], granted: [] }],
    ['a debt grants nothing until refilled', bucket(-1), 0, { wanted: ['a'] }, { tokens: -1, holds: [], granted: [], retryInMs: 1_000 }],
    ['an empty bucket: the next hold in one refill', bucket(0), 0, { wanted: ['a'] }, { tokens: 0, holds: [], granted: [], retryInMs: 500 }],
    ['holds fill the burst: wait for one to lapse', bucket(10, Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`h${i}`, 3_000 + i]))), 0, { wanted: ['a'] }, { tokens: 10, holds: Array.from({ length: 10 }, (_, i) => `h${i}`), granted: [], retryInMs: 3_000 }],
  ])('%s', (_, stored, now, request, expected) => {
    const take = takeShared(stored, B, now, request);
    expect(take.next.tokens).toBeCloseTo(expected.tokens, 9);
    expect(Object.keys(take.next.holds).sort()).toEqual([...expected.holds].sort());
    expect(take.granted).toEqual(expected.granted);
    expect(take.retryInMs).toBe(expected.retryInMs);
    expect(take.next.version).toBe((stored?.version ?? 0) + 1);
  });

  test('a new hold lapses holdMs after it was granted', () => {
    expect(takeShared(undefined, B, 1_000, { wanted: ['a'], holdMs: 250 }).next.holds).toEqual({ a: 1_250 });
  });
});

describe('how long until the next hold', () => {
  test.each<[string, SharedBucket, number, number]>([
    ['a token beyond the holds: at once (at least 1 ms)', bucket(2, { a: 9_000 }), 0, 1],
    ['half a token missing at 2/s', bucket(1.5, { a: 9_000 }), 0, 250],
    ['holds fill the burst: the first lapse, then the refill it still needs', bucket(8, Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`h${i}`, 2_000 + i * 1_000]))), 0, 2_000],
  ])('%s', (_, b, now, ms) => {
    expect(msUntilSharedHold(b, B, now)).toBe(ms);
  });
});

describe('the shared rule keeps two containers within one budget', () => {
  test('two containers taking in turn (spending at once) never send more than the budget allows', () => {
    let stored: SharedBucket | undefined = emptySharedBucket(B, 0);
    const sent: number[] = [];
    // Each container asks every 50 ms for 3 tokens and spends what it got at once: far more than the budget.
    for (let t = 0; t <= 10_000; t += 25) {
      const who = (t / 25) % 2 === 0 ? 'a' : 'b';
      const wanted = [1, 2, 3].map((i) => `${who}${t}.${i}`);
      const take = takeShared(stored, B, t, { wanted });
      stored = takeShared(take.next, B, t, { spent: take.granted }).next;
      sent.push(...take.granted.map(() => t));
    }
    expect(callsOverBudget(sent, B)).toBe(0);
    // And it spent the budget: the burst plus 2/s over 10 s.
    expect(sent.length).toBe(10 + 20);
  });
});

describe('the fallback share', () => {
  test.each<[ElbCallBudget, number, ElbCallBudget]>([
    [B, 4, { callsPerSecond: 0.5, burst: 2 }],
    [B, 1, B],
    [{ callsPerSecond: 2, burst: 3 }, 4, { callsPerSecond: 0.5, burst: 1 }],
  ])('%j / %d', (budget, divisor, expected) => {
    expect(fallbackBudget(budget, divisor)).toEqual(expected);
  });

  test.each<[unknown, string | undefined]>([
    [4, undefined],
    [0, 'sharedElbBudget.fallbackDivisor 0 must be a whole number in 1–100'],
    [2.5, 'sharedElbBudget.fallbackDivisor 2.5 must be a whole number in 1–100'],
    ['4', 'sharedElbBudget.fallbackDivisor "4" must be a whole number in 1–100'],
  ])('divisor %j', (divisor, problem) => {
    expect(fallbackDivisorProblem(divisor)).toBe(problem);
  });
});

import { describe, expect, test } from 'vitest';
import {
  BucketState,
  budgetOf,
  budgetProblem,
  callsOverBudget,
  ChangeQueue,
  ChangeRequest,
  DEFAULT_ELB_CALL_BUDGET,
  ElbCallBudget,
  emptyQueue,
  enqueue,
  fullBucket,
  msUntilReservable,
  msUntilTokens,
  planCalls,
  priorityOf,
  queueStats,
  refill,
  releaseReserved,
  reserveToken,
  roundBoundSeconds,
  settleCall,
  spendReserved,
  takeTokens,
} from '../../lib/core/elb-call-budget';

const ref = (n: number) => ({ key: `10.0.0.${n}:8080`, id: `10.0.0.${n}`, port: 8080 });
const reg = (group: string, n: number): ChangeRequest => ({ targetGroupArn: group, target: ref(n), action: 'register' });
const dereg = (group: string, n: number, elbState?: string): ChangeRequest => ({ targetGroupArn: group, target: ref(n), action: 'deregister', priority: priorityOf('deregister', elbState) });
const B: ElbCallBudget = { callsPerSecond: 2, burst: 10 };
const empty = (atMs = 0): BucketState => ({ tokens: 0, atMs });
/** A plan as `action group [targets]` lines, in call order. */
const calls = (plan: ReturnType<typeof planCalls>) => plan.calls.map((c) => `${c.action} ${c.targetGroupArn} [${c.changes.map((x) => x.target.id.split('.')[3]).join(',')}]`);

describe('the budget: a share of the account bucket', () => {
  test.each<[string, Parameters<typeof budgetOf>, ElbCallBudget]>([
    ['default: half of AWS default bucket', [], { callsPerSecond: 2, burst: 10 }],
    ['all of it', [{ refillPerSecond: 4, burst: 20 }, 1], { callsPerSecond: 4, burst: 20 }],
    ['a quarter of a raised bucket', [{ refillPerSecond: 20, burst: 100 }, 0.25], { callsPerSecond: 5, burst: 25 }],
    ['a tiny share still has a burst of one', [{ refillPerSecond: 4, burst: 20 }, 0.01], { callsPerSecond: 0.04, burst: 1 }],
  ])('%s', (_, args, budget) => {
    expect(budgetOf(...args)).toEqual(budget);
  });

  test('the default budget is 2 calls/s with a burst of 10', () => {
    expect(DEFAULT_ELB_CALL_BUDGET).toEqual({ callsPerSecond: 2, burst: 10 });
  });

  test.each<[ElbCallBudget, string | undefined]>([
    [{ callsPerSecond: 2, burst: 10 }, undefined],
    [{ callsPerSecond: 0, burst: 10 }, 'ELB call budget 0 calls/s must be a number in (0, 4], the account\'s refill rate'],
    [{ callsPerSecond: 5, burst: 10 }, 'ELB call budget 5 calls/s must be a number in (0, 4], the account\'s refill rate'],
    [{ callsPerSecond: 2, burst: 0 }, 'ELB call budget burst 0 must be a whole number in 1–20, the account\'s burst'],
    [{ callsPerSecond: 2, burst: 2.5 }, 'ELB call budget burst 2.5 must be a whole number in 1–20, the account\'s burst'],
  ])('budget %j: %s', (budget, problem) => {
    expect(budgetProblem(budget)).toBe(problem);
  });

  test.each<[number, ElbCallBudget, number]>([
    [10, B, 5],
    [40, B, 20],
    [100, B, 50],
    [40, { callsPerSecond: 4, burst: 20 }, 10],
    [0, B, 0],
  ])('a round of %d groups at %j takes at least %d s', (groups, budget, seconds) => {
    expect(roundBoundSeconds(groups, budget)).toBe(seconds);
  });
});

describe('the token bucket', () => {
  test.each<[string, BucketState, number, number]>([
    ['refills at the rate', empty(0), 1500, 3],
    ['never above the burst', empty(0), 60_000, 10],
    ['a clock that went back refills nothing', { tokens: 4, atMs: 5000 }, 1000, 4],
    ['a full bucket stays full', fullBucket(B, 0), 10_000, 10],
  ])('%s', (_, state, nowMs, tokens) => {
    expect(refill(state, B, nowMs).tokens).toBeCloseTo(tokens);
  });

  test.each<[string, BucketState, number, number, number]>([
    ['takes what it has, whole tokens only', { tokens: 2.7, atMs: 0 }, 0, 5, 2],
    ['takes what it wants when it has more', fullBucket(B, 0), 0, 3, 3],
    ['an empty bucket grants nothing', empty(0), 0, 1, 0],
    ['a token that accrued meanwhile is granted', empty(0), 500, 1, 1],
  ])('%s', (_, state, nowMs, wanted, granted) => {
    expect(takeTokens(state, B, nowMs, wanted).granted).toBe(granted);
  });

  test('tokens are spent: a full burst, then one every 1/rate seconds', () => {
    let state = fullBucket(B, 0);
    const granted: number[] = [];
    for (const at of [0, 0, 250, 500, 1000, 1000]) {
      const t = takeTokens(state, B, at, at === 0 ? 10 : 1);
      granted.push(t.granted);
      state = t.state;
    }
    expect(granted).toEqual([10, 0, 0, 1, 1, 0]);
  });

  test.each<[BucketState, number, number, number]>([
    [empty(0), 0, 1, 500],
    [{ tokens: 0.5, atMs: 0 }, 0, 1, 250],
    [empty(0), 0, 3, 1500],
    [empty(0), 0, 50, 5000], // never more than the burst
    [fullBucket(B, 0), 0, 1, 0],
  ])('from %j at %d, %d tokens are %d ms away', (state, nowMs, wanted, ms) => {
    expect(msUntilTokens(state, B, nowMs, wanted)).toBe(ms);
  });
});

describe('the queue: latest desired state wins, nothing is lost, order per target kept', () => {
  test.each<[string, ChangeRequest[][], string[]]>([
    ['a register then a deregister of one target: one deregister', [[reg('a', 1)], [dereg('a', 1)]], ['deregister a 1']],
    ['flapping three times: the last', [[reg('a', 1)], [dereg('a', 1)], [reg('a', 1)]], ['register a 1']],
    ['the same target in two groups: two changes', [[reg('a', 1), dereg('b', 1)]], ['register a 1', 'deregister b 1']],
    ['two targets of one group: two changes', [[reg('a', 1), reg('a', 2)]], ['register a 1', 'register a 2']],
  ])('%s', (_, batches, pending) => {
    let q = emptyQueue();
    batches.forEach((b, i) => (q = enqueue(q, b, i * 100)));
    expect([...q.pending.values()].map((c) => `${c.action} ${c.targetGroupArn} ${c.target.id.split('.')[3]}`)).toEqual(pending);
  });

  test('a replaced change keeps the wait of the first: the oldest age counts from it', () => {
    const q = enqueue(enqueue(emptyQueue(), [reg('a', 1)], 1000), [dereg('a', 1)], 4000);
    expect(queueStats(q, 5000)).toEqual({ queued: 1, oldestAgeMs: 4000 });
  });

  test('an empty queue has no age', () => {
    expect(queueStats(emptyQueue(), 5000)).toEqual({ queued: 0, oldestAgeMs: 0 });
  });
});

describe('planCalls: which calls go now, what waits', () => {
  const queued = (changes: ChangeRequest[], at = 0) => enqueue(emptyQueue(), changes, at);

  test.each<[string, ChangeQueue, BucketState, string[], number]>([
    ['one change, tokens to spare: sent at once', queued([reg('a', 1)]), fullBucket(B, 0), ['register a [1]'], 0],
    ['all changes of a (group, action) go in one call', queued([reg('a', 1), reg('a', 2), reg('a', 3)]), fullBucket(B, 0), ['register a [1,2,3]'], 0],
    ['registrations before deregistrations in one group', queued([dereg('a', 2), reg('a', 1)]), fullBucket(B, 0), ['register a [1]', 'deregister a [2]'], 0],
    ['no token: nothing goes, all wait', queued([reg('a', 1), reg('b', 2)]), empty(), [], 2],
    ['one token: the oldest group goes', enqueue(queued([reg('b', 2)], 0), [reg('a', 1)], 50), { tokens: 1, atMs: 50 }, ['register b [2]'], 1],
    [
      'new agents before removals of targets ELB reports unhealthy, even older ones',
      enqueue(queued([dereg('a', 1, 'unhealthy'), dereg('b', 2, 'draining')], 0), [reg('c', 3)], 10),
      { tokens: 1, atMs: 10 },
      ['register c [3]'],
      2,
    ],
    [
      'a removal of a serving target is urgent: by age with registrations',
      enqueue(queued([dereg('a', 1, 'healthy')], 0), [reg('c', 3)], 10),
      { tokens: 1, atMs: 10 },
      ['deregister a [1]'],
      1,
    ],
    [
      'a deferrable removal rides free in a call its group makes anyway',
      queued([dereg('a', 1, 'unhealthy'), dereg('a', 2, 'healthy')]),
      { tokens: 1, atMs: 0 },
      ['deregister a [2,1]'],
      0,
    ],
  ])('%s', (_, queue, bucket, expected, waiting) => {
    const plan = planCalls(queue, bucket, B, bucket.atMs);
    expect(calls(plan)).toEqual(expected);
    expect(plan.waiting).toBe(waiting);
  });

  test('a (group, action) over the call size is split, each part a token', () => {
    const q = queued(Array.from({ length: 5 }, (_, i) => reg('a', i + 1)));
    const plan = planCalls(q, { tokens: 2, atMs: 0 }, B, 0, 2);
    expect(calls(plan)).toEqual(['register a [1,2]', 'register a [3,4]']);
    expect(plan.waiting).toBe(1);
    expect(plan.nextCallInMs).toBe(500);
  });

  test('a change of a target whose call is out waits for it: order per target is kept', () => {
    const first = planCalls(queued([reg('a', 1)]), fullBucket(B, 0), B, 0);
    const q = enqueue(first.queue, [dereg('a', 1)], 10);
    const second = planCalls(q, first.bucket, B, 10);
    expect(calls(second)).toEqual([]);
    expect(second.waiting).toBe(1);
    const third = planCalls(settleCall(second.queue, first.calls[0]), second.bucket, B, 20);
    expect(calls(third)).toEqual(['deregister a [1]']);
  });

  test.each<[string, ChangeRequest[], string[]]>([
    ['a failed call is queued again with its first wait', [], ['register a 1 @0']],
    ['unless a newer change of the target is queued: the newer wins, the older wait stays', [dereg('a', 1)], ['deregister a 1 @0']],
  ])('%s', (_, later, pending) => {
    const plan = planCalls(queued([reg('a', 1)], 0), fullBucket(B, 0), B, 0);
    const q = settleCall(enqueue(plan.queue, later, 300), plan.calls[0], [ref(1).key]);
    expect([...q.pending.values()].map((c) => `${c.action} ${c.targetGroupArn} ${c.target.id.split('.')[3]} @${c.queuedAtMs}`)).toEqual(pending);
    expect(q.inFlight.size).toBe(0);
  });

  test('a landed call leaves nothing behind', () => {
    const plan = planCalls(queued([reg('a', 1), reg('a', 2)]), fullBucket(B, 0), B, 0);
    const q = settleCall(plan.queue, plan.calls[0]);
    expect([q.pending.size, q.inFlight.size]).toEqual([0, 0]);
  });

  test('simulated churn: never more calls than the budget allows, every change lands, latest state per target', () => {
    // 40 groups, 20 changes/s for 60 s, planned every 100 ms; every call lands after 50 ms.
    let q = emptyQueue();
    let bucket = fullBucket(B, 0);
    const sentAt: number[] = [];
    const desired = new Map<string, string>();
    const applied = new Map<string, string>();
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let out: { at: number; call: ReturnType<typeof planCalls>['calls'][number] }[] = [];
    for (let t = 0; t <= 120_000; t += 100) {
      for (const o of out.filter((o) => o.at <= t)) {
        q = settleCall(q, o.call);
        for (const c of o.call.changes) applied.set(`${c.targetGroupArn} ${c.target.key}`, c.action);
      }
      out = out.filter((o) => o.at > t);
      if (t < 60_000) {
        const changes = Array.from({ length: 2 }, () => (rand() < 0.5 ? reg : dereg)(`g${Math.floor(rand() * 40)}`, 1 + Math.floor(rand() * 50)));
        for (const c of changes) desired.set(`${c.targetGroupArn} ${c.target.key}`, c.action);
        q = enqueue(q, changes, t);
      }
      const plan = planCalls(q, bucket, B, t);
      q = plan.queue;
      bucket = plan.bucket;
      for (const call of plan.calls) {
        sentAt.push(t);
        out.push({ at: t + 50, call });
      }
    }
    // Over any window of w seconds: at most burst + rate × w calls.
    for (let i = 0; i < sentAt.length; i++) {
      for (let j = i; j < sentAt.length; j++) expect(j - i + 1).toBeLessThanOrEqual(B.burst + (B.callsPerSecond * (sentAt[j] - sentAt[i])) / 1000 + 1e-9);
    }
    expect(applied).toEqual(desired);
    expect(queueStats(q, 120_000).queued).toBe(0);
  });
});

describe('permits: a grant reserves a token, the call is charged when it leaves (as ELB counts arrivals)', () => {
  test.each<[string, number[], number]>([
    ['none', [], 0],
    ['a burst at once', Array(10).fill(0), 0],
    ['one past the burst at once', Array(11).fill(0), 1],
    ['the burst, then one per refill', [...Array(10).fill(0), 500, 1000, 1500], 0],
    ['the burst, then one a refill too early', [...Array(10).fill(0), 500, 990], 1],
    // How B7 saw one call over: a call granted on a full bucket left 300 ms later. Charged at its
    // grant, the gate refilled 0.6 of a token meanwhile that ELB's bucket, still full, could not
    // hold; so the gate let the burst and one more call go 200 ms after it.
    ['granted on a full bucket at 1000, left at 1300; nine more at once, one 200 ms later', [1300, ...Array(9).fill(1300), 1500], 1],
  ])('callsOverBudget replays arrivals (%s)', (_, sentAt, over) => {
    expect(callsOverBudget(sentAt, B)).toBe(over);
  });

  type Op = ['reserve' | 'spend' | 'release', number];
  test.each<[string, Op[], boolean[], number]>([
    ['a full bucket grants the burst, no more', [...Array<Op>(11).fill(['reserve', 0])], [...Array(10).fill(true), false], 10],
    ['a reserved token is not granted twice', [['reserve', 0], ...Array<Op>(10).fill(['reserve', 0])], [...Array(10).fill(true), false], 10],
    ['a release frees it, charging nothing', [...Array<Op>(10).fill(['reserve', 0]), ['release', 0], ['reserve', 0]], [...Array(10).fill(true), true], 10],
    ['spending charges it: no new grant until a refill', [...Array<Op>(10).fill(['reserve', 0]), ['spend', 0], ['reserve', 100], ['reserve', 500]], [...Array(10).fill(true), false, true], 10],
    // The bucket is charged at the spend: a call left late does not eat its successor's refill.
    ['late departure is charged late', [['reserve', 0], ['spend', 400], ['reserve', 400]], [true, true], 10],
    // The same call reserved: charged at 1300 on a full bucket, so the gate holds exactly ELB's nine.
    ['reserved on a full bucket, spent later: only nine more', [['reserve', 1000], ['spend', 1300], ...Array<Op>(10).fill(['reserve', 1300])], [true, ...Array(9).fill(true), false], 10],
  ])('%s', (_, ops, grants, burstAfterRefill) => {
    let state = fullBucket(B, 0);
    const granted: boolean[] = [];
    for (const [op, at] of ops) {
      if (op === 'reserve') {
        const r = reserveToken(state, B, at);
        granted.push(r.granted);
        state = r.state;
      } else state = op === 'spend' ? spendReserved(state, B, at) : releaseReserved(state);
    }
    expect(granted).toEqual(grants);
    expect(refill(state, B, 1e9).tokens).toBe(burstAfterRefill);
  });

  test.each<[string, BucketState, number | undefined]>([
    ['tokens there', fullBucket(B, 0), 0],
    ['empty: one refill away', { tokens: 0, atMs: 0 }, 500],
    ['half a token free beyond the reserved', { tokens: 3.5, atMs: 0, reserved: 3 }, 250],
    ['the whole burst reserved: only a spend or release helps', { tokens: 10, atMs: 0, reserved: 10 }, undefined],
  ])('msUntilReservable: %s', (_, state, ms) => {
    expect(msUntilReservable(state, B, 0)).toBe(ms);
  });

  /**
   * A gate granting whenever it can, each call leaving 0–300 ms after its grant (a confirming
   * read, an SDK retry's backoff). Charged at departure, the arrivals never exceed the budget;
   * charged at grant (what the gate did when B7 saw a call over), they do.
   */
  function saturated(chargeAtGrant: boolean, seed: number): number[] {
    let s = seed;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let state = fullBucket(B, 0);
    let out: number[] = [];
    const sent: number[] = [];
    for (let t = 0; t <= 30_000; t++) {
      const leaving = out.filter((at) => at <= t).length;
      for (let k = 0; k < leaving; k++) {
        if (!chargeAtGrant) state = spendReserved(state, B, t);
        sent.push(t);
      }
      out = out.filter((at) => at > t);
      if (chargeAtGrant) {
        const taken = takeTokens(state, B, t, 1);
        state = taken.state;
        if (taken.granted === 1) out.push(t + Math.floor(rand() * 300));
      } else {
        const r = reserveToken(state, B, t);
        state = r.state;
        if (r.granted) out.push(t + Math.floor(rand() * 300));
      }
    }
    return sent;
  }

  test.each([1, 2, 3, 4, 5])('seed %d: calls leaving up to 300 ms after their grant never go over the budget', (seed) => {
    const sent = saturated(false, seed);
    expect(sent.length).toBeGreaterThan(55); // the budget is used: burst + 30 s × 2/s ≈ 70
    expect(callsOverBudget(sent, B)).toBe(0);
  });

  test('charged at grant instead, the same departures go over the budget', () => {
    expect([1, 2, 3, 4, 5].map((seed) => callsOverBudget(saturated(true, seed), B)).some((over) => over > 0)).toBe(true);
  });
});

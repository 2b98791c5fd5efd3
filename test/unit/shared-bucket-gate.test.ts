/**
 * The gate every container's Register/DeregisterTargets calls pass when the budget is shared
 * (lib/registry/shared-bucket-gate.ts), on a fake clock and an in-memory item written on
 * DynamoDB's condition: a burst split between two containers, one write for many takes, spends
 * charged with the next write, aborts that take nothing, and the fallback when the item is out
 * of reach. Nothing waits on wall time.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { callsOverBudget, ElbCallBudget, ElbCallPermit } from '../../lib/core/elb-call-budget';
import { ElbBudgetStateError } from '../../lib/core/errors';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { parseRuntimeConfig } from '../../lib/core/runtime-config';
import { elbGateOf, settleElbGate } from '../../lib/handlers/elb-gate';
import { BucketGate } from '../../lib/registry/elb-call-gate';
import { SHARED_SETTLE_MS, SharedBucketGate } from '../../lib/registry/shared-bucket-gate';
import { InMemorySharedBucket } from '../support/in-memory-shared-bucket';
import { captureMetrics, silentLogger } from '../support/lease-fixtures';

const B: ElbCallBudget = { callsPerSecond: 2, burst: 10 };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Settles what is ready now: microtasks and timers due at this instant. */
const settle = () => vi.advanceTimersByTimeAsync(0);

/** Whether a promise has settled (after `settle`). */
function tracked<T>(p: Promise<T>): { readonly done: () => boolean; readonly value: Promise<T> } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { done: () => done, value: p };
}

describe('SharedBucketGate', () => {
  it('grants what one write allows to every waiter of the tick: one read, one write', async () => {
    const store = new InMemorySharedBucket();
    const gate = new SharedBucketGate(B, store, { id: 'a' });
    const permits = Array.from({ length: 5 }, () => tracked(gate.acquire()));
    // Asked and not yet written: a round trip to DynamoDB is no wait for the budget.
    expect(gate.waiting(Date.now()).queued).toBe(0);
    await settle();
    expect(permits.every((p) => p.done())).toBe(true);
    expect({ reads: store.reads, writes: store.writes }).toEqual({ reads: 1, writes: 1 });
    expect(Object.keys(store.item!.holds)).toHaveLength(5);
  });

  it('two containers share one burst: the eleventh token waits for a refill, whoever asks', async () => {
    const store = new InMemorySharedBucket(3);
    const a = new SharedBucketGate(B, store, { id: 'a' });
    const b = new SharedBucketGate(B, store, { id: 'b' });
    const fromA = Array.from({ length: 6 }, () => tracked(a.acquire()));
    const fromB = Array.from({ length: 6 }, () => tracked(b.acquire()));
    await vi.advanceTimersByTimeAsync(20);
    const granted = [...fromA, ...fromB].filter((p) => p.done()).length;
    expect(granted).toBe(10);
    expect(a.waiting(Date.now()).queued + b.waiting(Date.now()).queued).toBe(2);
    expect(store.conflicts).toBeGreaterThan(0); // they raced for the item, and the loser read the winner's
    // The calls leave: their tokens are charged, and a refill (500 ms at 2/s) lets one more go, then another.
    for (const p of [...fromA, ...fromB].filter((x) => x.done())) (await p.value).spend();
    // (a's spends reach the item with its settle write, SHARED_SETTLE_MS after they left.)
    await vi.advanceTimersByTimeAsync(SHARED_SETTLE_MS + 600);
    expect([...fromA, ...fromB].filter((p) => p.done()).length).toBe(11);
    await vi.advanceTimersByTimeAsync(500);
    expect([...fromA, ...fromB].filter((p) => p.done()).length).toBe(12);
  });

  it('charges a spend with the next write, or on flush, and a hold given back frees its token for the other container', async () => {
    const store = new InMemorySharedBucket();
    const a = new SharedBucketGate(B, store, { id: 'a' });
    const b = new SharedBucketGate(B, store, { id: 'b' });
    const held = await Promise.all(Array.from({ length: 10 }, () => a.acquire()));
    held[0].spend();
    held[0].spend(); // twice: charged once
    held[0].giveBack(); // after a spend: a no-op
    await a.flush();
    expect(store.item?.tokens).toBe(9);
    expect(Object.keys(store.item!.holds)).toHaveLength(9);
    expect(a.sent).toBe(1);
    // Every token held or spent: b waits, until a gives one back.
    const waiting = tracked(b.acquire());
    await vi.advanceTimersByTimeAsync(100);
    expect(waiting.done()).toBe(false);
    held[1].giveBack();
    await a.flush();
    await vi.advanceTimersByTimeAsync(500);
    expect(waiting.done()).toBe(true);
    // a's eight holds and b's: a release charges nothing, the spend was charged once.
    expect(Object.keys(store.item!.holds)).toHaveLength(9);
    expect(a.sent).toBe(1);
  });

  it('a wait that aborts takes nothing, and a hold granted to it as it gave up is freed', async () => {
    const store = new InMemorySharedBucket(5);
    const gate = new SharedBucketGate({ callsPerSecond: 2, burst: 1 }, store, { id: 'a' });
    const first = tracked(gate.acquire());
    const controller = new AbortController();
    const second = gate.acquire(controller.signal);
    controller.abort();
    await expect(second).rejects.toMatchObject({ name: 'AbortError' });
    await vi.advanceTimersByTimeAsync(10);
    expect(first.done()).toBe(true);
    // Asked while the burst is held, it gives up during the write that would have granted it.
    const late = new AbortController();
    const third = gate.acquire(late.signal);
    (await first.value).giveBack();
    await vi.advanceTimersByTimeAsync(2);
    late.abort();
    await expect(third).rejects.toMatchObject({ name: 'AbortError' });
    await vi.advanceTimersByTimeAsync(1_000);
    const flushed = gate.flush();
    await vi.advanceTimersByTimeAsync(50);
    await flushed;
    expect(Object.keys(store.item!.holds)).toEqual([]);
    expect(store.item!.tokens).toBe(1); // nothing was charged
    expect(gate.waiting(Date.now()).queued).toBe(0);
  });

  it('two containers under 10 s of demand together never exceed the budget, and spend it', async () => {
    const store = new InMemorySharedBucket(4);
    const gates = [new SharedBucketGate(B, store, { id: 'a' }), new SharedBucketGate(B, store, { id: 'b' })];
    const sentAt: number[] = [];
    const end = Date.now() + 10_000;
    // Four callers per container, each sending as soon as it gets a token: far above the budget.
    const worker = async (gate: SharedBucketGate) => {
      while (Date.now() < end) {
        // AbortSignal.timeout runs on real time: a signal aborted on the fake clock instead.
        const stop = new AbortController();
        const timer = setTimeout(() => stop.abort(), Math.max(1, end - Date.now()));
        const permit: ElbCallPermit | undefined = await gate.acquire(stop.signal).catch(() => undefined);
        clearTimeout(timer);
        if (!permit) return;
        await new Promise((r) => setTimeout(r, 20)); // the confirming read between grant and call
        sentAt.push(Date.now());
        permit.spend();
      }
    };
    const done = Promise.all(gates.flatMap((g) => [1, 2, 3, 4].map(() => worker(g))));
    await vi.advanceTimersByTimeAsync(10_100);
    await done;
    const flushed = Promise.all(gates.map((g) => g.flush()));
    await vi.advanceTimersByTimeAsync(100);
    await flushed;
    sentAt.sort((x, y) => x - y);
    expect(callsOverBudget(sentAt, B)).toBe(0);
    // The burst and 2/s over 10 s, give or take the last refill: the budget is used, not wasted.
    expect(sentAt.length).toBeGreaterThanOrEqual(28);
    expect(sentAt.length).toBeLessThanOrEqual(30);
    expect(gates[0].sent + gates[1].sent).toBe(sentAt.length);
    // What it costs at saturation: writes (a hold, its spend, the odd lost race) and consistent reads per call.
    console.log(`shared budget, 2 containers × 4 callers, 10 s: ${sentAt.length} calls, ${store.writes} writes (${store.conflicts} refused), ${store.reads} reads`);
    expect(store.writes).toBeLessThanOrEqual(3 * sentAt.length);
  });

  it('falls back to its own share (1/divisor) while the item is out of reach, counts those calls, and comes back', async () => {
    const store = new InMemorySharedBucket();
    const errors: ElbBudgetStateError[] = [];
    const gate = new SharedBucketGate(B, store, { id: 'a', fallbackDivisor: 4, fallbackMs: 30_000, onFallback: (e) => errors.push(e) });
    store.down = true;
    const permits = Array.from({ length: 3 }, () => tracked(gate.acquire()));
    await settle();
    expect(errors).toHaveLength(1);
    expect(errors[0].code).toBe('ELB_BUDGET_STATE');
    // Burst 10 / 4 → 2 at once; the third after a refill at 0.5/s.
    expect(permits.filter((p) => p.done()).length).toBe(2);
    for (const p of permits.filter((x) => x.done())) (await p.value).spend();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(permits.filter((p) => p.done()).length).toBe(3);
    (await permits[2].value).spend();
    expect(gate.takeOffBudgetCalls()).toBe(3);
    expect(gate.takeOffBudgetCalls()).toBe(0);
    // Back once the fallback time is over and the item answers again.
    store.down = false;
    await vi.advanceTimersByTimeAsync(30_000);
    await gate.acquire();
    expect(store.writes).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('a spend it could not write is charged when the item is back', async () => {
    const store = new InMemorySharedBucket();
    const gate = new SharedBucketGate(B, store, { id: 'a', fallbackMs: 5_000 });
    const permit = await gate.acquire();
    store.down = true;
    permit.spend();
    await vi.advanceTimersByTimeAsync(1_000); // the settle write fails: fallback
    expect(store.item?.tokens).toBe(10);
    store.down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    await gate.flush();
    expect(store.item?.tokens).toBeLessThan(10);
    expect(Object.keys(store.item!.holds)).toEqual([]);
  });
});

describe('the handlers\' gate (lib/handlers/elb-gate.ts)', () => {
  const config = parseRuntimeConfig(JSON.stringify({ tableName: 'leases', capabilities: { vision: { targetGroupArn: 'arn:tg', targetType: 'ip' } } }));

  it('shares the bucket when the configuration names its table; one of its own without; none without a budget', () => {
    const client = {} as DynamoDBClient;
    const { metrics } = captureMetrics();
    expect(elbGateOf({ ...config, elbBudget: B, sharedElbBudget: { tableName: 'state', fallbackDivisor: 4 } }, client, silentLogger(), metrics)).toBeInstanceOf(SharedBucketGate);
    expect(elbGateOf({ ...config, elbBudget: B }, client, silentLogger(), metrics)).toBeInstanceOf(BucketGate);
    expect(elbGateOf(config, client, silentLogger(), metrics)).toBeUndefined();
  });

  it('when DynamoDB refuses, counts ElbBudgetStateErrors, calls from the fallback share, and ElbCallsOffSharedBudget when the invocation settles', async () => {
    const refused = Object.assign(new Error('User is not authorized to perform: dynamodb:GetItem'), { name: 'AccessDeniedException' });
    const client = { send: () => Promise.reject(refused) } as unknown as DynamoDBClient;
    const emf = captureMetrics();
    const gate = elbGateOf({ ...config, elbBudget: B, sharedElbBudget: { tableName: 'state', fallbackDivisor: 5 } }, client, silentLogger(), emf.metrics) as SharedBucketGate;
    const first = tracked(gate.acquire());
    const second = tracked(gate.acquire());
    const third = tracked(gate.acquire());
    await settle();
    // Burst 10 / 5: two at once, the third a refill later (2.5 s at 0.4/s), once the first two left.
    expect([first.done(), second.done(), third.done()]).toEqual([true, true, false]);
    (await first.value).spend();
    (await second.value).spend();
    await settleElbGate(gate, emf.metrics);
    emf.metrics.publishStoredMetrics();
    expect(emf.last('ElbBudgetStateErrors')).toBe(1);
    expect(emf.last('ElbCallsOffSharedBudget')).toBe(2);
    await vi.advanceTimersByTimeAsync(2_500);
    expect(third.done()).toBe(true);
  });
});

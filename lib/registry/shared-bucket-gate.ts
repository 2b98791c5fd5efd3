import { randomUUID } from 'node:crypto';
import { ElbCallBudget, ElbCallGate, ElbCallPermit } from '../core/elb-call-budget';
import { ElbBudgetStateError } from '../core/errors';
import { DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR, fallbackBudget, SHARED_HOLD_MS, SharedBucket, SharedTake, takeShared } from '../core/shared-elb-bucket';
import type { SharedBucketWrite } from '../aws/shared-budget-store';
import { abortError, BucketGate, enqueueWaiter, Waiter } from './elb-call-gate';

/** What the gate needs of the shared bucket's item (SharedBudgetStore in lib/aws; an in-memory one in tests). */
export interface SharedBucketStore {
  read(nowMs: number): Promise<SharedBucket | undefined>;
  write(next: SharedBucket, readVersion: number | undefined, nowMs: number): Promise<SharedBucketWrite>;
}

export interface SharedBucketGateOptions {
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
  /** The fallback share while the shared bucket is out of reach: 1/divisor of the budget. @default DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR */
  readonly fallbackDivisor?: number;
  /** How long the container keeps to its fallback share before it tries the shared bucket again. @default SHARED_FALLBACK_MS */
  readonly fallbackMs?: number;
  /** Told each time the shared bucket fails and the container falls back (for a metric and a log line). */
  readonly onFallback?: (error: ElbBudgetStateError) => void;
  /** @default SHARED_HOLD_MS */
  readonly holdMs?: number;
  /** Prefix of this container's hold ids. @default a random one */
  readonly id?: string;
}

/** How long a container keeps to its fallback share after the shared bucket failed. */
export const SHARED_FALLBACK_MS = 30_000;

/**
 * Longest a spent hold waits to ride along with the next write before it is written alone. Far
 * below the hold's lapse, so a spend is always charged while its hold still counts; short, since
 * until it is written the bucket, held full, cannot refill (at 2 calls/s, 0.4 of a token lost).
 */
export const SHARED_SETTLE_MS = 200;

/** A waiter that may also have seen a write go by without a token for it. */
interface SharedWaiter extends Waiter {
  /** A write went by without a token for it: it waits for the budget, not just for the write. */
  deferred?: boolean;
}

/**
 * The ELB call budget shared by every registry container (sync on each shard, reconcile), kept
 * in one item of the registry state table (the pure rule: lib/core/shared-elb-bucket.ts). Same
 * contract as {@link BucketGate}: a grant reserves a token (a hold in the item, out of every
 * container's reach), the budget is charged when the call leaves (`spend`), a permit not used is
 * freed (`giveBack`), waiters of this container are served first come first served (across
 * containers, whoever writes first), and an aborted wait takes nothing.
 *
 * Writes are batched: one conditional UpdateItem carries every waiter's hold the bucket allows
 * plus every spend and release since the last write (a spend changes nothing for the others
 * while its hold is in the item, so it waits up to {@link SHARED_SETTLE_MS} for a write to ride
 * along). Call {@link flush} before a Lambda invocation returns: a frozen container must not
 * carry unwritten spends past their holds' lapse.
 *
 * When the item cannot be read or written (DynamoDB unavailable, access denied) the container
 * falls back to a bucket of its own at 1/`fallbackDivisor` of the budget for
 * {@link SHARED_FALLBACK_MS}, tells `onFallback`, counts the calls it makes so
 * ({@link takeOffBudgetCalls}), and then tries the shared bucket again.
 */
export class SharedBucketGate implements ElbCallGate {
  /** Calls sent through the gate (permits spent), shared or fallback. */
  public sent = 0;
  private offBudget = 0;
  private known: SharedBucket | undefined;
  private loaded = false;
  private readonly queue: SharedWaiter[] = [];
  private spends: string[] = [];
  private releases: string[] = [];
  private running: Promise<void> | undefined;
  private kicked = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private seq = 0;
  private fallback: BucketGate | undefined;
  private fallbackUntil = 0;
  private readonly now: () => number;
  private readonly id: string;

  public constructor(
    public readonly budget: ElbCallBudget,
    private readonly store: SharedBucketStore,
    private readonly options: SharedBucketGateOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.id = options.id ?? randomUUID().slice(0, 8);
  }

  public acquire(signal?: AbortSignal): Promise<ElbCallPermit> {
    if (signal?.aborted) return Promise.reject(abortError());
    if (this.inFallback()) return this.fromFallback(signal);
    // Behind a waiter the bucket could not serve, a newcomer waits for the same retry.
    return enqueueWaiter(this.queue, this.now(), signal, () => {
      if (this.retryTimer === undefined) this.kick();
    });
  }

  /**
   * Waiters held back by the budget, as BucketGate counts them: every waiter of this container once
   * one of them saw a write go by without its token (first come, first served, the rest are behind
   * it). A take answered by the next write, the budget allowing, is not counted: a DynamoDB round
   * trip is not a wait for the budget.
   */
  public waiting(nowMs: number): { readonly queued: number; readonly oldestAgeMs: number } {
    const held = this.queue.some((w) => w.deferred);
    const own = { queued: held ? this.queue.length : 0, oldestAgeMs: held ? Math.max(0, nowMs - this.queue[0].since) : 0 };
    const fb = this.fallback?.waiting(nowMs);
    return fb ? { queued: own.queued + fb.queued, oldestAgeMs: Math.max(own.oldestAgeMs, fb.oldestAgeMs) } : own;
  }

  /** Calls made from the fallback share since the last look (for the `ElbCallsOffSharedBudget` metric); resets the count. */
  public takeOffBudgetCalls(): number {
    const n = this.offBudget;
    this.offBudget = 0;
    return n;
  }

  /** Writes every spend and release not written yet (before an invocation returns). Never throws: a failure falls back. */
  public async flush(): Promise<void> {
    for (;;) {
      if (this.running) await this.running;
      else if (this.spends.length + this.releases.length === 0 || this.inFallback()) return;
      else await this.run(true);
    }
  }

  private inFallback(): boolean {
    return this.fallback !== undefined && this.now() < this.fallbackUntil;
  }

  private fromFallback(signal?: AbortSignal): Promise<ElbCallPermit> {
    const gate = this.fallback as BucketGate;
    return gate.acquire(signal).then((permit) => ({
      spend: () => {
        const before = gate.sent;
        permit.spend();
        if (gate.sent > before) {
          this.sent++;
          this.offBudget++;
        }
      },
      giveBack: () => permit.giveBack(),
    }));
  }

  private permit(hold: string): ElbCallPermit {
    let settled = false;
    const settle = (into: string[]) => {
      if (settled) return;
      settled = true;
      into.push(hold);
      // Our own waiters may take a freed token now; a spend frees nothing and can ride along later.
      if (this.queue.length > 0 && into === this.releases) this.kick();
      else this.settleSoon();
    };
    return {
      spend: () => {
        if (!settled) this.sent++;
        settle(this.spends);
      },
      giveBack: () => settle(this.releases),
    };
  }

  private settleSoon(delayMs = SHARED_SETTLE_MS): void {
    if (this.settleTimer) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      if (this.spends.length + this.releases.length > 0 && !this.running) void this.run(true);
    }, delayMs);
  }

  /** Runs the write loop once this tick's acquires, spends and releases are in (one write for all of them). */
  private kick(): void {
    if (this.kicked || this.running) return;
    this.kicked = true;
    queueMicrotask(() => {
      this.kicked = false;
      if (!this.running) void this.run();
    });
  }

  /** `settle`: write the spends even when nothing else needs a write (flush, the settle timer). */
  private run(settle = false): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.running = this.loop(settle).finally(() => {
      this.running = undefined;
      // Work that came in as the loop was ending (it looked before it arrived).
      if (this.retryTimer === undefined && !this.inFallback() && this.queue.length + this.releases.length > 0) this.kick();
    });
    return this.running;
  }

  private async loop(settle: boolean): Promise<void> {
    for (;;) {
      if (this.inFallback()) return;
      const spent = this.spends;
      const released = this.releases;
      this.spends = [];
      this.releases = [];
      const asking = this.queue.slice(0, this.budget.burst);
      const wanted = asking.map(() => `${this.id}.${++this.seq}`);
      if (spent.length + released.length + wanted.length === 0) return;
      let take: SharedTake & { readonly written: boolean };
      try {
        take = await this.commit(spent, released, wanted, settle);
      } catch (error) {
        // Unwritten spends and releases stay for the shared bucket's return: a spend charged late is still charged.
        this.spends.unshift(...spent);
        this.releases.unshift(...released);
        this.enterFallback(error);
        return;
      }
      if (!take.written) {
        // Spends alone, and nothing to grant: they ride along with a later write.
        this.spends.unshift(...spent);
        this.settleSoon();
      } else if (this.settleTimer && this.spends.length + this.releases.length === 0) {
        clearTimeout(this.settleTimer);
        this.settleTimer = undefined;
      }
      take.granted.forEach((hold, i) => {
        const waiter = asking[i];
        const at = this.queue.indexOf(waiter);
        if (at < 0) {
          this.releases.push(hold); // it gave up while the write was out
          return;
        }
        this.queue.splice(at, 1);
        if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
        waiter.resolve(this.permit(hold));
      });
      for (const waiter of asking.slice(take.granted.length)) waiter.deferred = true;
      if (take.retryInMs !== undefined && this.queue.length > 0 && this.releases.length === 0) {
        // Others' spends and releases are not seen until read: look again within a refill at most.
        const wait = Math.min(take.retryInMs, Math.ceil(1000 / this.budget.callsPerSecond));
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          // Read before writing: the others most likely wrote meanwhile, and a read costs a fifth of a refused write.
          this.loaded = false;
          if (!this.running) void this.run();
        }, wait);
        return;
      }
      if (!take.written) return;
    }
  }

  /**
   * One take written: from the bucket as last known, read again when the write lost to another
   * container (the winner's item comes with the refusal) or when nothing could be granted from a
   * view that may be stale. Skips the write when it would grant and free nothing (spends then
   * wait to ride along) unless `settle`.
   */
  private async commit(spent: readonly string[], released: readonly string[], wanted: readonly string[], settle: boolean): Promise<SharedTake & { readonly written: boolean }> {
    const holdMs = this.options.holdMs ?? SHARED_HOLD_MS;
    let fresh = false;
    for (let conflicts = 0; ; ) {
      if (!this.loaded) {
        this.known = await this.store.read(this.now());
        this.loaded = true;
        fresh = true;
      }
      const nowMs = this.now();
      const take = takeShared(this.known, this.budget, nowMs, { spent, released, wanted, holdMs });
      if (take.granted.length === 0 && released.length === 0 && !(settle && spent.length > 0)) {
        if (fresh) return { ...take, written: false };
        this.loaded = false;
        continue;
      }
      const written = await this.store.write(take.next, this.known?.version, nowMs);
      if (written.outcome === 'written') {
        this.known = take.next;
        return { ...take, written: true };
      }
      if (written.current) {
        this.known = written.current;
        fresh = true;
      } else this.loaded = false;
      // Many containers at once: spread the retries so they do not collide in step.
      if (++conflicts >= 3) await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(conflicts, 10)));
    }
  }

  private enterFallback(cause: unknown): void {
    const error = cause instanceof ElbBudgetStateError ? cause : new ElbBudgetStateError(`the shared ELB call budget failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    // One fallback bucket for the container's life: coming back to it never grants a fresh burst.
    this.fallback ??= new BucketGate(fallbackBudget(this.budget, this.options.fallbackDivisor ?? DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR), this.now);
    this.fallbackUntil = this.now() + (this.options.fallbackMs ?? SHARED_FALLBACK_MS);
    this.loaded = false;
    this.options.onFallback?.(error);
    // The waiters move over in their order.
    for (const waiter of this.queue.splice(0)) {
      if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
      this.fromFallback(waiter.signal).then(waiter.resolve, waiter.reject);
    }
    // What could not be written goes once the shared bucket is tried again.
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    if (this.spends.length + this.releases.length > 0) this.settleSoon(this.fallbackUntil - this.now());
  }
}

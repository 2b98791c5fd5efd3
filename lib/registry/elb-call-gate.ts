import { BucketState, ElbCallBudget, ElbCallGate, ElbCallPermit, fullBucket, msUntilReservable, releaseReserved, reserveToken, spendReserved } from '../core/elb-call-budget';

/** A caller waiting for a token (both gates queue them alike). */
export interface Waiter {
  readonly since: number;
  readonly resolve: (permit: ElbCallPermit) => void;
  readonly reject: (error: Error) => void;
  readonly signal?: AbortSignal;
  readonly onAbort?: () => void;
}

/** What a wait given up on (its signal aborted) rejects with. */
export const abortError = () => Object.assign(new Error('gave up waiting for the ELB call budget'), { name: 'AbortError' });

/**
 * Puts a waiter for a token at the end of `queue` (both gates queue alike): an aborted signal
 * takes it out again and rejects. `wake` runs once it is queued, for the gate to serve the queue.
 */
export function enqueueWaiter<W extends Waiter>(queue: W[], since: number, signal: AbortSignal | undefined, wake: () => void): Promise<ElbCallPermit> {
  return new Promise<ElbCallPermit>((resolve, reject) => {
    const waiter = {
      since,
      resolve,
      reject,
      signal,
      onAbort: signal
        ? () => {
            const i = queue.indexOf(waiter);
            if (i >= 0) queue.splice(i, 1);
            reject(abortError());
          }
        : undefined,
    } as W;
    if (signal && waiter.onAbort) signal.addEventListener('abort', waiter.onAbort, { once: true });
    queue.push(waiter);
    wake();
  });
}

/**
 * The ELB call budget kept in this process: one token bucket (the pure rule in
 * lib/core/elb-call-budget.ts) that every Register/DeregisterTargets call of the process takes
 * from, first come first served. Local mode and the bench give sync and reconcile the same gate,
 * so together they stay within the budget. In Lambda the containers share one bucket in the
 * registry state table instead ({@link SharedBucketGate}, lib/registry/shared-bucket-gate.ts),
 * and fall back to one of these, at a fraction of the budget, while that table is out of reach.
 */
export class BucketGate implements ElbCallGate {
  private state: BucketState;
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Calls sent through the gate (permits spent). */
  public sent = 0;

  public constructor(
    public readonly budget: ElbCallBudget,
    private readonly now: () => number = Date.now,
  ) {
    this.state = fullBucket(budget, now());
  }

  public acquire(signal?: AbortSignal): Promise<ElbCallPermit> {
    if (signal?.aborted) return Promise.reject(abortError());
    if (this.queue.length === 0) {
      const permit = this.tryTake();
      if (permit) return Promise.resolve(permit);
    }
    return enqueueWaiter(this.queue, this.now(), signal, () => this.schedule());
  }

  public waiting(nowMs: number): { readonly queued: number; readonly oldestAgeMs: number } {
    return { queued: this.queue.length, oldestAgeMs: this.queue.length > 0 ? Math.max(0, nowMs - this.queue[0].since) : 0 };
  }

  /**
   * Reserves a token (the pure rule's reserveToken): the budget is charged only when the permit's
   * call leaves (`spend`), so a call sent a while after its grant (a confirming read, an SDK
   * retry's backoff) never lands closer to the previous one than the budget allows.
   */
  private tryTake(): ElbCallPermit | undefined {
    const taken = reserveToken(this.state, this.budget, this.now());
    this.state = taken.state;
    if (!taken.granted) return undefined;
    let settled = false;
    return {
      spend: () => {
        if (settled) return;
        settled = true;
        this.sent++;
        this.state = spendReserved(this.state, this.budget, this.now());
      },
      giveBack: () => {
        if (settled) return;
        settled = true;
        this.state = releaseReserved(this.state);
        this.pump();
      },
    };
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const permit = this.tryTake();
      if (!permit) break;
      const waiter = this.queue.shift() as Waiter;
      if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.resolve(permit);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    const until = msUntilReservable(this.state, this.budget, this.now());
    // Every token of the burst reserved: the next spend or release pumps (a spend frees no token, so look again a refill later).
    const wait = Math.max(1, until ?? Math.ceil(1000 / this.budget.callsPerSecond));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, wait);
  }
}

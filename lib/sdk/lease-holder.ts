import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LeaseStore } from '../aws/lease-store';
import { LeaseHeldError, LeaseLostError } from '../core/errors';
import { encodeValidLease } from '../core/lease-codec';
import { leaseInterference } from '../core/lease-interference';
import { LEASE_ATTR } from '../core/lease-schema';
import type { Lease, LeaseStatus, RawItem } from '../core/lease-schema';
import type { AgentLeaseEvents, AgentLeaseState, LeasePhase } from './agent-lease-events';
import { buildLease, resolveAgentLeaseOptions } from './agent-lease-options';
import type { AgentLeaseOptions, ResolvedAgentLeaseOptions } from './agent-lease-options';

/** ±10 % on every delay, so a fleet started together does not renew in lockstep. */
const JITTER = 0.1;
/** First retry of a failed renewal or re-acquire, before doubling. */
const BASE_RETRY_MS = 1000;

type TimerName = 'renew' | 'deadline' | 'reacquire';

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Holding one lease (the base of `AgentLease`): acquire, automatic renewal every ttl/3 with
 * jitter, `lost` detection, automatic re-acquire, drain/activate and release, following the
 * lease contract of docs/lease-contract.md. All DynamoDB writes go through `LeaseStore`, which turns
 * failed conditions into `LeaseHeldError` / `LeaseLostError`.
 *
 * Explicit operations (`acquire`, `drain`, `activate`, `release`) and re-acquire attempts run
 * one at a time in call order; heartbeats run on their own timer. Every renewal timer is
 * `unref()`'d unless `keepProcessAlive` is set; the timers of `serving()` and `leave()` are
 * not (those waits are bounded and awaited).
 *
 * Every item DynamoDB hands back (renewals and status changes return it) goes to
 * `onItemSeen`, so the subclass tracks the registry's feedback at no read cost.
 */
export class LeaseHolder extends EventEmitter<AgentLeaseEvents> {
  protected readonly options: ResolvedAgentLeaseOptions;
  private ownedClient?: DynamoDBClient;
  private leaseStore?: LeaseStore;

  private currentPhase: LeasePhase = 'idle';
  /** The lease as last written; kept after loss for the snapshot. */
  private current?: Lease;
  private token?: string;
  private desiredStatus: LeaseStatus = 'active';
  /** Bumped whenever holding starts or stops: results of older heartbeats are ignored. */
  private generation = 0;
  private renewFailures = 0;
  private closing = false;
  private releasing?: Promise<boolean>;
  private readonly timers: Partial<Record<TimerName, NodeJS.Timeout>> = {};
  private queue: Promise<unknown> = Promise.resolve();
  private drainedAtMs?: number;
  /** The status `drain()`/`activate()` is writing right now: a heartbeat that reads it back is seeing our own write. */
  private statusInFlight?: LeaseStatus;
  /** A restore of our lease is queued or running: one at a time. */
  private restoring = false;

  /**
   * @throws ConfigError for a bad option (a missing `address` included: `AgentLease.create()` finds it),
   *   InvalidLeaseError for a lease the server would refuse.
   */
  public constructor(options: AgentLeaseOptions) {
    super();
    this.options = resolveAgentLeaseOptions(options);
  }

  public get phase(): LeasePhase {
    return this.currentPhase;
  }

  public get target(): string {
    return this.options.target;
  }

  public get held(): boolean {
    return this.currentPhase === 'held';
  }

  public get leaseToken(): string | undefined {
    return this.token;
  }

  public get expiresAt(): number | undefined {
    return this.current?.expiresAt;
  }

  public get status(): LeaseStatus {
    return this.desiredStatus;
  }

  /** Lease time-to-live in seconds. */
  public get ttl(): number {
    return this.options.ttl;
  }

  /** The capabilities the lease lists (sorted, no duplicates): one target group each. */
  public get capabilities(): readonly string[] {
    return this.options.capabilities;
  }

  /** Epoch ms (our clock) at which `draining` was last written, by `drain()` or an acquire; undefined while active. */
  public get drainedAt(): number | undefined {
    return this.drainedAtMs;
  }

  /** The lease's clock, epoch milliseconds (`Date.now` unless the `clock` option replaced it). */
  public now(): number {
    return this.options.clock();
  }

  /** The lease as last written, or undefined before the first successful acquire. */
  public get lease(): Lease | undefined {
    return this.current;
  }

  public get state(): AgentLeaseState {
    return {
      phase: this.currentPhase,
      target: this.options.target,
      agentId: this.options.agentId,
      held: this.held,
      status: this.desiredStatus,
      ...(this.token === undefined ? {} : { leaseToken: this.token }),
      ...(this.current === undefined ? {} : { expiresAt: this.current.expiresAt, renewedAt: this.current.renewedAt }),
    };
  }

  /**
   * Writes the lease (conditional PutItem, or unconditional with `takeover`) after validating
   * it with the core, then renews it automatically. Resolves at once when already held.
   * Called while re-acquiring, it makes an immediate attempt (and the background attempts
   * continue if it fails).
   * @throws LeaseHeldError when another live holder owns this address:port
   * @throws InvalidLeaseError when the lease would be refused (nothing is sent)
   * @throws LeaseStoreError when DynamoDB fails otherwise (the SDK has already retried)
   */
  public acquire(): Promise<AgentLeaseState> {
    this.releasing = undefined; // a release() after this call must release what it acquires
    return this.exclusive(async () => {
      if (this.currentPhase === 'held') return this.state;
      const wasReacquiring = this.currentPhase === 'reacquiring';
      this.clearTimer('reacquire');
      // One token from the first attempt until release: an acquire whose reply was lost but
      // whose write landed is then recognised as ours (`leaseToken = :mine`) on the next try.
      this.token ??= randomUUID();
      try {
        const lease = await this.put(this.options.takeover);
        this.startHolding(lease, wasReacquiring ? 'reacquired' : 'acquired');
      } catch (error) {
        if (wasReacquiring && !this.closing) this.scheduleReacquire(1, this.backoff(1));
        throw error;
      }
      return this.state;
    });
  }

  /**
   * Takes the target out of rotation while keeping the lease (status `draining`); renewals go on.
   * When the lease is not held, the status is remembered and written at the next (re-)acquire.
   * @throws LeaseLostError when the lease turns out to be lost (then `lost` is emitted too)
   */
  public drain(): Promise<AgentLeaseState> {
    return this.changeStatus('draining');
  }

  /** Puts a drained lease back into rotation (status `active`). Same rules as `drain()`. */
  public activate(): Promise<AgentLeaseState> {
    return this.changeStatus('active');
  }

  /**
   * Stops renewing and deletes the lease if it is still ours (conditional DeleteItem).
   * Idempotent: later calls return the first call's result without another request (a call
   * after a failed release tries again). Resolves to whether our lease was deleted.
   * @throws LeaseStoreError when the delete fails for a reason other than the condition
   */
  public release(): Promise<boolean> {
    if (this.releasing) return this.releasing;
    this.closing = true;
    this.stopHolding();
    const releasing = this.exclusive(async () => {
      this.stopHolding(); // an acquire queued before this release may have started holding
      this.currentPhase = 'released';
      this.closing = false;
      const token = this.token;
      let deleted = false;
      try {
        if (token !== undefined) deleted = await this.store().release(this.options.target, token);
      } catch (error) {
        this.releasing = undefined;
        throw error;
      }
      this.token = undefined;
      this.destroyOwnedClient();
      this.emit('released', { target: this.options.target, deleted });
      return deleted;
    });
    this.releasing = releasing;
    return releasing;
  }

  /**
   * Stops renewing without releasing, as a crashed process would: the lease lapses at
   * `expiresAt` and reconcile removes its target. For demos and failure drills.
   */
  public abandon(): void {
    this.stopHolding();
    this.currentPhase = 'lost';
    this.destroyOwnedClient();
  }

  private changeStatus(status: LeaseStatus): Promise<AgentLeaseState> {
    return this.exclusive(async () => {
      const lease = this.current;
      if (this.currentPhase !== 'held' || lease === undefined || lease.status === status) {
        this.desiredStatus = status;
        return this.state;
      }
      const generation = this.generation;
      const sentAt = this.options.clock();
      let item: RawItem | undefined;
      this.statusInFlight = status;
      try {
        item = await this.store().setStatus(lease.target, lease.leaseToken, status);
      } catch (error) {
        if (error instanceof LeaseLostError) {
          this.desiredStatus = status;
          if (generation === this.generation) this.onLost(error);
        }
        throw error;
      } finally {
        this.statusInFlight = undefined;
      }
      this.desiredStatus = status;
      this.drainedAtMs = status === 'draining' ? sentAt : undefined;
      if (generation === this.generation && this.current) {
        this.current = { ...this.current, status };
        this.onItemSeen(item);
      }
      this.emit('statusChanged', this.state);
      return this.state;
    });
  }

  /** Validates with the core before anything is sent, then writes. */
  private async put(takeover: boolean): Promise<Lease> {
    const nowMs = this.options.clock();
    const lease = buildLease(this.options, this.token!, this.desiredStatus, nowMs);
    const item = encodeValidLease(lease, this.options.policy);
    await this.store().acquire(item, lease.leaseToken, Math.floor(nowMs / 1000), takeover);
    return lease;
  }

  private startHolding(lease: Lease, event: 'acquired' | 'reacquired'): void {
    this.generation++;
    this.current = lease;
    this.drainedAtMs = lease.status === 'draining' ? lease.renewedAt : undefined;
    this.onItemReplaced();
    this.currentPhase = 'held';
    this.renewFailures = 0;
    this.armDeadline();
    this.scheduleRenewal(this.renewalInterval());
    this.emit(event, this.state);
  }

  /** Stops renewals, the expiry watch and re-acquire attempts; late results are ignored. */
  private stopHolding(): void {
    this.generation++;
    this.clearTimer('renew');
    this.clearTimer('deadline');
    this.clearTimer('reacquire');
  }

  private onLost(error: LeaseLostError): void {
    if (this.currentPhase !== 'held') return;
    this.stopHolding();
    if (this.options.reacquire && !this.closing) {
      this.currentPhase = 'reacquiring';
      // Immediately: after a sweep the key is free; after a takeover the attempt fails cheaply.
      this.scheduleReacquire(1, 0);
    } else {
      this.currentPhase = 'lost';
    }
    this.emit('lost', error); // last: a listener may call release(), which cancels the re-acquire
  }

  // --- renewal --------------------------------------------------------------------------

  /** ttl/3 ± 10 %: three chances to renew before expiry. */
  private renewalInterval(): number {
    return this.jitter((this.options.ttl * 1000) / 3);
  }

  /** 1 s, 2 s, 4 s, … capped at ttl/6 for renewals (several tries fit before expiry) and at ttl for re-acquire. */
  private backoff(attempt: number, capMs = this.options.ttl * 1000): number {
    return this.jitter(Math.min(BASE_RETRY_MS * 2 ** Math.min(attempt - 1, 20), capMs));
  }

  private jitter(ms: number): number {
    return Math.round(ms * (1 + JITTER * (2 * this.options.random() - 1)));
  }

  private scheduleRenewal(delayMs: number): void {
    const generation = this.generation;
    this.setTimer('renew', delayMs, () => void this.renewNow(generation));
  }

  /** Declares the lease lost when no renewal succeeded before its expiry. */
  private armDeadline(): void {
    const lease = this.current!;
    const generation = this.generation;
    const delayMs = Math.max(0, lease.expiresAt * 1000 - this.options.clock());
    this.setTimer('deadline', delayMs, () => {
      if (generation !== this.generation) return;
      this.onLost(
        new LeaseLostError(lease.target, `not renewed before it expired at ${new Date(this.current!.expiresAt * 1000).toISOString()}`, {
          context: { expiresAt: this.current!.expiresAt, failedRenewals: this.renewFailures },
        }),
      );
    });
  }

  private async renewNow(generation: number): Promise<void> {
    const lease = this.current;
    if (generation !== this.generation || this.currentPhase !== 'held' || lease === undefined) return;
    const nowMs = Math.floor(this.options.clock());
    const expiresAt = Math.floor(nowMs / 1000) + this.options.ttl;
    let item: RawItem | undefined;
    try {
      item = await this.store().renew(lease.target, lease.leaseToken, expiresAt, nowMs);
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof LeaseLostError) {
        this.onLost(error);
        return;
      }
      const attempt = ++this.renewFailures;
      const retryInMs = this.backoff(attempt, (this.options.ttl * 1000) / 6);
      this.scheduleRenewal(retryInMs);
      this.emit('renewFailed', asError(error), { attempt, retryInMs, expiresAt: this.current!.expiresAt });
      return;
    }
    if (generation !== this.generation) return;
    this.current = { ...this.current!, expiresAt, renewedAt: nowMs };
    this.renewFailures = 0;
    this.armDeadline();
    this.scheduleRenewal(this.renewalInterval());
    this.onItemSeen(item);
    this.emit('renewed', this.state);
    this.checkStored(item, generation);
  }

  /**
   * Every item read back (renewals return it, `ALL_NEW`) is compared with the lease as we wrote
   * it: another agent may have drained it or rewritten its attributes without our token (the
   * agent grant cannot stop it on ECS). Then our lease is put back — `status` with one UpdateItem,
   * anything else with our PutItem, both conditional on our token — and `interference` is
   * emitted. If that write finds another holder, the lease is lost (`lost`).
   */
  private checkStored(item: RawItem | undefined, generation: number): void {
    const lease = this.current;
    if (lease === undefined || this.restoring || generation !== this.generation) return;
    const statuses = [this.desiredStatus, ...(this.statusInFlight ? [this.statusInFlight] : [])];
    const found = leaseInterference(item, { ...lease, status: this.desiredStatus }, statuses, this.options.policy);
    if (found.kind === 'none') return;
    this.restoring = true;
    void this.exclusive(async () => {
      try {
        if (generation !== this.generation || this.currentPhase !== 'held' || this.current === undefined) return;
        let restored = false;
        try {
          if (found.statusOnly) {
            const back = await this.store().setStatus(lease.target, lease.leaseToken, this.desiredStatus);
            this.onItemSeen(back);
          } else {
            // Our own token passes the acquire's condition: the whole item is ours again.
            this.current = { ...(await this.put(false)), status: this.desiredStatus };
            this.onItemReplaced();
          }
          restored = true;
        } catch (error) {
          if (error instanceof LeaseHeldError || error instanceof LeaseLostError) {
            if (generation === this.generation) {
              this.onLost(error instanceof LeaseLostError ? error : new LeaseLostError(lease.target, 'taken over by another holder while our lease was being restored', { cause: error }));
            }
            return;
          }
          // Transient: the next heartbeat reads the item again and tries again.
        }
        this.emit('interference', { target: lease.target, fields: found.fields, restored, ...(found.storedAgentId ? { storedAgentId: found.storedAgentId } : {}) });
      } finally {
        this.restoring = false;
      }
    });
  }

  /** An item that is ours, as DynamoDB returned it after a write (raw, untrusted): the registry's feedback is in it. */
  protected onItemSeen(_item: RawItem | undefined): void {}

  /** Our PutItem replaced the item (acquire): whatever the registry wrote went with the old one. */
  protected onItemReplaced(): void {}

  /**
   * One consistent read of the item (1 read request unit); undefined unless it is held and ours.
   * An item that is gone or holds another token means the lease is lost: a renewal now
   * confirms it through the usual path (`lost`). Never rejects.
   */
  protected async readOwnItem(): Promise<RawItem | undefined> {
    const generation = this.generation;
    const lease = this.current;
    if (this.currentPhase !== 'held' || lease === undefined) return undefined;
    let item: RawItem | undefined;
    try {
      item = await this.store().get(lease.target);
    } catch {
      return undefined; // transient: the next read or heartbeat brings it
    }
    if (generation !== this.generation) return undefined;
    if (item?.[LEASE_ATTR.leaseToken]?.S === lease.leaseToken) {
      this.checkStored(item, generation);
      return item;
    }
    this.clearTimer('renew');
    void this.renewNow(generation);
    return undefined;
  }

  // --- re-acquire -----------------------------------------------------------------------

  private scheduleReacquire(attempt: number, delayMs: number): void {
    this.setTimer('reacquire', delayMs, () => void this.reacquireAttempt(attempt));
  }

  /**
   * Never takes over: a holder that replaced us (same address:port) wins. A `LeaseHeldError`
   * is retried with backoff capped at ttl, so the lease comes back once that holder lets it lapse.
   */
  private reacquireAttempt(attempt: number): Promise<void> {
    return this.exclusive(async () => {
      if (this.currentPhase !== 'reacquiring' || this.closing) return;
      try {
        const lease = await this.put(false);
        if (this.currentPhase !== 'reacquiring' || this.closing) return; // release() queued behind us deletes it
        this.startHolding(lease, 'reacquired');
      } catch (error) {
        if (this.currentPhase !== 'reacquiring' || this.closing) return;
        const retryInMs = this.backoff(attempt);
        this.scheduleReacquire(attempt + 1, retryInMs);
        this.emit('reacquireFailed', asError(error), { attempt, retryInMs });
      }
    });
  }

  // --- plumbing -------------------------------------------------------------------------

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private setTimer(name: TimerName, delayMs: number, fn: () => void): void {
    this.clearTimer(name);
    const timer = setTimeout(() => {
      if (this.timers[name] === timer) delete this.timers[name];
      fn();
    }, delayMs);
    if (!this.options.keepProcessAlive) timer.unref();
    this.timers[name] = timer;
  }

  private clearTimer(name: TimerName): void {
    const timer = this.timers[name];
    if (timer !== undefined) clearTimeout(timer);
    delete this.timers[name];
  }

  private store(): LeaseStore {
    if (this.leaseStore === undefined) {
      const client = this.options.client ?? (this.ownedClient = new DynamoDBClient(this.options.clientConfig));
      this.leaseStore = new LeaseStore(client, this.options.tableName);
    }
    return this.leaseStore;
  }

  private destroyOwnedClient(): void {
    if (this.ownedClient === undefined) return;
    this.ownedClient.destroy();
    this.ownedClient = undefined;
    this.leaseStore = undefined;
  }
}

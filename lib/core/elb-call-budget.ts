import { TargetRef } from './lease-schema';

/**
 * The registry's share of the account's RegisterTargets + DeregisterTargets bucket, as a pure
 * rule: a token bucket (what may be spent now) and a queue of pending target changes (what
 * waits). ELB throttles both calls together from one bucket per account and Region (burst 20,
 * refill 4/s by default; AWS raises it on request), shared with every other registrar of the
 * account (the AWS Load Balancer Controller, scripts, the console). agent-lb spends at most its
 * configured share of it, sync and reconcile together, and under load coalesces more instead of
 * calling more: a call carries every queued change of its (group, action), up to 200 targets.
 *
 * Coalescing is safe because every change is confirmed by a consistent read of its lease right
 * before its call (lease-confirmation.ts): only the latest desired state of a target matters,
 * so a newer change of the same (group, target) replaces an unsent older one.
 */

/** The account's Register/Deregister bucket (ELB API throttling quotas); settings, since AWS can raise them. */
export interface AccountElbBucket {
  /** Tokens added per second. @default 4 */
  readonly refillPerSecond: number;
  /** Bucket size. @default 20 */
  readonly burst: number;
}

/** AWS's default Register/Deregister bucket per account and Region. */
export const DEFAULT_ACCOUNT_ELB_BUCKET: AccountElbBucket = { refillPerSecond: 4, burst: 20 };

/** Share of the account's bucket the registry takes unless configured: half, leaving the other half to the account's other registrars. */
export const DEFAULT_ELB_BUDGET_SHARE = 0.5;

/** What the registry may spend: calls per second sustained and the most it may send at once. */
export interface ElbCallBudget {
  readonly callsPerSecond: number;
  readonly burst: number;
}

/** `share` of the account's bucket: both its rate and its burst (the burst at least 1, so a call can ever go). */
export function budgetOf(account: AccountElbBucket = DEFAULT_ACCOUNT_ELB_BUCKET, share: number = DEFAULT_ELB_BUDGET_SHARE): ElbCallBudget {
  return { callsPerSecond: account.refillPerSecond * share, burst: Math.max(1, Math.floor(account.burst * share)) };
}

/** The default budget: half of AWS's default bucket, 2 calls/s, burst 10. */
export const DEFAULT_ELB_CALL_BUDGET: ElbCallBudget = budgetOf();

/**
 * Stream records per sync invocation unless configured: the most Lambda delivers from a DynamoDB
 * stream (it also stops at 6 MB). Under the budget the batch is the registry's queue: changes
 * without a token are reported unapplied and come back with the batch, and only the changes in
 * it can merge into a call. A batch smaller than one round of the budget's changes (at 50
 * changes/s over 40 groups, a round of ~80 calls is 40 s, 2 000 records) lets the shard advance
 * by at most one batch a round, slower than records arrive, and the backlog and the latency grow
 * without bound (B7 at batch 1 000: registration p99 160 s at 40 groups and 50 changes/s; 64 s
 * at 10 000). A light load is not delayed: the batching window, not the size, closes its batches.
 */
export const DEFAULT_SYNC_BATCH_SIZE = 10_000;

/** Why a budget cannot be used, in one line naming the bad value and the allowed range; `undefined` when it can. */
export function budgetProblem(budget: ElbCallBudget, account: AccountElbBucket = DEFAULT_ACCOUNT_ELB_BUCKET): string | undefined {
  if (!(Number.isFinite(budget.callsPerSecond) && budget.callsPerSecond > 0 && budget.callsPerSecond <= account.refillPerSecond)) {
    return `ELB call budget ${JSON.stringify(budget.callsPerSecond)} calls/s must be a number in (0, ${account.refillPerSecond}], the account's refill rate`;
  }
  if (!(Number.isInteger(budget.burst) && budget.burst >= 1 && budget.burst <= account.burst)) {
    return `ELB call budget burst ${JSON.stringify(budget.burst)} must be a whole number in 1–${account.burst}, the account's burst`;
  }
  return undefined;
}

/**
 * Seconds one round of changes to `groups` target groups takes at best on `budget` in steady
 * churn (the burst spent): each group needs a call, and calls come at `callsPerSecond`. No
 * registrar does better; B7 holds agent-lb's registration p99 to 1.5× of it.
 */
export function roundBoundSeconds(groups: number, budget: ElbCallBudget): number {
  return Math.max(0, groups) / budget.callsPerSecond;
}

// ---- token bucket -------------------------------------------------------------------------

/**
 * A token bucket's state: tokens held at `atMs` (epoch ms). Fractional tokens accrue; a call takes
 * a whole one. `reserved`: tokens granted to calls not sent yet (see {@link reserveToken}).
 */
export interface BucketState {
  readonly tokens: number;
  readonly atMs: number;
  /** @default 0 */
  readonly reserved?: number;
}

/** A full bucket at `nowMs`. */
export function fullBucket(budget: ElbCallBudget, nowMs: number): BucketState {
  return { tokens: budget.burst, atMs: nowMs };
}

/** The bucket at `nowMs`: refilled at the budget's rate up to its burst. A clock that went back refills nothing. */
export function refill(state: BucketState, budget: ElbCallBudget, nowMs: number): BucketState {
  if (nowMs <= state.atMs) return { tokens: Math.min(state.tokens, budget.burst), atMs: state.atMs };
  return { tokens: Math.min(budget.burst, state.tokens + ((nowMs - state.atMs) / 1000) * budget.callsPerSecond), atMs: nowMs };
}

/** Takes up to `wanted` whole tokens at `nowMs`: how many were granted and the bucket after. */
export function takeTokens(state: BucketState, budget: ElbCallBudget, nowMs: number, wanted: number): { readonly granted: number; readonly state: BucketState } {
  const now = refill(state, budget, nowMs);
  const granted = Math.max(0, Math.min(Math.floor(wanted), Math.floor(now.tokens + 1e-9)));
  return { granted, state: { tokens: Math.max(0, now.tokens - granted), atMs: now.atMs } };
}

// ---- permits: a token granted before the call, spent when the call leaves ---------------

/*
 * ELB charges a call when it arrives, not when the registry decided to send it. A token taken
 * at grant time and spent later (after a confirming read, a few awaits, or an SDK retry's
 * backoff) lets two calls whose grants were a refill apart arrive closer together: the first
 * late, the second on time. That is how B7 once saw a call over the budget. So a grant only
 * reserves a token; the bucket is charged when the call leaves ({@link spendReserved}), and a
 * grant needs a whole token beyond those reserved. Then at every call's departure the bucket,
 * charged at departure times exactly as ELB charges it, holds at least that call's token.
 */

/** The bucket at `nowMs` with one more token reserved, if a whole token beyond the reserved ones is there. */
export function reserveToken(state: BucketState, budget: ElbCallBudget, nowMs: number): { readonly granted: boolean; readonly state: BucketState } {
  const now = refill(state, budget, nowMs);
  const reserved = state.reserved ?? 0;
  if (now.tokens - reserved + 1e-9 < 1) return { granted: false, state: { ...now, reserved } };
  return { granted: true, state: { ...now, reserved: reserved + 1 } };
}

/** A reserved token spent at `nowMs`, when its call leaves: the bucket is charged then. */
export function spendReserved(state: BucketState, budget: ElbCallBudget, nowMs: number): BucketState {
  const now = refill(state, budget, nowMs);
  return { tokens: Math.max(0, now.tokens - 1), atMs: now.atMs, reserved: Math.max(0, (state.reserved ?? 0) - 1) };
}

/** A reserved token whose call was not sent after all: free again, nothing charged. */
export function releaseReserved(state: BucketState): BucketState {
  return { ...state, reserved: Math.max(0, (state.reserved ?? 0) - 1) };
}

/**
 * Milliseconds from `nowMs` until a token can be reserved (0: now); `undefined` when refill alone
 * never makes one (the reserved tokens fill the burst): a spend or a release must come first.
 */
export function msUntilReservable(state: BucketState, budget: ElbCallBudget, nowMs: number): number | undefined {
  const reserved = state.reserved ?? 0;
  if (reserved + 1 > budget.burst + 1e-9) return undefined;
  const now = refill(state, budget, nowMs);
  const missing = reserved + 1 - now.tokens;
  return missing <= 1e-9 ? 0 : Math.ceil((missing / budget.callsPerSecond) * 1000);
}

/**
 * Calls that went over `budget`, judged as ELB judges them: the calls' arrival times (epoch ms, in
 * order) replayed through a bucket full at the first. 0 means never above the budget. What B7
 * reports as `callsOverBudget`.
 */
export function callsOverBudget(sentAtMs: readonly number[], budget: ElbCallBudget): number {
  let bucket = fullBucket(budget, sentAtMs[0] ?? 0);
  let over = 0;
  for (const at of sentAtMs) {
    const t = takeTokens(bucket, budget, at, 1);
    bucket = t.state;
    if (t.granted === 0) over++;
  }
  return over;
}

/** Milliseconds from `nowMs` until the bucket holds `wanted` whole tokens (0 when it does; at most the burst can ever be held). */
export function msUntilTokens(state: BucketState, budget: ElbCallBudget, nowMs: number, wanted = 1): number {
  const now = refill(state, budget, nowMs);
  const missing = Math.min(wanted, budget.burst) - now.tokens;
  return missing <= 1e-9 ? 0 : Math.ceil((missing / budget.callsPerSecond) * 1000);
}

// ---- pending changes ----------------------------------------------------------------------

export type ChangeAction = 'register' | 'deregister';

/**
 * How urgent a change is. `urgent`: a registration (a new or returning agent waits for traffic)
 * or a removal of a target ELB may still send requests to. `deferrable`: a removal of a target
 * ELB already reports `unhealthy`, `draining` or `unused` (it gets no new requests, except when
 * its whole group fails open), which can wait behind every urgent change.
 */
export type ChangePriority = 'urgent' | 'deferrable';

/** ELB states in which a target gets no new requests: removing it can wait. */
export const NOT_SERVING_STATES: readonly string[] = ['unhealthy', 'draining', 'unused', 'unavailable'];

/** The priority of `action` on a target ELB last reported in `elbState` (undefined: not known). */
export function priorityOf(action: ChangeAction, elbState?: string): ChangePriority {
  return action === 'deregister' && elbState !== undefined && NOT_SERVING_STATES.includes(elbState) ? 'deferrable' : 'urgent';
}

/** A change the registry wants made: `target` in `targetGroupArn` registered or deregistered. */
export interface ChangeRequest {
  readonly targetGroupArn: string;
  readonly target: TargetRef;
  readonly action: ChangeAction;
  /** @default 'urgent' */
  readonly priority?: ChangePriority;
  /** When the change was asked for (epoch ms). @default the time it is queued */
  readonly atMs?: number;
}

/** A change waiting for the budget. */
export interface PendingChange {
  readonly targetGroupArn: string;
  readonly target: TargetRef;
  readonly action: ChangeAction;
  readonly priority: ChangePriority;
  /** When the target's first unsent change was queued (epoch ms): a newer change replaces the action, not the wait. */
  readonly queuedAtMs: number;
}

/** The queue: at most one pending change per (group, target), and the (group, target)s whose call is out. */
export interface ChangeQueue {
  readonly pending: ReadonlyMap<string, PendingChange>;
  /** Keys with a call in flight: a newer change of theirs waits for it, so changes of one target land in order. */
  readonly inFlight: ReadonlySet<string>;
}

export const emptyQueue = (): ChangeQueue => ({ pending: new Map(), inFlight: new Set() });

/** Queue key of a (group, target). */
export const changeKey = (targetGroupArn: string, targetKey: string): string => `${targetGroupArn} ${targetKey}`;

/** `changes` added in order at `nowMs`: the latest desired state of each (group, target) wins; its wait counts from its first unsent change. */
export function enqueue(queue: ChangeQueue, changes: readonly ChangeRequest[], nowMs: number): ChangeQueue {
  const pending = new Map(queue.pending);
  for (const c of changes) {
    const key = changeKey(c.targetGroupArn, c.target.key);
    const before = pending.get(key);
    pending.set(key, { targetGroupArn: c.targetGroupArn, target: c.target, action: c.action, priority: c.priority ?? 'urgent', queuedAtMs: before?.queuedAtMs ?? c.atMs ?? nowMs });
  }
  return { pending, inFlight: queue.inFlight };
}

/** One Register/DeregisterTargets call to send now. */
export interface PlannedCall {
  readonly targetGroupArn: string;
  readonly action: ChangeAction;
  readonly changes: readonly PendingChange[];
}

export interface BudgetPlan {
  /** Calls to send now, most urgent first; each took one token. */
  readonly calls: readonly PlannedCall[];
  /** The bucket after them. */
  readonly bucket: BucketState;
  /** The queue with their changes in flight (settle each call with {@link settleCall}). */
  readonly queue: ChangeQueue;
  /** Changes still waiting (for a token, or for their target's call in flight). */
  readonly waiting: number;
  /** Milliseconds until the next call could go, when changes wait for a token. */
  readonly nextCallInMs?: number;
}

/** Most targets ELB takes in one Register/DeregisterTargets call. */
export const MAX_TARGETS_PER_ELB_CALL = 200;

const PRIORITY_RANK: Record<ChangePriority, number> = { urgent: 0, deferrable: 1 };
const byUrgency = (a: PendingChange, b: PendingChange) => PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] || a.queuedAtMs - b.queuedAtMs;

/**
 * The calls the queue's sendable changes (those whose target has no call out) make, most urgent
 * first: gathered per (group, action), each gathering split into calls of up to `maxTargets`
 * targets (most urgent and oldest first), calls ranked by their most urgent and oldest change,
 * registrations before removals at equal rank.
 */
export function rankCalls(queue: ChangeQueue, maxTargets: number = MAX_TARGETS_PER_ELB_CALL): PlannedCall[] {
  const gatherings = new Map<string, PendingChange[]>();
  for (const [key, change] of queue.pending) {
    if (queue.inFlight.has(key)) continue;
    const id = `${change.action} ${change.targetGroupArn}`;
    gatherings.set(id, [...(gatherings.get(id) ?? []), change]);
  }
  const candidates: PlannedCall[] = [];
  for (const changes of gatherings.values()) {
    const sorted = [...changes].sort(byUrgency);
    for (let i = 0; i < sorted.length; i += maxTargets) {
      candidates.push({ targetGroupArn: sorted[0].targetGroupArn, action: sorted[0].action, changes: sorted.slice(i, i + maxTargets) });
    }
  }
  // Registrations before removals at equal urgency and age: creates first.
  candidates.sort((a, b) => byUrgency(a.changes[0], b.changes[0]) || (a.action === b.action ? 0 : a.action === 'register' ? -1 : 1));
  return candidates;
}

/**
 * Which calls go now and what waits. The sendable changes (those whose target has no call out)
 * are gathered per (group, action); each gathering becomes calls of up to `maxTargets` targets,
 * most urgent and oldest first, and calls are ranked by their most urgent and oldest change: so
 * new agents' registrations (and removals of serving targets) go before removals of targets ELB
 * already keeps out of rotation, and a change waits at most until the budget reaches its turn.
 * Each call takes one token; none goes without one. A deferrable change rides along free in a
 * call its (group, action) makes anyway.
 */
export function planCalls(queue: ChangeQueue, bucket: BucketState, budget: ElbCallBudget, nowMs: number, maxTargets: number = MAX_TARGETS_PER_ELB_CALL): BudgetPlan {
  const candidates = rankCalls(queue, maxTargets);
  const { granted, state } = takeTokens(bucket, budget, nowMs, candidates.length);
  const calls = candidates.slice(0, granted);
  const pending = new Map(queue.pending);
  const inFlight = new Set(queue.inFlight);
  for (const call of calls) {
    for (const c of call.changes) {
      const key = changeKey(c.targetGroupArn, c.target.key);
      pending.delete(key);
      inFlight.add(key);
    }
  }
  const waiting = pending.size;
  const waitsForToken = candidates.length > granted;
  return {
    calls,
    bucket: state,
    queue: { pending, inFlight },
    waiting,
    ...(waitsForToken ? { nextCallInMs: msUntilTokens(state, budget, nowMs) } : {}),
  };
}

/**
 * The queue once `call` came back: its targets are no longer in flight, and those in `failed`
 * (a transient error, or the call abandoned) are queued again with their first wait, unless a
 * newer change of theirs is already queued (it is the latest desired state). Never drops a change.
 */
export function settleCall(queue: ChangeQueue, call: PlannedCall, failed: readonly string[] = []): ChangeQueue {
  const failedKeys = new Set(failed);
  const pending = new Map(queue.pending);
  const inFlight = new Set(queue.inFlight);
  for (const c of call.changes) {
    const key = changeKey(c.targetGroupArn, c.target.key);
    inFlight.delete(key);
    if (!failedKeys.has(c.target.key)) continue;
    const newer = pending.get(key);
    if (newer === undefined) pending.set(key, c);
    else pending.set(key, { ...newer, queuedAtMs: Math.min(newer.queuedAtMs, c.queuedAtMs) });
  }
  return { pending, inFlight };
}

/** What the queue's metrics report: changes queued (in flight not counted) and the age of the oldest, ms. */
export function queueStats(queue: ChangeQueue, nowMs: number): { readonly queued: number; readonly oldestAgeMs: number } {
  let oldest = nowMs;
  for (const c of queue.pending.values()) oldest = Math.min(oldest, c.queuedAtMs);
  return { queued: queue.pending.size, oldestAgeMs: Math.max(0, nowMs - oldest) };
}

// ---- the gate every Register/DeregisterTargets call passes --------------------------------

/**
 * A token reserved for one call: {@link ElbCallPermit.spend} charges the budget as the call leaves
 * (the moment ELB counts it); {@link ElbCallPermit.giveBack} frees it when the call is not sent
 * after all. Whichever comes first counts; the other is then a no-op.
 */
export interface ElbCallPermit {
  spend(): void;
  giveBack(): void;
}

/**
 * Where the registry's ELB adapter takes a token before every Register/DeregisterTargets call:
 * waits (first come, first served) until the budget allows one. Implementations keep the bucket
 * in one container, or in a table every container shares.
 */
export interface ElbCallGate {
  /** The budget it keeps. */
  readonly budget: ElbCallBudget;
  /** Resolves with a permit once a token is taken; rejects (an `AbortError`) if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<ElbCallPermit>;
  /** Waiting acquirers and how long the oldest has waited, ms. */
  waiting(nowMs: number): { readonly queued: number; readonly oldestAgeMs: number };
}

/** What a sync batch or a reconcile pass reports of the budget (the metrics in BUDGET_METRICS). */
export interface BudgetReport {
  /** Register/Deregister calls per second over the batch or pass (at least one second). */
  readonly callsPerSecond: number;
  readonly budgetPerSecond: number;
  /** Changes that waited for a token (sync), or were left for the next pass for want of one (reconcile). */
  readonly queued: number;
  /** The longest of those waits, ms. */
  readonly oldestAgeMs: number;
}

/** The report of `calls` made over `elapsedMs` on `budget`. */
export function budgetReport(budget: ElbCallBudget, calls: number, elapsedMs: number, queued: number, oldestAgeMs: number): BudgetReport {
  return { callsPerSecond: Math.round((calls / Math.max(1, elapsedMs / 1000)) * 100) / 100, budgetPerSecond: budget.callsPerSecond, queued, oldestAgeMs: Math.round(oldestAgeMs) };
}

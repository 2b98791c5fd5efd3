import { ElbCallBudget } from './elb-call-budget';

/**
 * The ELB call budget as one bucket every registry container shares (sync on each stream shard,
 * reconcile, in every Lambda container), kept as one item of the registry state table: the same
 * token bucket as the per-process rule (elb-call-budget.ts), with its reservations ("holds") in
 * the item too, so that a token reserved by one container is out of every other's reach until
 * its call leaves (then it is charged) or the call is not sent (then it is freed).
 *
 * A hold carries an expiry: a container that dies between reserving and spending (a Lambda
 * timeout, a crash) would otherwise keep its tokens out of the budget for good. A hold outlives
 * any wait between grant and departure (a confirming read, an SDK backoff) by far; a spend that
 * still comes after its hold lapsed charges the bucket anyway, below zero if need be, so the
 * containers after it wait out the debt instead of the budget being exceeded for long.
 *
 * Pure: the adapter (lib/aws/shared-budget-store.ts) reads and conditionally writes the item, and
 * the gate (lib/registry/shared-bucket-gate.ts) decides what to ask for; this decides the answer.
 */

/** How long a reserved token stays out of other containers' reach without its call leaving. */
export const SHARED_HOLD_MS = 15_000;

/**
 * Share of the budget a container keeps in its own bucket while the shared item cannot be
 * reached (DynamoDB unavailable, access denied): 1/divisor of the rate and of the burst. With at
 * most `divisor` containers cut off at once (a stream of up to three shards and reconcile at the
 * default) the registry stays within its budget; each such call is counted in a metric.
 */
export const DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR = 4;

/** The shared bucket as the item stores it. */
export interface SharedBucket {
  /** Tokens at `atMs`, held ones included; below 0 when a lapsed hold was spent (a debt). */
  readonly tokens: number;
  /** Epoch ms the tokens were counted at (the latest writer's clock, never moved back). */
  readonly atMs: number;
  /** Bumped on every write: the condition of the next one (optimistic concurrency). */
  readonly version: number;
  /** Reserved tokens: hold id → epoch ms it lapses. */
  readonly holds: Readonly<Record<string, number>>;
}

/** What a container asks of the shared bucket in one write. */
export interface SharedTakeRequest {
  /** Holds whose calls left: each charges a token and ends its hold. */
  readonly spent?: readonly string[];
  /** Holds whose calls were not sent: each ends, nothing charged. */
  readonly released?: readonly string[];
  /** Ids for new holds, in order of asking: as many as the bucket allows are granted, first first. */
  readonly wanted?: readonly string[];
  /** @default SHARED_HOLD_MS */
  readonly holdMs?: number;
}

export interface SharedTake {
  /** The item to write (its `version` one past the one read). */
  readonly next: SharedBucket;
  /** The ids of `wanted` granted: a prefix of it. */
  readonly granted: readonly string[];
  /** When some of `wanted` were not granted: ms until one more could be (a refill, or the first hold lapsing). */
  readonly retryInMs?: number;
}

/** A full bucket with no holds: what a missing item means (the registry's first call, or a table wiped). */
export function emptySharedBucket(budget: ElbCallBudget, nowMs: number): SharedBucket {
  return { tokens: budget.burst, atMs: nowMs, version: 0, holds: {} };
}

/** The bucket at `nowMs`: refilled (a debt refills too) up to the burst, its lapsed holds dropped. */
export function sharedBucketAt(stored: SharedBucket | undefined, budget: ElbCallBudget, nowMs: number): SharedBucket {
  if (stored === undefined) return emptySharedBucket(budget, nowMs);
  const at = Math.max(stored.atMs, nowMs);
  // A clock behind the item's (another container's) refills nothing: the bucket never counts time twice.
  const tokens = Math.min(budget.burst, stored.tokens + ((at - stored.atMs) / 1000) * budget.callsPerSecond);
  const holds = Object.fromEntries(Object.entries(stored.holds).filter(([, until]) => until > nowMs));
  return { tokens, atMs: at, version: stored.version, holds };
}

/**
 * One write's worth of the shared bucket: at `nowMs`, the spends charged, the releases freed and
 * as many of `wanted` held as leave a whole token beyond every hold (as reserveToken does in one
 * process). Spending an unknown or lapsed hold still charges: the call left.
 */
export function takeShared(stored: SharedBucket | undefined, budget: ElbCallBudget, nowMs: number, request: SharedTakeRequest): SharedTake {
  const now = sharedBucketAt(stored, budget, nowMs);
  const holds: Record<string, number> = { ...now.holds };
  const spent = request.spent ?? [];
  for (const id of spent) delete holds[id];
  for (const id of request.released ?? []) delete holds[id];
  const tokens = now.tokens - spent.length;
  const granted: string[] = [];
  const holdMs = request.holdMs ?? SHARED_HOLD_MS;
  for (const id of request.wanted ?? []) {
    if (tokens - Object.keys(holds).length + 1e-9 < 1) break;
    holds[id] = nowMs + holdMs;
    granted.push(id);
  }
  const next: SharedBucket = { tokens, atMs: now.atMs, version: now.version + 1, holds };
  const short = (request.wanted?.length ?? 0) > granted.length;
  return { next, granted, ...(short ? { retryInMs: msUntilSharedHold(next, budget, nowMs) } : {}) };
}

/**
 * Milliseconds from `nowMs` until one more hold could be granted, counting refill and the lapsing
 * of holds (not their spends or releases, which other containers may write sooner). At least 1.
 */
export function msUntilSharedHold(bucket: SharedBucket, budget: ElbCallBudget, nowMs: number): number {
  const lapses = Object.values(bucket.holds).filter((until) => until > nowMs).sort((a, b) => a - b);
  // Holds that must lapse before a token is left beyond the others, the burst being the most refill gives.
  const mustLapse = Math.max(0, lapses.length + 1 - budget.burst);
  const lapseWait = mustLapse === 0 ? 0 : lapses[mustLapse - 1] - nowMs;
  const afterLapse = nowMs + lapseWait;
  const at = sharedBucketAt(bucket, budget, afterLapse);
  const missing = Object.keys(at.holds).length + 1 - at.tokens;
  const refillWait = missing <= 1e-9 ? 0 : Math.ceil((missing / budget.callsPerSecond) * 1000);
  return Math.max(1, lapseWait + refillWait);
}

/** The per-process budget a container falls back to while the shared bucket is out of reach: 1/divisor of the rate and the burst (at least 1). */
export function fallbackBudget(budget: ElbCallBudget, divisor: number = DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR): ElbCallBudget {
  return { callsPerSecond: budget.callsPerSecond / divisor, burst: Math.max(1, Math.floor(budget.burst / divisor)) };
}

/** Why a fallback divisor cannot be used; `undefined` when it can (a whole number 1–100). */
export function fallbackDivisorProblem(divisor: unknown): string | undefined {
  return typeof divisor === 'number' && Number.isInteger(divisor) && divisor >= 1 && divisor <= 100 ? undefined : `sharedElbBudget.fallbackDivisor ${JSON.stringify(divisor)} must be a whole number in 1–100`;
}

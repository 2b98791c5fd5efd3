import { AddressPolicy, formatTarget } from '../core/address-policy';
import { sleep } from '../core/concurrency';
import { ElbCallGate, ElbCallPermit } from '../core/elb-call-budget';
import { ElbTargetsError } from '../core/errors';
import { confirmChanges, ConfirmationContext, contradictedBy, leaseVersion, TargetAction } from '../core/lease-confirmation';
import { RawItem, RoutingConfig, TargetRef } from '../core/lease-schema';
import { presenceOf } from '../core/reconcile-planner';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { RefusedTargets } from './container-memory';

/**
 * The last check before a target joins or leaves a group: a consistent read of its lease
 * (BatchGetItem, one call per 100 targets) right before the Register/DeregisterTargets call,
 * and a deadline on that call. The rule itself is pure (`confirmChanges` in lib/core); this is
 * its adapter: reads, calls, rounds.
 */

/**
 * Longest time from the confirming read to the ELB call giving up (the SDK's retries and its
 * backoff included). Past it the read is too old to act on: the call is abandoned,
 * the leases are read again and the call sent again. A lease that changes inside this window can
 * still see the call land after it: reconcile's read after every landed call catches that and
 * undoes it at once; in sync, the lease's next stream record does (see `verifyLanded`).
 */
export const DECISION_DEADLINE_MS = 2000;

/**
 * Read-and-send rounds before a change is reported as failed. Rounds × deadline is also the time
 * budget of one {@link applyConfirmed} (or less, given `budgetEnd`): undoing a change the table
 * contradicted after it landed uses what is left of it.
 */
export const CONFIRM_ROUNDS = 5;

export interface ConfirmDeps {
  readonly store: LeaseStore;
  readonly elb: ElbTargets;
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** @default DECISION_DEADLINE_MS */
  readonly deadlineMs?: number;
  /** @default CONFIRM_ROUNDS */
  readonly rounds?: number;
  /** Registrations ELB refused for good, by lease version: skipped, and new refusals remembered. */
  readonly refused?: RefusedTargets;
  /** Epoch ms after which nothing more is sent (a reconcile pass's own budget); calls are cut at it. @default none */
  readonly budgetEnd?: number;
  /** `<targetGroupArn> <key>` of targets refused whatever their lease says (not admitted): their deregistration is confirmed, a registration never. @default none */
  readonly refusedMembers?: ReadonlySet<string>;
  /** Waits between rounds. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /**
   * Which landed calls are read again and undone if the table now contradicts them. Reconcile
   * verifies both (its changes come from a scan, and nothing else would repair a call the table
   * overtook before the next pass). Sync verifies none: whatever made a lease contradict a call
   * after its read is a later write whose record the stream brings next, and an undo would be a
   * third call to the group in the batch. @default both
   */
  readonly verifyLanded?: readonly TargetAction[];
}

/**
 * A call's deadline: aborts its signal when `ms` have passed, and is cleared as soon as the call
 * settles. (AbortSignal.timeout would keep a timer per call until it fires, then build an abort
 * reason nobody reads: at thousands of calls a second, a large share of a batch's CPU.)
 */
class Deadline {
  private readonly controller = new AbortController();
  public passed = false;
  public constructor(private readonly ms: number) {}

  public async run<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timer = setTimeout(() => {
      this.passed = true;
      this.controller.abort();
    }, this.ms);
    try {
      return await call(this.controller.signal);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** First wait before a round that follows a failed one; doubled each round, full jitter. */
export const ROUND_BACKOFF_MS = 100;

/** Reads the caller already made for this group (sync reads a whole batch in one go). */
export interface PriorReads {
  readonly reads: ReadonlyMap<string, RawItem | undefined>;
  /** Epoch ms the reads were started. */
  readonly readAtMs: number;
}

export interface ConfirmedOutcome {
  /** Keys whose change landed (and was not undone). */
  readonly applied: string[];
  /** Landed, then contradicted by the read after the call (the lease changed while it was in flight): undone at once. */
  readonly undone: string[];
  /** The read disagreed with the planned change: not sent. */
  readonly withheld: TargetRef[];
  /** Registrations ELB refused before at this lease version: not sent. */
  readonly skippedRefused: string[];
  /** Not applied after every round (ELB kept failing, the deadline kept passing, or a read failed): try again later. */
  readonly transientFailures: string[];
  /** Refused by ELB for good. */
  readonly rejected: { key: string; error: ElbTargetsError }[];
  readonly calls: number;
  readonly firstTransientError?: ElbTargetsError;
  /** Per key in `applied`, the lease as the read that confirmed its call saw it (`undefined`: no item): what the rotation it leaves is written into. */
  readonly confirmedBy: ReadonlyMap<string, RawItem | undefined>;
  /** With an ELB call budget: the longest wait for a token, ms (0: every token was there at once). */
  readonly tokenWaitMs?: number;
}

/**
 * Applies `action` to `targets` of `targetGroupArn` in rounds: read every lease (consistent),
 * keep the targets the reads agree with, send them with a deadline from the read; what the
 * deadline or ELB failed is read and sent again, up to `rounds` times. After a call lands, its
 * targets' leases are read once more and whatever the table now contradicts is undone at once
 * (a lease that ended while its registration was in flight is deregistered; one acquired while
 * its deregistration was in flight is registered again).
 */
export async function applyConfirmed(
  deps: ConfirmDeps,
  action: TargetAction,
  targetGroupArn: string,
  targets: readonly TargetRef[],
  prior?: PriorReads,
): Promise<ConfirmedOutcome> {
  const now = deps.now ?? Date.now;
  const deadlineMs = deps.deadlineMs ?? DECISION_DEADLINE_MS;
  const ctx = (ms: number): ConfirmationContext => ({
    policy: deps.policy,
    routing: deps.routing,
    nowSeconds: Math.floor(ms / 1000),
    ...(deps.refusedMembers ? { refusedMembers: deps.refusedMembers } : {}),
  });
  const applied: string[] = [];
  const undone: string[] = [];
  const withheld: TargetRef[] = [];
  const skippedRefused: string[] = [];
  const rejected: ConfirmedOutcome['rejected'] = [];
  const confirmedBy = new Map<string, RawItem | undefined>();
  let calls = 0;
  let firstTransientError: ElbTargetsError | undefined;
  let pending = [...targets];
  const rounds = deps.rounds ?? CONFIRM_ROUNDS;
  const gate = deps.elb.gate;
  // With an ELB call budget, the first token may be long in coming: the rounds' time starts once it is taken.
  let tokenWaitMs = 0;
  const permitWithin = async (until: number | undefined) => {
    const { permit, waitedMs } = await permitBy(gate as ElbCallGate, until, now);
    tokenWaitMs = Math.max(tokenWaitMs, waitedMs);
    return permit;
  };
  const firstPermit = gate && pending.length > 0 ? await permitWithin(deps.budgetEnd) : undefined;
  if (gate && pending.length > 0 && !firstPermit) return notApplied(pending, tokenWaitMs);
  const budgetEnd = Math.min(deps.budgetEnd ?? Infinity, now() + rounds * deadlineMs);
  // Prior reads are used only while fresh enough to leave the call most of its deadline.
  let reused = prior && now() - prior.readAtMs < deadlineMs / 2 ? prior : undefined;

  for (let round = 0; round < rounds && pending.length > 0 && now() < budgetEnd; round++) {
    // The token before the read: waiting for the budget never ages the read a call acts on. It is
    // only reserved here; the budget is charged when the call leaves (ElbTargets spends it).
    const permit = round === 0 ? firstPermit : gate ? await permitWithin(budgetEnd) : undefined;
    if (gate && !permit) break;
    let readAtMs: number;
    let reads: ReadonlyMap<string, RawItem | undefined>;
    if (reused) {
      ({ readAtMs, reads } = reused);
      reused = undefined;
    } else {
      readAtMs = now();
      try {
        reads = await deps.store.getMany(pending.map((t) => t.key));
      } catch {
        permit?.giveBack();
        break;
      }
    }
    const verdict = confirmChanges(action, targetGroupArn, pending, reads, ctx(readAtMs));
    withheld.push(...verdict.withheld);
    let send = verdict.send;
    if (action === 'register' && deps.refused) {
      const refused = deps.refused;
      const skip = new Set(send.filter((t) => refused.isRefused(targetGroupArn, t.key, () => leaseVersion(reads.get(t.key)))).map((t) => t.key));
      skippedRefused.push(...skip);
      send = send.filter((t) => !skip.has(t.key));
    }
    if (send.length === 0) {
      permit?.giveBack();
      pending = [];
      break;
    }
    const deadline = new Deadline(Math.max(1, Math.min(readAtMs + deadlineMs, budgetEnd) - now()));
    const outcome = await deadline.run((abortSignal) => deps.elb[action](targetGroupArn, send, { abortSignal, ...(permit ? { permit } : {}) }));
    calls += outcome.calls;
    rejected.push(...outcome.rejected);
    firstTransientError ??= outcome.firstTransientError;
    if (action === 'register' && deps.refused) {
      for (const r of outcome.rejected) if (r.error.refusedForGood) deps.refused.remember(targetGroupArn, r.key, leaseVersion(reads.get(r.key)));
      if (deps.refused.size > 0) for (const key of outcome.applied) deps.refused.forget(targetGroupArn, key);
    }
    const failed = new Set(outcome.transientFailures);
    pending = send.filter((t) => failed.has(t.key));
    const done = new Set(outcome.applied);
    if (deadline.passed && pending.length > 0) {
      // An abandoned call may have landed all the same (an attempt was on the wire): look before
      // sending it again, so a slow ELB does not get every change twice.
      const there = await alreadyThere(deps.elb, action, targetGroupArn, pending, Math.min(deadlineMs, budgetEnd - now()));
      for (const key of there) done.add(key);
      pending = pending.filter((t) => !there.has(t.key));
    }
    const landed = send.filter((t) => done.has(t.key));
    for (const t of landed) confirmedBy.set(t.key, reads.get(t.key));
    if (landed.length > 0 && !(deps.verifyLanded ?? ['register', 'deregister']).includes(action)) applied.push(...landed.map((t) => t.key));
    else if (landed.length > 0) {
      const reverted = await undoContradicted(deps, action, targetGroupArn, landed, ctx, budgetEnd);
      calls += reverted.calls;
      const back = new Set(reverted.undone);
      applied.push(...landed.filter((t) => !back.has(t.key)).map((t) => t.key));
      undone.push(...reverted.undone);
    }
    if (pending.length > 0) {
      // ELB is throttling or failing: give it a moment before the next round (its attempts
      // would mostly be throttled again), within the budget.
      const wait = Math.min(Math.random() * ROUND_BACKOFF_MS * 2 ** round, budgetEnd - now());
      if (wait > 0) await (deps.sleep ?? sleep)(wait);
    }
  }
  // A first token that came as the time ran out (no round left to use it) is free again: a
  // reserved token never given back would hold a place of the burst for good.
  firstPermit?.giveBack();
  return {
    applied,
    undone,
    withheld,
    skippedRefused,
    transientFailures: pending.map((t) => t.key),
    rejected,
    calls,
    ...(pending.length > 0 && firstTransientError ? { firstTransientError } : {}),
    confirmedBy: new Map(applied.map((key) => [key, confirmedBy.get(key)])),
    tokenWaitMs,
  };
}

/** Of `targets`, those the group already shows as `action` left them (registered; or draining or gone). Empty if the look fails. */
async function alreadyThere(elb: ElbTargets, action: TargetAction, targetGroupArn: string, targets: readonly TargetRef[], withinMs: number): Promise<Set<string>> {
  if (withinMs <= 0) return new Set();
  try {
    const registered = new Set(
      (await elb.describe(targetGroupArn, { abortSignal: AbortSignal.timeout(withinMs) })).filter((t) => presenceOf(t) === 'registered').map((t) => formatTarget(t.id, t.port)),
    );
    return new Set(targets.filter((t) => registered.has(t.key) === (action === 'register')).map((t) => t.key));
  } catch {
    return new Set();
  }
}

/**
 * Reads the leases of targets whose call just landed and undoes what they now contradict, each
 * call with a deadline from its read, in rounds until `budgetEnd`. Best effort:
 * what is still not undone then is repaired by the later stream record of that lease, or by the
 * next reconcile pass.
 */
async function undoContradicted(
  deps: ConfirmDeps,
  action: TargetAction,
  targetGroupArn: string,
  landed: readonly TargetRef[],
  ctx: (ms: number) => ConfirmationContext,
  budgetEnd: number,
): Promise<{ undone: string[]; calls: number }> {
  const now = deps.now ?? Date.now;
  const deadlineMs = deps.deadlineMs ?? DECISION_DEADLINE_MS;
  const undone: string[] = [];
  let calls = 0;
  let pending = [...landed];
  for (let round = 0; pending.length > 0 && now() < budgetEnd; round++) {
    const readAtMs = now();
    let after: ReadonlyMap<string, RawItem | undefined>;
    try {
      after = await deps.store.getMany(pending.map((t) => t.key));
    } catch {
      break;
    }
    const back = contradictedBy(action, targetGroupArn, pending, after, ctx(readAtMs));
    if (back.length === 0) break;
    const deadline = new Deadline(Math.max(1, Math.min(readAtMs + deadlineMs, budgetEnd) - now()));
    const outcome = await deadline.run((abortSignal) => deps.elb[action === 'register' ? 'deregister' : 'register'](targetGroupArn, back, { abortSignal }));
    calls += outcome.calls;
    undone.push(...outcome.applied);
    const failed = new Set(outcome.transientFailures);
    pending = back.filter((t) => failed.has(t.key));
  }
  return { undone, calls };
}

/**
 * A token from `gate`, waiting at most until `until` (epoch ms; none: as long as it takes);
 * `permit` undefined when the wait ran out. `waitedMs` is 0 when a token was there at once
 * (the gate queued nobody), else how long the wait took.
 */
async function permitBy(gate: ElbCallGate, until: number | undefined, now: () => number): Promise<{ permit?: ElbCallPermit; waitedMs: number }> {
  const started = performance.now();
  const acquiring = gate.acquire(until === undefined || until === Infinity ? undefined : AbortSignal.timeout(Math.max(1, until - now())));
  // First come, first served: a token granted at once leaves the gate's queue empty.
  const queued = gate.waiting(now()).queued > 0;
  const waited = () => (queued ? Math.max(1, Math.round(performance.now() - started)) : 0);
  try {
    const permit = await acquiring;
    return { permit, waitedMs: waited() };
  } catch {
    return { waitedMs: waited() };
  }
}

/** The outcome of a change that never got a token: nothing sent, everything to be tried again. */
function notApplied(pending: readonly TargetRef[], tokenWaitMs: number): ConfirmedOutcome {
  return { applied: [], undone: [], withheld: [], skippedRefused: [], transientFailures: pending.map((t) => t.key), rejected: [], calls: 0, confirmedBy: new Map(), tokenWaitMs };
}

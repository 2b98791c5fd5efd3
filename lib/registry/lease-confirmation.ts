import { AddressPolicy } from '../core/address-policy';
import { ElbTargetsError } from '../core/errors';
import { decodeLease, isLive } from '../core/lease-codec';
import { routeLease } from '../core/lease-routing';
import { RawItem, RoutingConfig, TargetRef } from '../core/lease-schema';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';

/**
 * The last check before a target leaves a group: a consistent read of its lease, right before
 * the DeregisterTargets call, and a deadline on that call. Whatever a deregistration was planned
 * from (a scan, a stream record that may be replayed long after it was written), a lease that
 * is live *now* and names the group keeps its target.
 */

/**
 * Longest time from the confirming read to the DeregisterTargets call giving up (the SDK's
 * retries and its adaptive rate limiter included). Past it the read is too old to act on: the
 * call is abandoned, the leases are read again and the call is sent again. A lease acquired on
 * the address:port within this window can still see its target removed; the stream record of
 * that acquire (sync), or the next reconcile pass, puts it back.
 */
export const DEREGISTER_DEADLINE_MS = 2000;

/** Read-and-send rounds before a deregistration is reported as failed. */
export const DEREGISTER_ROUNDS = 5;

/** Whether `item` (read just now) still wants `target` in `targetGroupArn`. */
export function stillWanted(item: RawItem | undefined, targetGroupArn: string, policy: AddressPolicy, routing: RoutingConfig, nowSeconds: number): boolean {
  if (!item) return false;
  const decoded = decodeLease(item, policy);
  if (!decoded.ok || !isLive(decoded.lease, nowSeconds)) return false;
  return routeLease(decoded.lease, routing).memberships.some((m) => m.targetGroupArn === targetGroupArn);
}

/** `fn` over `items`, at most `limit` at a time, results in order. A failure rejects. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}

/** Consistent reads of `keys`, at most `limit` at a time. A failed read rejects. */
export async function readLeases(store: LeaseStore, keys: readonly string[], limit = 16): Promise<Map<string, RawItem | undefined>> {
  const items = await mapLimit(keys, limit, (key) => store.get(key, true));
  return new Map(keys.map((key, i) => [key, items[i]]));
}

export interface ConfirmDeps {
  readonly store: LeaseStore;
  readonly elb: ElbTargets;
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
  /** Epoch milliseconds. @default Date.now */
  readonly now?: () => number;
  /** @default DEREGISTER_DEADLINE_MS */
  readonly deadlineMs?: number;
  /** @default DEREGISTER_ROUNDS */
  readonly rounds?: number;
  /**
   * A further filter on the targets a read confirmed (reconcile's safety valve keeps only
   * those proven dead). Whatever it drops counts as withheld.
   */
  readonly refine?: (confirmed: TargetRef[], reads: ReadonlyMap<string, RawItem | undefined>, nowSeconds: number) => TargetRef[];
}

/** What both the sync and reconcile paths hand to {@link deregisterConfirmed}, from their own deps. */
export function confirmDepsOf(
  deps: { readonly elb: ElbTargets; readonly policy: AddressPolicy; readonly routing: RoutingConfig; readonly now?: () => number; readonly deregisterDeadlineMs?: number },
  store: LeaseStore,
): ConfirmDeps {
  return {
    store,
    elb: deps.elb,
    policy: deps.policy,
    routing: deps.routing,
    ...(deps.now ? { now: deps.now } : {}),
    ...(deps.deregisterDeadlineMs === undefined ? {} : { deadlineMs: deps.deregisterDeadlineMs }),
  };
}

export interface ConfirmedOutcome {
  readonly applied: string[];
  /** Deregistered, then found wanted by a lease acquired while the call was in flight: registered again at once. */
  readonly reinstated: string[];
  /** The read showed the lease still wants the target in the group (or `refine` kept it): not sent. */
  readonly withheld: TargetRef[];
  /** Not applied after every round (ELB kept failing, the deadline kept passing, or a read failed): try again later. */
  readonly transientFailures: string[];
  /** Refused by ELB for good. */
  readonly rejected: { key: string; error: ElbTargetsError }[];
  readonly calls: number;
  readonly firstTransientError?: ElbTargetsError;
}

/**
 * Deregisters `targets` from `targetGroupArn` in rounds: read every lease (consistent), drop the
 * targets whose lease wants them now, send the rest with a deadline from the read; what the
 * deadline or ELB failed is read and sent again, up to `rounds` times. After a call lands, its
 * targets' leases are read once more and any that a new lease wants is registered again.
 */
export async function deregisterConfirmed(deps: ConfirmDeps, targetGroupArn: string, targets: readonly TargetRef[]): Promise<ConfirmedOutcome> {
  const now = deps.now ?? Date.now;
  const applied: string[] = [];
  const reinstated: string[] = [];
  const withheld: TargetRef[] = [];
  const rejected: ConfirmedOutcome['rejected'] = [];
  let calls = 0;
  let firstTransientError: ElbTargetsError | undefined;
  let pending = [...targets];
  for (let round = 0; round < (deps.rounds ?? DEREGISTER_ROUNDS) && pending.length > 0; round++) {
    const readAtMs = now();
    let reads: Map<string, RawItem | undefined>;
    try {
      reads = await readLeases(deps.store, [...new Set(pending.map((t) => t.key))]);
    } catch {
      break;
    }
    const nowSeconds = Math.floor(now() / 1000);
    const unwanted = pending.filter((t) => !stillWanted(reads.get(t.key), targetGroupArn, deps.policy, deps.routing, nowSeconds));
    const send = deps.refine ? deps.refine(unwanted, reads, nowSeconds) : unwanted;
    withheld.push(...pending.filter((t) => !send.includes(t)));
    if (send.length === 0) {
      pending = [];
      break;
    }
    const abortSignal = AbortSignal.timeout(Math.max(1, readAtMs + (deps.deadlineMs ?? DEREGISTER_DEADLINE_MS) - now()));
    const outcome = await deps.elb.deregister(targetGroupArn, send, { abortSignal });
    calls += outcome.calls;
    applied.push(...outcome.applied);
    rejected.push(...outcome.rejected);
    firstTransientError ??= outcome.firstTransientError;
    const failed = new Set(outcome.transientFailures);
    pending = send.filter((t) => failed.has(t.key));
    // A lease acquired on the address:port between the read and the landing of the call gets its
    // target back now, not at its stream record (which may be far behind) or the next pass.
    const done = new Set(outcome.applied);
    const landed = send.filter((t) => done.has(t.key));
    if (landed.length > 0) {
      try {
        const after = await readLeases(deps.store, landed.map((t) => t.key));
        const seconds = Math.floor(now() / 1000);
        const back = landed.filter((t) => stillWanted(after.get(t.key), targetGroupArn, deps.policy, deps.routing, seconds));
        if (back.length > 0) {
          const again = await deps.elb.register(targetGroupArn, back);
          calls += again.calls;
          reinstated.push(...again.applied);
        }
      } catch {
        // the stream record of that lease, or the next reconcile pass, registers it
      }
    }
  }
  return {
    applied,
    reinstated,
    withheld,
    transientFailures: pending.map((t) => t.key),
    rejected,
    calls,
    ...(pending.length > 0 && firstTransientError ? { firstTransientError } : {}),
  };
}

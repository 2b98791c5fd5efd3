import { AddressPolicy, formatTarget } from '../core/address-policy';
import { ElbTargetsError, LeaseRejection } from '../core/errors';
import { RawItem, RoutingConfig, TargetRef } from '../core/lease-schema';
import { ObservedGroup, PlannedDeregistration, planReconcile, provenDeregistrations } from '../core/reconcile-planner';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { confirmDepsOf, deregisterConfirmed, mapLimit, readLeases, stillWanted } from './lease-confirmation';

export interface ReconcileDeps {
  readonly elb: ElbTargets;
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  readonly safetyValveShare: number;
  /** Epoch milliseconds. */
  readonly now?: () => number;
  /**
   * Longest time from the confirming read of a group's leases to its DeregisterTargets call
   * giving up (the SDK's retries included); the leases are then read again and the call sent
   * again, a few rounds, then left to the next pass. @default DEREGISTER_DEADLINE_MS (2000)
   */
  readonly deregisterDeadlineMs?: number;
}

export interface ReconcileReport {
  readonly liveLeases: number;
  readonly expiredLeasesDeleted: number;
  readonly driftRegistered: number;
  readonly driftDeregistered: number;
  /** Groups where the safety valve held back deregistrations. */
  readonly safetyValveTripped: readonly string[];
  /** Deregistrations a second read showed to be wrong (a lease appeared meanwhile): not sent. */
  readonly deregistrationsWithheld: number;
  readonly elbCalls: number;
  readonly describeCalls: number;
  readonly consumedReadUnits: number;
  readonly rejections: readonly LeaseRejection[];
  readonly errors: readonly ElbTargetsError[];
}

/**
 * The targets of `add` the group still lacks. During a join storm the stream registers new
 * leases between this pass's group read and its registrations; looking again costs one
 * DescribeTargetHealth, while a redundant RegisterTargets would spend the account's scarce
 * Register/Deregister budget. If the look fails, register them all (registering is idempotent).
 */
async function stillMissing(elb: ElbTargets, targetGroupArn: string, add: TargetRef[]): Promise<TargetRef[]> {
  try {
    const present = new Set((await elb.describe(targetGroupArn)).map((t) => formatTarget(t.id, t.port)));
    return add.filter((t) => !present.has(t.key));
  } catch {
    return add;
  }
}

/**
 * One level-triggered pass. Order matters: target groups are read before the leases (with
 * consistent reads), and every deregistration is confirmed by a fresh consistent read of its
 * lease right before the call (after the group's registrations, whose retries can take
 * seconds), with a deadline on the call, so a target whose lease is live is never taken out of
 * rotation on the strength of an old read.
 */
export async function reconcileOnce(deps: ReconcileDeps): Promise<ReconcileReport> {
  const nowMs = (deps.now ?? Date.now)();
  const nowSeconds = Math.floor(nowMs / 1000);

  const groups: ObservedGroup[] = await Promise.all(
    Object.entries(deps.routing.capabilities).map(async ([capability, route]) => ({
      capability,
      targetGroupArn: route.targetGroupArn,
      targets: await deps.elb.describe(route.targetGroupArn),
    })),
  );
  const scan = await deps.store.scanAll(true);
  const plan = planReconcile({
    groups,
    items: scan.items,
    nowSeconds,
    policy: deps.policy,
    routing: deps.routing,
    safetyValveShare: deps.safetyValveShare,
  });

  const deleted = await mapLimit(plan.expired, 16, (e) => deps.store.deleteIfExpired(e.target, e.cutoff));
  const errors: ElbTargetsError[] = [];
  const tripped: string[] = [];
  let driftRegistered = 0;
  let driftDeregistered = 0;
  let withheld = 0;
  let elbCalls = 0;

  // Second read of every lease whose target we are about to register: a lease released since
  // the scan must not be registered again by this pass. (Deregistrations read again just before
  // their own call, below.)
  const secondRead = await readLeases(deps.store, [...new Set(plan.groups.flatMap((g) => g.register.map((t) => t.key)))]);

  await Promise.all(
    plan.groups.map(async (group) => {
      let add = group.register.filter((t) => stillWanted(secondRead.get(t.key), group.targetGroupArn, deps.policy, deps.routing, nowSeconds));
      if (add.length > 0) add = await stillMissing(deps.elb, group.targetGroupArn, add);
      if (add.length > 0) {
        const outcome = await deps.elb.register(group.targetGroupArn, add);
        driftRegistered += outcome.applied.length;
        elbCalls += outcome.calls;
        if (outcome.firstTransientError) errors.push(outcome.firstTransientError);
        errors.push(...outcome.rejected.map((r) => r.error));
      }
      if (group.valveTripped) tripped.push(group.capability);
      if (group.deregister.length === 0) return;
      // A lease acquired on the same address:port while the registrations above were being
      // retried must keep its target: confirm now, with a deadline on the call (in rounds).
      const planned = new Map(group.deregister.map((d) => [d.target.key, d]));
      const outcome = await deregisterConfirmed(
        {
          ...confirmDepsOf(deps, deps.store),
          ...(group.valveTripped
            ? {
                refine: (confirmed: TargetRef[], reads: ReadonlyMap<string, RawItem | undefined>, seconds: number) =>
                  provenDeregistrations(confirmed.map((t) => planned.get(t.key) as PlannedDeregistration), reads, seconds, deps.policy).map((d) => d.target),
              }
            : {}),
        },
        group.targetGroupArn,
        group.deregister.map((d) => d.target),
      );
      withheld += outcome.withheld.length;
      driftDeregistered += outcome.applied.length;
      driftRegistered += outcome.reinstated.length;
      elbCalls += outcome.calls;
      if (outcome.firstTransientError) errors.push(outcome.firstTransientError);
      errors.push(...outcome.rejected.map((r) => r.error));
    }),
  );

  return {
    liveLeases: plan.liveLeases,
    expiredLeasesDeleted: deleted.filter(Boolean).length,
    driftRegistered,
    driftDeregistered,
    safetyValveTripped: tripped,
    deregistrationsWithheld: withheld,
    elbCalls,
    describeCalls: groups.length,
    consumedReadUnits: scan.consumedReadUnits,
    rejections: plan.rejections,
    errors,
  };
}

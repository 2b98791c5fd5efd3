import { AddressPolicy } from '../core/address-policy';
import { ElbTargetsError, LeaseRejection } from '../core/errors';
import { decodeLease, isLive } from '../core/lease-codec';
import { routeLease } from '../core/lease-routing';
import { RawItem, RoutingConfig, TargetRef } from '../core/lease-schema';
import { ObservedGroup, PlannedDeregistration, planReconcile, provenDeregistrations } from '../core/reconcile-planner';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';

export interface ReconcileDeps {
  readonly elb: ElbTargets;
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  readonly safetyValveShare: number;
  /** Epoch milliseconds. */
  readonly now?: () => number;
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

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
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

/** Whether `item` (read just now) still wants `target` in `targetGroupArn`. */
function stillWanted(item: RawItem | undefined, targetGroupArn: string, deps: ReconcileDeps, nowSeconds: number): boolean {
  if (!item) return false;
  const decoded = decodeLease(item, deps.policy);
  if (!decoded.ok || !isLive(decoded.lease, nowSeconds)) return false;
  return routeLease(decoded.lease, deps.routing).memberships.some((m) => m.targetGroupArn === targetGroupArn);
}

/**
 * One level-triggered pass. Order matters: target groups are read before the leases (with
 * consistent reads), and every deregistration is confirmed by a fresh consistent read of its
 * lease, so a target whose lease is live is never taken out of rotation.
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

  const deleted = await mapLimit(plan.expired, 16, (e) => deps.store.deleteIfExpired(e.target, nowSeconds));
  const errors: ElbTargetsError[] = [];
  const tripped: string[] = [];
  let driftRegistered = 0;
  let driftDeregistered = 0;
  let withheld = 0;
  let elbCalls = 0;

  // Second read of every lease whose target we are about to move: a lease released or acquired
  // since the scan must not be undone by this pass.
  const candidates = [
    ...new Set(plan.groups.flatMap((g) => [...g.deregister.map((d) => d.target.key), ...g.register.map((t) => t.key)])),
  ];
  const secondRead = new Map<string, RawItem | undefined>();
  await mapLimit(candidates, 16, async (key) => secondRead.set(key, await deps.store.get(key, true)));

  await Promise.all(
    plan.groups.map(async (group) => {
      const add = group.register.filter((t) => stillWanted(secondRead.get(t.key), group.targetGroupArn, deps, nowSeconds));
      if (add.length > 0) {
        const outcome = await deps.elb.register(group.targetGroupArn, add);
        driftRegistered += outcome.applied.length;
        elbCalls += outcome.calls;
        if (outcome.firstTransientError) errors.push(outcome.firstTransientError);
        errors.push(...outcome.rejected.map((r) => r.error));
      }
      let remove: PlannedDeregistration[] = group.deregister.filter(
        (d) => !stillWanted(secondRead.get(d.target.key), group.targetGroupArn, deps, nowSeconds),
      );
      withheld += group.deregister.length - remove.length;
      if (group.valveTripped) {
        tripped.push(group.capability);
        const proven = provenDeregistrations(remove, secondRead, nowSeconds);
        withheld += remove.length - proven.length;
        remove = proven;
      }
      if (remove.length === 0) return;
      const targets: TargetRef[] = remove.map((d) => d.target);
      const outcome = await deps.elb.deregister(group.targetGroupArn, targets);
      driftDeregistered += outcome.applied.length;
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

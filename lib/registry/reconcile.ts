import type { LoadBalancerPlacement } from '../core/target-quota';
import { AddressPolicy, formatTarget } from '../core/address-policy';
import { mapLimit } from '../core/concurrency';
import { Ec2LookupError, ElbTargetsError, LeaseRejection } from '../core/errors';
import { RoutingConfig, TargetRef } from '../core/lease-schema';
import { catalogChangesOfWrites } from '../core/catalog-members';
import { BudgetReport, budgetReport, emptyQueue, enqueue, priorityOf, rankCalls } from '../core/elb-call-budget';
import { GroupRepair, memberKey, ObservedGroup, planReconcile, presenceOf } from '../core/reconcile-planner';
import { planRejectionsFromScan } from '../core/rejection-planner';
import { LandedCall, mergeRotationWrites, planCallRotation, planObservedRotation, rotationEntries } from '../core/rotation-planner';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { AdmissionDeps } from './admission-lookup';
import { addCatalogReports, CatalogReport, NO_CATALOG_CHANGE, RegistryCatalog, repairCatalog, updateCatalogForLeases } from './catalog-update';
import { applyConfirmed, ConfirmDeps, ConfirmedOutcome } from './confirmed-changes';
import { newReconcileMemory, ReconcileMemory } from './container-memory';
import { readGroups } from './group-reads';
import { gateReconcile } from './reconcile-gate';
import { observedWrites, RegistryWriteReport, widthOf, WriteWidth, writeRegistryEntries } from './registry-writes';
import { guardVariants, VariantGuardDeps } from './variant-guard';

/** Longest a DescribeTargetHealth of the pass may take (SDK retries included) before the pass gives up; the next pass tries again. */
export const DESCRIBE_DEADLINE_MS = 5000;

/**
 * Longest one pass keeps at its work: past it no call is sent or waited for (what is left is the
 * next pass's), so a dead lease's target leaves within one interval and two pass budgets of its
 * lease's death however ELB behaves (see RELIABILITY.md). Its reads and describes start within it.
 */
export const PASS_BUDGET_MS = 15_000;

/** Target groups a pass repairs at once. */
export const GROUPS_AT_A_TIME = 4;

export interface ReconcileDeps {
  readonly elb: ElbTargets;
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  readonly safetyValveShare: number;
  /** Epoch milliseconds. */
  readonly now?: () => number;
  /**
   * Longest time from the confirming read of a group's leases to its Register/DeregisterTargets
   * call giving up (the SDK's retries included); the leases are then read again and the call sent
   * again, a few rounds, then left to the next pass. @default DECISION_DEADLINE_MS (2000)
   */
  readonly deadlineMs?: number;
  /** @default PASS_BUDGET_MS */
  readonly passBudgetMs?: number;
  /**
   * What the last passes of this container saw: removals the safety valve held back, targets ELB
   * refused. A cold start begins empty, so a held removal waits one more pass (the safe direction).
   * @default a fresh memory per call (every valve hold then waits for a warm container)
   */
  readonly memory?: ReconcileMemory;
  /**
   * Weighted variants to hold out of their capability's rules while they have no healthy target
   * (see lib/core/variant-weights.ts). @default - none
   */
  readonly variants?: VariantGuardDeps;
  /**
   * Admission by EC2's facts: missing targets are registered only when EC2 admits their address,
   * registered ones it refuses two passes in a row are removed. @default none: nothing is checked against EC2
   */
  readonly admission?: Omit<AdmissionDeps, 'cache'>;
  /** Registered targets each load balancer may hold; registrations beyond are rejected `over-quota`. @default no quota */
  readonly targetQuota?: number;
  /** Which load balancer each group is on: each load balancer's targets are counted against the quota apart. @default - every group on one */
  readonly loadBalancers?: LoadBalancerPlacement;
  /** The capability catalog: its member index repaired from the pass's scan, its document counted again. @default - no catalog */
  readonly catalog?: RegistryCatalog;
  /** Leases (and catalog entries) the pass writes into at once. @default observedWrites(): paced by their latency, afresh each pass */
  readonly writesAtATime?: WriteWidth;
}

export interface ReconcileReport {
  readonly liveLeases: number;
  readonly expiredLeasesDeleted: number;
  /** Leases whose `expiresAt` lay beyond the maximum lease TTL, or items with none at all, deleted (never routed, they only held their key). */
  readonly farFutureLeasesDeleted: number;
  readonly driftRegistered: number;
  /** Of those, targets ELB was draining that a live lease wants: registered again. */
  readonly drainingRevived: number;
  readonly driftDeregistered: number;
  /** Groups where the safety valve held back removals of targets without a lease. */
  readonly safetyValveTripped: readonly string[];
  /** Removals held back for a second pass to agree (their lease is absent, and too many would go at once). */
  readonly removalsHeld: number;
  /** Changes a confirming read showed to be wrong (the lease changed since the scan): not sent. */
  readonly deregistrationsWithheld: number;
  readonly registrationsWithheld: number;
  /** Live leases whose target ELB refused for good at this lease version: not sent again. */
  readonly refusedBefore: number;
  readonly elbCalls: number;
  readonly describeCalls: number;
  readonly consumedReadUnits: number;
  readonly rejections: readonly LeaseRejection[];
  readonly errors: readonly ElbTargetsError[];
  /**
   * The registry's writes into leases: each held lease's `rotation` state in every group read, as
   * the read showed it (`absent` when not there), where the lease said otherwise; over that, what
   * the pass's own calls did (`initial`, `draining`); and every scanned lease's `rejection` (not
   * expired) where its verdict differs from what it holds — what stream sync missed (a failed
   * write, a deployment that now routes a capability). On change only, conditional on the lease
   * token, one UpdateItem per lease, no ELB call for a rejection.
   */
  readonly registryWrites: RegistryWriteReport;
  /** Leases (per capability) refused because EC2 does not admit their address: missing ones not registered, registered ones suspected or removed. */
  readonly notAdmitted: number;
  /** Registered targets removed because two passes in a row found them not admitted. */
  readonly notAdmittedRemoved: number;
  /** Registrations refused because the load balancer holds its target quota. */
  readonly overQuota: number;
  /** Targets the fullest load balancer held as the pass read its groups (registered or draining): what the quota alarm compares with the per-load-balancer quota. */
  readonly registeredTargets: number;
  /** EC2 calls made for admission. */
  readonly ec2Calls: number;
  /** EC2 could not answer: registrations of the addresses asked about wait for the next pass, no target was removed for it. */
  readonly ec2Error?: Ec2LookupError;
  /** Variants at weight 0 in their capability's weighted rules after this pass: no healthy target. */
  readonly variantsHeldOut: readonly string[];
  /** ModifyRule calls that changed variant weights (holding a variant out or letting it back in). */
  readonly variantRuleChanges: number;
  /** With an ELB call budget: calls per second against it, changes left to the next pass for want of a token. */
  readonly budget?: BudgetReport;
  /** The catalog step: member index entries repaired, and whether the catalog's revision moved. */
  readonly catalog: CatalogReport;
}

/**
 * The targets of `add` the group still lacks in rotation. During a join storm the stream
 * registers new leases between this pass's group read and its registrations; looking again costs
 * one DescribeTargetHealth, while a redundant RegisterTargets would spend the account's scarce
 * Register/Deregister budget. If the look fails, register them all (registering is idempotent).
 */
async function stillMissing(elb: ElbTargets, targetGroupArn: string, add: readonly TargetRef[], abortSignal: AbortSignal): Promise<TargetRef[]> {
  try {
    const described = await elb.describe(targetGroupArn, { abortSignal });
    const present = new Set(described.filter((t) => presenceOf(t) === 'registered').map((t) => formatTarget(t.id, t.port)));
    return add.filter((t) => !present.has(t.key));
  } catch {
    return [...add];
  }
}

/**
 * One level-triggered pass. Order matters: target groups are read before the leases (with
 * consistent reads), and every change is confirmed by a fresh consistent read of its lease right
 * before its call, with a deadline on the call, so neither a scan that is seconds old nor a lease
 * that changed meanwhile can take a live target out of rotation or put a dead one in. Expired
 * leases are deleted last, and only once their targets are out: until then they are the proof
 * that lets a removal go at once.
 */
export async function reconcileOnce(deps: ReconcileDeps): Promise<ReconcileReport> {
  const now = deps.now ?? Date.now;
  const nowMs = now();
  const nowSeconds = Math.floor(nowMs / 1000);
  const memory = deps.memory ?? newReconcileMemory();
  const passStarted = Date.now(); // wall clock for the budget's rate (`now` may be fixed)
  const budgetEnd = nowMs + (deps.passBudgetMs ?? PASS_BUDGET_MS);
  const describeDeadline = () => AbortSignal.timeout(Math.max(1, Math.min(DESCRIBE_DEADLINE_MS, budgetEnd - now())));

  // A group that cannot be read is left alone this pass; the others are still repaired.
  const { groups, unread } = await readGroups(deps.elb, deps.routing, () => Math.min(DESCRIBE_DEADLINE_MS, budgetEnd - now()));
  if (groups.length === 0 && unread.length > 0) throw unread[0];
  const scan = await deps.store.scanAll(true);
  const plan = planReconcile({
    groups,
    items: scan.items,
    nowSeconds,
    policy: deps.policy,
    routing: deps.routing,
    safetyValveShare: deps.safetyValveShare,
    heldLastPass: memory.heldLastPass,
    refused: memory.refused.snapshot(),
  });
  const read = new Set(groups.map((g) => g.targetGroupArn));
  memory.heldLastPass = new Set([
    ...plan.groups.flatMap((g) => g.held.map((d) => memberKey(g.targetGroupArn, d.target.key))),
    // Holds of a group this pass could not read still stand.
    ...[...memory.heldLastPass].filter((k) => !read.has(k.slice(0, k.indexOf(' ')))),
  ]);

  const gate = await gateReconcile({
    repairs: plan.groups,
    groups,
    items: scan.items,
    context: { ...(deps.admission ? { admission: deps.admission.admission } : {}), routing: deps.routing, policy: deps.policy },
    ...(deps.admission ? { admission: { ...deps.admission, cache: memory.admission } } : {}),
    ...(deps.targetQuota !== undefined ? { targetQuota: deps.targetQuota } : {}),
    ...(deps.loadBalancers ? { loadBalancers: deps.loadBalancers } : {}),
    notAdmittedLastPass: memory.notAdmittedLastPass,
    nowMs,
  });
  memory.notAdmittedLastPass = new Set([
    ...gate.notAdmittedNow,
    // Suspicions in a group this pass could not read still stand.
    ...[...memory.notAdmittedLastPass].filter((k) => !read.has(k.slice(0, k.indexOf(' ')))),
  ]);

  const tally = newTally();
  for (const error of unread) tally.errors.push(error instanceof ElbTargetsError ? error : new ElbTargetsError('?', true, String(error), { cause: error }));
  const confirmDeps = { ...deps, refused: memory.refused, budgetEnd, refusedMembers: gate.refusedMembers };
  // Per group, registrations and deregistrations run side by side, each confirmed by its own read
  // right before its call: neither waits out the other's retries, and both fit the pass budget.
  // A few groups at a time: ELB answers a crowd of calls slowly (past their deadlines), and its
  // Describe* calls share a bucket of 40, refilled 10/s.
  for (const group of gate.repairs) {
    tally.refusedBefore += group.refused.length;
    for (const d of group.held) tally.stillRegistered.add(d.target.key);
  }
  // Most urgent groups first (they take the ELB call budget's tokens first): see repairOrder.
  await mapLimit(repairOrder(gate.repairs, groups, nowMs), GROUPS_AT_A_TIME, (group) =>
    Promise.all([registerMissing(group, confirmDeps, describeDeadline, tally), deregisterStale(group, confirmDeps, tally)]),
  );

  // Readiness is read before the repairs: a target registered this pass is `initial`, not healthy yet.
  const guard = deps.variants
    ? await guardVariants(deps.variants, deps.routing, groups, describeDeadline)
    : { heldOut: [], ruleChanges: 0, errors: [] };
  tally.errors.push(...guard.errors);

  // Expired leases are swept once their targets are out; with a group unread, none are (they stay as proof).
  const sweep = unread.length > 0 ? [] : plan.expired.filter((e) => !tally.stillRegistered.has(e.target));
  const sweepFar = unread.length > 0 ? [] : plan.tooFar.filter((e) => !tally.stillRegistered.has(e.target));
  const sweepNoExpiry = unread.length > 0 ? [] : plan.noExpiry.filter((target) => !tally.stillRegistered.has(target));
  const observed = planObservedRotation({ groups, items: scan.items, observedAtMs: nowMs, policy: deps.policy, routing: deps.routing });
  const rotation = rotationEntries(mergeRotationWrites(planCallRotation(tally.landed, now(), deps.policy, deps.routing, observed), observed));
  const writesAtATime = deps.writesAtATime ?? observedWrites();
  const [deleted, deletedFar, deletedNoExpiry, registryWrites] = await Promise.all([
    mapLimit(sweep, 16, (e) => deps.store.deleteIfExpired(e.target, e.cutoff)),
    mapLimit(sweepFar, 16, (e) => deps.store.deleteIfExpiresAfter(e.target, e.latest)),
    mapLimit(sweepNoExpiry, 16, (target) => deps.store.deleteIfNoExpiry(target)),
    // Admission's and the quota's refusals ride with each lease's rejection.
    writeRegistryEntries(deps.store, rotation, planRejectionsFromScan(scan.items, deps.policy, deps.routing, nowMs, gate.facts), writesAtATime),
  ]);
  // Last, and separate: the entries of the leases this pass wrote `rotation` into (read after the
  // writes; stream sync leaves those records to their writer), then the member index against the
  // scan (entries just written are newer than it and left alone), and the document counted again.
  const catalogDeps = deps.catalog && { ...deps.catalog, store: deps.store, routing: deps.routing, policy: deps.policy, now };
  const written = catalogDeps && registryWrites.changed > 0 ? await updateCatalogForLeases(catalogDeps, catalogChangesOfWrites(rotation, deps.routing), widthOf(writesAtATime)) : NO_CATALOG_CHANGE;
  const catalog = catalogDeps ? addCatalogReports(written, await repairCatalog(catalogDeps, scan.items, nowMs)) : NO_CATALOG_CHANGE;

  return {
    liveLeases: plan.liveLeases,
    expiredLeasesDeleted: deleted.filter(Boolean).length,
    farFutureLeasesDeleted: deletedFar.filter(Boolean).length + deletedNoExpiry.filter(Boolean).length,
    driftRegistered: tally.driftRegistered,
    drainingRevived: tally.drainingRevived,
    driftDeregistered: tally.driftDeregistered,
    safetyValveTripped: plan.groups.filter((g) => g.valveTripped).map((g) => g.capability),
    removalsHeld: plan.groups.reduce((n, g) => n + g.held.length, 0),
    deregistrationsWithheld: tally.deregistrationsWithheld,
    registrationsWithheld: tally.registrationsWithheld,
    refusedBefore: tally.refusedBefore,
    elbCalls: tally.elbCalls,
    describeCalls: groups.length + unread.length,
    consumedReadUnits: scan.consumedReadUnits,
    rejections: [...plan.rejections, ...gate.rejections],
    notAdmitted: gate.notAdmitted,
    notAdmittedRemoved: tally.notAdmittedRemoved,
    overQuota: gate.overQuota,
    registeredTargets: gate.registeredTargets,
    ec2Calls: gate.ec2Calls,
    ...(gate.ec2Error ? { ec2Error: gate.ec2Error } : {}),
    errors: tally.errors,
    registryWrites,
    variantsHeldOut: guard.heldOut,
    variantRuleChanges: guard.ruleChanges,
    catalog,
    ...(deps.elb.gate ? { budget: budgetReport(deps.elb.gate.budget, tally.elbCalls, Date.now() - passStarted, tally.unsent, tally.unsent > 0 ? Date.now() - passStarted : 0) } : {}),
  };
}

/** What one pass did, summed over its groups. */
interface Tally {
  driftRegistered: number;
  drainingRevived: number;
  driftDeregistered: number;
  notAdmittedRemoved: number;
  registrationsWithheld: number;
  deregistrationsWithheld: number;
  refusedBefore: number;
  elbCalls: number;
  /** Changes not applied this pass (ELB failing, or no token within the pass budget). */
  unsent: number;
  readonly errors: ElbTargetsError[];
  /** Keys whose target is still registered somewhere although planned to leave: their expired lease stays as proof. */
  readonly stillRegistered: Set<string>;
  /** Calls that landed, with the lease read that confirmed each: the rotation they leave. */
  readonly landed: LandedCall[];
}

function newTally(): Tally {
  return {
    driftRegistered: 0,
    drainingRevived: 0,
    driftDeregistered: 0,
    notAdmittedRemoved: 0,
    registrationsWithheld: 0,
    deregistrationsWithheld: 0,
    refusedBefore: 0,
    elbCalls: 0,
    unsent: 0,
    errors: [],
    stillRegistered: new Set(),
    landed: [],
  };
}

async function registerMissing(group: GroupRepair, deps: ConfirmDeps, describeDeadline: () => AbortSignal, tally: Tally): Promise<void> {
  if (group.register.length === 0) return;
  const add = await stillMissing(deps.elb, group.targetGroupArn, group.register, describeDeadline());
  if (add.length === 0) return;
  const outcome = await applyConfirmed(deps, 'register', group.targetGroupArn, add);
  const revived = new Set(group.revive.map((t) => t.key));
  tally.driftRegistered += outcome.applied.length;
  tally.landed.push(...landedCalls('register', group.targetGroupArn, outcome));
  tally.drainingRevived += outcome.applied.filter((k) => revived.has(k)).length;
  tally.driftDeregistered += outcome.undone.length;
  tally.registrationsWithheld += outcome.withheld.length;
  tally.refusedBefore += outcome.skippedRefused.length;
  tally.elbCalls += outcome.calls;
  tally.unsent += outcome.transientFailures.length;
  if (outcome.firstTransientError) tally.errors.push(outcome.firstTransientError);
  tally.errors.push(...outcome.rejected.map((r) => r.error));
}

async function deregisterStale(group: GroupRepair, deps: ConfirmDeps, tally: Tally): Promise<void> {
  if (group.deregister.length === 0) return;
  const outcome = await applyConfirmed(
    deps,
    'deregister',
    group.targetGroupArn,
    group.deregister.map((d) => d.target),
  );
  tally.driftDeregistered += outcome.applied.length;
  const notAdmitted = new Set(group.deregister.filter((d) => d.reason === 'not-admitted').map((d) => d.target.key));
  tally.notAdmittedRemoved += outcome.applied.filter((k) => notAdmitted.has(k)).length;
  tally.landed.push(...landedCalls('deregister', group.targetGroupArn, outcome));
  tally.driftRegistered += outcome.undone.length;
  tally.deregistrationsWithheld += outcome.withheld.length;
  tally.elbCalls += outcome.calls;
  for (const key of outcome.transientFailures) tally.stillRegistered.add(key);
  tally.unsent += outcome.transientFailures.length;
  if (outcome.firstTransientError) tally.errors.push(outcome.firstTransientError);
  tally.errors.push(...outcome.rejected.map((r) => r.error));
}

function landedCalls(action: LandedCall['action'], targetGroupArn: string, outcome: ConfirmedOutcome): LandedCall[] {
  return outcome.applied.map((target) => ({ action, targetGroupArn, target, item: outcome.confirmedBy.get(target) }));
}

/**
 * The groups to repair, most urgent first (the pure rank of lib/core/elb-call-budget.ts):
 * registrations, and removals of targets ELB still sends requests to, before removals of targets
 * ELB reports unhealthy, draining or unused. Only the order changes, never what is sent.
 */
function repairOrder(repairs: readonly GroupRepair[], observed: readonly ObservedGroup[], nowMs: number): GroupRepair[] {
  if (repairs.length < 2) return [...repairs];
  const states = new Map(observed.flatMap((g) => g.targets.map((t) => [memberKey(g.targetGroupArn, formatTarget(t.id, t.port)), t.state] as const)));
  const queue = enqueue(
    emptyQueue(),
    repairs.flatMap((g) => [
      ...g.register.map((t) => ({ targetGroupArn: g.targetGroupArn, target: t, action: 'register' as const })),
      ...g.deregister.map((d) => ({
        targetGroupArn: g.targetGroupArn,
        target: d.target,
        action: 'deregister' as const,
        priority: priorityOf('deregister', states.get(memberKey(g.targetGroupArn, d.target.key))),
      })),
    ]),
    nowMs,
  );
  const rank = new Map<string, number>();
  rankCalls(queue).forEach((call, i) => {
    if (!rank.has(call.targetGroupArn)) rank.set(call.targetGroupArn, i);
  });
  return [...repairs].sort((a, b) => (rank.get(a.targetGroupArn) ?? Infinity) - (rank.get(b.targetGroupArn) ?? Infinity));
}

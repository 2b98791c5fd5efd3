import type { LoadBalancerPlacement } from '../core/target-quota';
import { AddressPolicy } from '../core/address-policy';
import { Ec2LookupError, ElbTargetsError, LeaseRejection, LeaseStoreError } from '../core/errors';
import { TargetAction } from '../core/lease-confirmation';
import { LEASE_ATTR, RoutingConfig, TargetRef } from '../core/lease-schema';
import { factDecisions, planRejectionsFromRecords } from '../core/rejection-planner';
import { LandedCall, mergeRotationWrites, planCallRotation, planRestoredRotation, rotationEntries } from '../core/rotation-planner';
import { BudgetReport, budgetReport, ElbCallGate, emptyQueue, enqueue, priorityOf, rankCalls } from '../core/elb-call-budget';
import { decodeRotation, rotationEntry } from '../core/lease-codec';
import { catalogChangesOfWrites } from '../core/catalog-members';
import { firstUnappliedRecord, LeaseChangeRecord, planStreamBatch, RECORD_KINDS, RecordKind, replayChangesToSend } from '../core/stream-planner';
import { formatTarget } from '../core/address-policy';
import { presenceOf } from '../core/reconcile-planner';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { AdmissionDeps } from './admission-lookup';
import { CatalogReport, NO_CATALOG_CHANGE, RegistryCatalog, updateCatalogForLeases } from './catalog-update';
import { applyConfirmed, ConfirmedOutcome, DECISION_DEADLINE_MS, PriorReads } from './confirmed-changes';
import { newSyncMemory, SyncMemory } from './container-memory';
import { countLanded, gateSyncRegistrations } from './registration-gate';
import { RegistryWriteReport, writeRegistryEntries } from './registry-writes';

export interface StreamSyncDeps {
  readonly elb: ElbTargets;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  /**
   * The lease table. Every planned change is confirmed against it before it is sent: one
   * consistent BatchGetItem per 100 changed targets of a batch (heartbeats cost nothing), so a
   * late, duplicated or replayed record can neither register a lease that is not live now nor
   * deregister one that is.
   */
  readonly store: LeaseStore;
  /** Epoch milliseconds, for the confirmation's liveness check. @default Date.now */
  readonly now?: () => number;
  /** Longest time from a confirming read to its call giving up (then read and sent again). @default DECISION_DEADLINE_MS (2000) */
  readonly deadlineMs?: number;
  /** What this container remembers between batches (refused targets, changes already applied, EC2's answers, the target count). @default a fresh memory per call */
  readonly memory?: SyncMemory;
  /**
   * With an ELB call budget (a gate on `elb`): longest a batch waits for tokens. Changes still
   * without one then are reported unapplied, and the stream delivers them again from their first
   * record, merged with the records that came meanwhile: under load, fewer and fuller calls.
   * Short, so that records written meanwhile join the queue soon: the next invocation ranks them
   * with the changes still waiting, oldest first, and a change waits about one round of the
   * budget, not a whole batch's round and then its own.
   * @default SYNC_BATCH_BUDGET_MS (5 000)
   */
  readonly batchBudgetMs?: number;
  /**
   * Admission by EC2's facts: a registration is sent only when EC2 shows its address in an
   * admitted security group (one lookup per batch for its new addresses, cached per container).
   * @default none: nothing is checked against EC2
   */
  readonly admission?: Omit<AdmissionDeps, 'cache'>;
  /** Registered targets each load balancer may hold; registrations beyond are rejected `over-quota`. @default no quota */
  readonly targetQuota?: number;
  /** Which load balancer each group is on, for the quota. @default - every group on one */
  readonly loadBalancers?: LoadBalancerPlacement;
  /**
   * The capability catalog, kept current here only for the leases the batch writes `rotation` into
   * (the catalog stream reader, lib/registry/catalog-stream.ts, follows every other change; never a
   * reason to retry the batch). @default - no catalog
   */
  readonly catalog?: RegistryCatalog;
}

/** See {@link StreamSyncDeps.batchBudgetMs}. */
export const SYNC_BATCH_BUDGET_MS = 5_000;

export interface StreamSyncReport {
  readonly records: number;
  readonly kinds: Readonly<Record<RecordKind, number>>;
  readonly registrations: number;
  readonly deregistrations: number;
  /** Registrations the confirming read refused (the lease is not live now, or does not name the group): not sent. */
  readonly registrationsWithheld: number;
  /** Deregistrations the confirming read refused (the lease is live now and names the group): not sent. */
  readonly deregistrationsWithheld: number;
  /** Changes this container had already applied for the same record (a batch delivered again): not sent again. */
  readonly alreadyApplied: number;
  /**
   * Changes sent only because the batch may be a retry whose earlier delivery landed part of it
   * (TargetGroupChanges.ifReplayed), and the groups read (DescribeTargetHealth) to decide them.
   */
  readonly replayed: { readonly changes: number; readonly groupsRead: number };
  /** Registrations ELB had refused for good at the same lease version: not sent again. */
  readonly refusedBefore: number;
  readonly elbCalls: number;
  /** Leases read to confirm changes (BatchGetItem keys). */
  readonly leasesRead: number;
  /** With an ELB call budget: calls per second against it, changes that waited for a token, the longest wait. */
  readonly budget?: BudgetReport;
  /** How long the batch's confirming read took, ms: what confirmation adds to its registrations' latency. */
  readonly confirmReadMs?: number;
  readonly rejections: readonly LeaseRejection[];
  /** Registrations refused because EC2 does not show their address in an admitted security group (also in `rejections`). */
  readonly notAdmitted: number;
  /** Registrations refused because the load balancer holds its target quota (also in `rejections`). */
  readonly overQuota: number;
  /** EC2 calls made for admission: 0 for a batch without registrations. */
  readonly ec2Calls: number;
  /** EC2 could not say who holds some addresses: their registrations wait for the batch's retry. */
  readonly ec2Error?: Ec2LookupError;
  /** Targets ELB refused for good; dropped so they never block the shard. */
  readonly refusedByElb: readonly { key: string; error: ElbTargetsError }[];
  /** Id of the first record whose change was not applied; the batch is retried from there. */
  readonly firstFailedRecordId?: string;
  readonly transientError?: ElbTargetsError;
  /** The confirming read failed: nothing was sent, the batch is retried from the first changed record. */
  readonly readError?: LeaseStoreError;
  /**
   * The registry's writes into leases, after the calls, one UpdateItem per lease: `rotation`
   * entries `draining` for a deregistration of a lease still held, `initial` for a registration
   * over an entry that said the target was out, and the entries an agent's re-acquire (a
   * PutItem) dropped, written back into the new lease; in the same UpdateItem, the `rejection` of
   * each lease whose last new image the registry refuses (or no longer refuses) otherwise than the
   * image says. A plain registration of a valid lease writes nothing. Never a reason to retry the
   * batch.
   */
  readonly registryWrites: RegistryWriteReport;
  /** The catalog step for the leases the batch wrote `rotation` into: their member index entries and, if the counts moved, a new catalog revision. */
  readonly catalog: CatalogReport;
}

/**
 * Applies one stream batch: plan and coalesce from the images (pure), drop the changes this
 * container already applied for the same records, confirm the rest with one batched consistent
 * read, then per target group at most one RegisterTargets and one DeregisterTargets (chunked at
 * 200; a call that failed or overran its deadline is read and sent again), registrations first,
 * groups in parallel. Only then the registry's writes into leases, if any.
 *
 * A landed call is not read again and undone here, as reconcile does: whatever made a lease
 * contradict a call after its confirming read is a later write to that lease, whose record the
 * stream brings to the next batch (records of one key never overtake each other). So an undo
 * would only spend a third call on a group a batch after which the stream repairs it anyway.
 */
export async function syncStreamBatch(records: readonly LeaseChangeRecord[], deps: StreamSyncDeps): Promise<StreamSyncReport> {
  const plan = planStreamBatch(records, deps.policy, deps.routing);
  const memory = deps.memory ?? newSyncMemory();
  const now = deps.now ?? Date.now;
  // The catalog follows the stream on its own reader (lib/registry/catalog-stream.ts), so that its
  // member writes never delay the next batch; here only the leases this batch writes `rotation`
  // into, whose records come back as `registry` and which that reader leaves to their writer.
  const catalogDeps = deps.catalog && { ...deps.catalog, store: deps.store, routing: deps.routing, policy: deps.policy, now };
  const recordOf = (key: string) => records[plan.lastRecordIndex.get(key) ?? -1]?.id ?? '';
  let alreadyApplied = 0;
  let replayChanges = 0;
  let replayLooks = 0;
  const work = plan.groups.map((group) => {
    const fresh = (action: TargetAction, targets: readonly TargetRef[]) =>
      targets.filter((t) => {
        const done = memory.applied.alreadyApplied(group.targetGroupArn, t.key, action, recordOf(t.key));
        if (done) alreadyApplied++;
        return !done;
      });
    const register = fresh('register', group.register);
    const deregister = fresh('deregister', group.deregister);
    const replayRegister = fresh('register', group.ifReplayed.register);
    const replayDeregister = fresh('deregister', group.ifReplayed.deregister);
    // A replay-only change rides the call its (group, action) makes anyway; alone, it waits for
    // its group's turn and the group is read then (see the calls below).
    const ride = (planned: readonly TargetRef[], replay: TargetRef[]) => (planned.length > 0 ? replay : []);
    const alone = (planned: readonly TargetRef[], replay: TargetRef[]) => (planned.length > 0 ? [] : replay);
    replayChanges += ride(register, replayRegister).length + ride(deregister, replayDeregister).length;
    return {
      group,
      register: [...register, ...ride(register, replayRegister)] as readonly TargetRef[],
      deregister: [...deregister, ...ride(deregister, replayDeregister)] as readonly TargetRef[],
      replayOnly: { register: alone(register, replayRegister) as readonly TargetRef[], deregister: alone(deregister, replayDeregister) },
    };
  });

  const failed: string[] = [];
  // Admission and the target quota, before anything is read or sent: in the order the records came in.
  const arrival = (key: string) => plan.lastRecordIndex.get(key) ?? 0;
  const candidates = work
    .flatMap((w) => [...w.register, ...w.replayOnly.register].map((target) => ({ capability: w.group.capability, targetGroupArn: w.group.targetGroupArn, target })))
    .sort((a, b) => arrival(a.target.key) - arrival(b.target.key));
  const gate = await gateSyncRegistrations(candidates, {
    admissionContext: { ...(deps.admission ? { admission: deps.admission.admission } : {}), routing: deps.routing, policy: deps.policy },
    ...(deps.admission ? { admission: { ...deps.admission, cache: memory.admission } } : {}),
    ...(deps.targetQuota !== undefined ? { targetQuota: deps.targetQuota } : {}),
    ...(deps.loadBalancers ? { loadBalancers: deps.loadBalancers } : {}),
    targetCount: memory.targetCount,
    elb: deps.elb,
    routing: deps.routing,
    now: now(),
  });
  const passed = new Set(gate.pass.map((c) => `${c.targetGroupArn} ${c.target.key}`));
  for (const w of work) {
    w.register = w.register.filter((t) => passed.has(`${w.group.targetGroupArn} ${t.key}`));
    w.replayOnly.register = w.replayOnly.register.filter((t) => passed.has(`${w.group.targetGroupArn} ${t.key}`));
  }
  failed.push(...gate.delayed.map((c) => c.target.key));
  const refusedByElb: { key: string; error: ElbTargetsError }[] = [];
  let registrations = 0;
  const landedOn: { capability: string; count: number }[] = [];
  let deregistrations = 0;
  let registrationsWithheld = 0;
  let deregistrationsWithheld = 0;
  let refusedBefore = 0;
  let elbCalls = 0;
  let transientError: ElbTargetsError | undefined;
  let readError: LeaseStoreError | undefined;
  const landed: LandedCall[] = [];

  const elbGate = deps.elb.gate;
  // Most urgent groups first: each group's first call takes its token in this order (first come, first served).
  const ranked = byUrgency(work, records, plan.lastRecordIndex, deps.routing);
  // With a budget, only the groups whose calls can go at once (a burst's worth) are read here: the
  // others wait for a token and then read their own leases (a read older than half the deadline
  // is read again anyway), so under load a batch of thousands of records would pay for reads it
  // throws away, every time it is delivered again.
  const readNow = new Set(elbGate ? ranked.slice(0, elbGate.budget.burst) : ranked);
  const keysOf = (ws: Iterable<(typeof work)[number]>) => [...new Set([...ws].flatMap((w) => [...w.register, ...w.deregister].map((t) => t.key)))];
  const keys = keysOf(readNow);
  let prior: PriorReads | undefined;
  let confirmReadMs: number | undefined;
  if (keys.length > 0) {
    const readAtMs = now();
    const started = performance.now();
    try {
      prior = { reads: await deps.store.getMany(keys), readAtMs };
      confirmReadMs = Math.round((performance.now() - started) * 10) / 10;
    } catch (error) {
      // No confirmation, no change: the batch is retried from the first record of its targets.
      readError = error instanceof LeaseStoreError ? error : new LeaseStoreError(String(error), { cause: error });
      failed.push(...keysOf(work));
    }
  }

  // Wall-clock time for the budget (`now` may be a fixed clock for the liveness check).
  const started = Date.now();
  const budgetMs = deps.batchBudgetMs ?? SYNC_BATCH_BUDGET_MS;
  let waited = 0;
  let longestWaitMs = 0;
  /** Waits (until `until`, epoch ms) for a token in first-come order and gives it back at once: whether the turn came. */
  const turnOf = async (gate: ElbCallGate, until: number, changes: number): Promise<boolean> => {
    const asked = performance.now();
    const acquiring = gate.acquire(AbortSignal.timeout(Math.max(1, until - Date.now())));
    // First come, first served: a gate that queued nobody grants without a wait for the budget (a
    // shared bucket's write to DynamoDB takes a few ms, and is no such wait).
    const queued = gate.waiting(Date.now()).queued > 0;
    const permit = await acquiring.catch(() => undefined);
    permit?.giveBack();
    const waitedMs = performance.now() - asked;
    if (queued && waitedMs >= 1) {
      waited += changes;
      longestWaitMs = Math.max(longestWaitMs, waitedMs);
    }
    return permit !== undefined;
  };
  if (!readError) {
    const confirmDeps = { ...deps, refused: memory.refused, verifyLanded: [], ...(elbGate ? { budgetEnd: now() + budgetMs } : {}) };
    await Promise.all(
      ranked.map(async (w) => {
        const { group, register, deregister, replayOnly } = w;
        // A replay-only change alone takes its turn at its group's place in the order (see below),
        // not behind the group's other call.
        const turns = new Map<TargetAction, Promise<boolean>>();
        for (const [action, planned, replay] of [
          ['register', register, replayOnly.register],
          ['deregister', deregister, replayOnly.deregister],
        ] as const) {
          if (planned.length === 0 && replay.length > 0) turns.set(action, elbGate ? turnOf(elbGate, started + budgetMs, replay.length) : Promise.resolve(true));
        }
        // Creates before deletes: a target moving between states never leaves a group empty needlessly.
        for (const [action, planned, replay] of [
          ['register', register, replayOnly.register],
          ['deregister', deregister, replayOnly.deregister],
        ] as const) {
          let targets = planned;
          let reads = readNow.has(w) ? prior : undefined;
          if (planned.length === 0 && replay.length > 0) {
            // Alone, a replay-only change would cost its group a call: at the group's turn (a token
            // in the urgency order, with a budget) read the group (DescribeTargetHealth, outside the
            // Register/Deregister bucket) and send only what it contradicts. The token goes back
            // before the read, so no group waits on it: a needed change (only a retry's) then takes
            // a token as any call. Groups whose turn does not come in this batch are not read:
            // their changes come back with it.
            if (!(await turns.get(action))) {
              failed.push(...replay.map((t) => t.key));
              continue;
            }
            replayLooks++;
            targets = replayChangesToSend(action, 0, replay, await registeredTargets(deps.elb, group.targetGroupArn, deps.deadlineMs ?? DECISION_DEADLINE_MS));
            replayChanges += targets.length;
            reads = undefined;
          }
          if (targets.length === 0) continue;
          const outcome: ConfirmedOutcome = await applyConfirmed(confirmDeps, action, group.targetGroupArn, targets, reads);
          // Only a wait for a token counts (not the confirming read or the call): light churn that the burst covers reports none.
          if (outcome.tokenWaitMs !== undefined && outcome.tokenWaitMs > 0) {
            waited += targets.length;
            longestWaitMs = Math.max(longestWaitMs, outcome.tokenWaitMs);
          }
          for (const key of outcome.applied) {
            memory.applied.remember(group.targetGroupArn, key, action, recordOf(key));
            landed.push({ action, targetGroupArn: group.targetGroupArn, target: key, item: outcome.confirmedBy.get(key) });
          }
          if (action === 'register') {
            registrations += outcome.applied.length;
            landedOn.push({ capability: group.capability, count: outcome.applied.length });
            registrationsWithheld += outcome.withheld.length;
          } else {
            deregistrations += outcome.applied.length;
            deregistrationsWithheld += outcome.withheld.length;
          }
          refusedBefore += outcome.skippedRefused.length;
          elbCalls += outcome.calls;
          failed.push(...outcome.transientFailures);
          refusedByElb.push(...outcome.rejected);
          transientError ??= outcome.firstTransientError;
        }
      }),
    );
  }

  countLanded(memory.targetCount, landedOn, deps.loadBalancers);
  // ELB's own quota is the backstop for a count that was behind (other shards register too):
  // its refusal is `over-quota`, not sent again in this batch, and the next registration recounts.
  const overElbQuota = refusedByElb.filter((r) => r.error.awsErrorName === 'TooManyTargetsException');
  if (overElbQuota.length > 0) memory.targetCount.countedAt = undefined;
  const quotaRejections: LeaseRejection[] = overElbQuota.map((r) => ({
    reason: 'OVER_QUOTA',
    target: r.key,
    message: `the load balancer refused ${r.key} for its target quota (TooManyTargets); it takes no more targets until some leave`,
  }));

  // After the calls, so `since` is never earlier than the state it names and no write delays a call.
  const restored = planRestoredRotation(records, deps.policy, deps.routing);
  // Each lease's rejection (or its removal) rides the same UpdateItem as its rotation entries;
  // what admission and the quota decided about this batch's registrations is judged with it.
  const rotation = rotationEntries(mergeRotationWrites(planCallRotation(landed, now(), deps.policy, deps.routing, restored), restored));
  const registryWrites = await writeRegistryEntries(
    deps.store,
    rotation,
    planRejectionsFromRecords(records, deps.policy, deps.routing, now(), plan.kinds, plan.lastFound, factDecisions([...gate.rejections, ...quotaRejections], gate.pass.map((c) => c.target.key))),
  );

  // The catalog for the leases this batch wrote `rotation` into (drains, re-activations,
  // re-acquires: rare), read after the writes; their records come back as `registry` and cost nothing.
  const catalog = catalogDeps && registryWrites.changed > 0 ? await updateCatalogForLeases(catalogDeps, catalogChangesOfWrites(rotation, deps.routing)) : NO_CATALOG_CHANGE;

  const kinds = Object.fromEntries(RECORD_KINDS.map((k) => [k, 0])) as Record<RecordKind, number>;
  for (const kind of plan.kinds) kinds[kind]++;
  const failedIndex = firstUnappliedRecord(plan, failed);
  return {
    records: records.length,
    kinds,
    registrations,
    deregistrations,
    registrationsWithheld,
    deregistrationsWithheld,
    alreadyApplied,
    replayed: { changes: replayChanges, groupsRead: replayLooks },
    refusedBefore,
    elbCalls,
    leasesRead: keys.length,
    ...(elbGate ? { budget: budgetReport(elbGate.budget, elbCalls, Date.now() - started, waited, longestWaitMs) } : {}),
    ...(confirmReadMs === undefined ? {} : { confirmReadMs }),
    rejections: [...plan.rejections, ...gate.rejections, ...quotaRejections],
    notAdmitted: gate.notAdmitted,
    overQuota: gate.overQuota + overElbQuota.length,
    ec2Calls: gate.ec2Calls,
    ...(gate.ec2Error ? { ec2Error: gate.ec2Error } : {}),
    refusedByElb: refusedByElb.filter((r) => !overElbQuota.includes(r)),
    ...(failedIndex === undefined ? {} : { firstFailedRecordId: records[failedIndex].id }),
    ...(transientError ? { transientError } : {}),
    ...(readError ? { readError } : {}),
    registryWrites,
    catalog,
  };
}

/** The keys `targetGroupArn` holds registered (draining ones are out), or `undefined` when it cannot be read within `withinMs`. */
async function registeredTargets(elb: ElbTargets, targetGroupArn: string, withinMs: number): Promise<ReadonlySet<string> | undefined> {
  try {
    const targets = await elb.describe(targetGroupArn, { abortSignal: AbortSignal.timeout(withinMs) });
    return new Set(targets.filter((t) => presenceOf(t) === 'registered').map((t) => formatTarget(t.id, t.port)));
  } catch {
    return undefined;
  }
}

interface GroupWork {
  readonly group: { readonly targetGroupArn: string };
  readonly register: readonly TargetRef[];
  readonly deregister: readonly TargetRef[];
  readonly replayOnly: { readonly register: readonly TargetRef[]; readonly deregister: readonly TargetRef[] };
}

/**
 * The batch's groups, most urgent first (the pure rank of lib/core/elb-call-budget.ts): groups
 * with registrations, or removals of targets ELB may still send requests to, before groups
 * whose removals are of targets the lease's `rotation` says ELB already keeps out (unhealthy,
 * draining); older changes first. Only the order of the calls changes, never what is sent.
 */
function byUrgency<W extends GroupWork>(work: readonly W[], records: readonly LeaseChangeRecord[], lastRecordIndex: ReadonlyMap<string, number>, routing: RoutingConfig): W[] {
  if (work.length < 2) return [...work];
  const capabilityOf = new Map(Object.entries(routing.capabilities).map(([name, route]) => [route.targetGroupArn, name]));
  const stateOf = (key: string, targetGroupArn: string): string | undefined => {
    const record = records[lastRecordIndex.get(key) ?? -1];
    const image = record?.newImage ?? record?.oldImage;
    const capability = capabilityOf.get(targetGroupArn);
    return capability === undefined ? undefined : rotationEntry(decodeRotation(image?.[LEASE_ATTR.rotation]).rotation, capability)?.state;
  };
  // A change's age is its first record's place in the stream: records of one shard come in write
  // order, and their write times (whole seconds) tie too often to rank by.
  const first = new Map<string, number>();
  records.forEach((r, i) => {
    const key = r.key ?? (r.newImage ?? r.oldImage)?.[LEASE_ATTR.target]?.S;
    if (key !== undefined && !first.has(key)) first.set(key, i);
  });
  const at = (key: string) => first.get(key) ?? lastRecordIndex.get(key) ?? 0;
  const queue = enqueue(
    emptyQueue(),
    work.flatMap(({ group, register, deregister, replayOnly }) => [
      ...[...register, ...replayOnly.register].map((t) => ({ targetGroupArn: group.targetGroupArn, target: t, action: 'register' as const, atMs: at(t.key) })),
      ...[...deregister, ...replayOnly.deregister].map((t) => ({
        targetGroupArn: group.targetGroupArn,
        target: t,
        action: 'deregister' as const,
        priority: priorityOf('deregister', stateOf(t.key, group.targetGroupArn)),
        atMs: at(t.key),
      })),
    ]),
    0,
  );
  const rank = new Map<string, number>();
  rankCalls(queue).forEach((call, i) => {
    if (!rank.has(call.targetGroupArn)) rank.set(call.targetGroupArn, i);
  });
  return [...work].sort((a, b) => (rank.get(a.group.targetGroupArn) ?? Infinity) - (rank.get(b.group.targetGroupArn) ?? Infinity));
}

import { AddressPolicy } from '../core/address-policy';
import { ElbTargetsError, LeaseRejection } from '../core/errors';
import { RoutingConfig, TargetRef } from '../core/lease-schema';
import { firstUnappliedRecord, LeaseChangeRecord, planStreamBatch, RecordKind } from '../core/target-planner';
import { ElbTargets, TargetsOutcome } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { confirmDepsOf, deregisterConfirmed } from './lease-confirmation';

export interface StreamSyncDeps {
  readonly elb: ElbTargets;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  /**
   * When given, every deregistration is first confirmed by a consistent read of its lease, and
   * withheld when the lease is live now and names the group. Records are then safe to replay
   * from any earlier point: an old release or drain no longer takes out the live lease that
   * followed it. Costs one GetItem per deregistered target (heartbeats cost nothing).
   * @default - no confirmation: decisions depend on the records alone
   */
  readonly confirmWith?: LeaseStore;
  /** Epoch milliseconds, for the confirmation's liveness check. @default Date.now */
  readonly now?: () => number;
  /** With `confirmWith`: longest time from a confirming read to its call giving up (then read and sent again). @default DEREGISTER_DEADLINE_MS (2000) */
  readonly deregisterDeadlineMs?: number;
}

export interface StreamSyncReport {
  readonly records: number;
  readonly kinds: Readonly<Record<RecordKind, number>>;
  readonly registrations: number;
  readonly deregistrations: number;
  /** Deregistrations the confirming read showed to be wrong (the lease is live now): not sent. */
  readonly deregistrationsWithheld: number;
  readonly elbCalls: number;
  readonly rejections: readonly LeaseRejection[];
  /** Targets ELB refused for good; dropped so they never block the shard. */
  readonly refusedByElb: readonly { key: string; error: ElbTargetsError }[];
  /** Id of the first record whose change was not applied; the batch is retried from there. */
  readonly firstFailedRecordId?: string;
  readonly transientError?: ElbTargetsError;
}

/**
 * Applies one stream batch: plan (pure), then per target group at most one RegisterTargets
 * and one DeregisterTargets (chunked at 200), groups in parallel.
 */
export async function syncStreamBatch(records: readonly LeaseChangeRecord[], deps: StreamSyncDeps): Promise<StreamSyncReport> {
  const plan = planStreamBatch(records, deps.policy, deps.routing);
  const failed: string[] = [];
  const refusedByElb: { key: string; error: ElbTargetsError }[] = [];
  let registrations = 0;
  let deregistrations = 0;
  let deregistrationsWithheld = 0;
  let elbCalls = 0;
  let transientError: ElbTargetsError | undefined;

  await Promise.all(
    plan.groups.map(async (group) => {
      // Creates before deletes: a target moving between states never leaves a group empty needlessly.
      for (const [action, targets] of [
        ['register', group.register],
        ['deregister', group.deregister],
      ] as const) {
        if (targets.length === 0) continue;
        const outcome: TargetsOutcome & { readonly withheld?: readonly TargetRef[]; readonly reinstated?: readonly string[] } =
          action === 'deregister' && deps.confirmWith
            ? await deregisterConfirmed(
                confirmDepsOf(deps, deps.confirmWith),
                group.targetGroupArn,
                targets,
              )
            : await deps.elb[action](group.targetGroupArn, targets);
        deregistrationsWithheld += outcome.withheld?.length ?? 0;
        registrations += outcome.reinstated?.length ?? 0;
        elbCalls += outcome.calls;
        if (action === 'register') registrations += outcome.applied.length;
        else deregistrations += outcome.applied.length;
        failed.push(...outcome.transientFailures);
        refusedByElb.push(...outcome.rejected);
        transientError ??= outcome.firstTransientError;
      }
    }),
  );

  const kinds: Record<RecordKind, number> = { registration: 0, heartbeat: 0, noop: 0, release: 0, 'ttl-deletion': 0, change: 0 };
  for (const kind of plan.kinds) kinds[kind]++;
  const failedIndex = firstUnappliedRecord(plan, failed);
  return {
    records: records.length,
    kinds,
    registrations,
    deregistrations,
    deregistrationsWithheld,
    elbCalls,
    rejections: plan.rejections,
    refusedByElb,
    ...(failedIndex === undefined ? {} : { firstFailedRecordId: records[failedIndex].id }),
    ...(transientError ? { transientError } : {}),
  };
}

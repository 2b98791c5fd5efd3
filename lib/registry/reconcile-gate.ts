import { AdmissionCandidate, AdmissionContext, addressesToLookUp, decideAdmission, planAdmissionRemovals, splitByAdmission } from '../core/admission';
import { Ec2LookupError, LeaseRejection } from '../core/errors';
import { leaseKeyOf } from '../core/lease-codec';
import { LEASE_ATTR, RawItem } from '../core/lease-schema';
import { formatTarget } from '../core/address-policy';
import { GroupRepair, memberKey, ObservedGroup, presenceOf } from '../core/reconcile-planner';
import { countRegisteredPerLoadBalancer, fullest, LoadBalancerPlacement, planQuotaPerLoadBalancer } from '../core/target-quota';
import { factDecisions } from '../core/rejection-planner';
import { AdmissionDeps, lookUpHolders } from './admission-lookup';

/**
 * A reconcile pass's admission and quota, between its plan and its calls. Registrations the plan
 * wants pass only when EC2 admits their address and the load balancer has room (first come,
 * first served by the lease's `registeredAt`); registered targets EC2 refuses twice in a row
 * are removed. One lookup for the pass's addresses (cached per container); an address whose
 * removal is pending is asked about afresh. EC2 failing decides nothing: registrations wait,
 * nothing is removed.
 */

export interface ReconcileGateInput {
  readonly repairs: readonly GroupRepair[];
  /** The groups as the pass read them. */
  readonly groups: readonly ObservedGroup[];
  /** The pass's scan, for each lease's `registeredAt` (the order of the quota's queue). */
  readonly items: readonly RawItem[];
  readonly context: AdmissionContext;
  readonly admission?: AdmissionDeps;
  /** Registered targets each load balancer may hold. */
  readonly targetQuota?: number;
  /** Which load balancer each group is on. @default - every group on one */
  readonly loadBalancers?: LoadBalancerPlacement;
  /** {@link memberKey}s the last pass found not admitted. */
  readonly notAdmittedLastPass: ReadonlySet<string>;
  readonly nowMs: number;
}

export interface ReconcileGate {
  /** The repairs with registrations gated and admission removals added (reason `not-admitted`). */
  readonly repairs: GroupRepair[];
  /** {@link memberKey}s of the removals: their deregistration is confirmed whatever their lease says. */
  readonly refusedMembers: ReadonlySet<string>;
  /** For the next pass. */
  readonly notAdmittedNow: ReadonlySet<string>;
  readonly rejections: LeaseRejection[];
  /**
   * What the pass decided from AWS facts, by lease key (lib/core/rejection-planner.ts `factDecisions`):
   * the refusals written into leases (not admitted and not registered, removed, over the quota;
   * a first suspicion of a registered target is not written) and the keys every decision let through.
   */
  readonly facts: ReadonlyMap<string, readonly LeaseRejection[]>;
  readonly notAdmitted: number;
  readonly overQuota: number;
  /** Registrations EC2 could not decide: left to the next pass. */
  readonly deferred: number;
  /** Targets the fullest load balancer held as the pass read them (registered or draining, every group read). */
  readonly registeredTargets: number;
  readonly ec2Calls: number;
  readonly ec2Error?: Ec2LookupError;
}

type Candidate = AdmissionCandidate & { readonly revive: boolean };

export async function gateReconcile(input: ReconcileGateInput): Promise<ReconcileGate> {
  const { repairs, context } = input;
  const toRegister: Candidate[] = repairs.flatMap((g) => {
    const revive = new Set(g.revive.map((t) => t.key));
    return g.register.map((target) => ({ capability: g.capability, targetGroupArn: g.targetGroupArn, target, revive: revive.has(target.key) }));
  });
  // Registered targets the pass keeps: their lease is live and wants them.
  const kept: AdmissionCandidate[] = input.groups.flatMap((observed) => {
    const repair = repairs.find((r) => r.targetGroupArn === observed.targetGroupArn);
    const leaving = new Set([...(repair?.deregister ?? []), ...(repair?.held ?? [])].map((d) => d.target.key));
    return observed.targets
      .filter((t) => presenceOf(t) === 'registered' && !leaving.has(formatTarget(t.id, t.port)))
      .map((t) => ({
        capability: observed.capability,
        targetGroupArn: observed.targetGroupArn,
        target: { key: formatTarget(t.id, t.port), id: t.id, port: t.port, ...(t.availabilityZone ? { availabilityZone: t.availabilityZone } : {}) },
      }));
  });
  const fresh = new Set(kept.filter((c) => input.notAdmittedLastPass.has(memberKey(c.targetGroupArn, c.target.key))).map((c) => c.target.id));
  const lookup = await lookUpHolders(input.admission, addressesToLookUp([...toRegister, ...kept], context), input.nowMs, fresh);

  const split = splitByAdmission(toRegister, lookup.facts, context);
  const removals = planAdmissionRemovals(kept, lookup.facts, context, input.notAdmittedLastPass);
  const rejections: LeaseRejection[] = [...split.notAdmitted, ...removals.suspect, ...removals.remove].map((n) => n.rejection);

  // The quota's queue: revivals hold their place (a draining target still counts); newcomers by
  // when their lease says it registered, then by key.
  const perLoadBalancer = countRegisteredPerLoadBalancer(input.groups, input.loadBalancers);
  const registeredTargets = fullest(perLoadBalancer);
  const registeredAt = new Map<string, number>();
  for (const item of input.items) {
    const key = leaseKeyOf(item);
    const at = Number(item[LEASE_ATTR.registeredAt]?.N);
    if (key !== undefined) registeredAt.set(key, Number.isFinite(at) ? at : Number.MAX_SAFE_INTEGER);
  }
  const revivals = split.admitted.filter((c) => c.revive);
  const queue = split.admitted
    .filter((c) => !c.revive)
    .sort((a, b) => (registeredAt.get(a.target.key) ?? 0) - (registeredAt.get(b.target.key) ?? 0) || a.target.key.localeCompare(b.target.key));
  const quota = input.targetQuota === undefined ? { within: queue, over: [] } : planQuotaPerLoadBalancer(queue, perLoadBalancer, input.targetQuota, input.loadBalancers);
  rejections.push(...quota.over.map((o) => o.rejection));

  const pass = new Set([...revivals, ...quota.within].map((c) => memberKey(c.targetGroupArn, c.target.key)));
  const keptAdmitted = kept.filter((c) => decideAdmission(c, lookup.facts.get(c.target.id), context).kind === 'admitted');
  const facts = factDecisions(
    [...split.notAdmitted, ...removals.remove, ...quota.over].map((n) => n.rejection),
    [...revivals, ...quota.within, ...keptAdmitted].map((c) => c.target.key),
  );
  const refusedMembers = new Set(removals.remove.map((r) => memberKey(r.candidate.targetGroupArn, r.candidate.target.key)));
  const gated = repairs.map(
    (g): GroupRepair => ({
      ...g,
      register: g.register.filter((t) => pass.has(memberKey(g.targetGroupArn, t.key))),
      revive: g.revive.filter((t) => pass.has(memberKey(g.targetGroupArn, t.key))),
      deregister: [
        ...g.deregister,
        ...removals.remove.filter((r) => r.candidate.targetGroupArn === g.targetGroupArn).map((r) => ({ target: r.candidate.target, reason: 'not-admitted' as const })),
      ],
    }),
  );
  return {
    repairs: gated,
    refusedMembers,
    notAdmittedNow: removals.suspectsNow,
    rejections,
    facts,
    notAdmitted: split.notAdmitted.length + removals.suspect.length + removals.remove.length,
    overQuota: quota.over.length,
    deferred: split.unknown.length,
    registeredTargets,
    ec2Calls: lookup.calls,
    ...(lookup.error ? { ec2Error: lookup.error } : {}),
  };
}

import { LeaseRejection } from './errors';
import { TargetRef } from './lease-schema';
import { ObservedGroup, presenceOf } from './reconcile-planner';

/**
 * The target quota of each load balancer (ALB's "Targets per Application Load Balancer": 1 000
 * registered targets by default, every registration in every group of that load balancer counting
 * once). A deployment with several load balancers has the quota on each: a capability's
 * registrations count against its own load balancer only. Leases beyond it are rejected
 * `over-quota`, first come first served: a registered target is never pushed out for a newcomer,
 * and no registration ELB would refuse for the quota is sent (no error loop). Pure.
 */

/**
 * Which load balancer each group is on, by the capability its agents list (a variant's too):
 * capability → an id of its load balancer (the ARN). A capability not listed counts on
 * {@link SOLE_LOAD_BALANCER}: with no placement at all, every group is on one load balancer.
 */
export type LoadBalancerPlacement = Readonly<Record<string, string>>;

/** The load balancer of groups a placement does not name. */
export const SOLE_LOAD_BALANCER = '';

/** The load balancer `capability`'s group counts on. */
export function loadBalancerOf(placement: LoadBalancerPlacement | undefined, capability: string): string {
  return placement !== undefined && Object.hasOwn(placement, capability) ? placement[capability] : SOLE_LOAD_BALANCER;
}

/** Share of the quota at which the quota alarm fires. */
export const QUOTA_ALARM_SHARE = 0.8;

/** The alarm threshold, in registered targets, for a quota. */
export function quotaAlarmThreshold(quota: number): number {
  return Math.ceil(quota * QUOTA_ALARM_SHARE);
}

/**
 * Registered targets of the groups read, as ELB counts them against the quota: every target
 * registered or still draining (a draining target leaves the count only once its deregistration
 * delay is over).
 */
export function countRegistered(groups: readonly Pick<ObservedGroup, 'targets'>[]): number {
  return groups.reduce((n, g) => n + g.targets.filter((t) => presenceOf(t) !== 'absent').length, 0);
}

/** {@link countRegistered} per load balancer (those with no group read are absent: 0). */
export function countRegisteredPerLoadBalancer(groups: readonly Pick<ObservedGroup, 'targets' | 'capability'>[], placement?: LoadBalancerPlacement): Map<string, number> {
  const counts = new Map<string, number>();
  for (const g of groups) {
    const lb = loadBalancerOf(placement, g.capability);
    counts.set(lb, (counts.get(lb) ?? 0) + countRegistered([g]));
  }
  return counts;
}

/** The fullest load balancer's count: what the quota alarm compares with the per-load-balancer quota. */
export function fullest(counts: ReadonlyMap<string, number>): number {
  return Math.max(0, ...counts.values());
}

/** One registration that would add a target to the load balancer. */
export interface QuotaCandidate {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly target: TargetRef;
}

export interface QuotaPlan<C extends QuotaCandidate> {
  readonly within: C[];
  readonly over: { readonly candidate: C; readonly rejection: LeaseRejection }[];
  /** Registrations the quota still had room for before these. */
  readonly room: number;
}

/**
 * Takes registrations in the order given (the order they came in) while the load balancer has
 * room under `quota` with `registered` targets already; the rest are rejected `over-quota`.
 */
export function planQuota<C extends QuotaCandidate>(candidates: readonly C[], registered: number, quota: number): QuotaPlan<C> {
  return { ...planQuotaPerLoadBalancer(candidates, new Map([[SOLE_LOAD_BALANCER, registered]]), quota), room: Math.max(0, quota - registered) };
}

/**
 * {@link planQuota} on each load balancer of `placement` apart: a registration takes room on its
 * capability's load balancer only (`registered` there already), in the order given. `room` is
 * the room all the load balancers the candidates need had together.
 */
export function planQuotaPerLoadBalancer<C extends QuotaCandidate>(
  candidates: readonly C[],
  registered: ReadonlyMap<string, number>,
  quota: number,
  placement?: LoadBalancerPlacement,
): QuotaPlan<C> {
  const rooms = new Map<string, number>();
  const within: C[] = [];
  const over: QuotaPlan<C>['over'][number][] = [];
  for (const candidate of candidates) {
    const lb = loadBalancerOf(placement, candidate.capability);
    if (!rooms.has(lb)) rooms.set(lb, Math.max(0, quota - (registered.get(lb) ?? 0)));
    const room = rooms.get(lb)!;
    if (room > 0) {
      within.push(candidate);
      rooms.set(lb, room - 1);
      continue;
    }
    over.push({
      candidate,
      rejection: {
        reason: 'OVER_QUOTA' as const,
        target: candidate.target.key,
        capability: candidate.capability,
        // No count in the message: it is written into the lease, and a verdict that changed with every
        // registration elsewhere would be written again at each decision.
        message: `the load balancer holds its quota of ${quota} targets (the deployment's targetQuota): capability "${candidate.capability}" takes no more until some leave`,
      },
    });
  }
  const room = [...rooms.keys()].reduce((n, lb) => n + Math.max(0, quota - (registered.get(lb) ?? 0)), 0);
  return { within, over, room };
}

import { LeaseRejection } from './errors';
import { TargetRef } from './lease-schema';
import { ObservedGroup, presenceOf } from './reconcile-planner';

/**
 * The load balancer's target quota (ALB: 1 000 registered targets per load balancer by default,
 * every registration in every group counting once). Leases beyond it are rejected `over-quota`,
 * first come first served: a registered target is never pushed out for a newcomer, and no
 * registration ELB would refuse for the quota is sent (no error loop). Pure.
 */

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
  const room = Math.max(0, quota - registered);
  const within = candidates.slice(0, room);
  const over = candidates.slice(room).map((candidate) => ({
    candidate,
    rejection: {
      reason: 'OVER_QUOTA' as const,
      target: candidate.target.key,
      capability: candidate.capability,
      // No count in the message: it is written into the lease, and a verdict that changed with every
      // registration elsewhere would be written again at each decision.
      message: `the load balancer holds its quota of ${quota} targets (the deployment's targetQuota): capability "${candidate.capability}" takes no more until some leave`,
    },
  }));
  return { within: [...within], over, room };
}

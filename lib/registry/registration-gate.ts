import { AdmissionCandidate, AdmissionContext, addressesToLookUp, splitByAdmission } from '../core/admission';
import { Ec2LookupError, LeaseRejection } from '../core/errors';
import { RoutingConfig } from '../core/lease-schema';
import { countRegisteredPerLoadBalancer, loadBalancerOf, LoadBalancerPlacement, planQuotaPerLoadBalancer, quotaAlarmThreshold } from '../core/target-quota';
import { ElbTargets } from '../aws/elb-targets';
import { AdmissionDeps, lookUpHolders } from './admission-lookup';
import { TargetCount } from './container-memory';
import { readGroups } from './group-reads';

/**
 * What a registration passes before sync sends it, after the lease rules: admission by EC2's
 * facts (lib/core/admission.ts), then the load balancer's target quota (lib/core/target-quota.ts).
 * A refused registration becomes a rejection and is never sent; one EC2 could not decide waits
 * (its records are retried), and no target is removed for it.
 */

/** How old sync's own count of a load balancer's targets may get before it reads the groups again, once that load balancer is near its quota. */
export const QUOTA_RECOUNT_MS = 30_000;

export interface SyncGateDeps {
  readonly admissionContext: AdmissionContext;
  /** @default none: nothing is checked against EC2 */
  readonly admission?: AdmissionDeps;
  /** Registered targets each load balancer may hold. @default no quota */
  readonly targetQuota?: number;
  /** Which load balancer each group is on: a registration takes room on its own. @default - every group on one */
  readonly loadBalancers?: LoadBalancerPlacement;
  /** The container's count of each load balancer's targets (read and updated here). */
  readonly targetCount: TargetCount;
  readonly elb: ElbTargets;
  readonly routing: RoutingConfig;
  readonly now: number;
}

export interface GateOutcome<C extends AdmissionCandidate> {
  /** Registrations to send, in the order given. */
  readonly pass: C[];
  /** EC2 gave no answer for them: not sent now, their records are retried. */
  readonly delayed: C[];
  readonly rejections: LeaseRejection[];
  readonly notAdmitted: number;
  readonly overQuota: number;
  readonly ec2Calls: number;
  /** DescribeTargetHealth calls made to count the load balancer's targets. */
  readonly countCalls: number;
  readonly ec2Error?: Ec2LookupError;
}

/**
 * Gates a batch's registrations (`candidates`, in the order their records came in: first come,
 * first served). Without registrations it costs nothing: no EC2 call, no group read.
 */
export async function gateSyncRegistrations<C extends AdmissionCandidate>(candidates: readonly C[], deps: SyncGateDeps): Promise<GateOutcome<C>> {
  const empty: GateOutcome<C> = { pass: [], delayed: [], rejections: [], notAdmitted: 0, overQuota: 0, ec2Calls: 0, countCalls: 0 };
  if (candidates.length === 0) return empty;
  const lookup = await lookUpHolders(deps.admission, addressesToLookUp(candidates, deps.admissionContext), deps.now);
  const split = splitByAdmission(candidates, lookup.facts, deps.admissionContext);
  const rejections = split.notAdmitted.map((n) => n.rejection);
  let pass = split.admitted;
  let overQuota = 0;
  let countCalls = 0;
  if (deps.targetQuota !== undefined && pass.length > 0) {
    const counted = await countTargets(deps, pass);
    countCalls = counted.calls;
    const plan = planQuotaPerLoadBalancer(pass, counted.value, deps.targetQuota, deps.loadBalancers);
    pass = plan.within;
    overQuota = plan.over.length;
    rejections.push(...plan.over.map((o) => o.rejection));
  }
  return {
    pass,
    delayed: split.unknown,
    rejections,
    notAdmitted: split.notAdmitted.length,
    overQuota,
    ec2Calls: lookup.calls,
    countCalls,
    ...(lookup.error ? { ec2Error: lookup.error } : {}),
  };
}

/**
 * The container's count of each load balancer's targets, read again (every group's
 * DescribeTargetHealth) at the first registration after a cold start, and when it is older than
 * {@link QUOTA_RECOUNT_MS} with a load balancer the batch adds to near its quota (other shards
 * register too). A failed read keeps the last count; ELB's own quota error is the backstop.
 */
async function countTargets(deps: SyncGateDeps, adding: readonly { readonly capability: string }[]): Promise<{ value: ReadonlyMap<string, number>; calls: number }> {
  const count = deps.targetCount;
  const stale = count.countedAt === undefined || deps.now - count.countedAt >= QUOTA_RECOUNT_MS;
  const added = new Map<string, number>();
  for (const c of adding) {
    const lb = loadBalancerOf(deps.loadBalancers, c.capability);
    added.set(lb, (added.get(lb) ?? 0) + 1);
  }
  const near = [...added].some(([lb, n]) => (count.perLoadBalancer?.get(lb) ?? 0) + n >= quotaAlarmThreshold(deps.targetQuota!));
  if (count.perLoadBalancer !== undefined && !(stale && near)) return { value: count.perLoadBalancer, calls: 0 };
  const before = deps.elb.describeCalls;
  const read = await readGroups(deps.elb, deps.routing);
  const counted = countRegisteredPerLoadBalancer(read.groups, deps.loadBalancers);
  if (read.unread.length === 0) {
    count.perLoadBalancer = counted;
    count.countedAt = deps.now;
  }
  return { value: count.perLoadBalancer ?? counted, calls: deps.elb.describeCalls - before };
}

/**
 * After the batch's calls: the registrations they added, each on its group's load balancer.
 * Deregistrations are not taken off: a deregistered target counts against the quota until its
 * deregistration delay is over, which the next count sees.
 */
export function countLanded(count: TargetCount, landed: readonly { readonly capability: string; readonly count: number }[], loadBalancers?: LoadBalancerPlacement): void {
  const counts = count.perLoadBalancer;
  if (counts === undefined) return;
  for (const { capability, count: n } of landed) {
    const lb = loadBalancerOf(loadBalancers, capability);
    counts.set(lb, (counts.get(lb) ?? 0) + n);
  }
}

import { AddressPolicy, formatTarget } from './address-policy';
import { LeaseRejection } from './errors';
import { decodeLease, isLive, leaseKeyOf, MAX_EPOCH_SECONDS } from './lease-codec';
import { routeLease } from './lease-routing';
import { LEASE_ATTR, RawItem, RoutingConfig, TargetRef } from './lease-schema';

/** A target as DescribeTargetHealth reports it. */
export interface ObservedTarget {
  readonly id: string;
  readonly port: number;
  readonly availabilityZone?: string;
  /** ELB target health state: initial | healthy | unhealthy | unused | draining | unavailable. */
  readonly state: string;
}

export interface ObservedGroup {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly targets: readonly ObservedTarget[];
}

/** Why a registered target has no place in its group. Only the first two are proven by a missing or dead lease. */
export type DeregisterReason = 'no-lease' | 'expired' | 'draining' | 'invalid-lease' | 'not-listed';

export interface PlannedDeregistration {
  readonly target: TargetRef;
  readonly reason: DeregisterReason;
  readonly healthy: boolean;
}

export interface GroupRepair {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly register: readonly TargetRef[];
  readonly deregister: readonly PlannedDeregistration[];
  readonly healthyCount: number;
  /** More than the allowed share of healthy targets would go: only proven ones may be removed, after a second read. */
  readonly valveTripped: boolean;
}

export interface ExpiredLease {
  readonly target: string;
  readonly expiresAt: number;
  /** Delete on the condition `expiresAt < cutoff` (see {@link expiryCutoff}). */
  readonly cutoff: number;
}

export interface ReconcilePlan {
  readonly groups: readonly GroupRepair[];
  readonly expired: readonly ExpiredLease[];
  readonly rejections: readonly LeaseRejection[];
  readonly liveLeases: number;
}

export interface ReconcileInput {
  /** Read FIRST: anything registered after this read is not seen, so it cannot be wrongly removed. */
  readonly groups: readonly ObservedGroup[];
  /** Read SECOND, with consistent reads. */
  readonly items: readonly RawItem[];
  readonly nowSeconds: number;
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
  /** Share (0–1] of a group's healthy targets one run may deregister before the valve trips. */
  readonly safetyValveShare: number;
}

/**
 * The `:now` a conditional delete of this expiry compares with. A lease written in
 * milliseconds (a common slip in other languages) is refused for routing, but it still holds
 * its address:port key; it is swept once its own millisecond deadline has passed, since
 * DynamoDB's TTL never will.
 */
export function expiryCutoff(expiresAt: number, nowSeconds: number): number {
  return expiresAt > MAX_EPOCH_SECONDS ? nowSeconds * 1000 : nowSeconds;
}

function rawExpiry(item: RawItem): number | undefined {
  const n = item[LEASE_ATTR.expiresAt]?.N;
  const value = n === undefined ? NaN : Number(n);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * Level-triggered repair: compares what the target groups hold with what the live leases
 * say they should hold, in both directions. Targets ELB is already draining are left alone.
 */
export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const { nowSeconds, policy, routing } = input;
  const desired = new Map<string, Map<string, TargetRef>>();
  const leaseState = new Map<string, DeregisterReason | 'live'>();
  const expired: ExpiredLease[] = [];
  const rejections: LeaseRejection[] = [];
  let liveLeases = 0;

  for (const item of input.items) {
    const key = leaseKeyOf(item);
    const expiry = rawExpiry(item);
    if (key !== undefined && expiry !== undefined && expiry < expiryCutoff(expiry, nowSeconds)) {
      expired.push({ target: key, expiresAt: expiry, cutoff: expiryCutoff(expiry, nowSeconds) });
    }

    const decoded = decodeLease(item, policy);
    if (!decoded.ok) {
      rejections.push(...decoded.rejections);
      if (key !== undefined) leaseState.set(key, 'invalid-lease');
      continue;
    }
    const lease = decoded.lease;
    if (!isLive(lease, nowSeconds)) {
      leaseState.set(lease.target, lease.status === 'draining' ? 'draining' : 'expired');
      continue;
    }
    liveLeases++;
    leaseState.set(lease.target, 'live');
    const routed = routeLease(lease, routing);
    rejections.push(...routed.rejections);
    for (const m of routed.memberships) {
      let group = desired.get(m.targetGroupArn);
      if (!group) desired.set(m.targetGroupArn, (group = new Map()));
      group.set(m.target.key, m.target);
    }
  }

  const groups = input.groups.map((observed): GroupRepair => {
    const want = desired.get(observed.targetGroupArn) ?? new Map<string, TargetRef>();
    const present = new Set<string>();
    const deregister: PlannedDeregistration[] = [];
    let healthyCount = 0;
    for (const t of observed.targets) {
      const key = formatTarget(t.id, t.port);
      present.add(key);
      const healthy = t.state === 'healthy';
      if (healthy) healthyCount++;
      if (t.state === 'draining' || want.has(key)) continue;
      const state = leaseState.get(key);
      const reason: DeregisterReason = state === undefined ? 'no-lease' : state === 'live' ? 'not-listed' : state;
      const target: TargetRef = { key, id: t.id, port: t.port, ...(t.availabilityZone ? { availabilityZone: t.availabilityZone } : {}) };
      deregister.push({ target, reason, healthy });
    }
    const register = [...want.values()].filter((t) => !present.has(t.key));
    const healthyLeaving = deregister.filter((d) => d.healthy).length;
    const valveTripped = healthyLeaving > 0 && healthyLeaving > input.safetyValveShare * healthyCount;
    return { capability: observed.capability, targetGroupArn: observed.targetGroupArn, register, deregister, healthyCount, valveTripped };
  });

  return { groups, expired, rejections, liveLeases };
}

/**
 * After the valve tripped, keep only the deregistrations a second consistent read proves:
 * the lease is gone, or it exists and is expired, or (given the address policy) it can never route.
 * `secondRead` maps target key → item (absent = no lease).
 */
export function provenDeregistrations(
  candidates: readonly PlannedDeregistration[],
  secondRead: ReadonlyMap<string, RawItem | undefined>,
  nowSeconds: number,
  policy?: AddressPolicy,
): PlannedDeregistration[] {
  return candidates.filter((c) => {
    if (!secondRead.has(c.target.key)) return false;
    const item = secondRead.get(c.target.key);
    if (item === undefined) return true;
    // A lease that can never route (a public address, a malformed item) proves its target has
    // no place as much as an expired one does: it must not stay in rotation behind the valve.
    if (policy && !decodeLease(item, policy).ok) return true;
    const expiry = rawExpiry(item);
    return expiry !== undefined && expiry <= nowSeconds;
  });
}

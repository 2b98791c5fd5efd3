import { AddressPolicy, formatTarget } from './address-policy';
import { LeaseRejection } from './errors';
import { decodeLease, isLive, leaseKeyOf, MAX_EPOCH_SECONDS } from './lease-codec';
import { latestExpiry, routeLease } from './lease-routing';
import { leaseVersion } from './lease-confirmation';
import { LEASE_ATTR, RawItem, RoutingConfig, TargetRef } from './lease-schema';

/** A target as DescribeTargetHealth reports it. */
export interface ObservedTarget {
  readonly id: string;
  readonly port: number;
  readonly availabilityZone?: string;
  /** ELB target health state: initial | healthy | unhealthy | unused | draining | unavailable. */
  readonly state: string;
  /** ELB's reason code (`Target.NotRegistered`, `Target.DeregistrationInProgress`, …), when it gives one. */
  readonly reason?: string;
}

/**
 * What a reported target means for rotation, as ELB means its states:
 * - `draining`: deregistered, waiting out the deregistration delay; no new requests. Absent for
 *   anyone who wants the target (RegisterTargets brings it back at once); left to finish otherwise.
 * - `absent`: reported but not registered (`Target.NotRegistered`, which ELB gives in `unused`, and
 *   moto in `unavailable`, for a target asked about by name).
 * - `registered`: every other state — `initial` (registered, health checks starting), `healthy`,
 *   `unhealthy`, `unused` for another reason (group not used by a listener rule, instance stopped,
 *   IP unusable), `unavailable` (health checks disabled) — the target is a member of the group.
 */
export type TargetPresence = 'registered' | 'draining' | 'absent';

export function presenceOf(target: Pick<ObservedTarget, 'state' | 'reason'>): TargetPresence {
  if (target.state === 'draining') return 'draining';
  if (target.reason === 'Target.NotRegistered') return 'absent';
  return 'registered';
}

export interface ObservedGroup {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly targets: readonly ObservedTarget[];
}

/**
 * Why a registered target has no place in its group. `no-lease` is the only one a wiped,
 * recreated or misconfigured table can fake; the others are read from an item that exists,
 * but `not-admitted`, which EC2 said twice (lib/core/admission.ts).
 */
export type DeregisterReason = 'no-lease' | 'expired' | 'draining' | 'invalid-lease' | 'not-listed' | 'not-admitted';

export interface PlannedDeregistration {
  readonly target: TargetRef;
  readonly reason: DeregisterReason;
}

export interface GroupRepair {
  readonly capability: string;
  readonly targetGroupArn: string;
  /** Live leases whose target is not in rotation (absent, or draining: registering brings it back). */
  readonly register: readonly TargetRef[];
  /** Of `register`, the targets ELB is draining. */
  readonly revive: readonly TargetRef[];
  /** Registered targets without a live lease naming the group, to deregister in this pass. */
  readonly deregister: readonly PlannedDeregistration[];
  /** `no-lease` removals held back by the safety valve until a second pass agrees. */
  readonly held: readonly PlannedDeregistration[];
  /** Live leases whose target ELB refused for good at this very lease version: not sent again. */
  readonly refused: readonly TargetRef[];
  /** Targets registered (not draining) in the group. */
  readonly registeredCount: number;
  /** More than the allowed share of the group would go for lack of a lease: those not already held last pass wait. */
  readonly valveTripped: boolean;
}

export interface ExpiredLease {
  readonly target: string;
  readonly expiresAt: number;
  /** Delete on the condition `expiresAt < cutoff` (see {@link expiryCutoff}). */
  readonly cutoff: number;
}

/** A lease whose `expiresAt` lies beyond the deployment's maximum TTL: never routed, and deleted so its key is free again. */
export interface TooFarLease {
  readonly target: string;
  readonly expiresAt: number;
  /** Delete on the condition `expiresAt > latest` (a lease renewed meanwhile by a well-behaved holder survives). */
  readonly latest: number;
}

export interface ReconcilePlan {
  readonly groups: readonly GroupRepair[];
  readonly expired: readonly ExpiredLease[];
  /**
   * Leases far beyond the maximum TTL. Their holder (or someone posing as it) would otherwise keep
   * the address:port for years: no acquire's condition (`expiresAt < :now`) would ever pass.
   */
  readonly tooFar: readonly TooFarLease[];
  /**
   * Keys of items with no numeric `expiresAt` (missing, or of another type): never a lease, never
   * expired by DynamoDB's TTL nor by the sweep above, so anyone holding the agent grant could
   * fill the table with items every pass scans forever. Deleted as far-future ones are.
   */
  readonly noExpiry: readonly string[];
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
  /** Share (0–1] of a group's registered targets one pass may remove for lack of a lease before the valve trips. */
  readonly safetyValveShare: number;
  /** {@link memberKey}s the previous pass held back; a second sighting lets them go. @default none (a cold start waits one more pass) */
  readonly heldLastPass?: ReadonlySet<string>;
  /** {@link memberKey} → {@link leaseVersion} of targets ELB refused for good. @default none */
  readonly refused?: ReadonlyMap<string, string>;
}

/** Identifies one target in one group, for state kept across passes. */
export function memberKey(targetGroupArn: string, targetKey: string): string {
  return `${targetGroupArn} ${targetKey}`;
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
 * Level-triggered repair: compares what the target groups hold with what the live leases say
 * they should hold, in both directions, reading ELB's states as ELB means them (see
 * {@link presenceOf}). A pass that would remove more than `safetyValveShare` of a group's
 * registered targets for lack of a lease holds those back until the next pass sees them again;
 * removals read from an existing item (expired, draining, invalid, not listing the group) are
 * proof enough and go at once.
 */
export function planReconcile(input: ReconcileInput): ReconcilePlan {
  const { nowSeconds, policy, routing } = input;
  const desired = new Map<string, Map<string, TargetRef>>();
  const leaseState = new Map<string, DeregisterReason | 'live'>();
  const liveItems = new Map<string, RawItem>();
  const expired: ExpiredLease[] = [];
  const tooFar: TooFarLease[] = [];
  const noExpiry: string[] = [];
  const latest = latestExpiry(routing, nowSeconds);
  const rejections: LeaseRejection[] = [];
  let liveLeases = 0;

  for (const item of input.items) {
    const key = leaseKeyOf(item);
    const expiry = rawExpiry(item);
    if (key !== undefined && expiry !== undefined && expiry < expiryCutoff(expiry, nowSeconds)) {
      expired.push({ target: key, expiresAt: expiry, cutoff: expiryCutoff(expiry, nowSeconds) });
    }
    // In the item's own unit: a lease written in milliseconds is judged as the milliseconds it says.
    const latestInUnit = latest === undefined || expiry === undefined ? undefined : expiry > MAX_EPOCH_SECONDS ? latest * 1000 : latest;
    if (key !== undefined && expiry !== undefined && latestInUnit !== undefined && expiry > latestInUnit) tooFar.push({ target: key, expiresAt: expiry, latest: latestInUnit });
    if (key !== undefined && item[LEASE_ATTR.expiresAt]?.N === undefined) noExpiry.push(key);

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
    liveItems.set(lease.target, item);
    const routed = routeLease(lease, routing, nowSeconds);
    rejections.push(...routed.rejections);
    for (const m of routed.memberships) {
      let group = desired.get(m.targetGroupArn);
      if (!group) desired.set(m.targetGroupArn, (group = new Map()));
      group.set(m.target.key, m.target);
    }
  }

  const groups = input.groups.map((observed): GroupRepair => {
    const arn = observed.targetGroupArn;
    const want = desired.get(arn) ?? new Map<string, TargetRef>();
    const registered = new Set<string>();
    const draining = new Set<string>();
    const leaving: PlannedDeregistration[] = [];
    for (const t of observed.targets) {
      const key = formatTarget(t.id, t.port);
      const presence = presenceOf(t);
      if (presence === 'draining') draining.add(key);
      if (presence !== 'registered') continue;
      registered.add(key);
      if (want.has(key)) continue;
      const state = leaseState.get(key);
      const reason: DeregisterReason = state === undefined ? 'no-lease' : state === 'live' ? 'not-listed' : state;
      leaving.push({ target: { key, id: t.id, port: t.port, ...(t.availabilityZone ? { availabilityZone: t.availabilityZone } : {}) }, reason });
    }
    const missing = [...want.values()].filter((t) => !registered.has(t.key));
    const refused = missing.filter((t) => {
      const version = input.refused?.get(memberKey(arn, t.key));
      return version !== undefined && version === leaseVersion(liveItems.get(t.key));
    });
    const register = missing.filter((t) => !refused.includes(t));
    const absent = leaving.filter((d) => d.reason === 'no-lease');
    const valveTripped = absent.length > 0 && absent.length > input.safetyValveShare * registered.size;
    const held = valveTripped ? absent.filter((d) => !input.heldLastPass?.has(memberKey(arn, d.target.key))) : [];
    return {
      capability: observed.capability,
      targetGroupArn: arn,
      register,
      revive: register.filter((t) => draining.has(t.key)),
      deregister: leaving.filter((d) => !held.includes(d)),
      held,
      refused,
      registeredCount: registered.size,
      valveTripped,
    };
  });

  return { groups, expired, tooFar, noExpiry, rejections, liveLeases };
}

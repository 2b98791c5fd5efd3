import type { TargetHealthState } from './health-checks';
import type { WeightedTargetGroup } from './listener-rules';
import type { TargetGroupPolicy } from './target-group-attributes';

/**
 * Which target of a group gets the next request, after the ELB user guide:
 *
 * - "Each load balancer node routes requests only to the healthy targets"; a target must pass
 *   one health check first, so `initial` targets get nothing. Targets whose health checks are
 *   off (`unavailable`) are routed to as healthy.
 * - Fail-open: "If a target group contains only unhealthy registered targets, the load balancer
 *   routes requests to all those targets, regardless of their health status", generalised by
 *   `target_group_health.unhealthy_state_routing.minimum_healthy_targets.*`: "If the number of
 *   healthy targets is below this value, send traffic to all targets, including unhealthy
 *   targets" (default count 1 = only when none is healthy). `initial` targets stay out even then.
 * - "Elastic Load Balancing stops sending requests to targets that are deregistering": a
 *   `draining` target never gets a new request, sticky or not.
 * - No target to route to: 503 ("The target groups for the load balancer have no registered
 *   targets"); the caller answers it.
 * - Algorithms: `round_robin`; `least_outstanding_requests` ("consider using least outstanding
 *   requests when the requests for your application vary in complexity"), ties broken at random;
 *   `weighted_random`, each target weighing 1 unless anomaly mitigation reduced its weight.
 * - Slow start: "The load balancer linearly increases the number of requests that it can send
 *   to a target in slow start mode": under round robin a target `t` ms into a slow start of
 *   `d` ms weighs `t / d` against 1 for the others (smooth weighted round robin).
 * - Stickiness: "If the cookie is present but cannot be decoded, or if it refers to a target
 *   that was deregistered or is unhealthy, the load balancer selects a new target"; "if you
 *   enable sticky sessions, the routing algorithm of the target group is overridden after the
 *   initial target selection".
 *
 * Everything here is pure and deterministic for a given `random`.
 */

/** One registered target as target selection sees it. */
export interface CandidateTarget {
  /** `id:port`. */
  readonly key: string;
  readonly state: TargetHealthState;
  /** Requests forwarded to it that have not finished. */
  readonly outstanding: number;
  /** When it entered slow start; absent when not in slow start. */
  readonly slowStartSince?: number;
  /** Share left to it by anomaly mitigation, 0–1; absent = 1. */
  readonly mitigationWeight?: number;
}

/** Smooth weighted round robin: the running weight of each target. */
export type RoundRobinState = ReadonlyMap<string, number>;

export type RoutingPolicy = Pick<TargetGroupPolicy, 'algorithm' | 'slowStartMs' | 'minimumHealthyCount' | 'minimumHealthyPercentage'>;

export interface SelectionInput {
  readonly targets: readonly CandidateTarget[];
  readonly policy: RoutingPolicy;
  readonly now: number;
  /** Uniform in [0, 1). */
  readonly random: () => number;
  readonly roundRobin: RoundRobinState;
  /** The target a valid stickiness cookie names. */
  readonly stickyTarget?: string;
}

export type Selection =
  | {
      readonly kind: 'target';
      readonly key: string;
      readonly via: 'stickiness' | 'algorithm';
      /** Chosen while the group failed open (too few healthy targets). */
      readonly failOpen: boolean;
      readonly roundRobin: RoundRobinState;
    }
  | { readonly kind: 'no-target'; readonly reason: 'no-registered-targets' | 'no-routable-targets' };

const IN_ROTATION: ReadonlySet<TargetHealthState> = new Set(['healthy', 'unavailable']);
const REGISTERED: ReadonlySet<TargetHealthState> = new Set(['initial', 'healthy', 'unhealthy', 'unavailable']);

/** The targets that may get a new request now, and whether that is because the group failed open. */
export function routableTargets(
  targets: readonly CandidateTarget[],
  policy: Pick<RoutingPolicy, 'minimumHealthyCount' | 'minimumHealthyPercentage'>,
): { targets: CandidateTarget[]; failOpen: boolean; registered: number } {
  const registered = targets.filter((t) => REGISTERED.has(t.state));
  const healthy = registered.filter((t) => IN_ROTATION.has(t.state));
  const belowCount = healthy.length < policy.minimumHealthyCount;
  const belowShare = policy.minimumHealthyPercentage !== undefined && healthy.length * 100 < policy.minimumHealthyPercentage * registered.length;
  if (!belowCount && !belowShare) return { targets: healthy, failOpen: false, registered: registered.length };
  const all = registered.filter((t) => t.state !== 'initial');
  return { targets: all, failOpen: all.some((t) => t.state === 'unhealthy'), registered: registered.length };
}

/** Share of a full weight a target has in slow start: linear from 0 to 1 over `slowStartMs`. */
export function slowStartWeight(target: Pick<CandidateTarget, 'slowStartSince'>, now: number, slowStartMs: number): number {
  if (target.slowStartSince === undefined || slowStartMs <= 0) return 1;
  return Math.min(1, Math.max(0, (now - target.slowStartSince) / slowStartMs));
}

/** Whether a target is still ramping up. */
export function inSlowStart(target: Pick<CandidateTarget, 'slowStartSince'>, now: number, slowStartMs: number): boolean {
  return target.slowStartSince !== undefined && slowStartMs > 0 && now < target.slowStartSince + slowStartMs;
}

/**
 * Whether a target that just became healthy enters slow start. ELB user guide: "its targets
 * enter slow start mode when they are considered healthy"; "newly registered targets enter slow
 * start mode only when there is at least one healthy target that is not in slow start mode"
 * (so the first targets of an empty group, registered together, take full traffic at once).
 */
export function entersSlowStart(others: readonly CandidateTarget[], now: number, slowStartMs: number): boolean {
  return slowStartMs > 0 && others.some((t) => IN_ROTATION.has(t.state) && !inSlowStart(t, now, slowStartMs));
}

/** Picks an index by weight; `undefined` when every weight is 0. */
export function pickByWeight(weights: readonly number[], random: () => number): number | undefined {
  const total = weights.reduce((s, w) => s + Math.max(0, w), 0);
  if (total <= 0) return undefined;
  let r = random() * total;
  for (let i = 0; i < weights.length; i++) {
    const w = Math.max(0, weights[i]);
    if (w === 0) continue;
    r -= w;
    if (r < 0) return i;
  }
  // Floating point rest: the last positive weight.
  for (let i = weights.length - 1; i >= 0; i--) if (weights[i] > 0) return i;
  return undefined;
}

/**
 * Smooth weighted round robin (as nginx does it): every pick adds each weight to its running
 * total, takes the largest and subtracts the sum of weights from it. Equal weights give plain
 * round robin in `targets` order; a target weighing w of a total W gets w/W of the picks, spread
 * evenly. Targets weighing 0 are skipped unless all do.
 */
export function smoothRoundRobin(
  targets: readonly { key: string; weight: number }[],
  state: RoundRobinState,
): { key: string; roundRobin: RoundRobinState } {
  const positive = targets.filter((t) => t.weight > 0);
  const pool = positive.length > 0 ? positive : targets.map((t) => ({ ...t, weight: 1 }));
  const next = new Map<string, number>();
  let total = 0;
  let best: string | undefined;
  for (const t of pool) {
    const current = (state.get(t.key) ?? 0) + t.weight;
    next.set(t.key, current);
    total += t.weight;
    if (best === undefined || current > (next.get(best) ?? 0)) best = t.key;
  }
  if (best === undefined) throw new RangeError('smoothRoundRobin needs at least one target');
  next.set(best, (next.get(best) ?? 0) - total);
  return { key: best, roundRobin: next };
}

/** The target for the next request of a group, or why there is none. */
export function selectTarget(input: SelectionInput): Selection {
  const { targets, failOpen, registered } = routableTargets(input.targets, input.policy);
  if (targets.length === 0) return { kind: 'no-target', reason: registered === 0 ? 'no-registered-targets' : 'no-routable-targets' };
  if (input.stickyTarget !== undefined && targets.some((t) => t.key === input.stickyTarget)) {
    return { kind: 'target', key: input.stickyTarget, via: 'stickiness', failOpen, roundRobin: input.roundRobin };
  }
  switch (input.policy.algorithm) {
    case 'least_outstanding_requests': {
      const least = Math.min(...targets.map((t) => t.outstanding));
      const tied = targets.filter((t) => t.outstanding === least);
      const key = tied[Math.min(tied.length - 1, Math.floor(input.random() * tied.length))].key;
      return { kind: 'target', key, via: 'algorithm', failOpen, roundRobin: input.roundRobin };
    }
    case 'weighted_random': {
      const index = pickByWeight(
        targets.map((t) => t.mitigationWeight ?? 1),
        input.random,
      );
      const key = targets[index ?? Math.min(targets.length - 1, Math.floor(input.random() * targets.length))].key;
      return { kind: 'target', key, via: 'algorithm', failOpen, roundRobin: input.roundRobin };
    }
    case 'round_robin': {
      const weighted = targets.map((t) => ({ key: t.key, weight: slowStartWeight(t, input.now, input.policy.slowStartMs) }));
      const pick = smoothRoundRobin(weighted, input.roundRobin);
      return { kind: 'target', key: pick.key, via: 'algorithm', failOpen, roundRobin: pick.roundRobin };
    }
  }
}

/**
 * The target group of a forward action. ELB user guide ("Forward actions"): "Requests that
 * match a listener rule with weighted target groups are distributed to these target groups
 * based on their weights"; with target group stickiness, "the request is routed to the target
 * group specified in the cookie" as long as the action still names that group, even at weight 0
 * (sessions stay until their stickiness lapses). Weights count groups, not their health: a group
 * drawn by weight that has no routable target answers 503 (ALB documents no failover between the
 * groups of one action). `undefined` when every weight is 0 and no cookie applies.
 */
export function pickTargetGroup(
  groups: readonly WeightedTargetGroup[],
  random: () => number,
  stickyGroupArn?: string,
): { targetGroupArn: string; via: 'stickiness' | 'weight' } | undefined {
  if (stickyGroupArn !== undefined && groups.some((g) => g.targetGroupArn === stickyGroupArn)) {
    return { targetGroupArn: stickyGroupArn, via: 'stickiness' };
  }
  if (groups.length === 1) return groups[0].weight > 0 ? { targetGroupArn: groups[0].targetGroupArn, via: 'weight' } : undefined;
  const index = pickByWeight(
    groups.map((g) => g.weight),
    random,
  );
  return index === undefined ? undefined : { targetGroupArn: groups[index].targetGroupArn, via: 'weight' };
}

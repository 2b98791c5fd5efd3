/**
 * Placing capabilities on load balancers within ALB's quotas ("Quotas for your Application Load
 * Balancers"), as a pure function the constructs, local mode and reconcile share:
 * - target groups per load balancer: 100, not adjustable (a capability takes one, and one per variant);
 * - rules per load balancer (default rules not counted): 100 by default, adjustable (a
 *   capability takes a header and a path rule, and two pin rules per variant);
 * - targets per load balancer: 1 000 by default, adjustable (every registration in every group
 *   counts: an agent with two capabilities is two targets);
 * - targets per target group: 1 000 by default, adjustable;
 * - Application Load Balancers per Region: 50 by default, adjustable.
 * Every quota is a setting with AWS's default, since AWS raises the adjustable ones on request.
 */

/** ALB quotas the packing respects. */
export interface LoadBalancerQuotas {
  /** Not adjustable. @default 100 */
  readonly targetGroupsPerLoadBalancer: number;
  /** @default 100 */
  readonly rulesPerLoadBalancer: number;
  /** @default 1000 */
  readonly targetsPerLoadBalancer: number;
  /** @default 1000 */
  readonly targetsPerTargetGroup: number;
  /** @default 50 */
  readonly loadBalancersPerRegion: number;
}

/** Target groups one ALB can route to; not adjustable. */
export const MAX_TARGET_GROUPS_PER_LOAD_BALANCER = 100;
/** Default quota of rules per ALB (default rules not counted); adjustable. */
export const DEFAULT_RULES_PER_LOAD_BALANCER = 100;

export const DEFAULT_LOAD_BALANCER_QUOTAS: LoadBalancerQuotas = {
  targetGroupsPerLoadBalancer: MAX_TARGET_GROUPS_PER_LOAD_BALANCER,
  rulesPerLoadBalancer: DEFAULT_RULES_PER_LOAD_BALANCER,
  targetsPerLoadBalancer: 1000,
  targetsPerTargetGroup: 1000,
  loadBalancersPerRegion: 50,
};

/** The quota's name as Service Quotas spells it, for refusals. */
export const QUOTA_NAMES: Readonly<Record<keyof LoadBalancerQuotas, string>> = {
  targetGroupsPerLoadBalancer: 'Target groups per Application Load Balancer (not adjustable)',
  rulesPerLoadBalancer: 'Rules per Application Load Balancer',
  targetsPerLoadBalancer: 'Targets per Application Load Balancer',
  targetsPerTargetGroup: 'Targets per Target Group per Region',
  loadBalancersPerRegion: 'Application Load Balancers per Region',
};

/** What one capability adds to its load balancer. */
export interface CapabilityCost {
  readonly name: string;
  readonly variants: number;
  /** Rules it adds, when not a capability's two (and two per variant). */
  readonly rules?: number;
}

/** One capability's target groups: the stable one and one per variant. */
export const targetGroupsOf = (c: CapabilityCost): number => 1 + c.variants;
/** One capability's rules: a header and a path rule, and a header and a path pin rule per variant. */
export const rulesOf = (c: CapabilityCost): number => c.rules ?? 2 + 2 * c.variants;

/** A capability to place. */
export interface CapabilityLoad extends CapabilityCost {
  /** Targets expected in all of its groups together at the fleet's size. @default 0 */
  readonly expectedTargets?: number;
  /** The load balancer (index) it must go on; unset: wherever it fits first. */
  readonly loadBalancer?: number;
}

/** One load balancer of a packing: its capabilities and what they take of its quotas. */
export interface PackedLoadBalancer {
  readonly capabilities: readonly string[];
  readonly targetGroups: number;
  readonly rules: number;
  readonly expectedTargets: number;
}

/** A quota a layout breaks, naming the capability that breaks it. */
export interface PackingRefusal {
  readonly capability: string;
  readonly quota: keyof LoadBalancerQuotas;
  /** One line naming the capability, the count and the quota. */
  readonly message: string;
}

export type PackingResult = { readonly ok: true; readonly loadBalancers: readonly PackedLoadBalancer[] } | ({ readonly ok: false } & PackingRefusal);

/** Why a quota setting cannot be used (one line), or undefined. */
export function quotasProblem(quotas: LoadBalancerQuotas): string | undefined {
  for (const [name, value] of Object.entries(quotas) as [keyof LoadBalancerQuotas, number][]) {
    if (!(Number.isInteger(value) && value >= 1)) return `quota ${name} ${JSON.stringify(value)} must be a whole number, at least 1`;
  }
  if (quotas.targetGroupsPerLoadBalancer > MAX_TARGET_GROUPS_PER_LOAD_BALANCER) {
    return `quota targetGroupsPerLoadBalancer ${quotas.targetGroupsPerLoadBalancer} must be at most ${MAX_TARGET_GROUPS_PER_LOAD_BALANCER}: AWS does not raise it`;
  }
  return undefined;
}

interface Usage {
  targetGroups: number;
  rules: number;
  expectedTargets: number;
  capabilities: string[];
}

const usageOf = (c: CapabilityLoad) => ({ targetGroups: targetGroupsOf(c), rules: rulesOf(c), expectedTargets: c.expectedTargets ?? 0 });

/** The first quota `c` breaks on `lb` (undefined when it fits), with the count it would reach. */
function overrun(lb: Usage, c: CapabilityLoad, quotas: LoadBalancerQuotas): { quota: keyof LoadBalancerQuotas; count: number } | undefined {
  const u = usageOf(c);
  if (lb.targetGroups + u.targetGroups > quotas.targetGroupsPerLoadBalancer) return { quota: 'targetGroupsPerLoadBalancer', count: lb.targetGroups + u.targetGroups };
  if (lb.rules + u.rules > quotas.rulesPerLoadBalancer) return { quota: 'rulesPerLoadBalancer', count: lb.rules + u.rules };
  if (lb.expectedTargets + u.expectedTargets > quotas.targetsPerLoadBalancer) return { quota: 'targetsPerLoadBalancer', count: lb.expectedTargets + u.expectedTargets };
  return undefined;
}

const UNIT: Record<keyof LoadBalancerQuotas, string> = {
  targetGroupsPerLoadBalancer: 'target groups',
  rulesPerLoadBalancer: 'listener rules',
  targetsPerLoadBalancer: 'targets',
  targetsPerTargetGroup: 'targets in one group',
  loadBalancersPerRegion: 'load balancers',
};

function refuse(capability: string, quota: keyof LoadBalancerQuotas, what: string, quotas: LoadBalancerQuotas): PackingResult {
  return { ok: false, capability, quota, message: `capability "${capability}" ${what}; the quota "${QUOTA_NAMES[quota]}" is ${quotas[quota]}` };
}

/**
 * Places `capabilities` on as few load balancers as their quotas allow: those assigned to a load
 * balancer first, on it, then the others in list order, each on the first load balancer it fits
 * (a new one when none does). So appending a capability never moves one already placed, and a
 * deployment's layout is stable as it grows. `perLoadBalancer` is what every load balancer
 * carries besides the capabilities (the capability catalog's group and rule). A layout that
 * breaks a quota is refused in one line naming the capability and the quota.
 */
export function packCapabilities(
  capabilities: readonly CapabilityLoad[],
  quotas: LoadBalancerQuotas = DEFAULT_LOAD_BALANCER_QUOTAS,
  perLoadBalancer: { readonly targetGroups: number; readonly rules: number } = { targetGroups: 0, rules: 0 },
): PackingResult {
  const fresh = (): Usage => ({ targetGroups: perLoadBalancer.targetGroups, rules: perLoadBalancer.rules, expectedTargets: 0, capabilities: [] });
  const empty = fresh();
  // A capability that fits no load balancer, even an empty one.
  for (const c of capabilities) {
    const u = usageOf(c);
    if (u.expectedTargets > quotas.targetsPerTargetGroup * u.targetGroups) {
      return refuse(c.name, 'targetsPerTargetGroup', `expects ${u.expectedTargets} targets in ${u.targetGroups} target group${u.targetGroups > 1 ? 's' : ''}`, quotas);
    }
    const over = overrun(empty, c, quotas);
    if (over) return refuse(c.name, over.quota, `alone needs ${over.count} ${UNIT[over.quota]} on a load balancer${variantsNote(c)}`, quotas);
  }
  const lbs: Usage[] = [];
  const add = (lb: Usage, c: CapabilityLoad) => {
    const u = usageOf(c);
    lb.targetGroups += u.targetGroups;
    lb.rules += u.rules;
    lb.expectedTargets += u.expectedTargets;
    lb.capabilities.push(c.name);
  };
  for (const c of capabilities.filter((x) => x.loadBalancer !== undefined)) {
    const index = c.loadBalancer as number;
    if (!(Number.isInteger(index) && index >= 0)) return refuse(c.name, 'loadBalancersPerRegion', `is assigned to load balancer ${JSON.stringify(index)}, which is not a whole number from 0`, quotas);
    if (index >= quotas.loadBalancersPerRegion) return refuse(c.name, 'loadBalancersPerRegion', `is assigned to load balancer ${index} (load balancer ${index + 1})`, quotas);
    while (lbs.length <= index) lbs.push(fresh());
    const over = overrun(lbs[index], c, quotas);
    if (over) return refuse(c.name, over.quota, `takes load balancer ${index} it is assigned to to ${over.count} ${UNIT[over.quota]}`, quotas);
    add(lbs[index], c);
  }
  for (const c of capabilities.filter((x) => x.loadBalancer === undefined)) {
    let lb = lbs.find((l) => overrun(l, c, quotas) === undefined);
    if (!lb) {
      if (lbs.length >= quotas.loadBalancersPerRegion) return refuse(c.name, 'loadBalancersPerRegion', `needs load balancer ${lbs.length + 1}`, quotas);
      lb = fresh();
      lbs.push(lb);
    }
    add(lb, c);
  }
  return { ok: true, loadBalancers: lbs.map((l) => ({ capabilities: l.capabilities, targetGroups: l.targetGroups, rules: l.rules, expectedTargets: l.expectedTargets })) };
}

const variantsNote = (c: CapabilityLoad) => (c.variants > 0 ? ` (with its ${c.variants} variant${c.variants > 1 ? 's' : ''})` : '');

/**
 * What the router's capabilities cost on their load balancer, against ALB's quotas ("Quotas for
 * your Application Load Balancers"): target groups per load balancer, 100, not adjustable; rules
 * per load balancer (default rules not counted), 100 by default, adjustable through Service
 * Quotas. Pure: the router turns the outcome into an error or a warning.
 */

import { CapabilityCost, DEFAULT_RULES_PER_LOAD_BALANCER, MAX_TARGET_GROUPS_PER_LOAD_BALANCER, rulesOf, targetGroupsOf } from '../core/load-balancer-packing';

// The quotas and what a capability costs are declared once, in lib/core (the packing uses them too).
export { DEFAULT_RULES_PER_LOAD_BALANCER, MAX_TARGET_GROUPS_PER_LOAD_BALANCER, rulesOf, targetGroupsOf };
export type { CapabilityCost };

/** The capability catalog (`GET /agents`): one Lambda target group and one rule. Counted first, so an overrun names a capability. */
export const CATALOG_COST: CapabilityCost = { name: 'the capability catalog', variants: 0, rules: 1 };

/** A limit the capabilities go over, and the first capability (in list order) to take them past it. */
export interface Overrun {
  readonly total: number;
  readonly limit: number;
  readonly name: string;
  readonly variants: number;
  /** The count before that capability. */
  readonly before: number;
  /** The count with it. */
  readonly after: number;
}

function overrun(costs: readonly CapabilityCost[], cost: (c: CapabilityCost) => number, limit: number): Overrun | undefined {
  let count = 0;
  let first: Overrun | undefined;
  for (const c of costs) {
    const before = count;
    count += cost(c);
    if (first === undefined && count > limit) first = { total: 0, limit, name: c.name, variants: c.variants, before, after: count };
  }
  return first && { ...first, total: count };
}

/** The target groups and rules `costs` need, and where they go over the limits. */
export function loadBalancerBudget(costs: readonly CapabilityCost[]): {
  readonly targetGroups: number;
  readonly rules: number;
  readonly targetGroupOverrun?: Overrun;
  readonly ruleOverrun?: Overrun;
} {
  const targetGroupOverrun = overrun(costs, targetGroupsOf, MAX_TARGET_GROUPS_PER_LOAD_BALANCER);
  const ruleOverrun = overrun(costs, rulesOf, DEFAULT_RULES_PER_LOAD_BALANCER);
  return {
    targetGroups: costs.reduce((n, c) => n + targetGroupsOf(c), 0),
    rules: costs.reduce((n, c) => n + rulesOf(c), 0),
    ...(targetGroupOverrun ? { targetGroupOverrun } : {}),
    ...(ruleOverrun ? { ruleOverrun } : {}),
  };
}

const withVariants = (o: Overrun) => `"${o.name}"${o.variants > 0 ? ` with its ${o.variants} variant${o.variants > 1 ? 's' : ''}` : ''}`;

/** The error for a target-group overrun. */
export function targetGroupOverrunMessage(o: Overrun, catalog = false): string {
  return (
    `The capabilities need ${o.total} target groups (one per capability and one per variant${catalog ? ', and the capability catalog\'s' : ''}); an ALB routes to at most ${o.limit}, not adjustable. ` +
    `Capability ${withVariants(o)} takes the count from ${o.before} to ${o.after}; remove capabilities or variants, or put some on another load balancer`
  );
}

/** The warning for a rule overrun. */
export function ruleOverrunMessage(o: Overrun, catalog = false): string {
  return (
    `The capabilities need ${o.total} listener rules (a header and a path rule per capability, two pin rules per variant${catalog ? ', one for the capability catalog' : ''}); ` +
    `the default quota is ${o.limit} rules per load balancer, adjustable through Service Quotas ("Rules per Application Load Balancer"). ` +
    `Capability ${withVariants(o)} takes the count from ${o.before} to ${o.after}; raise the quota before deploying`
  );
}

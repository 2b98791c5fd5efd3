import type { ObservedTarget } from './reconcile-planner';

/**
 * The guard that keeps an empty canary from eating its share of traffic.
 *
 * ALB picks a target group of a weighted forward action by weight first and looks at its targets
 * second: a group with no registered target answers its share with `503 Service Unavailable`,
 * and one whose targets are all unhealthy fails open to them. A variant is deployed before its
 * agents start (and may lose them all later), so its configured weight would send that share
 * into a black hole. The reconcile pass therefore keeps each variant's weight at 0 in its
 * capability's weighted rules until the variant has a healthy target, gives that share to the
 * stable group, and puts the configured weight back once a target is healthy. Pure: the
 * adapter reads the rules and applies the plan.
 */

/** A target group in a forward action, with its weight as ELB reports it. */
export interface WeightedGroup {
  readonly targetGroupArn: string;
  readonly weight: number;
}

/** A listener rule whose forward action spreads requests over several target groups. */
export interface WeightedRule {
  readonly ruleArn: string;
  readonly groups: readonly WeightedGroup[];
}

/** A variant's group: its configured weight and whether it can serve (undefined: not read this pass). */
export interface VariantState {
  readonly capability: string;
  readonly weight: number;
  readonly ready: boolean | undefined;
}

/** New weights for one rule, in the rule's order of groups. */
export interface WeightChange {
  readonly ruleArn: string;
  readonly groups: readonly WeightedGroup[];
  /** Variants held at weight 0 in this rule (no healthy target). */
  readonly heldOut: readonly string[];
}

/** A group can take its share once one of its targets is `healthy` (not `initial`, not draining). */
export function variantReady(targets: readonly ObservedTarget[]): boolean {
  return targets.some((t) => t.state === 'healthy');
}

/**
 * The weight changes that make every weighted rule agree with the variants' readiness: a ready
 * variant gets its configured weight, one without a healthy target 0, and the rule's other
 * group (the capability's stable group) 100 minus the variants' weights. A rule with no
 * variant among its groups, with a variant whose group was not read, or with other than one
 * non-variant group, is left alone (it is not one the router built, or its state is unknown).
 */
export function planVariantWeights(rules: readonly WeightedRule[], variants: ReadonlyMap<string, VariantState>): { changes: WeightChange[]; heldOut: string[] } {
  const changes: WeightChange[] = [];
  const heldOut = new Set<string>();
  for (const rule of rules) {
    const inRule = rule.groups.filter((g) => variants.has(g.targetGroupArn));
    const stable = rule.groups.filter((g) => !variants.has(g.targetGroupArn));
    if (inRule.length === 0 || stable.length !== 1) continue;
    if (inRule.some((g) => variants.get(g.targetGroupArn)!.ready === undefined)) continue;
    const held: string[] = [];
    const wanted = new Map<string, number>();
    for (const g of inRule) {
      const v = variants.get(g.targetGroupArn)!;
      if (!v.ready) held.push(v.capability);
      wanted.set(g.targetGroupArn, v.ready ? v.weight : 0);
    }
    const variantTotal = [...wanted.values()].reduce((a, b) => a + b, 0);
    wanted.set(stable[0].targetGroupArn, Math.max(0, 100 - variantTotal));
    for (const name of held) heldOut.add(name);
    const groups = rule.groups.map((g) => ({ targetGroupArn: g.targetGroupArn, weight: wanted.get(g.targetGroupArn)! }));
    if (groups.some((g, i) => g.weight !== rule.groups[i].weight)) changes.push({ ruleArn: rule.ruleArn, groups, heldOut: held });
  }
  return { changes, heldOut: [...heldOut].sort() };
}

import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ElbTargetsError } from '../core/errors';
import type { RoutingConfig } from '../core/lease-schema';
import type { ObservedGroup } from '../core/reconcile-planner';
import { planVariantWeights, variantReady, VariantState } from '../core/variant-weights';
import { isTransient } from '../aws/elb-targets';
import { applyWeights, readWeightedRules } from '../aws/listener-rules';

/** What the reconcile pass needs to hold empty variants out of their capability's weighted rules. */
export interface VariantGuardDeps {
  readonly client: ElasticLoadBalancingV2Client;
  /** Each variant's configured weight, by the capability its agents list (`vision-canary` → 10). */
  readonly weights: Readonly<Record<string, number>>;
  /** Where the weighted rules are: every listener of the load balancer, or one listener. */
  readonly on: { readonly loadBalancerArn?: string; readonly listenerArn?: string };
}

export interface VariantGuardReport {
  /** Variants at weight 0 after this pass (no healthy target), sorted. */
  readonly heldOut: readonly string[];
  /** ModifyRule calls that succeeded. */
  readonly ruleChanges: number;
  readonly errors: readonly ElbTargetsError[];
}

function ruleError(arn: string, what: string, cause: unknown): ElbTargetsError {
  const name = (cause as { name?: string })?.name;
  return new ElbTargetsError(arn, isTransient(cause), `${what}: ${(cause as Error)?.message ?? String(cause)}`, { cause, ...(name ? { awsErrorName: name } : {}) });
}

/**
 * One guard pass (see lib/core/variant-weights.ts for why): readiness from the groups this
 * reconcile pass read, one DescribeRules per listener, one ModifyRule per rule whose weights
 * disagree. A failure is reported and left to the next pass; a variant whose group was not read
 * keeps the weights it has.
 */
export async function guardVariants(deps: VariantGuardDeps, routing: RoutingConfig, groups: readonly ObservedGroup[], deadline: () => AbortSignal): Promise<VariantGuardReport> {
  const variants = new Map<string, VariantState>();
  for (const [capability, weight] of Object.entries(deps.weights)) {
    const arn = routing.capabilities[capability]?.targetGroupArn;
    if (arn === undefined) continue;
    const group = groups.find((g) => g.targetGroupArn === arn);
    variants.set(arn, { capability, weight, ready: group ? variantReady(group.targets) : undefined });
  }
  if (variants.size === 0) return { heldOut: [], ruleChanges: 0, errors: [] };
  const where = deps.on.listenerArn ?? deps.on.loadBalancerArn ?? '?';
  let rules;
  try {
    rules = await readWeightedRules(deps.client, deps.on, deadline());
  } catch (cause) {
    return { heldOut: [], ruleChanges: 0, errors: [ruleError(where, 'reading the weighted listener rules failed', cause)] };
  }
  const { changes, heldOut } = planVariantWeights(rules, variants);
  const errors: ElbTargetsError[] = [];
  let ruleChanges = 0;
  for (const change of changes) {
    try {
      await applyWeights(deps.client, rules.find((r) => r.ruleArn === change.ruleArn)!, change, deadline());
      ruleChanges++;
    } catch (cause) {
      errors.push(ruleError(change.ruleArn, 'setting variant weights failed', cause));
    }
  }
  return { heldOut, ruleChanges, errors };
}

import { Token } from 'aws-cdk-lib';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { AgentLbValidationError } from './validation-error';

/**
 * The reconcile Lambda's guard for empty variants as {@link RegistrySync} sets it up: the weights
 * it restores and the rules it may change (lib/core/variant-weights.ts says why).
 */

/** Weighted variants the reconcile Lambda guards; see `RegistrySyncProps.variants`. */
export interface RegistrySyncVariants {
  /** Configured weight of each variant in percent, 0–100, by the capability its agents list (`{ 'vision-canary': 10 }`). */
  readonly weights: Readonly<Record<string, number>>;
  /** The rules whose forward action spreads requests over a capability's groups by weight. */
  readonly rules: readonly elbv2.ApplicationListenerRule[];
}

/** The weights to put in `AGENT_LB_CONFIG` (undefined when there are none), checked against the capabilities. */
export function checkedVariantWeights(
  scope: IConstruct,
  props: { readonly variants?: RegistrySyncVariants; readonly capabilities: object; readonly loadBalancer?: unknown; readonly listener?: unknown },
): Record<string, number> | undefined {
  if (!props.variants || Object.keys(props.variants.weights).length === 0) return undefined;
  for (const [name, weight] of Object.entries(props.variants.weights)) {
    if (!Object.hasOwn(props.capabilities, name)) throw new AgentLbValidationError(scope, `variants.weights names "${name}", which is not among capabilities`);
    if (Token.isUnresolved(weight) || !(Number.isInteger(weight) && weight >= 0 && weight <= 100)) {
      throw new AgentLbValidationError(scope, `variants.weights "${name}" ${weight} must be a whole percent, 0–100`);
    }
  }
  if (props.variants.rules.length === 0) throw new AgentLbValidationError(scope, 'variants.rules is empty: give the listener rules that forward to the variants by weight');
  if (!props.loadBalancer && !props.listener) {
    throw new AgentLbValidationError(scope, 'variants need loadBalancer or listener: the reconcile Lambda reads the weighted rules there');
  }
  return { ...props.variants.weights };
}

/**
 * Reading the weighted rules and changing their weights: ModifyRule on exactly those rules, no
 * other (Describe* actions take no resource-level permissions: "*" is their only valid resource).
 */
export function guardVariantRules(rules: readonly elbv2.ApplicationListenerRule[]): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({ sid: 'ReadWeightedRules', actions: ['elasticloadbalancing:DescribeListeners', 'elasticloadbalancing:DescribeRules'], resources: ['*'] }),
    new iam.PolicyStatement({ sid: 'SetVariantWeights', actions: ['elasticloadbalancing:ModifyRule'], resources: rules.map((r) => r.listenerRuleArn) }),
  ];
}

import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Construct } from 'constructs';
import type { ResolvedVariant, RoutingPolicy } from './routing-policy';
import { headerRulePriority, pathRulePriority, PriorityLayout, slotBlock } from './rule-priorities';

/** Where a capability's rules go and what they match. */
export interface CapabilityRulesInput {
  readonly listener: elbv2.IApplicationListener;
  readonly layout: PriorityLayout;
  /** The capability's slot; its variants' pin rules take the slots below it. */
  readonly slot: number;
  readonly name: string;
  readonly headerName: string;
  readonly variantHeaderName: string;
  readonly pathPrefix: string;
  readonly policy: RoutingPolicy;
  readonly stable: elbv2.IApplicationTargetGroup;
  /** Each variant with its target group, in the order configured. */
  readonly variants: readonly { readonly variant: ResolvedVariant; readonly group: elbv2.IApplicationTargetGroup; readonly scope: Construct }[];
}

/** The rules of one variant: the capability's header or path plus the variant header, to the variant's group alone. */
export interface VariantPinRules {
  readonly variant: string;
  readonly header: elbv2.ApplicationListenerRule;
  readonly path: elbv2.ApplicationListenerRule;
}

/** The listener rules of one capability. */
export interface CapabilityRules {
  readonly header: elbv2.ApplicationListenerRule;
  readonly path: elbv2.ApplicationListenerRule;
  readonly pins: readonly VariantPinRules[];
}

/**
 * The listener rules of one capability, under `scope` (construct ids `HeaderRule`, `PathRule`,
 * and `HeaderPinRule`/`PathPinRule` under each variant's scope):
 * - header rule: `<headerName>: <name>`; path rule: `/<pathPrefix>/<name>` and `…/*`; both
 *   forward to the stable group alone, or, with variants, to the stable group and the variants'
 *   groups by weight (stable: 100 − the variants' weights), with target group stickiness when
 *   the policy has it;
 * - per variant, a header pin rule (`<headerName>: <name>` and `<variantHeaderName>: <variant>`)
 *   and a path pin rule (the path patterns and the variant header), forwarding to the variant's
 *   group alone. They sit in the slots just below the capability's (see `slotBlock`), so ALB
 *   evaluates them first; header rules stay ahead of every path rule. The pin rules also keep a
 *   variant's group in use by the listener, so ALB health-checks its targets even while the
 *   reconcile Lambda holds the variant out of the weighted rules.
 */
export function addCapabilityRules(scope: Construct, input: CapabilityRulesInput): CapabilityRules {
  const { listener, layout, slot, name, policy } = input;
  const forward =
    input.variants.length === 0
      ? elbv2.ListenerAction.forward([input.stable])
      : elbv2.ListenerAction.weightedForward(
          [{ targetGroup: input.stable, weight: policy.stableWeight }, ...input.variants.map((v) => ({ targetGroup: v.group, weight: v.variant.weight }))],
          policy.variantStickiness ? { stickinessDuration: policy.variantStickiness } : {},
        );
  const capabilityHeader = elbv2.ListenerCondition.httpHeader(input.headerName, [name]);
  const capabilityPaths = elbv2.ListenerCondition.pathPatterns([`/${input.pathPrefix}/${name}`, `/${input.pathPrefix}/${name}/*`]);
  const header = new elbv2.ApplicationListenerRule(scope, 'HeaderRule', {
    listener,
    priority: headerRulePriority(layout, slot),
    conditions: [capabilityHeader],
    action: forward,
  });
  const path = new elbv2.ApplicationListenerRule(scope, 'PathRule', {
    listener,
    priority: pathRulePriority(layout, slot),
    conditions: [capabilityPaths],
    action: forward,
  });
  const pinSlots = slotBlock(slot, input.variants.length).slice(1);
  const pins = input.variants.map(({ variant, group, scope: variantScope }, i): VariantPinRules => {
    const pinned = elbv2.ListenerAction.forward([group]);
    const variantHeader = elbv2.ListenerCondition.httpHeader(input.variantHeaderName, [variant.name]);
    return {
      variant: variant.name,
      header: new elbv2.ApplicationListenerRule(variantScope, 'HeaderPinRule', {
        listener,
        priority: headerRulePriority(layout, pinSlots[i]),
        conditions: [capabilityHeader, variantHeader],
        action: pinned,
      }),
      path: new elbv2.ApplicationListenerRule(variantScope, 'PathPinRule', {
        listener,
        priority: pathRulePriority(layout, pinSlots[i]),
        conditions: [capabilityPaths, variantHeader],
        action: pinned,
      }),
    };
  });
  return { header, path, pins };
}

/**
 * The capability catalog's rule (construct id `CatalogRule`): `GET` and `HEAD` of exactly
 * `/<pathPrefix>` to the catalog's Lambda target group. Exact path: it never matches
 * `/<pathPrefix>/<capability>/…`.
 */
export function addCatalogRule(scope: Construct, listener: elbv2.IApplicationListener, priority: number, pathPrefix: string, targetGroup: elbv2.IApplicationTargetGroup): elbv2.ApplicationListenerRule {
  return new elbv2.ApplicationListenerRule(scope, 'CatalogRule', {
    listener,
    priority,
    conditions: [elbv2.ListenerCondition.pathPatterns([`/${pathPrefix}`]), elbv2.ListenerCondition.httpRequestMethods(['GET', 'HEAD'])],
    action: elbv2.ListenerAction.forward([targetGroup]),
  });
}

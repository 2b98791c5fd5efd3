import { Annotations, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Construct } from 'constructs';
import type { CapabilityProps, CapabilityTargetType, LoadBalancingAlgorithm } from './capability-props';
import { addCapabilityRules, addCatalogRule } from './capability-rules';
import { capabilityTargetGroup, groupAddressing } from './capability-target-group';
import { validateCapability } from './capability-validation';
import { CATALOG_COST, loadBalancerBudget, ruleOverrunMessage, targetGroupOverrunMessage } from './load-balancer-budget';
import { resolveRoutingPolicy, RoutingPolicy } from './routing-policy';
import { assignSlots, CATALOG_SLOT_NAME, freeSlot, headerRulePriority, LISTENER_PRIORITIES, MovedSlot, pathRulePriority, PriorityLayout, priorityLayout, RulePriorityRange, slotBlock } from './rule-priorities';
import { AgentLbValidationError } from './validation-error';

export type {
  ApplicationCookieStickiness,
  CapabilityHealthCheck,
  CapabilityProps,
  CapabilityStickiness,
  CapabilityTargetType,
  CapabilityVariant,
  LoadBalancerCookieStickiness,
  LoadBalancingAlgorithm,
} from './capability-props';

/** Properties of a {@link CapabilityRouter}. */
export interface CapabilityRouterProps {
  /** VPC the target groups live in. */
  readonly vpc: ec2.IVpc;

  /**
   * Listener the routing rules are added to: one defined in this app, or one imported with
   * `ApplicationListener.fromApplicationListenerAttributes` / `fromLookup`.
   */
  readonly listener: elbv2.IApplicationListener;

  /**
   * The capabilities to route. One ALB routes to at most 100 target groups: one per capability
   * and one per variant.
   */
  readonly capabilities: readonly CapabilityProps[];

  /**
   * Listener-rule priorities the router may use; rules of your own on the same listener must
   * lie outside it (on a listener defined in this app a clash is reported at synth). Needs at
   * least two priorities per capability and two per variant.
   *
   * @default - the whole listener, 1–50000
   */
  readonly priorityRange?: RulePriorityRange;

  /**
   * Make the listener's default action a `404` with a JSON body naming the known capabilities.
   * This replaces the default action the listener had, so only set it on a listener that serves
   * agent-lb alone; an imported listener's default action cannot be set from here.
   *
   * @default false - the listener's default action is left as it is
   */
  readonly unknownCapabilityResponse?: boolean;

  /**
   * Request header that selects a capability; 1–40 characters valid in an HTTP header name.
   *
   * @default 'X-Agent-Capability'
   */
  readonly headerName?: string;

  /**
   * Request header that pins a request to one variant of its capability (`X-Agent-Variant:
   * canary`), whatever the weights; 1–40 characters valid in an HTTP header name, other than
   * `headerName`. Values match case-insensitively; a value naming no variant of the capability
   * is routed by weight.
   *
   * @default 'X-Agent-Variant'
   */
  readonly variantHeaderName?: string;

  /**
   * First path segment(s) of capability paths: requests to `/<pathPrefix>/<name>/*` go to
   * capability `<name>`. Segments of letters, digits, `_`, `-`, `.` and `~` separated by `/`,
   * without a leading or trailing `/`, at most 61 characters.
   *
   * @default 'agents'
   */
  readonly pathPrefix?: string;

  /**
   * The capability catalog's target group (a {@link CapabilityCatalog}'s): the router adds a rule
   * in its priority range that forwards `GET` and `HEAD` of exactly `/<pathPrefix>` to it. It
   * sits in the path half of the range, behind every header rule (a request naming a capability
   * by header still reaches that capability), and matches the bare path only, so it never
   * shadows `/<pathPrefix>/<capability>/…`. It takes a rule-priority slot of its own, hashed
   * from a name no capability can have, after the capabilities' (it never moves theirs).
   *
   * @default - no catalog rule
   */
  readonly catalogTargetGroup?: elbv2.IApplicationTargetGroup;
}

/** Where one variant's pin rules sit and what it weighs. */
export interface VariantRoute {
  /** The variant's name (`canary`). */
  readonly name: string;
  /** The capability its agents list (`vision-canary`). */
  readonly capability: string;
  /** Percent of the capability's requests, 0–100. */
  readonly weight: number;
  /** Priority of the header pin rule (capability header + variant header). */
  readonly headerRulePriority: number;
  /** Priority of the path pin rule (capability path + variant header). */
  readonly pathRulePriority: number;
}

/** Where one capability's rules sit and what its target groups take. */
export interface CapabilityRoute {
  readonly name: string;
  readonly targetType: CapabilityTargetType;
  readonly port: number;
  /** The rule-priority slot, 1 to half the size of the priority range. */
  readonly slot: number;
  /** Priority of the header rule (the range's `min` + slot − 1). */
  readonly headerRulePriority: number;
  /** Priority of the path rule (the same place in the range's second half). */
  readonly pathRulePriority: number;
  /** Whether `slot` was pinned with `priority` rather than derived from the name. */
  readonly pinned: boolean;
  /** The algorithm of its target groups. */
  readonly algorithm: LoadBalancingAlgorithm;
  /** The stable group's weight in the capability's rules: 100 − the variants' weights. */
  readonly stableWeight: number;
  /** Its variants, in the order configured. */
  readonly variants: readonly VariantRoute[];
}

/** At most this many target groups can be attached to one ALB (a hard limit): capabilities and their variants. */
export const MAX_CAPABILITIES = 100;
/** Rule-priority slots per kind of rule on a whole listener: header rules use 1–25000, path rules 25001–50000. */
export const PRIORITY_SLOTS = LISTENER_PRIORITIES.max / 2;
/** Default request header naming the capability. */
export const DEFAULT_CAPABILITY_HEADER = 'X-Agent-Capability';
/** Default request header pinning a request to a variant. */
export const DEFAULT_VARIANT_HEADER = 'X-Agent-Variant';
/** Default first path segment of capability paths. */
export const DEFAULT_PATH_PREFIX = 'agents';
/** ALB limit on the body of a fixed response. */
export const MAX_FIXED_RESPONSE_BODY = 1024;

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$/;
const PATH_PREFIX = /^[A-Za-z0-9_.~-]+(?:\/[A-Za-z0-9_.~-]+)*$/;
/** 128 characters per path pattern − `/` − `/` − `/*` − a 63-character name. */
const MAX_PATH_PREFIX = 128 - 4 - 63;

/**
 * The body of the default 404 response: JSON naming the known capabilities (sorted) and how to
 * ask for one. When the names would not fit the 1024-character limit of fixed responses, the
 * list is cut short and `more` says how many were left out.
 */
export function unknownCapabilityBody(names: readonly string[], headerName: string, pathPrefix: string): string {
  const sorted = [...names].sort();
  const base = { error: 'unknown capability', header: headerName, path: `/${pathPrefix}/<capability>/` };
  for (let shown = sorted.length; shown >= 0; shown--) {
    const more = sorted.length - shown;
    const body = JSON.stringify({ ...base, capabilities: sorted.slice(0, shown), ...(more > 0 ? { more } : {}) });
    if (body.length <= MAX_FIXED_RESPONSE_BODY) return body;
  }
  // Unreachable: the header name and prefix are bounded well below the limit.
  return JSON.stringify({ error: 'unknown capability' });
}

/**
 * Routes requests on one ALB listener to the target groups of each capability.
 *
 * Each capability gets a target group (no targets at synth time: the sync Lambda registers the
 * agents holding live leases) tagged `agent-lb:capability = <name>`, with its algorithm,
 * stickiness and slow start as target group attributes, and two listener rules forwarding to it:
 * - header rule: `<headerName>: <name>` (header values match case-insensitively);
 * - path rule: `/<pathPrefix>/<name>` and `/<pathPrefix>/<name>/*` (paths match case-sensitively,
 *   and reach the agent unchanged).
 * A capability with variants gets a target group per variant (`agent-lb:capability =
 * <name>-<variant>`, plus `agent-lb:variant-of` and `agent-lb:variant-weight`); its two rules
 * forward to all its groups by weight, and each variant adds two pin rules that send requests
 * carrying `<variantHeaderName>: <variant>` to the variant alone (see {@link addCapabilityRules}).
 * Any other request gets the listener's default action, which the router leaves alone unless
 * `unknownCapabilityResponse` asks for a `404` with an `application/json` body naming the known
 * capabilities.
 *
 * **Rule priorities.** The rules stay inside `priorityRange` (default: the whole listener,
 * 1–50000), split into two halves of `n` slots. Every capability owns one slot `s` in 1–`n`;
 * its header rule sits at slot `s` of the first half and its path rule at slot `s` of the second,
 * so an explicit header always wins over a path; variant `i`'s pin rules take slot `s − 1 − i`
 * in each half, ahead of the capability's own rules. The slot is `priority` when pinned;
 * otherwise it is FNV-1a(name) mod `n` + 1, a pure function of the name, so adding, removing or
 * reordering other capabilities does not move it and CloudFormation never has to re-prioritise
 * existing rules. If an unpinned capability's slot (or a slot its pin rules need) is taken by one
 * earlier in the list (rare: about n²/(2 × slots) for n names), it takes the next free slot and a
 * warning suggests pinning it; append new capabilities at the end so only a newcomer can ever be
 * moved. A pinned priority may not overlap another capability's slots (an error at synth, not a
 * silent move), and on a listener defined in this app, neither may a rule of your own use one of
 * the router's priorities.
 *
 * **Budget.** At synth the router counts target groups (one per capability and variant; an ALB
 * routes to at most 100, not adjustable: an error naming the capability that goes over) and
 * listener rules (the default quota of 100 per load balancer is adjustable: a warning naming it).
 *
 * Target groups are named by CloudFormation (names are limited to 32 characters, capability
 * names are not), which also lets a target group be replaced when its type, port or protocol
 * changes.
 */
export class CapabilityRouter extends Construct {
  /** The target group of each capability and of each variant (`<capability>-<variant>`), by the name agents list. */
  public readonly targetGroups: Record<string, elbv2.ApplicationTargetGroup> = {};

  /** Each capability's route, in the order given. */
  public readonly routes: readonly CapabilityRoute[];

  /** Every listener rule the router added (a header and a path rule per capability, two pin rules per variant). */
  public readonly rules: readonly elbv2.ApplicationListenerRule[];

  /**
   * The rules that forward by weight (the header and path rules of capabilities with variants):
   * the reconcile Lambda may modify their forward actions to hold an empty variant out.
   */
  public readonly weightedRules: readonly elbv2.ApplicationListenerRule[];

  /** Request header that selects a capability. */
  public readonly headerName: string;

  /** Request header that pins a request to a variant. */
  public readonly variantHeaderName: string;

  /** First path segment(s) of capability paths. */
  public readonly pathPrefix: string;

  /** The listener-rule priorities the router may use. */
  public readonly priorityRange: RulePriorityRange;

  /** The rule forwarding `GET /<pathPrefix>` to the capability catalog, when there is one. */
  public readonly catalogRule?: elbv2.ApplicationListenerRule;

  private readonly layout: PriorityLayout;

  constructor(scope: Construct, id: string, props: CapabilityRouterProps) {
    super(scope, id);

    this.headerName = props.headerName ?? DEFAULT_CAPABILITY_HEADER;
    this.variantHeaderName = props.variantHeaderName ?? DEFAULT_VARIANT_HEADER;
    this.pathPrefix = props.pathPrefix ?? DEFAULT_PATH_PREFIX;
    for (const [what, name] of [
      ['Header name', this.headerName],
      ['Variant header name', this.variantHeaderName],
    ] as const) {
      if (!HEADER_NAME.test(name)) throw new AgentLbValidationError(this, `${what} ${JSON.stringify(name)} must be 1–40 characters of letters, digits and !#$%&'*+.^_\`|~-`);
    }
    if (this.variantHeaderName.toLowerCase() === this.headerName.toLowerCase()) {
      throw new AgentLbValidationError(this, `Variant header name ${JSON.stringify(this.variantHeaderName)} must differ from the capability header name ${JSON.stringify(this.headerName)} (header names are case-insensitive)`);
    }
    if (!PATH_PREFIX.test(this.pathPrefix)) {
      throw new AgentLbValidationError(this,
        `Path prefix ${JSON.stringify(this.pathPrefix)} must be segments of letters, digits, "_", "-", "." or "~" separated by "/", ` +
          'without a leading or trailing "/"',
      );
    }
    if (this.pathPrefix.length > MAX_PATH_PREFIX) {
      throw new AgentLbValidationError(this,
        `Path prefix ${JSON.stringify(this.pathPrefix)} is ${this.pathPrefix.length} characters; at most ${MAX_PATH_PREFIX} leave room for a 63-character capability name in a 128-character path pattern`,
      );
    }

    const capabilities = props.capabilities;
    if (capabilities.length === 0) {
      throw new AgentLbValidationError(this, 'capabilities is empty: list at least one capability to route (a registry with no target group would register nothing)');
    }
    if (capabilities.length > MAX_CAPABILITIES) {
      throw new AgentLbValidationError(this, `At most ${MAX_CAPABILITIES} capabilities fit one load balancer (one target group each), got ${capabilities.length}: capability ${JSON.stringify(capabilities[MAX_CAPABILITIES].name)} is the first over`);
    }
    const variantCount = capabilities.reduce((n, c) => n + (Array.isArray(c.variants) ? c.variants.length : 0), 0);
    const catalog = props.catalogTargetGroup !== undefined;
    this.layout = priorityLayout(props.priorityRange, capabilities.length, this, variantCount, catalog);
    this.priorityRange = this.layout.range;
    const policies = this.checkCapabilities(capabilities);
    const budget = loadBalancerBudget([...(catalog ? [CATALOG_COST] : []), ...capabilities.map((c, i) => ({ name: c.name, variants: policies[i].variants.length }))]);
    if (budget.targetGroupOverrun) throw new AgentLbValidationError(this, targetGroupOverrunMessage(budget.targetGroupOverrun, catalog));
    if (budget.ruleOverrun) Annotations.of(this).addWarningV2('agent-lb:rule-quota', ruleOverrunMessage(budget.ruleOverrun, catalog));
    const imported = !(props.listener instanceof elbv2.ApplicationListener);
    if (props.unknownCapabilityResponse && imported) {
      throw new AgentLbValidationError(this,
        'unknownCapabilityResponse sets the listener\'s default action, which an imported listener does not allow; set the 404 on the listener where it is defined, or leave unknownCapabilityResponse off',
      );
    }

    const requests = capabilities.map((c, i) => ({ name: c.name, priority: c.priority, pins: policies[i].variants.length }));
    let assigned: { slots: number[]; moved: MovedSlot[] };
    try {
      assigned = assignSlots(requests, this.layout.slots);
    } catch (cause) {
      throw new AgentLbValidationError(this, `priorityRange ${this.priorityRange.min}–${this.priorityRange.max}: ${(cause as Error).message}; widen the range or pin priorities`, { cause });
    }
    const { slots, moved } = assigned;
    for (const m of moved) {
      const why = m.by !== undefined ? `already used by "${m.by}"` : `which leaves no room below it for the pin rules of its ${requests.find((r) => r.name === m.name)?.pins} variants`;
      Annotations.of(this).addWarningV2(
        'agent-lb:priority-moved',
        `Capability "${m.name}" hashes to rule-priority slot ${m.natural}, ${why}; it uses slot ${m.slot}. Pin it with priority: ${m.slot} so its rules never move.`,
      );
    }
    // The catalog's slot is chosen last, around every capability's: adding the catalog never moves a capability's rules.
    const catalogSlot = catalog ? freeSlot(CATALOG_SLOT_NAME, this.layout.slots, new Set(slots.flatMap((s, i) => slotBlock(s, requests[i].pins)))) : undefined;
    this.node.addValidation({ validate: () => [...this.priorityClashes(requests, slots), ...this.foreignRuleClashes(props.listener)] });

    const routes: CapabilityRoute[] = [];
    const rules: elbv2.ApplicationListenerRule[] = [];
    const weightedRules: elbv2.ApplicationListenerRule[] = [];
    capabilities.forEach((c, i) => {
      const { route, added } = this.addCapability(props, c, policies[i], slots[i]);
      routes.push(route);
      rules.push(added.header, added.path, ...added.pins.flatMap((p) => [p.header, p.path]));
      if (added.pins.length > 0) weightedRules.push(added.header, added.path);
    });
    if (props.catalogTargetGroup !== undefined && catalogSlot !== undefined) {
      this.catalogRule = addCatalogRule(this, props.listener, pathRulePriority(this.layout, catalogSlot), this.pathPrefix, props.catalogTargetGroup);
      rules.push(this.catalogRule);
    }
    this.routes = routes;
    this.rules = rules;
    this.weightedRules = weightedRules;

    if (props.unknownCapabilityResponse) {
      props.listener.addAction('UnknownCapability', {
        action: elbv2.ListenerAction.fixedResponse(404, {
          contentType: 'application/json',
          messageBody: unknownCapabilityBody(
            capabilities.map((c) => c.name),
            this.headerName,
            this.pathPrefix,
          ),
        }),
      });
    }
  }

  /**
   * Every capability's props and routing policy checked, and the names agents list unique
   * across capabilities and variants (`vision-canary` may not be both a capability and a variant).
   */
  private checkCapabilities(capabilities: readonly CapabilityProps[]): RoutingPolicy[] {
    const seen = new Map<string, string>();
    return capabilities.map((c, i) => {
      validateCapability(this, c, i, this.layout.slots);
      const policy = resolveRoutingPolicy(this, c);
      for (const [name, what] of [[c.name, `capabilities[${i}]`], ...policy.variants.map((v) => [v.capability, `variant "${v.name}" of capabilities[${i}]`])]) {
        const first = seen.get(name);
        if (first !== undefined) throw new AgentLbValidationError(this, `Duplicate capability name "${name}" (${first} and ${what})`);
        seen.set(name, what);
      }
      if (c.priority !== undefined && policy.variants.length > 0 && c.priority <= policy.variants.length) {
        throw new AgentLbValidationError(this,
          `Capability "${c.name}": priority ${c.priority} leaves no room below it for the pin rules of its ${policy.variants.length} variants; pin it in ${policy.variants.length + 1}–${this.layout.slots}`,
        );
      }
      return policy;
    });
  }

  private addCapability(props: CapabilityRouterProps, c: CapabilityProps, policy: RoutingPolicy, slot: number) {
    const scope = new Construct(this, c.name);
    const stable = capabilityTargetGroup(scope, 'TargetGroup', props.vpc, c, policy);
    this.targetGroups[c.name] = stable;
    const variants = policy.variants.map((variant) => {
      const variantScope = new Construct(scope, `variant-${variant.name}`);
      const group = capabilityTargetGroup(variantScope, 'TargetGroup', props.vpc, c, policy, variant);
      this.targetGroups[variant.capability] = group;
      return { variant, group, scope: variantScope };
    });
    const added = addCapabilityRules(scope, {
      listener: props.listener,
      layout: this.layout,
      slot,
      name: c.name,
      headerName: this.headerName,
      variantHeaderName: this.variantHeaderName,
      pathPrefix: this.pathPrefix,
      policy,
      stable,
      variants,
    });
    const pinSlots = slotBlock(slot, variants.length).slice(1);
    const { targetType, port } = groupAddressing(c);
    const route: CapabilityRoute = {
      name: c.name,
      targetType,
      port,
      slot,
      headerRulePriority: headerRulePriority(this.layout, slot),
      pathRulePriority: pathRulePriority(this.layout, slot),
      pinned: c.priority !== undefined,
      algorithm: policy.algorithm,
      stableWeight: policy.stableWeight,
      variants: policy.variants.map((v, i) => ({
        name: v.name,
        capability: v.capability,
        weight: v.weight,
        headerRulePriority: headerRulePriority(this.layout, pinSlots[i]),
        pathRulePriority: pathRulePriority(this.layout, pinSlots[i]),
      })),
    };
    return { route, added };
  }

  /** Pinned priorities whose slots overlap another capability's (its own or its variants'); every clash is reported at once. */
  private priorityClashes(requests: readonly { name: string; priority?: number; pins: number }[], slots: readonly number[]): string[] {
    const bySlot = new Map<number, number[]>();
    slots.forEach((s, i) => {
      for (const taken of slotBlock(s, requests[i].pins)) bySlot.set(taken, [...(bySlot.get(taken) ?? []), i]);
    });
    const errors: string[] = [];
    const reported = new Set<string>();
    for (const [slot, indexes] of [...bySlot].sort(([a], [b]) => a - b)) {
      const key = indexes.join(',');
      if (indexes.length < 2 || reported.has(key)) continue;
      reported.add(key);
      const names = indexes.map((i) => `"${requests[i].name}" (${requests[i].priority !== undefined ? 'pinned' : 'hashed'})`);
      errors.push(
        `Rule-priority clash: capabilities ${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} share slot ${slot} ` +
          `(header rule ${headerRulePriority(this.layout, slot)}, path rule ${pathRulePriority(this.layout, slot)}); give the pinned ones other priorities in 1–${this.layout.slots}`,
      );
    }
    return errors;
  }

  /**
   * Rules of someone else in this app on the same listener (same ARN, token or literal) that use
   * one of the router's priorities: CloudFormation would only refuse them at deploy time.
   */
  private foreignRuleClashes(listener: elbv2.IApplicationListener): string[] {
    const ours = new Map<number, string>();
    const own = new Set<string>();
    for (const rule of this.rules) {
      const cfn = rule.node.defaultChild as elbv2.CfnListenerRule;
      own.add(cfn.node.path);
      ours.set(cfn.priority, rule.node.path);
    }
    const errors: string[] = [];
    const root = Stack.of(this).node.root;
    for (const c of root.node.findAll()) {
      if (!(c instanceof elbv2.CfnListenerRule) || own.has(c.node.path) || c.listenerArn !== listener.listenerArn) continue;
      const clash = ours.get(c.priority);
      if (clash === undefined) continue;
      errors.push(
        `Listener rule ${c.node.path} has priority ${c.priority}, which agent-lb's rule ${clash} uses; ` +
          `move your rule outside priorityRange ${this.priorityRange.min}–${this.priorityRange.max}, or set priorityRange to leave it out`,
      );
    }
    return errors;
  }
}

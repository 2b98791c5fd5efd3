import { Annotations, Duration, Stack, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Construct } from 'constructs';
import { CAPABILITY_TAG } from '../core/lease-schema';
import { validateCapability } from './capability-validation';
import { assignSlots, headerRulePriority, LISTENER_PRIORITIES, pathRulePriority, PriorityLayout, priorityLayout, RulePriorityRange } from './rule-priorities';
import { AgentLbValidationError } from './validation-error';

/** How a capability's targets are addressed: by IP address and port, or by EC2 instance id. */
export type CapabilityTargetType = 'ip' | 'instance';

/** Target-group health check of one capability. Every field has a default tuned for agents that come and go. */
export interface CapabilityHealthCheck {
  /**
   * Path the load balancer requests; must start with `/`, at most 1024 characters.
   *
   * @default '/'
   */
  readonly path?: string;

  /**
   * Port the health check connects to, 1–65535.
   *
   * @default - the port each target was registered with (`traffic-port`)
   */
  readonly port?: number;

  /**
   * Consecutive successes before an unhealthy target is healthy again, 2–10.
   *
   * @default 2
   */
  readonly healthyThresholdCount?: number;

  /**
   * Consecutive failures before a target is unhealthy, 2–10.
   *
   * @default 2
   */
  readonly unhealthyThresholdCount?: number;

  /**
   * Time between two health checks of one target, 5–300 seconds.
   *
   * @default Duration.seconds(10)
   */
  readonly interval?: Duration;

  /**
   * Time without a response that counts as a failure, 2–120 seconds and less than `interval`.
   *
   * @default Duration.seconds(5)
   */
  readonly timeout?: Duration;

  /**
   * HTTP codes that mean healthy, e.g. `200` or `200-299`.
   *
   * @default '200'
   */
  readonly healthyHttpCodes?: string;
}

/** One capability: a name agents advertise in their leases and the target group that serves it. */
export interface CapabilityProps {
  /**
   * Name of the capability, as agents list it in the `capabilities` attribute of their lease.
   * Must match `^[a-z0-9][a-z0-9_-]{0,62}$`.
   */
  readonly name: string;

  /**
   * Kind of target the capability's agents register as.
   *
   * @default 'ip'
   */
  readonly targetType?: CapabilityTargetType;

  /**
   * Default port of the target group, 1–65535. Leases carry their own port, so this only
   * matters for tools that register targets without one.
   *
   * @default 80 for HTTP, 443 for HTTPS
   */
  readonly port?: number;

  /**
   * Protocol the load balancer speaks to the agents.
   *
   * @default ApplicationProtocol.HTTP
   */
  readonly protocol?: elbv2.ApplicationProtocol;

  /**
   * Health check of the target group.
   *
   * @default - see the defaults of {@link CapabilityHealthCheck}
   */
  readonly healthCheck?: CapabilityHealthCheck;

  /**
   * Time a deregistered target keeps serving in-flight requests, 0–3600 seconds.
   *
   * @default Duration.seconds(30)
   */
  readonly deregistrationDelay?: Duration;

  /**
   * Ramp-up time for a newly healthy target: 0 (off) or 30–900 seconds.
   *
   * @default - no slow start
   */
  readonly slowStart?: Duration;

  /**
   * Pinned rule-priority slot, 1 to half the size of the router's `priorityRange` (25000 for
   * the whole listener): the header rule gets the range's `min` + slot − 1, the path rule the
   * same place in the range's second half. Pin a capability when a warning says its hashed slot
   * was taken.
   *
   * @default - derived from a hash of the name (see {@link CapabilityRouter})
   */
  readonly priority?: number;
}

/** Properties of a {@link CapabilityRouter}. */
export interface CapabilityRouterProps {
  /** VPC the target groups live in. */
  readonly vpc: ec2.IVpc;

  /**
   * Listener the routing rules are added to: one defined in this app, or one imported with
   * `ApplicationListener.fromApplicationListenerAttributes` / `fromLookup`.
   */
  readonly listener: elbv2.IApplicationListener;

  /** The capabilities to route, at most 100 (an ALB serves at most 100 target groups). */
  readonly capabilities: readonly CapabilityProps[];

  /**
   * Listener-rule priorities the router may use; rules of your own on the same listener must
   * lie outside it (on a listener defined in this app a clash is reported at synth). Needs at
   * least two priorities per capability.
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
   * First path segment(s) of capability paths: requests to `/<pathPrefix>/<name>/*` go to
   * capability `<name>`. Segments of letters, digits, `_`, `-`, `.` and `~` separated by `/`,
   * without a leading or trailing `/`, at most 61 characters.
   *
   * @default 'agents'
   */
  readonly pathPrefix?: string;
}

/** Where one capability's rules sit and what its target group takes. */
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
}

/** At most this many target groups can be attached to one ALB (a hard limit). */
export const MAX_CAPABILITIES = 100;
/** Rule-priority slots per kind of rule on a whole listener: header rules use 1–25000, path rules 25001–50000. */
export const PRIORITY_SLOTS = LISTENER_PRIORITIES.max / 2;
/** Default request header naming the capability. */
export const DEFAULT_CAPABILITY_HEADER = 'X-Agent-Capability';
/** Default first path segment of capability paths. */
export const DEFAULT_PATH_PREFIX = 'agents';
/** ALB limit on the body of a fixed response. */
export const MAX_FIXED_RESPONSE_BODY = 1024;

const DEFAULT_DEREGISTRATION_DELAY = Duration.seconds(30);
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
 * Routes requests on one ALB listener to one target group per capability.
 *
 * Each capability gets a target group (no targets at synth time: the sync Lambda registers the
 * agents holding live leases) tagged `agent-lb:capability = <name>`, and two listener rules
 * forwarding to it:
 * - header rule: `<headerName>: <name>` (header values match case-insensitively);
 * - path rule: `/<pathPrefix>/<name>` and `/<pathPrefix>/<name>/*` (paths match case-sensitively,
 *   and reach the agent unchanged).
 * Any other request gets the listener's default action, which the router leaves alone unless
 * `unknownCapabilityResponse` asks for a `404` with an `application/json` body naming the known
 * capabilities.
 *
 * **Rule priorities.** The rules stay inside `priorityRange` (default: the whole listener,
 * 1–50000), split into two halves of `n` slots. Every capability owns one slot `s` in 1–`n`;
 * its header rule sits at slot `s` of the first half and its path rule at slot `s` of the second,
 * so an explicit header always wins over a path. The slot is `priority` when pinned; otherwise it
 * is FNV-1a(name) mod `n` + 1, a pure function of the name, so adding, removing or reordering
 * other capabilities does not move it and CloudFormation never has to re-prioritise existing
 * rules. If two unpinned names hash to the same slot (rare: about n²/(2 × slots) for n names), the
 * one later in the list takes the next free slot and a warning suggests pinning it; append new
 * capabilities at the end so only a newcomer can ever be moved. A pinned priority may not equal
 * another capability's slot (an error at synth, not a silent move), and on a listener defined
 * in this app, neither may a rule of your own use one of the router's priorities.
 *
 * Target groups are named by CloudFormation (names are limited to 32 characters, capability
 * names are not), which also lets a target group be replaced when its type, port or protocol
 * changes.
 */
export class CapabilityRouter extends Construct {
  /** The target group of each capability, by name. */
  public readonly targetGroups: Record<string, elbv2.ApplicationTargetGroup> = {};

  /** Each capability's route, in the order given. */
  public readonly routes: readonly CapabilityRoute[];

  /** Every listener rule the router added (a header and a path rule per capability). */
  public readonly rules: readonly elbv2.ApplicationListenerRule[];

  /** Request header that selects a capability. */
  public readonly headerName: string;

  /** First path segment(s) of capability paths. */
  public readonly pathPrefix: string;

  /** The listener-rule priorities the router may use. */
  public readonly priorityRange: RulePriorityRange;

  private readonly layout: PriorityLayout;

  constructor(scope: Construct, id: string, props: CapabilityRouterProps) {
    super(scope, id);

    this.headerName = props.headerName ?? DEFAULT_CAPABILITY_HEADER;
    this.pathPrefix = props.pathPrefix ?? DEFAULT_PATH_PREFIX;
    if (!HEADER_NAME.test(this.headerName)) {
      throw new AgentLbValidationError(this, `Header name ${JSON.stringify(this.headerName)} must be 1–40 characters of letters, digits and !#$%&'*+.^_\`|~-`);
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
    if (capabilities.length > MAX_CAPABILITIES) {
      throw new AgentLbValidationError(this, `At most ${MAX_CAPABILITIES} capabilities fit one load balancer (one target group each), got ${capabilities.length}`);
    }
    this.layout = priorityLayout(props.priorityRange, capabilities.length, this);
    this.priorityRange = this.layout.range;
    const seen = new Map<string, number>();
    capabilities.forEach((c, i) => {
      validateCapability(this, c, i, this.layout.slots);
      const first = seen.get(c.name);
      if (first !== undefined) throw new AgentLbValidationError(this, `Duplicate capability name "${c.name}" (capabilities[${first}] and capabilities[${i}])`);
      seen.set(c.name, i);
    });
    const imported = !(props.listener instanceof elbv2.ApplicationListener);
    if (props.unknownCapabilityResponse && imported) {
      throw new AgentLbValidationError(this,
        'unknownCapabilityResponse sets the listener\'s default action, which an imported listener does not allow; set the 404 on the listener where it is defined, or leave unknownCapabilityResponse off',
      );
    }

    const { slots, moved } = assignSlots(capabilities, this.layout.slots);
    for (const m of moved) {
      Annotations.of(this).addWarningV2(
        'agent-lb:priority-moved',
        `Capability "${m.name}" hashes to rule-priority slot ${m.natural}, already used by "${m.by}"; it uses slot ${m.slot}. ` +
          `Pin it with priority: ${m.slot} so its rules never move.`,
      );
    }
    if (capabilities.length > 50) {
      Annotations.of(this).addWarningV2(
        'agent-lb:rule-quota',
        `${capabilities.length} capabilities need ${2 * capabilities.length} listener rules; the default quota is 100 rules per load balancer (adjustable through Service Quotas)`,
      );
    }
    this.node.addValidation({ validate: () => [...this.priorityClashes(capabilities, slots), ...this.foreignRuleClashes(props.listener)] });

    const routes: CapabilityRoute[] = [];
    const rules: elbv2.ApplicationListenerRule[] = [];
    capabilities.forEach((c, i) => {
      const route = this.addCapability(props, c, slots[i], rules);
      routes.push(route);
    });
    this.routes = routes;
    this.rules = rules;

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

  private addCapability(props: CapabilityRouterProps, c: CapabilityProps, slot: number, rules: elbv2.ApplicationListenerRule[]): CapabilityRoute {
    const scope = new Construct(this, c.name);
    const protocol = c.protocol ?? elbv2.ApplicationProtocol.HTTP;
    const port = c.port ?? (protocol === elbv2.ApplicationProtocol.HTTPS ? 443 : 80);
    const targetType = c.targetType ?? 'ip';
    const hc = c.healthCheck ?? {};
    const slowStart = c.slowStart && c.slowStart.toSeconds() !== 0 ? c.slowStart : undefined;

    const targetGroup = new elbv2.ApplicationTargetGroup(scope, 'TargetGroup', {
      vpc: props.vpc,
      targetType: targetType === 'ip' ? elbv2.TargetType.IP : elbv2.TargetType.INSTANCE,
      protocol,
      port,
      deregistrationDelay: c.deregistrationDelay ?? DEFAULT_DEREGISTRATION_DELAY,
      slowStart,
      healthCheck: {
        enabled: true,
        path: hc.path ?? '/',
        port: hc.port !== undefined ? String(hc.port) : 'traffic-port',
        healthyThresholdCount: hc.healthyThresholdCount ?? 2,
        unhealthyThresholdCount: hc.unhealthyThresholdCount ?? 2,
        interval: hc.interval ?? Duration.seconds(10),
        timeout: hc.timeout ?? Duration.seconds(5),
        healthyHttpCodes: hc.healthyHttpCodes ?? '200',
      },
    });
    Tags.of(targetGroup).add(CAPABILITY_TAG, c.name);
    this.targetGroups[c.name] = targetGroup;

    const forward = elbv2.ListenerAction.forward([targetGroup]);
    const headerPriority = headerRulePriority(this.layout, slot);
    const pathPriority = pathRulePriority(this.layout, slot);
    rules.push(
      new elbv2.ApplicationListenerRule(scope, 'HeaderRule', {
        listener: props.listener,
        priority: headerPriority,
        conditions: [elbv2.ListenerCondition.httpHeader(this.headerName, [c.name])],
        action: forward,
      }),
      new elbv2.ApplicationListenerRule(scope, 'PathRule', {
        listener: props.listener,
        priority: pathPriority,
        conditions: [elbv2.ListenerCondition.pathPatterns([`/${this.pathPrefix}/${c.name}`, `/${this.pathPrefix}/${c.name}/*`])],
        action: forward,
      }),
    );

    return {
      name: c.name,
      targetType,
      port,
      slot,
      headerRulePriority: headerPriority,
      pathRulePriority: pathPriority,
      pinned: c.priority !== undefined,
    };
  }

  /** Pinned priorities that equal another capability's slot; every clash is reported at once. */
  private priorityClashes(capabilities: readonly CapabilityProps[], slots: readonly number[]): string[] {
    const bySlot = new Map<number, number[]>();
    slots.forEach((s, i) => bySlot.set(s, [...(bySlot.get(s) ?? []), i]));
    const errors: string[] = [];
    for (const [slot, indexes] of bySlot) {
      if (indexes.length < 2) continue;
      const names = indexes.map((i) => `"${capabilities[i].name}" (${capabilities[i].priority !== undefined ? 'pinned' : 'hashed'})`);
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

import { Annotations, Duration, Tags, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Construct } from 'constructs';
import { CAPABILITY_NAME, CAPABILITY_TAG } from '../core/lease-schema';

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
   * Pinned rule-priority slot, 1–25000: the header rule gets this priority and the path rule
   * 25000 + this. Pin a capability when a warning says its hashed slot was taken.
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
   * Listener the routing rules are added to. The router also sets its default action (the
   * 404 JSON response), so the listener must be defined in this app, not imported.
   */
  readonly listener: elbv2.ApplicationListener;

  /** The capabilities to route, at most 100 (an ALB serves at most 100 target groups). */
  readonly capabilities: readonly CapabilityProps[];

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
  /** The rule-priority slot, 1–25000. */
  readonly slot: number;
  /** Priority of the header rule (= slot). */
  readonly headerRulePriority: number;
  /** Priority of the path rule (= 25000 + slot). */
  readonly pathRulePriority: number;
  /** Whether `slot` was pinned with `priority` rather than derived from the name. */
  readonly pinned: boolean;
}

/** At most this many target groups can be attached to one ALB (a hard limit). */
export const MAX_CAPABILITIES = 100;
/** Rule-priority slots per kind of rule: header rules use 1–25000, path rules 25001–50000. */
export const PRIORITY_SLOTS = 25_000;
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
 * The natural rule-priority slot of a capability name: FNV-1a (32 bit) of its UTF-8 bytes,
 * modulo 25000, plus 1. A pure function of the name.
 */
export function capabilitySlot(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return (hash % PRIORITY_SLOTS) + 1;
}

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

/** Assigns slots to unpinned capabilities in list order; a taken slot moves the later one to the next free slot. */
function assignSlots(capabilities: readonly CapabilityProps[]): { slots: number[]; moved: { name: string; natural: number; slot: number; by: string }[] } {
  const owner = new Map<number, string>();
  const slots: number[] = [];
  const moved: { name: string; natural: number; slot: number; by: string }[] = [];
  for (const c of capabilities) {
    if (c.priority !== undefined) {
      slots.push(c.priority);
      continue;
    }
    const natural = capabilitySlot(c.name);
    let slot = natural;
    while (owner.has(slot)) slot = (slot % PRIORITY_SLOTS) + 1;
    if (slot !== natural) moved.push({ name: c.name, natural, slot, by: owner.get(natural)! });
    owner.set(slot, c.name);
    slots.push(slot);
  }
  return { slots, moved };
}

function seconds(d: Duration): number | undefined {
  const s = d.toSeconds({ integral: false });
  return Token.isUnresolved(s) ? undefined : s;
}

function known(n: number | undefined): n is number {
  return n !== undefined && !Token.isUnresolved(n);
}

function validateCapability(c: CapabilityProps, index: number): void {
  if (typeof c.name !== 'string' || !CAPABILITY_NAME.test(c.name)) {
    throw new Error(
      `Capability name ${JSON.stringify(c.name)} (capabilities[${index}]) must match ${CAPABILITY_NAME.source}: ` +
        '1–63 lowercase letters, digits, "_" or "-", starting with a letter or digit',
    );
  }
  const where = `Capability "${c.name}"`;
  if (c.targetType !== undefined && c.targetType !== 'ip' && c.targetType !== 'instance') {
    throw new Error(`${where}: targetType ${JSON.stringify(c.targetType)} must be "ip" or "instance"`);
  }
  if (c.protocol !== undefined && c.protocol !== elbv2.ApplicationProtocol.HTTP && c.protocol !== elbv2.ApplicationProtocol.HTTPS) {
    throw new Error(`${where}: protocol ${JSON.stringify(c.protocol)} must be "HTTP" or "HTTPS"`);
  }
  if (known(c.port) && !(Number.isInteger(c.port) && c.port >= 1 && c.port <= 65535)) {
    throw new Error(`${where}: port ${c.port} is out of range 1–65535`);
  }
  if (known(c.priority) && !(Number.isInteger(c.priority) && c.priority >= 1 && c.priority <= PRIORITY_SLOTS)) {
    throw new Error(`${where}: priority ${c.priority} is out of range 1–${PRIORITY_SLOTS}`);
  }
  const dereg = c.deregistrationDelay && seconds(c.deregistrationDelay);
  if (dereg !== undefined && !(Number.isInteger(dereg) && dereg >= 0 && dereg <= 3600)) {
    throw new Error(`${where}: deregistration delay ${dereg} seconds is out of range 0–3600 seconds`);
  }
  const slow = c.slowStart && seconds(c.slowStart);
  if (slow !== undefined && slow !== 0 && !(Number.isInteger(slow) && slow >= 30 && slow <= 900)) {
    throw new Error(`${where}: slow start ${slow} seconds must be 0 (off) or in 30–900 seconds`);
  }
  const hc = c.healthCheck;
  if (!hc) return;
  if (hc.path !== undefined && !Token.isUnresolved(hc.path) && !(hc.path.startsWith('/') && hc.path.length <= 1024)) {
    throw new Error(`${where}: health check path ${JSON.stringify(hc.path)} must start with "/" and be at most 1024 characters`);
  }
  if (known(hc.port) && !(Number.isInteger(hc.port) && hc.port >= 1 && hc.port <= 65535)) {
    throw new Error(`${where}: health check port ${hc.port} is out of range 1–65535`);
  }
  for (const key of ['healthyThresholdCount', 'unhealthyThresholdCount'] as const) {
    const v = hc[key];
    if (known(v) && !(Number.isInteger(v) && v >= 2 && v <= 10)) {
      throw new Error(`${where}: health check ${key} ${v} is out of range 2–10`);
    }
  }
  const interval = hc.interval && seconds(hc.interval);
  if (interval !== undefined && !(Number.isInteger(interval) && interval >= 5 && interval <= 300)) {
    throw new Error(`${where}: health check interval ${interval} seconds is out of range 5–300 seconds`);
  }
  const timeout = hc.timeout && seconds(hc.timeout);
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 2 && timeout <= 120)) {
    throw new Error(`${where}: health check timeout ${timeout} seconds is out of range 2–120 seconds`);
  }
  const effectiveInterval = interval ?? (hc.interval ? undefined : 10);
  const effectiveTimeout = timeout ?? (hc.timeout ? undefined : 5);
  if (effectiveInterval !== undefined && effectiveTimeout !== undefined && effectiveTimeout >= effectiveInterval) {
    throw new Error(`${where}: health check timeout ${effectiveTimeout} seconds must be less than the interval ${effectiveInterval} seconds`);
  }
  if (hc.healthyHttpCodes !== undefined && !Token.isUnresolved(hc.healthyHttpCodes) && !/^\d{3}(?:-\d{3})?(?:,\d{3}(?:-\d{3})?)*$/.test(hc.healthyHttpCodes)) {
    throw new Error(`${where}: health check healthyHttpCodes ${JSON.stringify(hc.healthyHttpCodes)} must be codes or ranges like "200" or "200-299,302"`);
  }
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
 * Any other request gets the listener's default action: `404` with an `application/json` body
 * naming the known capabilities.
 *
 * **Rule priorities.** Every capability owns one slot `s` in 1–25000; its header rule has
 * priority `s` and its path rule `25000 + s`, so an explicit header always wins over a path.
 * The slot is `priority` when pinned; otherwise it is FNV-1a(name) mod 25000 + 1, a pure
 * function of the name, so adding, removing or reordering other capabilities does not move it
 * and CloudFormation never has to re-prioritise existing rules. If two unpinned names hash to
 * the same slot (rare: about n²/50000 for n capabilities), the one later in the list takes the
 * next free slot and a warning suggests pinning it; append new capabilities at the end so only
 * a newcomer can ever be moved. A pinned priority may not equal another capability's slot
 * (an error at synth, not a silent move).
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

  /** Request header that selects a capability. */
  public readonly headerName: string;

  /** First path segment(s) of capability paths. */
  public readonly pathPrefix: string;

  constructor(scope: Construct, id: string, props: CapabilityRouterProps) {
    super(scope, id);

    this.headerName = props.headerName ?? DEFAULT_CAPABILITY_HEADER;
    this.pathPrefix = props.pathPrefix ?? DEFAULT_PATH_PREFIX;
    if (!HEADER_NAME.test(this.headerName)) {
      throw new Error(`Header name ${JSON.stringify(this.headerName)} must be 1–40 characters of letters, digits and !#$%&'*+.^_\`|~-`);
    }
    if (!PATH_PREFIX.test(this.pathPrefix)) {
      throw new Error(
        `Path prefix ${JSON.stringify(this.pathPrefix)} must be segments of letters, digits, "_", "-", "." or "~" separated by "/", ` +
          'without a leading or trailing "/"',
      );
    }
    if (this.pathPrefix.length > MAX_PATH_PREFIX) {
      throw new Error(
        `Path prefix ${JSON.stringify(this.pathPrefix)} is ${this.pathPrefix.length} characters; at most ${MAX_PATH_PREFIX} leave room for a 63-character capability name in a 128-character path pattern`,
      );
    }

    const capabilities = props.capabilities;
    if (capabilities.length > MAX_CAPABILITIES) {
      throw new Error(`At most ${MAX_CAPABILITIES} capabilities fit one load balancer (one target group each), got ${capabilities.length}`);
    }
    const seen = new Map<string, number>();
    capabilities.forEach((c, i) => {
      validateCapability(c, i);
      const first = seen.get(c.name);
      if (first !== undefined) throw new Error(`Duplicate capability name "${c.name}" (capabilities[${first}] and capabilities[${i}])`);
      seen.set(c.name, i);
    });

    const { slots, moved } = assignSlots(capabilities);
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
    this.node.addValidation({ validate: () => this.priorityClashes(capabilities, slots) });

    const routes: CapabilityRoute[] = [];
    capabilities.forEach((c, i) => {
      const route = this.addCapability(props, c, slots[i]);
      routes.push(route);
    });
    this.routes = routes;

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

  private addCapability(props: CapabilityRouterProps, c: CapabilityProps, slot: number): CapabilityRoute {
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
    new elbv2.ApplicationListenerRule(scope, 'HeaderRule', {
      listener: props.listener,
      priority: slot,
      conditions: [elbv2.ListenerCondition.httpHeader(this.headerName, [c.name])],
      action: forward,
    });
    new elbv2.ApplicationListenerRule(scope, 'PathRule', {
      listener: props.listener,
      priority: PRIORITY_SLOTS + slot,
      conditions: [elbv2.ListenerCondition.pathPatterns([`/${this.pathPrefix}/${c.name}`, `/${this.pathPrefix}/${c.name}/*`])],
      action: forward,
    });

    return {
      name: c.name,
      targetType,
      port,
      slot,
      headerRulePriority: slot,
      pathRulePriority: PRIORITY_SLOTS + slot,
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
          `(header rule ${slot}, path rule ${PRIORITY_SLOTS + slot}); give the pinned ones other priorities in 1–${PRIORITY_SLOTS}`,
      );
    }
    return errors;
  }
}

import type { Duration } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';

/** A range of TCP ports, both ends included, 1–65535. */
export interface CapabilityPortRange {
  readonly from: number;
  readonly to: number;
}

/** A port agents of a capability may serve on: one port, or a range (ECS dynamic host ports, say). */
export type CapabilityPort = number | CapabilityPortRange;

/** How a capability's targets are addressed: by IP address and port, or by EC2 instance id. */
export type CapabilityTargetType = 'ip' | 'instance';

/**
 * How a target group picks the target of each request (target group attribute
 * `load_balancing.algorithm.type`), as ALB offers them:
 * - `round_robin`: targets in turn;
 * - `least_outstanding_requests`: the target with the fewest requests in progress ("commonly
 *   used when the requests being received vary in complexity");
 * - `weighted_random`: targets at random, evenly unless anomaly mitigation lowers a target's share.
 */
export type LoadBalancingAlgorithm = 'round_robin' | 'least_outstanding_requests' | 'weighted_random';

/**
 * Duration-based stickiness: the load balancer's own cookie (`AWSALB`) keeps a client on the
 * target it first got, for `duration` after its last request.
 */
export interface LoadBalancerCookieStickiness {
  readonly type: 'lb_cookie';

  /**
   * How long the cookie keeps a client on its target after its last request, 1 second to 7 days.
   *
   * @default Duration.days(1) - ALB's default
   */
  readonly duration?: Duration;
}

/**
 * Application-based stickiness: once the target sets the cookie `cookieName`, the load balancer
 * adds its own (`AWSALBAPP-*`) and keeps the client on that target for `duration`.
 */
export interface ApplicationCookieStickiness {
  readonly type: 'app_cookie';

  /**
   * Name of the cookie the agents set: a cookie-name token (letters, digits and
   * ``!#$%&'*+.^_`|~-``), not starting with `AWSALB`, `AWSALBAPP` or `AWSALBTG`, which ALB reserves.
   */
  readonly cookieName: string;

  /**
   * How long a client stays on its target after its last request, 1 second to 7 days.
   *
   * @default Duration.days(1) - ALB's default
   */
  readonly duration?: Duration;
}

/** Sticky sessions of a capability's target group(s). */
export type CapabilityStickiness = LoadBalancerCookieStickiness | ApplicationCookieStickiness;

/**
 * A weighted variant of a capability (a canary, say): a target group of its own whose agents
 * list `<capability>-<name>` in their leases, receiving `weight` percent of the capability's
 * requests; a request with the variant header naming it goes to it whatever the weights.
 */
export interface CapabilityVariant {
  /**
   * Name of the variant; agents serve it by listing the capability `<capability>-<name>`, which
   * must itself be a valid capability name (at most 63 characters in all) and no other
   * capability's. Lowercase letters, digits, `_` and `-`, starting with a letter or digit.
   */
  readonly name: string;

  /**
   * Percent of the capability's requests (those without a variant header) sent to this
   * variant, a whole number 0–100; the variants' weights add up to at most 100 and the stable
   * target group gets the rest. Changed by a redeploy. While the variant has no healthy target,
   * the reconcile Lambda takes it out of the weighted forward actions (its share goes to the
   * others) and puts it back once it has one.
   */
  readonly weight: number;
}

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

/**
 * One capability: a name agents advertise in their leases, the target group that serves it, and
 * how requests are spread over its agents.
 *
 * ALB refuses some combinations of the routing settings; the router refuses them at synth,
 * naming both settings (ELB user guide, "Edit target group attributes" and "Sticky sessions"):
 * - "The least outstanding requests routing algorithm can not be used with slow start mode";
 * - "The weighted random routing algorithm can not be used with slow start mode" and "can not
 *   be used with sticky sessions";
 * - "The anomaly mitigation function of ATW is only available when using the Weighted random
 *   routing algorithm";
 * - "Application-based stickiness does not work with weighted target groups" (variants);
 * - "If you have a forward action with multiple target groups, and sticky sessions are enabled
 *   for one or more of the target groups, you must enable stickiness at the target group level"
 *   (`variantStickiness` may not be turned off while `stickiness` is on).
 */
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
   * Port of the target group, 1–65535: the port agents serve on unless `ports` says otherwise.
   *
   * @default 80 for HTTP, 443 for HTTPS
   */
  readonly port?: number;

  /**
   * Ports the capability's agents may serve on. A lease naming another port is rejected for this
   * capability (`PORT_NOT_ALLOWED`), and the load balancer's security group opens exactly these
   * ports (and the health-check port) towards the agents' security group, nothing else. At most
   * 10 ports or ranges.
   *
   * @default - the target group's `port` only
   */
  readonly ports?: readonly CapabilityPort[];

  /**
   * Security groups whose network interfaces may serve this capability, instead of the agents'
   * security group: only tasks of the vision service may serve vision. The registry registers an
   * IP target only when EC2 shows its address on an interface of the VPC carrying one of them
   * (an instance target: the instance carrying one of them); the load balancer's security group
   * gets egress to them on this capability's ports, and they get the matching ingress.
   *
   * @default - the agents' security group of the `AgentLb`
   */
  readonly admittedSecurityGroups?: readonly ec2.ISecurityGroup[];

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
   * How long the capability's requests may run, 1–3590 whole seconds: the longest model call or
   * tool chain an agent answers, streamed or not. agent-lb derives from it what decides whether
   * such a request survives a scale-in, a deploy or a restart:
   * - the target group's deregistration delay: this + 10 s (a request that arrives while ALB
   *   nodes stop sending still has its whole duration), unless `deregistrationDelay` is set;
   * - the idle timeout of a load balancer `AgentLbStack` creates: the longest capability's + 10 s,
   *   at least ALB's 60 s (on a load balancer of yours, set `idle_timeout.timeout_seconds` that
   *   high: synth warns when it knows it is lower);
   * - the leave deadline of the sidecar (through the group's `agent-lb:max-request-seconds` tag).
   *
   * The default fits agents, not web pages: model calls and tool chains take seconds to
   * minutes, and a default of seconds cuts every longer answer on every scale-in and deploy.
   * Five minutes covers model calls with tool use and most tool chains, and is what ALB itself
   * picked as its default deregistration delay. A platform must let the agent run that long after
   * SIGTERM (ECS `stopTimeout`, at most 120 s on Fargate: there, keep this at 100 s or less).
   *
   * @default Duration.minutes(5)
   */
  readonly maxRequestDuration?: Duration;

  /**
   * Time a deregistered target keeps serving in-flight requests, 0–3600 seconds; requests still
   * running then are cut. Set `maxRequestDuration` instead, which derives it; a delay shorter than
   * `maxRequestDuration` is warned about at synth.
   *
   * @default - `maxRequestDuration` + 10 seconds (310 seconds by default)
   */
  readonly deregistrationDelay?: Duration;

  /**
   * Ramp-up time for a newly healthy target: 0 (off) or 30–900 seconds. ALB offers slow start
   * with `round_robin` only.
   *
   * @default - no slow start
   */
  readonly slowStart?: Duration;

  /**
   * How the target group picks the agent of each request. Agents' requests vary from
   * milliseconds to minutes (a model call, a tool chain), so the default is
   * `least_outstanding_requests`: round robin keeps handing requests to an agent still busy
   * with long ones. With `slowStart`, which ALB offers with round robin only, the default is
   * `round_robin`.
   *
   * @default 'least_outstanding_requests', or 'round_robin' when `slowStart` is set
   */
  readonly algorithm?: LoadBalancingAlgorithm;

  /**
   * Automatic target weights' anomaly mitigation: a target answering with markedly more 5xx or
   * connection errors than its peers gets less traffic until it recovers (target group
   * attribute `load_balancing.algorithm.anomaly_mitigation`). Only with `weighted_random`.
   *
   * @default false
   */
  readonly anomalyMitigation?: boolean;

  /**
   * Sticky sessions: keep a client (a conversation) on the agent that first served it. Not with
   * `weighted_random`; with variants, `lb_cookie` only.
   *
   * @default - no stickiness: every request is routed by `algorithm`
   */
  readonly stickiness?: CapabilityStickiness;

  /**
   * Weighted variants of the capability (canaries), at most 4: the capability's header and path
   * rules forward to its stable target group and the variants' groups by weight (one ALB
   * forward action holds at most 5 target groups). Each variant's group takes the capability's
   * settings and is reached on purpose with the router's variant header.
   *
   * @default - no variants: one target group
   */
  readonly variants?: readonly CapabilityVariant[];

  /**
   * Target group stickiness of the weighted forward actions: a client that was sent to one of
   * the capability's groups (stable or a variant) stays with that group for this long (cookie
   * `AWSALBTG`), 1 second to 7 days; `Duration.seconds(0)` turns it off. Only with `variants`.
   *
   * @default - the `lb_cookie` stickiness duration when `stickiness` is set (ALB requires group
   * stickiness then), otherwise off
   */
  readonly variantStickiness?: Duration;

  /**
   * Pinned rule-priority slot, 1 to half the size of the router's `priorityRange` (25000 for
   * the whole listener): the header rule gets the range's `min` + slot − 1, the path rule the
   * same place in the range's second half. A capability with variants also takes the slot
   * below for each variant (its pin rules), so its slot must exceed the number of variants.
   * Pin a capability when a warning says its hashed slot was taken.
   *
   * @default - derived from a hash of the name (see {@link CapabilityRouter})
   */
  readonly priority?: number;
}

import type { TargetGroup } from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * ALB target health as a pure state machine per target, after the ELB user guide ("Health
 * checks for Application Load Balancer target groups") and the API reference (`TargetHealth`):
 *
 * - "After your target is registered, it must pass one health check to be considered healthy":
 *   `initial` (`Elb.RegistrationInProgress`, then `Elb.InitialHealthChecking`) → `healthy` after
 *   one pass.
 * - "If the health checks exceed UnhealthyThresholdCount consecutive failures, the load balancer
 *   takes the target out of service. When the health checks exceed HealthyThresholdCount
 *   consecutive successes, the load balancer puts the target back in service." An `initial`
 *   target failing that many checks becomes `unhealthy` too.
 * - Unhealthy reasons: `Target.ResponseCodeMismatch` ("The health checks did not return an
 *   expected HTTP code"), `Target.Timeout` ("The health check requests timed out"),
 *   `Target.FailedHealthChecks` ("The load balancer received an error while establishing a
 *   connection to the target or the target response was malformed").
 * - Deregistration: "The initial state of a deregistering target is draining. After the
 *   deregistration delay elapses, the deregistration process completes and the state of the
 *   target is unused." But "if a deregistering target has no in-flight requests and no active
 *   connections, Elastic Load Balancing immediately completes the deregistration process,
 *   without waiting for the deregistration delay to elapse": here a draining target with
 *   nothing in flight (at deregistration, or once its last request ends) completes at once
 *   (`drained`), one with requests in flight at the end of the delay, which cuts them. ALB goes
 *   on *displaying* `draining` until the delay has passed; this model reports the completion, so
 *   an agent waiting for its draining to end (the non-proxying sidecar) stops when ALB would.
 * - `unavailable` / `Target.HealthCheckDisabled` while health checks are off; `unused` /
 *   `Target.NotInUse` while the group is not used by any listener rule (no checks are sent:
 *   "Health checks are performed on all targets registered to a target group that is specified
 *   in a listener rule").
 */

export type TargetHealthState = 'initial' | 'healthy' | 'unhealthy' | 'draining' | 'unused' | 'unavailable';

export type TargetHealthReason =
  | 'Elb.RegistrationInProgress'
  | 'Elb.InitialHealthChecking'
  | 'Target.ResponseCodeMismatch'
  | 'Target.Timeout'
  | 'Target.FailedHealthChecks'
  | 'Target.DeregistrationInProgress'
  | 'Target.NotRegistered'
  | 'Target.NotInUse'
  | 'Target.HealthCheckDisabled';

/** Health check settings of one target group, durations in milliseconds. */
export interface HealthCheckSettings {
  readonly enabled: boolean;
  readonly protocol: 'HTTP' | 'HTTPS';
  /** A fixed port, or the port each target receives traffic on. */
  readonly port: number | 'traffic-port';
  /** Path and optional query string of the check request. */
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** The `Matcher.HttpCode` the settings came from, e.g. `200-299,302`. */
  readonly matcher: string;
  /** Whether a status code counts as a pass. */
  readonly isHealthyCode: (statusCode: number) => boolean;
}

/** ALB's defaults for `ip` and `instance` target groups (CreateTargetGroup). */
export const ALB_HEALTH_CHECK_DEFAULTS = {
  path: '/',
  intervalSeconds: 30,
  timeoutSeconds: 5,
  healthyThreshold: 5,
  unhealthyThreshold: 2,
  matcher: '200',
} as const;

/**
 * Parses a matcher: codes and ranges separated by commas, "values or ranges of values between
 * 200 and 499" (`200`, `200,202`, `200-299`, `200-299,302`). Throws a `RangeError` quoting the
 * bad value.
 */
export function parseMatcher(matcher: string): (statusCode: number) => boolean {
  const ranges: [number, number][] = [];
  for (const part of matcher.split(',')) {
    const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(part);
    const low = m ? Number(m[1]) : NaN;
    const high = m?.[2] !== undefined ? Number(m[2]) : low;
    if (!m || low < 200 || high > 499 || high < low) {
      throw new RangeError(`health check matcher ${JSON.stringify(matcher)} is not a list of HTTP codes or ranges between 200 and 499 (e.g. "200-299,302")`);
    }
    ranges.push([low, high]);
  }
  return (code) => ranges.some(([low, high]) => code >= low && code <= high);
}

/**
 * The health check settings of a target group as DescribeTargetGroups returns it, ALB defaults
 * filling what is absent. `timeScale` multiplies interval and timeout (local runs may check far
 * more often than ALB's 5 s minimum). A bad matcher falls back to ALB's default `200` and is
 * reported in `problems`.
 */
export function healthCheckSettings(group: TargetGroup, timeScale = 1): { settings: HealthCheckSettings; problems: string[] } {
  const problems: string[] = [];
  let matcher = group.Matcher?.HttpCode ?? ALB_HEALTH_CHECK_DEFAULTS.matcher;
  let isHealthyCode: (statusCode: number) => boolean;
  try {
    isHealthyCode = parseMatcher(matcher);
  } catch (error) {
    problems.push(`target group ${group.TargetGroupArn}: ${(error as Error).message}; using "200"`);
    matcher = ALB_HEALTH_CHECK_DEFAULTS.matcher;
    isHealthyCode = parseMatcher(matcher);
  }
  const portText = group.HealthCheckPort ?? 'traffic-port';
  const port = portText === 'traffic-port' ? 'traffic-port' : Number(portText);
  if (port !== 'traffic-port' && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    problems.push(`target group ${group.TargetGroupArn}: health check port ${JSON.stringify(portText)} is not 1-65535 or "traffic-port"; using the traffic port`);
  }
  const seconds = (value: number | undefined, fallback: number) => Math.max(1, Math.round((value ?? fallback) * 1000 * timeScale));
  return {
    settings: {
      enabled: group.HealthCheckEnabled ?? true,
      protocol: (group.HealthCheckProtocol ?? group.Protocol) === 'HTTPS' ? 'HTTPS' : 'HTTP',
      port: port === 'traffic-port' || !(Number.isInteger(port) && port >= 1 && port <= 65535) ? 'traffic-port' : port,
      path: group.HealthCheckPath ?? ALB_HEALTH_CHECK_DEFAULTS.path,
      intervalMs: seconds(group.HealthCheckIntervalSeconds, ALB_HEALTH_CHECK_DEFAULTS.intervalSeconds),
      timeoutMs: seconds(group.HealthCheckTimeoutSeconds, ALB_HEALTH_CHECK_DEFAULTS.timeoutSeconds),
      healthyThreshold: group.HealthyThresholdCount ?? ALB_HEALTH_CHECK_DEFAULTS.healthyThreshold,
      unhealthyThreshold: group.UnhealthyThresholdCount ?? ALB_HEALTH_CHECK_DEFAULTS.unhealthyThreshold,
      matcher,
      isHealthyCode,
    },
    problems,
  };
}

/** Why one health check failed. */
export type HealthCheckFailure =
  | { readonly kind: 'response-code-mismatch'; readonly statusCode: number }
  | { readonly kind: 'timeout' }
  /** Connection refused or reset, or a malformed response. */
  | { readonly kind: 'connection-error'; readonly detail?: string };

/** What happens to a target, in time order. `at` is epoch milliseconds. */
export type TargetHealthEvent =
  | { readonly type: 'registered'; readonly at: number }
  | { readonly type: 'check-passed'; readonly at: number }
  | { readonly type: 'check-failed'; readonly at: number; readonly failure: HealthCheckFailure }
  /** DeregisterTargets: draining for `delayMs` (the group's deregistration delay). */
  | { readonly type: 'deregistered'; readonly at: number; readonly delayMs: number }
  /** Time passes: ends draining once the delay is over. */
  | { readonly type: 'tick'; readonly at: number }
  /** A draining target has nothing in flight: its deregistration completes now. */
  | { readonly type: 'drained'; readonly at: number }
  | { readonly type: 'health-checks-disabled'; readonly at: number }
  | { readonly type: 'health-checks-enabled'; readonly at: number }
  /** The group stopped / started being used by a listener rule. */
  | { readonly type: 'group-unused'; readonly at: number }
  | { readonly type: 'group-in-use'; readonly at: number };

/** Everything the state machine knows about one target. */
export interface TargetHealthRecord {
  readonly state: TargetHealthState;
  /** Absent when `healthy`, as in DescribeTargetHealth. */
  readonly reason?: TargetHealthReason;
  readonly description?: string;
  readonly consecutivePasses: number;
  readonly consecutiveFailures: number;
  /** When the target entered its current state. */
  readonly since: number;
  /** When the draining ends (state `draining` only). */
  readonly drainingUntil?: number;
}

const DESCRIPTIONS: Record<TargetHealthReason, string> = {
  'Elb.RegistrationInProgress': 'Target registration is in progress',
  'Elb.InitialHealthChecking': 'Initial health checks in progress',
  'Target.ResponseCodeMismatch': 'Health checks failed',
  'Target.Timeout': 'Request timed out',
  'Target.FailedHealthChecks': 'Health checks failed',
  'Target.DeregistrationInProgress': 'Target deregistration is in progress',
  'Target.NotRegistered': 'Target is not registered to the target group',
  'Target.NotInUse': 'Target group is not configured to receive traffic from the load balancer',
  'Target.HealthCheckDisabled': 'Health checks disabled',
};

function enter(state: TargetHealthState, at: number, reason?: TargetHealthReason, description?: string): TargetHealthRecord {
  return {
    state,
    ...(reason !== undefined ? { reason, description: description ?? DESCRIPTIONS[reason] } : {}),
    consecutivePasses: 0,
    consecutiveFailures: 0,
    since: at,
  };
}

function failureReason(failure: HealthCheckFailure): { reason: TargetHealthReason; description: string } {
  switch (failure.kind) {
    case 'response-code-mismatch':
      return { reason: 'Target.ResponseCodeMismatch', description: `Health checks failed with these codes: [${failure.statusCode}]` };
    case 'timeout':
      return { reason: 'Target.Timeout', description: DESCRIPTIONS['Target.Timeout'] };
    case 'connection-error':
      return { reason: 'Target.FailedHealthChecks', description: DESCRIPTIONS['Target.FailedHealthChecks'] };
  }
}

/** A target right after RegisterTargets: `initial`, `Elb.RegistrationInProgress`. */
export function registeredTarget(at: number, settings: Pick<HealthCheckSettings, 'enabled'>): TargetHealthRecord {
  return settings.enabled ? enter('initial', at, 'Elb.RegistrationInProgress') : enter('unavailable', at, 'Target.HealthCheckDisabled');
}

/** The next record of a target after `event`; the same object when nothing changes. */
export function nextTargetHealth(record: TargetHealthRecord, event: TargetHealthEvent, settings: HealthCheckSettings): TargetHealthRecord {
  const at = event.at;
  switch (event.type) {
    case 'registered':
      // RegisterTargets on a draining or unused target registers it again from scratch.
      return record.state === 'draining' || (record.state === 'unused' && record.reason === 'Target.NotRegistered') ? registeredTarget(at, settings) : record;
    case 'deregistered':
      if (record.state === 'draining' || (record.state === 'unused' && record.reason === 'Target.NotRegistered')) return record;
      return { ...enter('draining', at, 'Target.DeregistrationInProgress'), drainingUntil: at + Math.max(0, event.delayMs) };
    case 'tick':
      return record.state === 'draining' && record.drainingUntil !== undefined && at >= record.drainingUntil ? enter('unused', at, 'Target.NotRegistered') : record;
    case 'drained':
      return record.state === 'draining' ? enter('unused', at, 'Target.NotRegistered') : record;
    case 'health-checks-disabled':
      return record.state === 'draining' || record.state === 'unused' ? record : enter('unavailable', at, 'Target.HealthCheckDisabled');
    case 'health-checks-enabled':
      return record.state === 'unavailable' ? enter('initial', at, 'Elb.RegistrationInProgress') : record;
    case 'group-unused':
      return record.state === 'draining' || record.state === 'unused' ? record : enter('unused', at, 'Target.NotInUse');
    case 'group-in-use':
      return record.state === 'unused' && record.reason === 'Target.NotInUse' ? registeredTarget(at, settings) : record;
    case 'check-passed':
      return afterPass(record, at, settings);
    case 'check-failed':
      return afterFailure(record, at, event.failure, settings);
  }
}

function afterPass(record: TargetHealthRecord, at: number, settings: HealthCheckSettings): TargetHealthRecord {
  switch (record.state) {
    case 'initial':
      return enter('healthy', at);
    case 'healthy':
      return record.consecutiveFailures === 0 ? record : { ...record, consecutiveFailures: 0 };
    case 'unhealthy': {
      const passes = record.consecutivePasses + 1;
      return passes >= settings.healthyThreshold ? enter('healthy', at) : { ...record, consecutivePasses: passes, consecutiveFailures: 0 };
    }
    default:
      return record; // no checks count while draining, unused or unavailable
  }
}

function afterFailure(record: TargetHealthRecord, at: number, failure: HealthCheckFailure, settings: HealthCheckSettings): TargetHealthRecord {
  const { reason, description } = failureReason(failure);
  switch (record.state) {
    case 'initial':
    case 'healthy': {
      const failures = record.consecutiveFailures + 1;
      if (failures >= settings.unhealthyThreshold) return { ...enter('unhealthy', at, reason, description) };
      if (record.state === 'healthy') return { ...record, consecutiveFailures: failures, consecutivePasses: 0 };
      return {
        ...record,
        reason: 'Elb.InitialHealthChecking',
        description: DESCRIPTIONS['Elb.InitialHealthChecking'],
        consecutiveFailures: failures,
      };
    }
    case 'unhealthy':
      return { ...record, reason, description, consecutivePasses: 0, consecutiveFailures: record.consecutiveFailures + 1 };
    default:
      return record;
  }
}

/** Whether the load balancer sends health checks to a target in this state. */
export function isChecked(record: TargetHealthRecord): boolean {
  return record.state === 'initial' || record.state === 'healthy' || record.state === 'unhealthy';
}

/**
 * When the next check of a target starts. "Each health check request is independent and the
 * result lasts for the entire interval. The time it takes for the target to respond does not
 * affect the interval for the next health check request": checks start every interval from the
 * previous start, the first one at once after registration. One check never overlaps another,
 * so a check still running at its successor's time delays it until it ends.
 */
export function nextCheckAt(lastStartedAt: number | undefined, lastEndedAt: number | undefined, registeredAt: number, settings: Pick<HealthCheckSettings, 'intervalMs'>): number {
  if (lastStartedAt === undefined) return registeredAt;
  const byInterval = lastStartedAt + settings.intervalMs;
  return lastEndedAt === undefined || lastEndedAt < lastStartedAt ? Number.POSITIVE_INFINITY : Math.max(byInterval, lastEndedAt);
}

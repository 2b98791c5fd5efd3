import type { LoadBalancerAttribute, TargetGroupAttribute } from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * The target group attributes the data plane honours, read from DescribeTargetGroupAttributes
 * output, with ALB's defaults and ranges (API reference, `TargetGroupAttribute`):
 * - `deregistration_delay.timeout_seconds`: 0–3600, default 300;
 * - `load_balancing.algorithm.type`: `round_robin` (default), `least_outstanding_requests`,
 *   `weighted_random`; `load_balancing.algorithm.anomaly_mitigation`: `on`/`off`, "only
 *   available when load_balancing.algorithm.type is weighted_random";
 * - `slow_start.duration_seconds`: 30–900 or 0 (off, the default);
 * - `stickiness.enabled`, `stickiness.type` (`lb_cookie`, `app_cookie`),
 *   `stickiness.lb_cookie.duration_seconds` and `stickiness.app_cookie.duration_seconds`
 *   (1 s – 7 days, default 1 day), `stickiness.app_cookie.cookie_name`;
 * - `target_group_health.unhealthy_state_routing.minimum_healthy_targets.count` (default 1)
 *   and `.percentage` (default off): "If the number of healthy targets is below this value,
 *   send traffic to all targets, including unhealthy targets" — ALB's fail-open.
 *
 * Combinations ALB refuses are reported as problems and resolved the safe way: "You cannot
 * enable both least outstanding requests and slow start mode", and aws-cdk-lib's "The weighted
 * random routing algorithm can not be used with slow start mode" — slow start is then off.
 */

export type LoadBalancingAlgorithm = 'round_robin' | 'least_outstanding_requests' | 'weighted_random';

export type Stickiness =
  | { readonly type: 'lb_cookie'; readonly durationMs: number }
  | { readonly type: 'app_cookie'; readonly durationMs: number; readonly cookieName: string };

/** How a target group spreads requests over its targets. Durations in milliseconds. */
export interface TargetGroupPolicy {
  readonly algorithm: LoadBalancingAlgorithm;
  readonly anomalyMitigation: boolean;
  /** 0 = off. */
  readonly slowStartMs: number;
  readonly deregistrationDelayMs: number;
  readonly stickiness?: Stickiness;
  /** Fail open while fewer targets than this are healthy. */
  readonly minimumHealthyCount: number;
  /** Fail open while a smaller share (0–100) of the targets is healthy; absent = off. */
  readonly minimumHealthyPercentage?: number;
}

export const DEFAULT_DEREGISTRATION_DELAY_SECONDS = 300;
export const DEFAULT_STICKINESS_SECONDS = 86_400;
const RESERVED_COOKIE_PREFIXES = ['AWSALB', 'AWSALBAPP', 'AWSALBTG'];

function attributeMap(attributes: readonly (TargetGroupAttribute | LoadBalancerAttribute)[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const a of attributes) if (a.Key !== undefined && a.Value !== undefined) map.set(a.Key, a.Value);
  return map;
}

/**
 * Reads the policy of one target group. `timeScale` multiplies the durations of a target's
 * life cycle (deregistration delay, slow start), as it does health check timings; stickiness
 * durations concern clients and are not scaled. Values out of ALB's ranges are reported in
 * `problems` and replaced by the default.
 */
export function targetGroupPolicy(
  targetGroupArn: string,
  attributes: readonly TargetGroupAttribute[],
  timeScale = 1,
): { policy: TargetGroupPolicy; problems: string[] } {
  const a = attributeMap(attributes);
  const problems: string[] = [];
  const where = `target group ${targetGroupArn}`;
  const seconds = (key: string, fallback: number, min: number, max: number, zeroAllowed = false): number => {
    const text = a.get(key);
    if (text === undefined) return fallback;
    const n = Number(text);
    if (Number.isInteger(n) && ((n >= min && n <= max) || (zeroAllowed && n === 0))) return n;
    problems.push(`${where}: ${key} = ${JSON.stringify(text)} is outside ${zeroAllowed && min > 0 ? '0 or ' : ''}${min}-${max}; using ${fallback}`);
    return fallback;
  };

  const algorithmText = a.get('load_balancing.algorithm.type') ?? 'round_robin';
  let algorithm: LoadBalancingAlgorithm = 'round_robin';
  if (algorithmText === 'round_robin' || algorithmText === 'least_outstanding_requests' || algorithmText === 'weighted_random') {
    algorithm = algorithmText;
  } else {
    problems.push(`${where}: load_balancing.algorithm.type = ${JSON.stringify(algorithmText)} is not round_robin, least_outstanding_requests or weighted_random; using round_robin`);
  }
  let anomalyMitigation = a.get('load_balancing.algorithm.anomaly_mitigation') === 'on';
  if (anomalyMitigation && algorithm !== 'weighted_random') {
    problems.push(`${where}: load_balancing.algorithm.anomaly_mitigation is only available with weighted_random, not ${algorithm}; mitigation is off`);
    anomalyMitigation = false;
  }
  let slowStartSeconds = seconds('slow_start.duration_seconds', 0, 30, 900, true);
  if (slowStartSeconds > 0 && algorithm !== 'round_robin') {
    problems.push(`${where}: slow_start.duration_seconds cannot be used with ${algorithm} (ALB refuses the combination); slow start is off`);
    slowStartSeconds = 0;
  }
  const deregistrationSeconds = seconds('deregistration_delay.timeout_seconds', DEFAULT_DEREGISTRATION_DELAY_SECONDS, 0, 3600, true);

  let stickiness: Stickiness | undefined;
  if (a.get('stickiness.enabled') === 'true') {
    const type = a.get('stickiness.type') ?? 'lb_cookie';
    if (type === 'lb_cookie') {
      stickiness = { type, durationMs: seconds('stickiness.lb_cookie.duration_seconds', DEFAULT_STICKINESS_SECONDS, 1, 604_800) * 1000 };
    } else if (type === 'app_cookie') {
      const cookieName = a.get('stickiness.app_cookie.cookie_name') ?? '';
      if (cookieName === '' || RESERVED_COOKIE_PREFIXES.some((p) => cookieName.startsWith(p))) {
        problems.push(`${where}: stickiness.app_cookie.cookie_name ${JSON.stringify(cookieName)} is empty or starts with a reserved prefix (AWSALB, AWSALBAPP, AWSALBTG); stickiness is off`);
      } else {
        stickiness = { type, cookieName, durationMs: seconds('stickiness.app_cookie.duration_seconds', DEFAULT_STICKINESS_SECONDS, 1, 604_800) * 1000 };
      }
    } else {
      problems.push(`${where}: stickiness.type ${JSON.stringify(type)} is not lb_cookie or app_cookie; stickiness is off`);
    }
  }

  const countText = a.get('target_group_health.unhealthy_state_routing.minimum_healthy_targets.count');
  const count = countText === undefined ? 1 : Number(countText);
  const percentText = a.get('target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage') ?? 'off';
  const percent = percentText === 'off' ? undefined : Number(percentText);
  if (countText !== undefined && !(Number.isInteger(count) && count >= 1)) problems.push(`${where}: unhealthy_state_routing minimum count ${JSON.stringify(countText)} is not a positive integer; using 1`);
  if (percent !== undefined && !(Number.isInteger(percent) && percent >= 1 && percent <= 100)) problems.push(`${where}: unhealthy_state_routing minimum percentage ${JSON.stringify(percentText)} is not off or 1-100; using off`);

  return {
    policy: {
      algorithm,
      anomalyMitigation,
      slowStartMs: slowStartSeconds * 1000 * timeScale,
      deregistrationDelayMs: deregistrationSeconds * 1000 * timeScale,
      ...(stickiness !== undefined ? { stickiness } : {}),
      minimumHealthyCount: Number.isInteger(count) && count >= 1 ? count : 1,
      ...(percent !== undefined && Number.isInteger(percent) && percent >= 1 && percent <= 100 ? { minimumHealthyPercentage: percent } : {}),
    },
    problems,
  };
}

/** Load balancer attributes the data plane honours. */
export interface LoadBalancerPolicy {
  /** `idle_timeout.timeout_seconds` (1–4000, default 60): a target silent this long gets the client a 504. */
  readonly idleTimeoutMs: number;
  /** `routing.http.xff_header_processing.mode`: `append` (default), `preserve` or `remove`. */
  readonly xffMode: 'append' | 'preserve' | 'remove';
}

/** The load balancer's policy from DescribeLoadBalancerAttributes; `timeScale` multiplies the idle timeout, as it does the deregistration delay. */
export function loadBalancerPolicy(attributes: readonly LoadBalancerAttribute[] = [], timeScale = 1): LoadBalancerPolicy {
  const a = attributeMap(attributes);
  const idle = Number(a.get('idle_timeout.timeout_seconds') ?? 60);
  const xff = a.get('routing.http.xff_header_processing.mode');
  return {
    idleTimeoutMs: (Number.isInteger(idle) && idle >= 1 && idle <= 4000 ? idle : 60) * 1000 * timeScale,
    xffMode: xff === 'preserve' || xff === 'remove' ? xff : 'append',
  };
}

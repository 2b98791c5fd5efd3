/**
 * Automatic target weights (ATW) of the `weighted_random` algorithm, modelled simply. What AWS
 * documents ("Improving availability with Application Load Balancer automatic target weights",
 * and the ALB launch note of 2023-11-26):
 *
 * - "Anomaly detection is automatically enabled on HTTP/HTTPS target groups with at least three
 *   healthy targets." It "analyzes the HTTP return status codes and TCP/TLS errors to identify
 *   targets with a disproportionate ratio of errors compared to other targets in the same
 *   target group". DescribeTargetHealth shows `AnomalyDetection.Result` (`anomalous`/`normal`)
 *   and `MitigationInEffect` (`yes`/`no`).
 * - With `load_balancing.algorithm.anomaly_mitigation = on`, "impact is mitigated by iteratively
 *   reducing the volume of traffic that an anomalous target receives until the target recovers
 *   or the traffic volume is decreased to a negligible level. If the target recovers, the ALB
 *   will gradually increase the amount of traffic sent to the target until it reaches its
 *   original load."
 *
 * AWS does not publish its thresholds, so these are ours: outcomes are counted per evaluation
 * window; a target is anomalous in a window when it served at least `minimumRequests`, its error
 * rate is at least `minimumErrorRate` and at least `disproportion` times the combined rate of
 * the other healthy targets. Mitigation halves an anomalous target's weight each window (down to
 * `floorWeight`, the "negligible level") and gives a normal one back `recoveryStep` per window.
 * A window with too few requests to judge keeps the last verdict, and the weight still recovers,
 * so a mitigated target is probed with more traffic until it can be judged again.
 */

export interface AnomalyThresholds {
  readonly minimumRequests: number;
  readonly minimumErrorRate: number;
  readonly disproportion: number;
  readonly floorWeight: number;
  readonly recoveryStep: number;
  /** Healthy targets a group needs before anything is judged. */
  readonly minimumHealthyTargets: number;
}

export const DEFAULT_ANOMALY_THRESHOLDS: AnomalyThresholds = {
  minimumRequests: 5,
  minimumErrorRate: 0.1,
  disproportion: 2,
  floorWeight: 0.01,
  recoveryStep: 0.1,
  minimumHealthyTargets: 3,
};

export interface AnomalyTargetState {
  readonly result: 'normal' | 'anomalous';
  /** Share of its full weight the target gets, 0–1. */
  readonly weight: number;
  /** Counts of the current window. */
  readonly requests: number;
  readonly errors: number;
}

/** Per target key. */
export type AnomalyState = ReadonlyMap<string, AnomalyTargetState>;

const FRESH: AnomalyTargetState = { result: 'normal', weight: 1, requests: 0, errors: 0 };

/**
 * Counts one forwarded request: `failed` when the target answered 5xx, refused or reset the
 * connection, or timed out.
 */
export function recordOutcome(state: AnomalyState, key: string, failed: boolean): AnomalyState {
  const current = state.get(key) ?? FRESH;
  const next = new Map(state);
  next.set(key, { ...current, requests: current.requests + 1, errors: current.errors + (failed ? 1 : 0) });
  return next;
}

/**
 * Closes a window: judges each of `healthyKeys`, moves weights when `mitigation` is on, and
 * starts the next window. Targets no longer healthy are forgotten (a target back from unhealthy
 * starts normal).
 */
export function evaluateWindow(
  state: AnomalyState,
  healthyKeys: readonly string[],
  mitigation: boolean,
  thresholds: AnomalyThresholds = DEFAULT_ANOMALY_THRESHOLDS,
): AnomalyState {
  const next = new Map<string, AnomalyTargetState>();
  const judged = healthyKeys.length >= thresholds.minimumHealthyTargets;
  const totals = healthyKeys.reduce(
    (acc, key) => {
      const s = state.get(key) ?? FRESH;
      return { requests: acc.requests + s.requests, errors: acc.errors + s.errors };
    },
    { requests: 0, errors: 0 },
  );
  for (const key of healthyKeys) {
    const s = state.get(key) ?? FRESH;
    let result = judged ? s.result : 'normal';
    if (judged && s.requests >= thresholds.minimumRequests) {
      const rate = s.errors / s.requests;
      const otherRequests = totals.requests - s.requests;
      const otherRate = otherRequests > 0 ? (totals.errors - s.errors) / otherRequests : 0;
      result = rate >= thresholds.minimumErrorRate && rate >= thresholds.disproportion * otherRate ? 'anomalous' : 'normal';
    }
    let weight = 1;
    if (mitigation) {
      weight = result === 'anomalous' && s.requests >= thresholds.minimumRequests ? Math.max(thresholds.floorWeight, s.weight / 2) : Math.min(1, s.weight + thresholds.recoveryStep);
    }
    next.set(key, { result, weight, requests: 0, errors: 0 });
  }
  return next;
}

/** What DescribeTargetHealth would show for a target (`AnomalyDetection`). */
export function anomalyDetection(state: AnomalyState, key: string): { Result: 'normal' | 'anomalous'; MitigationInEffect: 'yes' | 'no' } {
  const s = state.get(key) ?? FRESH;
  return { Result: s.result, MitigationInEffect: s.weight < 1 ? 'yes' : 'no' };
}

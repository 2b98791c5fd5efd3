import type { Rule, TargetGroup } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { AnomalyState } from './anomaly-mitigation';
import type { ResponseTally } from './data-plane-metrics';
import type { HealthCheckSettings, TargetHealthRecord } from './health-checks';
import type { TargetGroupPolicy } from './target-group-attributes';
import type { CandidateTarget, RoundRobinState } from './target-selection';

/**
 * What the data plane tracks of each target group and target, and the read-only view a request's
 * routing needs of it ({@link RoutingView}): the engine keeps the state, request-routing.ts only
 * reads it, and neither imports the other's module for it.
 */

export interface TrackedTarget {
  readonly id: string;
  readonly port: number;
  readonly key: string;
  readonly host: string;
  readonly trafficPort: number;
  record: TargetHealthRecord;
  generation: number;
  registeredAt: number;
  outstanding: number;
  slowStartSince?: number;
  checkStartedAt?: number;
  checkEndedAt?: number;
  readonly tally: ResponseTally;
}

export interface TrackedGroup {
  readonly arn: string;
  group: TargetGroup;
  settings: HealthCheckSettings;
  policy: TargetGroupPolicy;
  inUse: boolean;
  readonly targets: Map<string, TrackedTarget>;
  roundRobin: RoundRobinState;
  anomaly: AnomalyState;
  anomalyWindowEndsAt?: number;
  readonly tally: ResponseTally;
  /** A Lambda target group's functions (ARNs, as registered) and whether it sends multi-value headers; absent for other groups. */
  lambda?: { readonly functions: readonly string[]; readonly multiValueHeaders: boolean };
}

/** What routing one request reads of the engine (and advances: a group's round robin). */
export interface RoutingView {
  readonly rules: readonly Rule[];
  readonly groups: ReadonlyMap<string, TrackedGroup>;
  readonly stickinessKey: Buffer;
  readonly random: () => number;
  /** The candidates of a group for target selection. */
  candidates(group: TrackedGroup): CandidateTarget[];
}

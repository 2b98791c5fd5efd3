/**
 * agent-lb/sdk: what an agent needs to hold a lease and leave rotation cleanly. Imports the
 * lease core and the lease store only; never `aws-cdk-lib`, the constructs or the ELB client.
 */
export { AgentLease } from './agent-lease';
export type { AgentLeaseEvents, AgentLeaseState, InterferenceInfo, LeasePhase, ReleasedInfo, RetryInfo } from './agent-lease-events';
export { DEFAULT_ROTATION_POLL_INTERVAL_MS, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS } from './agent-lease-options';
export type { AgentLeaseCreateOptions, AgentLeaseOptions } from './agent-lease-options';
export { DEFAULT_SERVING_TIMEOUT_MS } from './serving';
export type { ServingOptions } from './serving';
export {
  DEFAULT_CLOCK_SKEW_TOLERANCE_MS,
  DEFAULT_LEAVE_DEADLINE_MS,
  DEFAULT_MAX_REQUEST_DURATION_MS,
  DEFAULT_PROPAGATION_MARGIN_MS,
  DEFAULT_UNCONFIRMED_ROTATION_WAIT_MS,
  leaveDeadlineFor,
  leaveRotation,
} from './leave';
export type { LeaveOptions } from './leave';
export { formatLeaveStep } from './leave-report';
export type { LeaveReport, LeaveStepName, LeaveStepOutcome, LeaveStepReport } from './leave-report';
export type { LeaseView } from './lease-view';
export { HttpInFlightTracker, InFlightCounter, inFlightMiddleware, trackInFlight } from './in-flight';
export type { InFlightHook, InFlightSource, NodeMiddleware, TrackableServer } from './in-flight';
export { LoadBalancerDraining, untilDrained } from './draining';
export { installShutdownHandlers } from './shutdown';
export type { ShutdownHandlerOptions } from './shutdown';
export { DEFAULT_DISCOVERY_TIMEOUT_MS, discoverAddress } from './address-discovery';
export type { AddressDiscoveryOptions, DiscoveredAddress } from './address-discovery';
export { describeGroups, drainedProgress, OUT_OF_ROTATION_STATES, outOfRotationProgress, servingProgress } from './rotation-progress';
export type { GroupRotation, RotationProgress } from './rotation-progress';
export { AddressNotFoundError, NotServingError } from './errors';
export { discoverAgents } from './discover-agents';
export type { DiscoverAgentsOptions } from './discover-agents';
export { HEALTH_FILTERS } from '../core/agent-discovery';
export type { DiscoveredAgent, HealthFilter } from '../core/agent-discovery';
export { REGISTRY_TABLE_ENV } from '../core/registry-state';
export { RegistryStateError } from '../core/errors';
export type { AddressDiscoveryAttempt, AddressDiscoverySource, NotServingReason } from './errors';

export { DEFAULT_ALLOWED_CIDRS, formatTarget } from '../core/address-policy';
export { AgentLbError, ConfigError, InvalidLeaseError, LeaseHeldError, LeaseLostError, LeaseStoreError } from '../core/errors';
export type { AgentLbErrorCode, LeaseRejection, LeaseRejectionReason } from '../core/errors';
export { CAPABILITY_NAME, LEASE_ATTR, ROTATION_STATES } from '../core/lease-schema';
export { decodeRejection, REJECTION_REASONS } from '../core/rejection';
export type { RejectionReason, RejectionVerdict, StoredRejection } from '../core/rejection';
export type { Lease, LeaseRotation, LeaseStatus, RawAttributeValue, RotationEntry, RotationState } from '../core/lease-schema';

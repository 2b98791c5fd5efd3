/**
 * agent-lb/sdk: what an agent needs to hold a lease. Imports the lease core and the lease
 * store only; never `aws-cdk-lib`, the constructs or the ELB client.
 */
export { AgentLease } from './agent-lease';
export type { AgentLeaseEvents, AgentLeaseState, LeasePhase, ReleasedInfo, RetryInfo } from './agent-lease';
export { DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, MIN_TTL_SECONDS } from './agent-lease-options';
export type { AgentLeaseOptions } from './agent-lease-options';
export { DEFAULT_DRAIN_SECONDS, installShutdownHandlers } from './shutdown';
export type { ShutdownHandlerOptions } from './shutdown';

export { DEFAULT_ALLOWED_CIDRS, formatTarget } from '../core/address-policy';
export { AgentLbError, ConfigError, InvalidLeaseError, LeaseHeldError, LeaseLostError, LeaseStoreError } from '../core/errors';
export type { AgentLbErrorCode, LeaseRejection, LeaseRejectionReason } from '../core/errors';
export { CAPABILITY_NAME, LEASE_ATTR } from '../core/lease-schema';
export type { Lease, LeaseStatus, RawAttributeValue } from '../core/lease-schema';

import type { AgentLbErrorCode } from './errors';

/**
 * The metrics the sync, catalog stream and reconcile Lambdas publish (Powertools EMF), declared once: the
 * handlers' telemetry writes them under these names and the constructs' alarms and dashboard
 * read them under the same names, so renaming one here renames both (and a name that is not
 * here is a compile error on either side).
 */

/** CloudWatch namespace of every agent-lb metric. */
export const METRICS_NAMESPACE = 'AgentLb';
/** `service` dimension (and Powertools service name) of the stream-sync Lambda. */
export const SYNC_SERVICE_NAME = 'agent-lb-sync';
/** `service` dimension (and Powertools service name) of the reconcile Lambda. */
export const RECONCILE_SERVICE_NAME = 'agent-lb-reconcile';
/** `service` dimension (and Powertools service name) of the catalog stream Lambda (the lease stream's second reader). */
export const CATALOG_STREAM_SERVICE_NAME = 'agent-lb-catalog-stream';

/** Metrics of the stream-sync Lambda, one value per batch. Counts unless the name ends in `Ms`. */
export const SYNC_METRICS = {
  /** Stream records in the batch. */
  records: 'Records',
  /** Records that change no registration (heartbeats, no-op writes). */
  noopRecords: 'NoopRecords',
  registrations: 'Registrations',
  deregistrations: 'Deregistrations',
  /** Changes a confirming read refused (the table disagreed with the record): not sent. */
  changesWithheld: 'ChangesWithheld',
  /** Changes this container had already applied for the same record (a batch delivered again). */
  changesAlreadyApplied: 'ChangesAlreadyApplied',
  /** Register/DeregisterTargets calls. */
  elbCalls: 'ElbCalls',
  /** Leases read to confirm changes. */
  leasesRead: 'LeasesRead',
  /** The batch's confirming read, milliseconds. */
  confirmReadMs: 'ConfirmReadMs',
  /** Leases refused by validation or by ELB. */
  rejectedLeases: 'RejectedLeases',
  ttlDeletions: 'TtlDeletions',
  releases: 'Releases',
  /** Now minus the oldest record's write time, milliseconds. */
  syncLagMs: 'SyncLagMs',
  /** EC2 calls made to admit the batch's new addresses (DescribeNetworkInterfaces, DescribeInstances); 0 for heartbeats. */
  ec2Calls: 'Ec2Calls',
  /** Capabilities of leases refused because EC2 does not show their address in an admitted security group. */
  notAdmitted: 'NotAdmitted',
  /** Registrations refused because the load balancer holds its target quota. */
  overQuota: 'OverQuota',
  /** Member index items written or deleted for the leases the batch wrote `rotation` into (drains, re-activations, re-acquires). */
  memberWrites: 'MemberWrites',
  /** 1 when the batch moved the capability catalog's revision. */
  catalogUpdates: 'CatalogUpdates',
} as const;

/** Metrics of the catalog stream Lambda, one value per batch. */
export const CATALOG_STREAM_METRICS = {
  /** Stream records in the batch. */
  records: 'Records',
  /** Leases whose member index entries the batch brought up to date (heartbeats and the registry's own writes are not among them). */
  leasesChanged: 'LeasesChanged',
  /** Member index items written or deleted. */
  memberWrites: 'MemberWrites',
  /** 1 when the batch moved the capability catalog's revision. */
  catalogUpdates: 'CatalogUpdates',
  /** Now minus the oldest record's write time, milliseconds. */
  catalogLagMs: 'CatalogLagMs',
} as const;

/** Metrics of the reconcile Lambda, one value per pass. */
export const RECONCILE_METRICS = {
  expiredLeasesDeleted: 'ExpiredLeasesDeleted',
  /** Leases whose `expiresAt` lay beyond the maximum lease TTL (or items with no numeric `expiresAt`), deleted. */
  farFutureLeasesDeleted: 'FarFutureLeasesDeleted',
  driftRegistered: 'DriftRegistered',
  driftDeregistered: 'DriftDeregistered',
  /** Groups where too many targets had no lease at once: their removals wait for a second pass. */
  safetyValveTripped: 'SafetyValveTripped',
  removalsHeld: 'RemovalsHeld',
  drainingRevived: 'DrainingRevived',
  rejectedLeases: 'RejectedLeases',
  liveLeases: 'LiveLeases',
  elbCalls: 'ElbCalls',
  /** Weighted variants held at weight 0 because they have no healthy target (their share goes to the stable group). */
  variantsHeldOut: 'VariantsHeldOut',
  /** EC2 calls made to admit the pass's addresses. */
  ec2Calls: 'Ec2Calls',
  notAdmitted: 'NotAdmitted',
  /** Registered targets two passes in a row found not admitted, removed. */
  notAdmittedRemoved: 'NotAdmittedRemoved',
  overQuota: 'OverQuota',
  /** Targets the load balancer holds (registered or draining, every group), as the pass read them: what the quota alarm watches. */
  registeredTargets: 'RegisteredTargets',
  /** Member index items the pass found wrong and rewrote (or removed). */
  memberRepairs: 'MemberRepairs',
  /** 1 when the pass moved the capability catalog's revision. */
  catalogUpdates: 'CatalogUpdates',
} as const;

/**
 * The ELB call budget's metrics, published by sync (per batch) and reconcile (per pass) under
 * the same names: the Register/Deregister calls per second the batch or pass made against the
 * budget's rate, the changes that had to wait for a token, and the longest such wait.
 */
export const BUDGET_METRICS = {
  elbCallsPerSecond: 'ElbCallsPerSecond',
  elbCallBudgetPerSecond: 'ElbCallBudgetPerSecond',
  queuedChanges: 'QueuedChanges',
  oldestQueuedChangeMs: 'OldestQueuedChangeMs',
  /** Calls a container made from its own fallback share while the shared bucket was out of reach (shared-elb-bucket.ts). */
  elbCallsOffSharedBudget: 'ElbCallsOffSharedBudget',
} as const;

/**
 * One count per error code a handler met (an invocation that failed, a change ELB refused or
 * that stayed unapplied, a read of the lease table that failed), under the name its code maps
 * to here; codes only the SDK or the CLI meet count as `OtherErrors`.
 */
export const ERROR_METRICS = {
  INVALID_CONFIG: 'ConfigErrors',
  LEASE_STORE: 'LeaseStoreErrors',
  REGISTRY_STATE: 'RegistryStateErrors',
  /** The shared ELB call budget could not be reached: the container fell back to its own share of it. */
  ELB_BUDGET_STATE: 'ElbBudgetStateErrors',
  ELB_TRANSIENT: 'ElbTransientErrors',
  ELB_PERMANENT: 'ElbRefusals',
  EC2_LOOKUP: 'Ec2LookupErrors',
  OTHER: 'OtherErrors',
} as const satisfies Partial<Record<AgentLbErrorCode | 'OTHER', string>>;

export type SyncMetricName = (typeof SYNC_METRICS)[keyof typeof SYNC_METRICS];
export type ReconcileMetricName = (typeof RECONCILE_METRICS)[keyof typeof RECONCILE_METRICS];
export type CatalogStreamMetricName = (typeof CATALOG_STREAM_METRICS)[keyof typeof CATALOG_STREAM_METRICS];
export type BudgetMetricName = (typeof BUDGET_METRICS)[keyof typeof BUDGET_METRICS];
export type ErrorMetricName = (typeof ERROR_METRICS)[keyof typeof ERROR_METRICS];

/** The metric an error of `code` is counted under; `undefined` (not an agent-lb error) counts as `OtherErrors`. */
export function errorMetricName(code: AgentLbErrorCode | undefined): ErrorMetricName {
  return code !== undefined && Object.hasOwn(ERROR_METRICS, code) ? ERROR_METRICS[code as keyof typeof ERROR_METRICS] : ERROR_METRICS.OTHER;
}

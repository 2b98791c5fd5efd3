/**
 * agent-lb/core: the pure lease core (no AWS calls, no aws-cdk-lib) that the SDK, the Lambdas,
 * the CLI and local mode share: the lease contract, its codec and validation, the liveness rule,
 * routing of a lease to target groups, the stream and reconcile planners, and the runtime
 * configuration of the Lambdas. Every name is listed on purpose.
 */
export { AddressPolicy, canonicalAddress, DEFAULT_ALLOWED_CIDRS, formatTarget, parseCidr } from './address-policy';
export type { AddressCheck, AddressKind, AddressPolicyOptions } from './address-policy';
export {
  AgentLbError,
  ConfigError,
  ElbTargetsError,
  InvalidLeaseError,
  LeaseHeldError,
  LeaseLostError,
  LeaseStoreError,
  PortUnavailableError,
  RegistryStateError,
} from './errors';
export type { AgentLbErrorCode, AgentLbErrorOptions, LeaseRejection, LeaseRejectionReason } from './errors';
export { MAX_QUOTED_CHARS, quoteUntrusted } from './untrusted-text';
export { decodeLease, decodeRotation, encodeLease, encodeRotationEntry, encodeValidLease, isLive, leaseKeyOf, MAX_EPOCH_SECONDS, rotationEntry } from './lease-codec';
export type { DecodeResult, DecodedRotation } from './lease-codec';
export { routeItem, routeLease, targetRefOf } from './lease-routing';
export { decodeRejection, encodeRejection, MAX_REJECTION_MESSAGE_CHARS, REJECTION_REASON_OF, REJECTION_REASONS, refusedCapabilities, rejectionVerdict, sameVerdict } from './rejection';
export type { RejectionReason, RejectionVerdict, StoredRejection } from './rejection';
export type { Membership, RoutedLease } from './lease-routing';
export { CAPABILITY_NAME, CAPABILITY_TAG, HEARTBEAT_ATTRS, LEASE_ATTR, MAX_METADATA_BYTES, MAX_PORT, MIN_PORT, MAX_REQUEST_SECONDS_TAG, REGISTRY_ATTRS, REGISTRY_MAPS, ROTATION_STATES, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG } from './lease-schema';
export type { CapabilityRoute, Lease, LeaseRotation, LeaseStatus, RegistryAttribute, RegistryMap, RotationEntry, RotationState, RawAttributeValue, RawItem, RoutingConfig, TargetRef, TargetType } from './lease-schema';
export { expiryCutoff, memberKey, planReconcile, presenceOf } from './reconcile-planner';
export type { DeregisterReason, ExpiredLease, GroupRepair, ObservedGroup, ObservedTarget, PlannedDeregistration, ReconcileInput, ReconcilePlan, TargetPresence } from './reconcile-planner';
export { planVariantWeights, variantReady } from './variant-weights';
export type { VariantState, WeightChange, WeightedGroup, WeightedRule } from './variant-weights';
export { confirmChanges, contradictedBy, leaseVersion, wantsTarget } from './lease-confirmation';
export type { ConfirmationContext, ConfirmationVerdict, TargetAction } from './lease-confirmation';
export {
  addressPolicyFor,
  catalogConfigOf,
  completeRuntimeConfig,
  parseCatalogSettings,
  CONFIG_ENV,
  DEFAULT_SAFETY_VALVE_SHARE,
  MAX_RECONCILE_REPEAT_SECONDS,
  parseRuntimeConfig,
  parseRuntimeSettings,
} from './runtime-config';
export type { CatalogSettings, CatalogSettingsJson, RuntimeConfig, RuntimeConfigJson, RuntimeSettings, RuntimeVariants } from './runtime-config';
export { BUDGET_METRICS, ERROR_METRICS, errorMetricName, METRICS_NAMESPACE, RECONCILE_METRICS, RECONCILE_SERVICE_NAME, SYNC_METRICS, SYNC_SERVICE_NAME } from './metric-names';
export type { BudgetMetricName, ErrorMetricName, ReconcileMetricName, SyncMetricName } from './metric-names';
export {
  DEFAULT_IDLE_TIMEOUT_SECONDS,
  DEFAULT_MAX_REQUEST_DURATION_SECONDS,
  deregistrationDelayFor,
  FARGATE_MAX_STOP_TIMEOUT_SECONDS,
  idleTimeoutFor,
  MAX_DEREGISTRATION_DELAY_SECONDS,
  MAX_IDLE_TIMEOUT_SECONDS,
  MAX_MAX_REQUEST_DURATION_SECONDS,
  maxRequestDurationProblem,
  MIN_MAX_REQUEST_DURATION_SECONDS,
  REQUEST_DURATION_MARGIN_SECONDS,
} from './request-duration';
export { formatStateFile, parseStateFile, routingFor, STATE_FILE_CREDENTIALS } from './deployment';
export type { Deployment, LocalLoadBalancerState, LocalState } from './deployment';
export { changedTargets, groupStates, mergeRotationWrites, planCallRotation, planObservedRotation, planRestoredRotation, rotationEntries, rotationStateOf } from './rotation-planner';
export { byLease, entriesNewerThan, heldBy, MAX_ENTRIES_PER_WRITE, registryMaps } from './registry-writes';
export type { LeaseWrite, PlannedEntry, RegistryEntry } from './registry-writes';
export type { LandedCall, ObservedRotationInput, RotationWrite } from './rotation-planner';
export { firstUnappliedRecord, planStreamBatch, RECORD_KINDS, replayChangesToSend } from './stream-planner';
export type { LeaseChangeRecord, RecordKind, StreamPlan, TargetGroupChanges } from './stream-planner';
export {
  budgetOf,
  budgetProblem,
  budgetReport,
  callsOverBudget,
  rankCalls,
  changeKey,
  DEFAULT_ACCOUNT_ELB_BUCKET,
  DEFAULT_ELB_BUDGET_SHARE,
  DEFAULT_ELB_CALL_BUDGET,
  emptyQueue,
  enqueue,
  fullBucket,
  MAX_TARGETS_PER_ELB_CALL,
  msUntilReservable,
  msUntilTokens,
  NOT_SERVING_STATES,
  planCalls,
  priorityOf,
  queueStats,
  refill,
  releaseReserved,
  reserveToken,
  roundBoundSeconds,
  settleCall,
  spendReserved,
  takeTokens,
} from './elb-call-budget';
export type { AccountElbBucket, BucketState, BudgetPlan, BudgetReport, ElbCallGate, ElbCallPermit, ChangeAction, ChangePriority, ChangeQueue, ChangeRequest, ElbCallBudget, PendingChange, PlannedCall } from './elb-call-budget';
export {
  DEFAULT_LOAD_BALANCER_QUOTAS,
  DEFAULT_RULES_PER_LOAD_BALANCER,
  MAX_TARGET_GROUPS_PER_LOAD_BALANCER,
  packCapabilities,
  QUOTA_NAMES,
  quotasProblem,
  rulesOf,
  targetGroupsOf,
} from './load-balancer-packing';
export type { CapabilityCost, CapabilityLoad, LoadBalancerQuotas, PackedLoadBalancer, PackingRefusal, PackingResult } from './load-balancer-packing';
export { DEFAULT_FLEET_SETTINGS, HOURS_PER_MONTH, modelCounts, monthlyCost, ON_DEMAND, PROVISIONED_AUTO_SCALING, scaleToMonth, SECONDS_PER_MONTH, US_EAST_1_PRICES } from './cost-model';
export type { BillingMode, FleetSettings, MonthlyCost, MonthlyCounts, PriceList } from './cost-model';
export {
  ALGORITHM_TAG,
  attributeText,
  buildCatalogCapability,
  CATALOG_ATTRIBUTE_KEY,
  CATALOG_MAX_WAIT_SECONDS,
  catalogEtag,
  catalogInfoFromTags,
  catalogOwners,
  catalogPath,
  catalogRoute,
  formatCatalog,
  groupsOf,
  MAX_ATTRIBUTE_VALUE_CHARS,
  MAX_ATTRIBUTE_VALUES,
  MAX_CATALOG_ATTRIBUTES,
  mergeCatalogCapabilities,
  nextCatalog,
  parseCatalog,
  STICKINESS_TAG,
  summarizeGroup,
} from './catalog-document';
export type {
  CatalogCapability,
  CatalogCapabilityInfo,
  CatalogConfig,
  CatalogDocument,
  CatalogRoute,
  CatalogStickiness,
  CatalogTargets,
  CatalogVariant,
  CatalogVariantInfo,
  GroupSummary,
  TaggedGroup,
} from './catalog-document';
export { catalogHosts, hostOf, placementLoadBalancers } from './catalog-hosts';
export type { CapabilityPlacement } from './catalog-hosts';
export { CATALOG_ENV, catalogResponse, DEFAULT_CATALOG_CACHE_MS, etagMatches, parseCatalogRequest, parseCatalogServeConfig, STATUS_TEXT, stillWaiting } from './catalog-request';
export type { CatalogHttpResponse, CatalogQuery, CatalogRequest, CatalogServeConfig } from './catalog-request';
export { catalogChanges, indexDrift, membersByGroup, membersOfItem, membersOfLease, memberWrites } from './catalog-members';
export type { IndexedGroup, MemberWrites } from './catalog-members';
export {
  CATALOG_ITEM_KEY,
  canonicalJson,
  decodeMember,
  encodeMember,
  MEMBERS_PARTITION_PREFIX,
  membersPartition,
  REGISTRY_STATE_ATTR,
  REGISTRY_STATE_KEY,
  REGISTRY_STATE_ROLE,
  REGISTRY_STATE_ROLE_TAG,
  REGISTRY_TABLE_ENV,
  sameMember,
} from './registry-state';
export type { CatalogMember } from './registry-state';
export { discoverFrom, HEALTH_FILTERS, isHealthyMember, parseHealthFilter, parseMetadataFilter, plainValue } from './agent-discovery';
export type { DiscoveredAgent, DiscoveryFilter, HealthFilter } from './agent-discovery';

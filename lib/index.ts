/**
 * agent-lb: the CDK constructs (`AgentLb` for your own stack, `AgentLbStack` for a stack of its
 * own, and their parts) and the lease contract a construct user needs. Agents import
 * `agent-lb/sdk` instead, which never loads aws-cdk-lib; the pure core is `agent-lb/core`.
 *
 * Every name is listed on purpose: what is not here is not part of the public API.
 */
export {
  AGENT_TABLE_ACTIONS,
  AgentLb,
  AgentLbStack,
  AgentLbValidationError,
  CapabilityCatalog,
  CapabilityRouter,
  capabilitySlot,
  CONFIG_ENV,
  DEFAULT_CAPABILITY_HEADER,
  DEFAULT_PATH_PREFIX,
  DEFAULT_RULES_PER_LOAD_BALANCER,
  DEFAULT_STICKINESS,
  DEFAULT_VARIANT_HEADER,
  LeaseTable,
  LISTENER_PRIORITIES,
  MAX_CAPABILITIES,
  MAX_STICKINESS_SECONDS,
  MAX_TARGET_GROUPS_PER_LOAD_BALANCER,
  MAX_VARIANTS,
  METRICS_NAMESPACE,
  RECONCILE_SERVICE_NAME,
  REGISTRY_STATE_ACTIONS,
  RegistryStateTable,
  RegistrySync,
  SYNC_SERVICE_NAME,
  targetGroupOutputId,
  unknownCapabilityBody,
} from './constructs';
export type {
  AgentLbProps,
  AgentLbRuntimeConfigJson,
  AgentLbStackProps,
  ApplicationCookieStickiness,
  CapabilityCatalogProps,
  CapabilityHealthCheck,
  CapabilityProps,
  CapabilityRoute,
  CapabilityRouterProps,
  CapabilityStickiness,
  CapabilityTargetType,
  CapabilityVariant,
  CatalogOptions,
  LoadBalancerCookieStickiness,
  LoadBalancingAlgorithm,
  LeaseTableProps,
  RegistryStateTableProps,
  RegistrySyncCapability,
  RegistrySyncCatalog,
  RegistrySyncVariants,
  RegistrySyncOptions,
  RegistrySyncProps,
  RulePriorityRange,
  VariantRoute,
} from './constructs';

// The app's configuration (the `agent-lb` context object of cdk.json), for apps built on AgentLbStack.
export { addAgentLbStack, CONTEXT_KEY, CONTEXT_SETTINGS, parseAgentLbContext, readAgentLbContext, stackPropsFromContext } from './constructs';
export type { AgentLbCapabilityContext, AgentLbContext, AgentLbHealthCheckContext, AgentLbStickinessContext, AgentLbVariantContext, ContextSourceOptions, ProcessEnvironment } from './constructs';

// The metrics both Lambdas publish, by the names alarms and dashboards of your own can use.
export { ERROR_METRICS, RECONCILE_METRICS, SYNC_METRICS } from './core/metric-names';
export type { ErrorMetricName, ReconcileMetricName, SyncMetricName } from './core/metric-names';

// The lease contract (docs/lease-contract.md) and the errors agent-lb throws.
export { DEFAULT_ALLOWED_CIDRS } from './core/address-policy';
export { CAPABILITY_NAME, CAPABILITY_TAG, LEASE_ATTR, VARIANT_OF_TAG, VARIANT_WEIGHT_TAG } from './core/lease-schema';
export type { Lease, LeaseStatus, TargetType } from './core/lease-schema';
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
} from './core/errors';
// The capability catalog's document (`GET /agents`), for clients and tools of your own.
export { CATALOG_MAX_WAIT_SECONDS } from './core/catalog-document';
export type { CatalogCapability, CatalogDocument, CatalogRoute, CatalogTargets, CatalogVariant } from './core/catalog-document';
// Thrown by the CLI only; declared beside it (lib/cli/usage-error.ts imports nothing but core's errors).
export { UsageError } from './cli/usage-error';
export type { AgentLbErrorCode, LeaseRejection, LeaseRejectionReason } from './core/errors';

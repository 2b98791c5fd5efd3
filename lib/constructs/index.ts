/** The CDK constructs and the app's configuration; what `agent-lb` (lib/index.ts) publishes from them. */
export { AgentLb } from './agent-lb';
export type { AgentLbProps, CatalogOptions, RegistrySyncOptions } from './agent-lb';
export { CapabilityCatalog } from './capability-catalog';
export type { CapabilityCatalogProps } from './capability-catalog';
export { REGISTRY_STATE_ACTIONS, RegistryStateTable } from './registry-state-table';
export type { RegistryStateTableProps } from './registry-state-table';
export { AgentLbStack, targetGroupOutputId } from './agent-lb-stack';
export type { AgentLbStackProps } from './agent-lb-stack';
export { addAgentLbStack, CONTEXT_KEY, CONTEXT_SETTINGS, parseAgentLbContext, readAgentLbContext, stackEnvironment, stackPropsFromContext } from './app-context';
export type { AgentLbCapabilityContext, AgentLbContext, AgentLbHealthCheckContext, AgentLbStickinessContext, AgentLbVariantContext, ProcessEnvironment } from './app-context';
export type { ContextSourceOptions } from './context-overrides';
export {
  CapabilityRouter,
  DEFAULT_CAPABILITY_HEADER,
  DEFAULT_PATH_PREFIX,
  DEFAULT_VARIANT_HEADER,
  MAX_CAPABILITIES,
  MAX_FIXED_RESPONSE_BODY,
  PRIORITY_SLOTS,
  unknownCapabilityBody,
} from './capability-router';
export type { CapabilityRoute, CapabilityRouterProps, VariantRoute } from './capability-router';
export type {
  ApplicationCookieStickiness,
  CapabilityHealthCheck,
  CapabilityProps,
  CapabilityStickiness,
  CapabilityTargetType,
  CapabilityVariant,
  LoadBalancerCookieStickiness,
  LoadBalancingAlgorithm,
} from './capability-props';
export { DEFAULT_RULES_PER_LOAD_BALANCER, MAX_TARGET_GROUPS_PER_LOAD_BALANCER } from './load-balancer-budget';
export { DEFAULT_STICKINESS, MAX_STICKINESS_SECONDS, MAX_VARIANTS } from './routing-policy';
export { AGENT_TABLE_ACTIONS, LeaseTable } from './lease-table';
export type { LeaseTableProps } from './lease-table';
export { acknowledgeNagFindings, acknowledgeRegistryFindings } from './nag-suppressions';
export type { NagAcknowledgementOptions, NagAcknowledgementSubjects } from './nag-suppressions';
export { CONFIG_ENV, METRICS_NAMESPACE, RECONCILE_SERVICE_NAME, RegistrySync, SYNC_SERVICE_NAME } from './registry-sync';
export type { AgentLbRuntimeConfigJson, RegistrySyncCapability, RegistrySyncCatalog, RegistrySyncProps, RegistrySyncVariants } from './registry-sync';
export { capabilitySlot, LISTENER_PRIORITIES } from './rule-priorities';
export { AgentLbValidationError } from './validation-error';
export type { RulePriorityRange } from './rule-priorities';

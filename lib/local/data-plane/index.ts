/**
 * The local data plane: an HTTP endpoint that behaves as an Application Load Balancer would
 * from ELBv2 state (listener rules, target groups, their attributes and targets), with ALB's
 * health checks, fail-open, draining, algorithms, slow start and sticky sessions, and Lambda
 * target groups whose functions it invokes (in-process, through `invokeLambda`) with ALB's event.
 *
 * Wiring: give {@link LoadBalancer.start} a {@link LoadBalancerStateSource} that returns
 * DescribeRules / DescribeTargetGroups / DescribeTargetGroupAttributes / DescribeTargetHealth
 * output, and a {@link TargetHealthSink} that records the health changes it reports.
 */
export { LoadBalancer } from './load-balancer';
export type { AccessLogEntry, LoadBalancerOptions } from './load-balancer';
export { readRegisteredTarget, targetIdIsAddress, targetKey } from './snapshot';
export type {
  LoadBalancerSnapshot,
  LoadBalancerStateSource,
  RegisteredTarget,
  TargetAddressResolver,
  TargetGroupSnapshot,
  TargetHealthChange,
  TargetHealthSink,
} from './snapshot';
export type { DataPlaneMetrics, TargetGroupMetrics, TargetMetrics, TargetResponseCounts } from './data-plane-metrics';
export { DataPlaneEngine } from './data-plane-engine';
export type { EngineOptions, ForwardOutcome, HealthCheckJob, HealthCheckOutcome } from './data-plane-engine';
export type { RoutingDecision } from './request-routing';
export { evaluateRules, conditionMatches, orderRules, ruleAction } from './listener-rules';
export type { ListenerRequest, RuleAction, RuleMatch } from './listener-rules';
export { healthCheckSettings, nextTargetHealth, parseMatcher, registeredTarget } from './health-checks';
export type { HealthCheckFailure, HealthCheckSettings, TargetHealthEvent, TargetHealthReason, TargetHealthRecord, TargetHealthState } from './health-checks';
export { loadBalancerPolicy, targetGroupPolicy } from './target-group-attributes';
export type { LoadBalancerPolicy, LoadBalancingAlgorithm, Stickiness, TargetGroupPolicy } from './target-group-attributes';
export { pickTargetGroup, routableTargets, selectTarget } from './target-selection';
export type { CandidateTarget, Selection } from './target-selection';
export { wildcardMatch } from './wildcard';
export { albLambdaEvent, albLambdaResponse, LAMBDA_PAYLOAD_LIMIT } from './lambda-target';
export type { LambdaInvoker, LambdaOutcome, LambdaRequest } from './lambda-target';

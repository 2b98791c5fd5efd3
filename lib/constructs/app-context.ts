import { App, Duration, Environment, RemovalPolicy } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { RegistrySyncOptions } from './agent-lb';
import { ConfigError } from '../core/errors';
import { AgentLbStack, AgentLbStackProps } from './agent-lb-stack';
import type { CapabilityHealthCheck, CapabilityPort, CapabilityProps, CapabilityStickiness, LoadBalancingAlgorithm } from './capability-props';
import { ContextKind, ContextSourceOptions, readContextObject } from './context-overrides';

/**
 * The context key holding the app's configuration: the object in cdk.json, `-c agent-lb='{...}'`
 * merged over it, and `-c agent-lb.<setting>=<value>` for one setting.
 */
export const CONTEXT_KEY = 'agent-lb';

/** A capability's health check in the context; durations are whole seconds so the context stays plain JSON. */
export interface AgentLbHealthCheckContext {
  readonly path?: string;
  readonly port?: number;
  readonly healthyThresholdCount?: number;
  readonly unhealthyThresholdCount?: number;
  readonly intervalSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly healthyHttpCodes?: string;
}

/** A capability's sticky sessions in the context; see {@link CapabilityStickiness}. */
export interface AgentLbStickinessContext {
  readonly type: 'lb_cookie' | 'app_cookie';
  /** Whole seconds, 1–604800. @default 86400 */
  readonly durationSeconds?: number;
  /** Only with `app_cookie`. */
  readonly cookieName?: string;
}

/** A weighted variant in the context; see {@link CapabilityVariant}. */
export interface AgentLbVariantContext {
  readonly name: string;
  /** Percent of the capability's requests, 0–100. */
  readonly weight: number;
}

/** A capability in the context; see {@link CapabilityProps} for what each setting means. */
export interface AgentLbCapabilityContext {
  readonly name: string;
  readonly targetType?: 'ip' | 'instance';
  readonly port?: number;
  readonly protocol?: 'HTTP' | 'HTTPS';
  readonly healthCheck?: AgentLbHealthCheckContext;
  /** Whole seconds, 1–3590. @default 300 */
  readonly maxRequestDurationSeconds?: number;
  readonly deregistrationDelaySeconds?: number;
  readonly slowStartSeconds?: number;
  readonly algorithm?: LoadBalancingAlgorithm;
  readonly anomalyMitigation?: boolean;
  readonly stickiness?: AgentLbStickinessContext;
  readonly variants?: readonly AgentLbVariantContext[];
  /** Whole seconds, 0 (off) or 1–604800. */
  readonly variantStickinessSeconds?: number;
  readonly priority?: number;
  /** Ports agents may serve on: numbers, or ranges written `"9000-9099"`. */
  readonly ports?: readonly (number | string)[];
  /** Security group ids whose interfaces may serve this capability instead of the agents' group (needs `vpcId`). */
  readonly admittedSecurityGroupIds?: readonly string[];
  /** Targets this capability is expected to hold: what the packing counts against a load balancer's target quota. @default 0 */
  readonly expectedTargets?: number;
}

/** ALB quotas the packing respects, where AWS raised them for the account; see {@link LoadBalancerQuotas}. */
export interface AgentLbQuotasContext {
  readonly targetGroupsPerLoadBalancer?: number;
  readonly rulesPerLoadBalancer?: number;
  readonly targetsPerLoadBalancer?: number;
  readonly targetsPerTargetGroup?: number;
  readonly loadBalancersPerRegion?: number;
}

/** The `agent-lb` context object; see {@link AgentLbStackProps} and {@link RegistrySyncOptions} for each setting. */
export interface AgentLbContext {
  readonly stackName?: string;
  readonly account?: string;
  readonly region?: string;
  readonly capabilities: readonly AgentLbCapabilityContext[];
  readonly vpcId?: string;
  readonly vpcCidr?: string;
  readonly maxAzs?: number;
  readonly natGateways?: number;
  readonly internetFacing?: boolean;
  readonly certificateArn?: string;
  readonly accessLogsBucketName?: string;
  readonly accessLogsPrefix?: string;
  readonly allowedCidrs?: readonly string[];
  readonly ingressCidrs?: readonly string[];
  readonly leaseTtlSeconds?: number;
  readonly headerName?: string;
  readonly variantHeaderName?: string;
  readonly pathPrefix?: string;
  readonly tableRemovalPolicy?: 'retain' | 'destroy' | 'snapshot';
  readonly safetyValveShare?: number;
  readonly reconcileIntervalMinutes?: number;
  readonly reconcileRepeatSeconds?: number;
  readonly batchSize?: number;
  readonly maxBatchingWindowSeconds?: number;
  readonly retryAttempts?: number;
  readonly maxRecordAgeSeconds?: number;
  readonly maxLeaseTtlSeconds?: number;
  readonly targetQuota?: number;
  readonly agentSecurityGroupId?: string;
  readonly catalog?: boolean;
  readonly catalogAttributes?: readonly string[];
  readonly loadBalancerQuotas?: AgentLbQuotasContext;
  /** With `zoneName`: the hosted zone each capability gets a DNS name in. */
  readonly hostedZoneId?: string;
  readonly zoneName?: string;
  readonly dnsSubdomain?: string;
}

type Kind = ContextKind;

/** Every setting of the `agent-lb` context object and its JSON kind. */
export const CONTEXT_SETTINGS: Readonly<Record<string, ContextKind>> = {
  stackName: 'string',
  account: 'string',
  region: 'string',
  capabilities: 'object[]',
  vpcId: 'string',
  vpcCidr: 'string',
  maxAzs: 'number',
  natGateways: 'number',
  internetFacing: 'boolean',
  certificateArn: 'string',
  accessLogsBucketName: 'string',
  accessLogsPrefix: 'string',
  allowedCidrs: 'string[]',
  ingressCidrs: 'string[]',
  leaseTtlSeconds: 'number',
  headerName: 'string',
  variantHeaderName: 'string',
  pathPrefix: 'string',
  tableRemovalPolicy: 'string',
  safetyValveShare: 'number',
  reconcileIntervalMinutes: 'number',
  reconcileRepeatSeconds: 'number',
  batchSize: 'number',
  maxBatchingWindowSeconds: 'number',
  retryAttempts: 'number',
  maxRecordAgeSeconds: 'number',
  maxLeaseTtlSeconds: 'number',
  targetQuota: 'number',
  agentSecurityGroupId: 'string',
  catalog: 'boolean',
  catalogAttributes: 'string[]',
  loadBalancerQuotas: 'object',
  hostedZoneId: 'string',
  zoneName: 'string',
  dnsSubdomain: 'string',
};

const QUOTAS: Record<string, Kind> = {
  targetGroupsPerLoadBalancer: 'number',
  rulesPerLoadBalancer: 'number',
  targetsPerLoadBalancer: 'number',
  targetsPerTargetGroup: 'number',
  loadBalancersPerRegion: 'number',
};

const CAPABILITY: Record<string, Kind> = {
  name: 'string',
  targetType: 'string',
  port: 'number',
  protocol: 'string',
  healthCheck: 'object',
  maxRequestDurationSeconds: 'number',
  deregistrationDelaySeconds: 'number',
  slowStartSeconds: 'number',
  algorithm: 'string',
  anomalyMitigation: 'boolean',
  stickiness: 'object',
  variants: 'object[]',
  variantStickinessSeconds: 'number',
  priority: 'number',
  ports: 'port[]',
  admittedSecurityGroupIds: 'string[]',
  expectedTargets: 'number',
};

const STICKINESS: Record<string, Kind> = {
  type: 'string',
  durationSeconds: 'number',
  cookieName: 'string',
};

const VARIANT: Record<string, Kind> = {
  name: 'string',
  weight: 'number',
};

const HEALTH_CHECK: Record<string, Kind> = {
  path: 'string',
  port: 'number',
  healthyThresholdCount: 'number',
  unhealthyThresholdCount: 'number',
  intervalSeconds: 'number',
  timeoutSeconds: 'number',
  healthyHttpCodes: 'string',
};

const ENUMS: Record<string, readonly string[]> = {
  targetType: ['ip', 'instance'],
  algorithm: ['round_robin', 'least_outstanding_requests', 'weighted_random'],
  type: ['lb_cookie', 'app_cookie'],
  protocol: ['HTTP', 'HTTPS'],
  tableRemovalPolicy: ['retain', 'destroy', 'snapshot'],
};

function isKind(value: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string' && value !== '';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'string[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'port[]':
      return Array.isArray(value) && value.every((v) => (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && /^\d+(-\d+)?$/.test(v)));
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'object[]':
      return Array.isArray(value) && value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v));
  }
}

const KIND_TEXT: Record<Kind, string> = {
  string: 'a non-empty string',
  number: 'a number',
  boolean: 'a boolean',
  'string[]': 'a list of strings',
  'port[]': 'a list of ports (numbers) or ranges ("9000-9099")',
  object: 'an object',
  'object[]': 'a list of objects',
};

function checkObject(value: Record<string, unknown>, shape: Record<string, Kind>, where: string): void {
  for (const [key, v] of Object.entries(value)) {
    const kind = shape[key];
    if (!kind) throw new ConfigError(`${where}.${key} is not a known setting; known: ${Object.keys(shape).join(', ')}`);
    if (!isKind(v, kind)) throw new ConfigError(`${where}.${key} must be ${KIND_TEXT[kind]}, got ${JSON.stringify(v)}`);
    // Durations become CDK Durations before the constructs' range checks, and CDK refuses a
    // negative amount without naming the setting: name it here.
    if (key.endsWith('Seconds') && typeof v === 'number' && v < 0) throw new ConfigError(`${where}.${key} must be 0 or more seconds, got ${v}`);
    const allowed = ENUMS[key];
    if (allowed && !allowed.includes(v as string)) {
      throw new ConfigError(`${where}.${key} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`);
    }
  }
}

/**
 * Checks the shape of the `agent-lb` context: known keys, JSON types, enum values. Ranges are
 * checked by the constructs, whose messages quote the value and the allowed range.
 */
export function parseAgentLbContext(raw: unknown): AgentLbContext {
  let value = raw;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      throw new ConfigError(`context "${CONTEXT_KEY}" is not valid JSON: ${value}`);
    }
  }
  if (value === undefined) throw new ConfigError(`context "${CONTEXT_KEY}" is missing: add it to cdk.json or pass -c ${CONTEXT_KEY}='{"capabilities":[...]}'`);
  if (!isKind(value, 'object')) throw new ConfigError(`context "${CONTEXT_KEY}" must be an object, got ${JSON.stringify(value)}`);
  const ctx = { ...(value as Record<string, unknown>) };
  // A capability with every setting at its default may be given by its name alone, as -c does.
  if (Array.isArray(ctx.capabilities)) ctx.capabilities = ctx.capabilities.map((c: unknown) => (typeof c === 'string' ? { name: c } : c));
  checkObject(ctx, CONTEXT_SETTINGS, CONTEXT_KEY);
  if (ctx.capabilities === undefined) throw new ConfigError(`${CONTEXT_KEY}.capabilities is required: a list of names or { "name": ... } objects`);
  // Ranges (and which quotas AWS lets one raise) are the stack's to check, naming the quota.
  if (ctx.loadBalancerQuotas !== undefined) checkObject(ctx.loadBalancerQuotas as Record<string, unknown>, QUOTAS, `${CONTEXT_KEY}.loadBalancerQuotas`);
  (ctx.capabilities as Record<string, unknown>[]).forEach((c, i) => {
    const where = `${CONTEXT_KEY}.capabilities[${i}]`;
    checkObject(c, CAPABILITY, where);
    if (c.name === undefined) throw new ConfigError(`${where}.name is required`);
    if (c.healthCheck !== undefined) checkObject(c.healthCheck as Record<string, unknown>, HEALTH_CHECK, `${where}.healthCheck`);
    if (c.stickiness !== undefined) {
      const stickiness = c.stickiness as Record<string, unknown>;
      checkObject(stickiness, STICKINESS, `${where}.stickiness`);
      if (stickiness.type === undefined) throw new ConfigError(`${where}.stickiness.type is required: "lb_cookie" or "app_cookie"`);
      if (stickiness.type === 'lb_cookie' && stickiness.cookieName !== undefined) {
        throw new ConfigError(`${where}.stickiness.cookieName is only for "app_cookie" (the load balancer names its own cookie with "lb_cookie"), got ${JSON.stringify(stickiness.cookieName)}`);
      }
    }
    ((c.variants ?? []) as Record<string, unknown>[]).forEach((v, j) => {
      checkObject(v, VARIANT, `${where}.variants[${j}]`);
      for (const key of ['name', 'weight']) if (v[key] === undefined) throw new ConfigError(`${where}.variants[${j}].${key} is required`);
    });
  });
  return ctx as unknown as AgentLbContext;
}

const seconds = (n: number | undefined) => (n === undefined ? undefined : Duration.seconds(n));

function healthCheckProps(h: AgentLbHealthCheckContext): CapabilityHealthCheck {
  return {
    path: h.path,
    port: h.port,
    healthyThresholdCount: h.healthyThresholdCount,
    unhealthyThresholdCount: h.unhealthyThresholdCount,
    interval: seconds(h.intervalSeconds),
    timeout: seconds(h.timeoutSeconds),
    healthyHttpCodes: h.healthyHttpCodes,
  };
}

function stickinessProps(s: AgentLbStickinessContext): CapabilityStickiness {
  const duration = seconds(s.durationSeconds);
  // The construct checks that an app cookie has a name, and quotes it when it has not.
  return s.type === 'app_cookie' ? { type: 'app_cookie', cookieName: s.cookieName as string, duration } : { type: 'lb_cookie', duration };
}

function portProps(p: number | string): CapabilityPort {
  if (typeof p === 'number') return p;
  const [from, to] = p.split('-').map(Number);
  return to === undefined ? from : { from, to };
}

function capabilityProps(c: AgentLbCapabilityContext): CapabilityProps {
  return {
    ports: c.ports?.map(portProps),
    name: c.name,
    targetType: c.targetType,
    port: c.port,
    protocol: c.protocol === undefined ? undefined : c.protocol === 'HTTPS' ? elbv2.ApplicationProtocol.HTTPS : elbv2.ApplicationProtocol.HTTP,
    healthCheck: c.healthCheck && healthCheckProps(c.healthCheck),
    maxRequestDuration: seconds(c.maxRequestDurationSeconds),
    deregistrationDelay: seconds(c.deregistrationDelaySeconds),
    slowStart: seconds(c.slowStartSeconds),
    algorithm: c.algorithm,
    anomalyMitigation: c.anomalyMitigation,
    stickiness: c.stickiness && stickinessProps(c.stickiness),
    variants: c.variants,
    variantStickiness: seconds(c.variantStickinessSeconds),
    priority: c.priority,
  };
}

const REMOVAL: Record<NonNullable<AgentLbContext['tableRemovalPolicy']>, RemovalPolicy> = {
  retain: RemovalPolicy.RETAIN,
  destroy: RemovalPolicy.DESTROY,
  snapshot: RemovalPolicy.SNAPSHOT,
};

/** Environment variables as `process.env` holds them (no dependency on Node's type definitions). */
export type ProcessEnvironment = Readonly<Record<string, string | undefined>>;

/**
 * The stack's environment: explicit when the context names an account/region or needs one
 * (a VPC lookup, access logs), otherwise environment-agnostic so synth needs no credentials.
 */
export function stackEnvironment(ctx: AgentLbContext, processEnv: ProcessEnvironment = process.env): Environment | undefined {
  const account = ctx.account ?? processEnv.CDK_DEFAULT_ACCOUNT;
  const region = ctx.region ?? processEnv.CDK_DEFAULT_REGION;
  const needs = ctx.vpcId !== undefined ? 'vpcId' : ctx.accessLogsBucketName !== undefined ? 'accessLogsBucketName' : undefined;
  if (needs) {
    if (!account || !region) {
      throw new ConfigError(
        `${CONTEXT_KEY}.${needs} needs an account and region: set ${CONTEXT_KEY}.account and ${CONTEXT_KEY}.region, or run with AWS credentials and a default region`,
      );
    }
    return { account, region };
  }
  if (ctx.account !== undefined || ctx.region !== undefined) return { account: ctx.account, region: ctx.region };
  return undefined;
}

/** Stack properties from a parsed context. */
export function stackPropsFromContext(ctx: AgentLbContext, processEnv: ProcessEnvironment = process.env): AgentLbStackProps {
  const registrySync: RegistrySyncOptions = {
    safetyValveShare: ctx.safetyValveShare,
    reconcileInterval: ctx.reconcileIntervalMinutes === undefined ? undefined : Duration.minutes(ctx.reconcileIntervalMinutes),
    reconcileRepeat: seconds(ctx.reconcileRepeatSeconds),
    batchSize: ctx.batchSize,
    maxBatchingWindow: seconds(ctx.maxBatchingWindowSeconds),
    retryAttempts: ctx.retryAttempts,
    maxRecordAge: seconds(ctx.maxRecordAgeSeconds),
    maxLeaseTtl: seconds(ctx.maxLeaseTtlSeconds),
    targetQuota: ctx.targetQuota,
  };
  const admitted = ctx.capabilities.filter((c) => c.admittedSecurityGroupIds !== undefined);
  const expected = ctx.capabilities.filter((c) => c.expectedTargets !== undefined);
  return {
    env: stackEnvironment(ctx, processEnv),
    description: 'agent-lb: lease table, capability-routing ALB, sync and reconcile Lambdas',
    capabilities: ctx.capabilities.map(capabilityProps),
    vpcId: ctx.vpcId,
    vpcCidr: ctx.vpcCidr,
    maxAzs: ctx.maxAzs,
    natGateways: ctx.natGateways,
    internetFacing: ctx.internetFacing,
    certificateArn: ctx.certificateArn,
    accessLogsBucketName: ctx.accessLogsBucketName,
    accessLogsPrefix: ctx.accessLogsPrefix,
    allowedCidrs: ctx.allowedCidrs,
    ingressCidrs: ctx.ingressCidrs,
    leaseTtl: seconds(ctx.leaseTtlSeconds),
    headerName: ctx.headerName,
    variantHeaderName: ctx.variantHeaderName,
    pathPrefix: ctx.pathPrefix,
    tableRemovalPolicy: ctx.tableRemovalPolicy && REMOVAL[ctx.tableRemovalPolicy],
    agentSecurityGroupId: ctx.agentSecurityGroupId,
    ...(admitted.length > 0 ? { admittedSecurityGroupIds: Object.fromEntries(admitted.map((c) => [c.name, c.admittedSecurityGroupIds!])) } : {}),
    registrySync,
    catalog: ctx.catalog,
    catalogAttributes: ctx.catalogAttributes,
    ...(expected.length > 0 ? { expectedTargets: Object.fromEntries(expected.map((c) => [c.name, c.expectedTargets!])) } : {}),
    ...(ctx.loadBalancerQuotas ? { loadBalancerQuotas: ctx.loadBalancerQuotas } : {}),
    hostedZoneId: ctx.hostedZoneId,
    zoneName: ctx.zoneName,
    dnsSubdomain: ctx.dnsSubdomain,
  };
}

/**
 * The app's configuration from `app`'s context, every way the CDK CLI sets it (see
 * {@link CONTEXT_KEY}), checked.
 * @throws ConfigError naming the setting, the value and what is allowed
 */
export function readAgentLbContext(app: App, options: ContextSourceOptions = {}): AgentLbContext {
  return parseAgentLbContext(readContextObject(app.node, { key: CONTEXT_KEY, settings: CONTEXT_SETTINGS }, options));
}

/** Adds the stack the `agent-lb` context describes to `app`; what `bin/app.ts` runs. */
export function addAgentLbStack(app: App, processEnv: ProcessEnvironment = process.env, options: ContextSourceOptions = {}): AgentLbStack {
  const ctx = readAgentLbContext(app, options);
  return new AgentLbStack(app, ctx.stackName ?? 'AgentLb', stackPropsFromContext(ctx, processEnv));
}

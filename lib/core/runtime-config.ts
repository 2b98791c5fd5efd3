import { AddressPolicy, DEFAULT_ALLOWED_CIDRS, parseCidr } from './address-policy';
import { AccountElbBucket, budgetProblem, DEFAULT_ACCOUNT_ELB_BUCKET, ElbCallBudget } from './elb-call-budget';
import { DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR, fallbackDivisorProblem } from './shared-elb-bucket';
import { CATALOG_ATTRIBUTE_KEY, CatalogCapabilityInfo, CatalogConfig, catalogInfoFromTags, MAX_CATALOG_ATTRIBUTES, TaggedGroup } from './catalog-document';
import { ConfigError } from './errors';
import { CAPABILITY_NAME, CapabilityRoute, DEFAULT_MAX_LEASE_TTL_SECONDS, PortRange, RoutingConfig, TargetType } from './lease-schema';
import { parsePortRanges } from './port-ranges';
import type { LoadBalancerPlacement } from './target-quota';

/** Environment variable of the sync and reconcile Lambdas holding their configuration, a {@link RuntimeConfigJson}. */
export const CONFIG_ENV = 'AGENT_LB_CONFIG';

/** Share of a group's targets one reconcile pass may remove for want of a lease, unless configured. */
export const DEFAULT_SAFETY_VALVE_SHARE = 0.5;

/** Longest `reconcileRepeatSeconds`: a Lambda invocation lasts at most 15 minutes. */
export const MAX_RECONCILE_REPEAT_SECONDS = 600;

/**
 * The `AGENT_LB_CONFIG` text as the stack writes it (JSON), parsed by {@link parseRuntimeSettings}.
 * With a load balancer (or a listener, whose load balancer is looked up), capabilities are a list
 * of names whose target groups the functions find on it at cold start.
 */
export interface RuntimeConfigJson {
  readonly tableName: string;
  readonly loadBalancerArn?: string;
  readonly listenerArn?: string;
  /**
   * The deployment's other load balancers (with `loadBalancerArn`, the first): each listed
   * capability's target group is found on exactly one of them. Weighted variants stay on the first.
   * @default [] (one load balancer)
   */
  readonly moreLoadBalancerArns?: readonly string[];
  readonly capabilities: Record<string, { readonly targetGroupArn: string; readonly targetType: TargetType; readonly ports?: string }> | readonly string[];
  /**
   * With `vpcCidrs`: the ranges named explicitly besides the VPC's (targets there need
   * `availabilityZone: all`). Without: every allowed range.
   * @default [] with `vpcCidrs`, else DEFAULT_ALLOWED_CIDRS
   */
  readonly allowedCidrs?: string[];
  /** The VPC's CIDR blocks: the allowed ranges unless `allowedCidrs` names more. @default - unknown */
  readonly vpcCidrs?: string[];
  /** Longest lease TTL, seconds, 5–86400: later `expiresAt`s are rejected and swept. @default DEFAULT_MAX_LEASE_TTL_SECONDS */
  readonly maxLeaseTtlSeconds?: number;
  /**
   * Ports each capability's agents may use, where they are not just its target group's port
   * (`{"batch": "9000-9099,8080"}`). @default - each target group's own port
   */
  readonly ports?: Record<string, string>;
  /**
   * Admission by AWS facts: an IP target is registered only when EC2 shows its address on a
   * network interface in `vpcId` that carries one of the admitted security groups (an instance
   * target: the instance's groups). @default - no admission check (a hand-written configuration)
   */
  readonly admission?: AdmissionConfigJson;
  /**
   * Targets each load balancer may hold, all its groups together (ALB's "Targets per Application
   * Load Balancer"); leases beyond are rejected `over-quota`. On several load balancers, each
   * counts its own capabilities' groups against it. @default DEFAULT_TARGET_QUOTA
   */
  readonly targetQuota?: number;
  /** In (0, 1]. @default DEFAULT_SAFETY_VALVE_SHARE */
  readonly safetyValveShare: number;
  /** Integer seconds, 0 to MAX_RECONCILE_REPEAT_SECONDS. @default 0 */
  readonly reconcileRepeatSeconds: number;
  /**
   * Weighted variants by the capability their agents list, with their configured weight, whole
   * percent 0–100 (`{"vision-canary": 10}`); each must also be among `capabilities`. Needs
   * `loadBalancerArn` or `listenerArn`: where the reconcile pass finds their weighted rules.
   * @default {} (no variants)
   */
  readonly variantWeights?: Record<string, number>;
  /**
   * The registry's share of the account's Register/Deregister bucket, sync and reconcile
   * together: `{ "callsPerSecond": 2, "burst": 10 }`; at most `accountElbBucket`.
   * @default DEFAULT_ELB_CALL_BUDGET (half of AWS's default bucket)
   */
  readonly elbBudget?: ElbCallBudget;
  /** The account's Register/Deregister bucket, when AWS raised it. @default DEFAULT_ACCOUNT_ELB_BUCKET (refill 4/s, burst 20) */
  readonly accountElbBucket?: AccountElbBucket;
  /**
   * Where every sync and reconcile container takes its tokens from, so that `elbBudget` bounds the
   * whole registry: the ELB budget item of this registry state table (shared-elb-bucket.ts).
   * @default - each container keeps a bucket of its own (the budget then bounds one container)
   */
  readonly sharedElbBudget?: SharedElbBudgetJson;
  /**
   * The capability catalog (`GET /agents`): the registry keeps its document and member index in
   * this registry state table. Each capability's algorithm, stickiness and variants come from its
   * groups' tags (found with them at cold start). @default - no catalog
   */
  readonly catalog?: CatalogSettingsJson;
}

/** The `sharedElbBudget` part of {@link RuntimeConfigJson}. */
export interface SharedElbBudgetJson {
  /** The registry state table holding the bucket's item. @default the catalog's table (`catalog.tableName`): the name is not written twice */
  readonly tableName?: string;
  /** While the item is out of reach, a container keeps to 1/fallbackDivisor of the budget, 1–100. @default DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR */
  readonly fallbackDivisor?: number;
}

/** The shared budget's settings, checked. */
export interface SharedElbBudget {
  readonly tableName: string;
  readonly fallbackDivisor: number;
}

/** The `admission` part of {@link RuntimeConfigJson}. */
export interface AdmissionConfigJson {
  /** The deployment's VPC: an interface elsewhere admits nothing. */
  readonly vpcId: string;
  /** The agents' security group(s): an interface carrying one of them may serve every capability without its own list. */
  readonly securityGroups: string[];
  /** Capabilities that admit only these groups instead (`{"vision": ["sg-…"]}`): only tasks of the vision service serve vision. */
  readonly byCapability?: Record<string, string[]>;
}

/** Targets per load balancer unless configured: ALB's default quota. */
export const DEFAULT_TARGET_QUOTA = 1000;
/** The `catalog` part of `AGENT_LB_CONFIG`. */
export interface CatalogSettingsJson {
  /** The registry state table. */
  readonly tableName: string;
  /** Request header that selects a capability (the catalog shows it in each `route`). */
  readonly headerName: string;
  /** First path segment(s) of capability paths. */
  readonly pathPrefix: string;
  /** Public metadata keys (`catalogAttributes`), at most 10. @default [] */
  readonly attributes?: readonly string[];
  /**
   * The domain each capability has a DNS name under (`dnsZone`, `dnsSubdomain`): the catalog's
   * `route.host` is then `<capability>.<dnsDomain>`, and no load balancer is looked up for it.
   * @default - no DNS names: the DNS name of the capability's load balancer
   */
  readonly dnsDomain?: string;
}

/** The catalog's settings, checked. */
export type CatalogSettings = Required<Omit<CatalogSettingsJson, 'dnsDomain'>> & Pick<CatalogSettingsJson, 'dnsDomain'>;

/** A domain name: dot-separated DNS labels (lowercase letters, digits, `-`), at most 253 characters. */
const DOMAIN_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** What the sync and reconcile handlers are told by the stack (env `AGENT_LB_CONFIG`) or by local mode. */
export interface RuntimeConfig {
  readonly tableName: string;
  readonly routing: RoutingConfig;
  /** @default 0.5 */
  readonly safetyValveShare: number;
  /** Repeat reconcile every N seconds inside one invocation; 0 runs it once. @default 0 */
  readonly reconcileRepeatSeconds: number;
  /**
   * Weighted variants (`vision-canary` → 10) and where their capability's weighted rules are:
   * the reconcile pass keeps a variant at weight 0 until it has a healthy target.
   * @default - no variants
   */
  readonly variants?: RuntimeVariants;
  /**
   * What the registry may spend of the account's Register/Deregister bucket: every call of sync
   * and reconcile takes a token first. The deployed functions always have one (the default
   * budget when the stack sets none); a configuration given in code has one only if it says so.
   * @default - no budget (calls go as they come)
   */
  readonly elbBudget?: ElbCallBudget;
  /** Where the budget's bucket is shared by every container (see {@link RuntimeConfigJson.sharedElbBudget}). @default - one bucket per container */
  readonly sharedElbBudget?: SharedElbBudget;
  /** The capability catalog the registry keeps current. @default - none */
  readonly catalog?: CatalogConfig;
  /** Admission by AWS facts (see {@link AdmissionConfigJson}); absent: every valid lease is admitted. */
  readonly admission?: AdmissionConfig;
  /** Registered targets each load balancer may hold. @default DEFAULT_TARGET_QUOTA */
  readonly targetQuota?: number;
  /**
   * Which load balancer each group is on (capability or variant → load balancer ARN), found at
   * cold start on a deployment with several: the target quota holds on each apart. Never in
   * `AGENT_LB_CONFIG` (it stays within Lambda's 4 KB).
   * @default - every group on one load balancer
   */
  readonly loadBalancers?: LoadBalancerPlacement;
}

/** Admission as the handlers use it. */
export interface AdmissionConfig {
  readonly vpcId: string;
  readonly securityGroups: readonly string[];
  readonly byCapability: Readonly<Record<string, readonly string[]>>;
}

/** The weighted variants a reconcile pass guards. */
export interface RuntimeVariants {
  readonly weights: Readonly<Record<string, number>>;
  /** Exactly one of the two: every listener of the load balancer, or one listener. */
  readonly loadBalancerArn?: string;
  readonly listenerArn?: string;
}

function fail(message: string): never {
  throw new ConfigError(`${CONFIG_ENV}: ${message}`);
}

/**
 * The configuration as the stack writes it. Capabilities come in one of two forms:
 * - explicit: `capabilities: { name: { targetGroupArn, targetType } }`;
 * - discovered: `loadBalancerArn` (or `listenerArn`, whose load balancer is looked up) plus
 *   `capabilities: ["name", …]`; each name's target group is the one on that load balancer
 *   tagged `agent-lb:capability = name`, found at cold start (see `resolveRuntimeConfig` in
 *   lib/aws). This keeps the environment small enough for about 100 capabilities within
 *   Lambda's 4 KB, also on a listener imported into the stack, whose load balancer is unknown.
 */
export interface RuntimeSettings {
  readonly tableName: string;
  readonly allowedCidrs: readonly string[];
  readonly vpcCidrs?: readonly string[];
  readonly maxLeaseTtlSeconds: number;
  /** Declared ports by capability; a capability not here takes its target group's port. */
  readonly ports: Readonly<Record<string, readonly PortRange[]>>;
  readonly safetyValveShare: number;
  readonly reconcileRepeatSeconds: number;
  /** Capabilities whose target group is known. */
  readonly capabilities: Readonly<Record<string, CapabilityRoute>>;
  /**
   * Capabilities whose target group is to be found on a load balancer: `loadBalancerArn`, or the
   * load balancer of `listenerArn` (exactly one of the two is set).
   */
  readonly discover?: { readonly loadBalancerArn?: string; readonly listenerArn?: string; readonly moreLoadBalancerArns?: readonly string[]; readonly capabilities: readonly string[] };
  /** Weighted variants by capability name; see {@link RuntimeConfigJson.variantWeights}. */
  readonly variantWeights?: Readonly<Record<string, number>>;
  /** See {@link RuntimeConfigJson.elbBudget}; unset when the configuration sets none. */
  readonly elbBudget?: ElbCallBudget;
  readonly sharedElbBudget?: SharedElbBudget;
  readonly admission?: AdmissionConfig;
  readonly targetQuota: number;
  readonly catalog?: CatalogSettings;
}

/** Parses and validates the configuration text; every error names the bad value and what is allowed. */
export function parseRuntimeSettings(text: string | undefined): RuntimeSettings {
  if (text === undefined || text.trim() === '') fail('is not set');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`${CONFIG_ENV}: is not valid JSON`, { cause });
  }
  if (typeof raw !== 'object' || raw === null) fail('must be a JSON object');
  const obj = raw as Record<string, unknown>;
  if (typeof obj.tableName !== 'string' || obj.tableName === '') fail(`tableName must be a non-empty string, got ${JSON.stringify(obj.tableName)}`);
  const capabilities: Record<string, CapabilityRoute> = {};
  let discover: RuntimeSettings['discover'];
  if (Array.isArray(obj.capabilities)) {
    const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';
    if (nonEmpty(obj.loadBalancerArn) === nonEmpty(obj.listenerArn)) {
      fail('a capabilities list needs exactly one of loadBalancerArn or listenerArn: the load balancer their target groups are found on');
    }
    const names = obj.capabilities as unknown[];
    for (const name of names) {
      if (typeof name !== 'string' || !CAPABILITY_NAME.test(name)) fail(`capability name ${JSON.stringify(name)} must match ${CAPABILITY_NAME.source}`);
    }
    if (new Set(names).size !== names.length) fail('capabilities lists a name twice');
    const more = obj.moreLoadBalancerArns ?? [];
    if (!Array.isArray(more) || !more.every(nonEmpty)) fail(`moreLoadBalancerArns must be a list of load balancer ARNs, got ${JSON.stringify(obj.moreLoadBalancerArns)}`);
    if (more.length > 0 && !nonEmpty(obj.loadBalancerArn)) fail('moreLoadBalancerArns needs loadBalancerArn: the first of the deployment\'s load balancers');
    discover = {
      ...(nonEmpty(obj.loadBalancerArn) ? { loadBalancerArn: obj.loadBalancerArn } : { listenerArn: obj.listenerArn as string }),
      ...(more.length > 0 ? { moreLoadBalancerArns: more as string[] } : {}),
      capabilities: names as string[],
    };
  } else {
    if (typeof obj.capabilities !== 'object' || obj.capabilities === null) {
      fail('capabilities must be an object of name → {targetGroupArn, targetType}, or a list of names with loadBalancerArn or listenerArn');
    }
    for (const [name, value] of Object.entries(obj.capabilities as Record<string, unknown>)) {
      if (!CAPABILITY_NAME.test(name)) fail(`capability name ${JSON.stringify(name)} must match ${CAPABILITY_NAME.source}`);
      const v = value as Record<string, unknown> | null;
      if (!v || typeof v.targetGroupArn !== 'string' || v.targetGroupArn === '') fail(`capability "${name}" needs a targetGroupArn`);
      const targetType = v.targetType ?? 'ip';
      if (targetType !== 'ip' && targetType !== 'instance') fail(`capability "${name}" targetType ${JSON.stringify(targetType)} must be "ip" or "instance"`);
      capabilities[name] = { targetGroupArn: v.targetGroupArn, targetType, ...(v.ports === undefined ? {} : { ports: portsOf(name, v.ports) }) };
    }
  }
  const vpcCidrs = obj.vpcCidrs === undefined ? undefined : cidrList('vpcCidrs', obj.vpcCidrs);
  const allowedCidrs = cidrList('allowedCidrs', obj.allowedCidrs ?? (vpcCidrs ? [] : DEFAULT_ALLOWED_CIDRS));
  const maxTtl = obj.maxLeaseTtlSeconds ?? DEFAULT_MAX_LEASE_TTL_SECONDS;
  if (typeof maxTtl !== 'number' || !Number.isInteger(maxTtl) || maxTtl < MIN_MAX_LEASE_TTL_SECONDS || maxTtl > MAX_MAX_LEASE_TTL_SECONDS) {
    fail(`maxLeaseTtlSeconds ${JSON.stringify(maxTtl)} must be an integer in ${MIN_MAX_LEASE_TTL_SECONDS}–${MAX_MAX_LEASE_TTL_SECONDS}`);
  }
  const names = discover?.capabilities ?? Object.keys(capabilities);
  const ports: Record<string, PortRange[]> = {};
  if (obj.ports !== undefined) {
    if (typeof obj.ports !== 'object' || obj.ports === null || Array.isArray(obj.ports)) fail(`ports must be an object of capability name → "8080" or "9000-9099,8080", got ${JSON.stringify(obj.ports)}`);
    for (const [name, text] of Object.entries(obj.ports as Record<string, unknown>)) {
      if (!names.includes(name)) fail(`ports names "${name}", which is not among capabilities`);
      ports[name] = portsOf(name, text);
    }
  }
  const share = obj.safetyValveShare ?? DEFAULT_SAFETY_VALVE_SHARE;
  if (typeof share !== 'number' || !(share > 0 && share <= 1)) fail(`safetyValveShare ${JSON.stringify(share)} must be a number in (0, 1]`);
  const repeat = obj.reconcileRepeatSeconds ?? 0;
  if (typeof repeat !== 'number' || !Number.isInteger(repeat) || repeat < 0 || repeat > MAX_RECONCILE_REPEAT_SECONDS) {
    fail(`reconcileRepeatSeconds ${JSON.stringify(repeat)} must be an integer in 0–${MAX_RECONCILE_REPEAT_SECONDS}`);
  }
  const variantWeights = parseVariantWeights(obj.variantWeights, discover?.capabilities ?? Object.keys(capabilities), discover !== undefined);
  const elbBudget = parseElbBudget(obj.elbBudget, obj.accountElbBucket);
  const sharedElbBudget = obj.sharedElbBudget === undefined ? undefined : parseSharedElbBudget(obj.sharedElbBudget, obj.catalog);
  const admission = obj.admission === undefined ? undefined : parseAdmission(obj.admission, names);
  const targetQuota = obj.targetQuota ?? DEFAULT_TARGET_QUOTA;
  if (!isTargetQuota(targetQuota)) fail(targetQuotaProblem(targetQuota));
  const catalog = obj.catalog === undefined ? undefined : parseCatalogSettings(obj.catalog);
  return {
    tableName: obj.tableName,
    allowedCidrs,
    ...(vpcCidrs ? { vpcCidrs } : {}),
    maxLeaseTtlSeconds: maxTtl,
    ports,
    safetyValveShare: share,
    reconcileRepeatSeconds: repeat,
    capabilities,
    ...(discover ? { discover } : {}),
    ...(variantWeights ? { variantWeights } : {}),
    ...(admission ? { admission } : {}),
    targetQuota,
    ...(catalog ? { catalog } : {}),
    ...(elbBudget ? { elbBudget } : {}),
    ...(sharedElbBudget ? { sharedElbBudget } : {}),
  };
}

/** The `sharedElbBudget` part of `AGENT_LB_CONFIG`, checked; its table is the catalog's unless named. */
export function parseSharedElbBudget(raw: unknown, rawCatalog?: unknown): SharedElbBudget {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`sharedElbBudget must be an object { tableName?, fallbackDivisor? }, got ${JSON.stringify(raw)}`);
  const b = raw as Record<string, unknown>;
  const tableName = b.tableName ?? (rawCatalog as { tableName?: unknown } | undefined)?.tableName;
  if (typeof tableName !== 'string' || tableName === '') fail(`sharedElbBudget.tableName must be a non-empty string (or the catalog's, when there is one), got ${JSON.stringify(b.tableName)}`);
  const divisor = b.fallbackDivisor ?? DEFAULT_SHARED_BUDGET_FALLBACK_DIVISOR;
  const problem = fallbackDivisorProblem(divisor);
  if (problem) fail(problem);
  return { tableName, fallbackDivisor: divisor as number };
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}$/;
const PATH_PREFIX = /^[A-Za-z0-9_.~-]+(?:\/[A-Za-z0-9_.~-]+)*$/;

/** The `catalog` part of `AGENT_LB_CONFIG`, checked (each error names the bad value). */
export function parseCatalogSettings(raw: unknown): CatalogSettings {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`catalog must be an object, got ${JSON.stringify(raw)}`);
  const c = raw as Record<string, unknown>;
  if (typeof c.tableName !== 'string' || c.tableName === '') fail(`catalog.tableName must be a non-empty string, got ${JSON.stringify(c.tableName)}`);
  if (typeof c.headerName !== 'string' || !HEADER_NAME.test(c.headerName)) fail(`catalog.headerName must be an HTTP header name, got ${JSON.stringify(c.headerName)}`);
  if (typeof c.pathPrefix !== 'string' || !PATH_PREFIX.test(c.pathPrefix)) fail(`catalog.pathPrefix must be path segments without leading or trailing "/", got ${JSON.stringify(c.pathPrefix)}`);
  const attributes = c.attributes ?? [];
  if (!Array.isArray(attributes) || attributes.length > MAX_CATALOG_ATTRIBUTES) fail(`catalog.attributes must be a list of at most ${MAX_CATALOG_ATTRIBUTES} metadata keys, got ${JSON.stringify(attributes)}`);
  for (const key of attributes as unknown[]) {
    if (typeof key !== 'string' || !CATALOG_ATTRIBUTE_KEY.test(key)) fail(`catalog.attributes: ${JSON.stringify(key)} must match ${CATALOG_ATTRIBUTE_KEY.source}`);
  }
  if (c.dnsDomain !== undefined && (typeof c.dnsDomain !== 'string' || !DOMAIN_NAME.test(c.dnsDomain))) {
    fail(`catalog.dnsDomain must be a domain name of lowercase DNS labels without a trailing ".", got ${JSON.stringify(c.dnsDomain)}`);
  }
  return {
    tableName: c.tableName,
    headerName: c.headerName,
    pathPrefix: c.pathPrefix,
    attributes: [...new Set(attributes as string[])],
    ...(c.dnsDomain !== undefined ? { dnsDomain: c.dnsDomain as string } : {}),
  };
}

/**
 * The catalog's configuration once the capabilities' groups are known: their policy and
 * variants from the groups' tags (`tagged`, read at cold start with the capability tags), or
 * ALB's defaults and no variants for capabilities whose tags were not read; and each one's host:
 * its own DNS name under `dnsDomain` when the deployment has one, else, when resolved, the DNS
 * name of the load balancer serving it (`hosts`, see lib/core/catalog-hosts.ts).
 */
export function catalogConfigOf(
  settings: CatalogSettings,
  capabilities: readonly string[],
  variantCapabilities: readonly string[],
  tagged: readonly TaggedGroup[] = [],
  hosts?: Readonly<Record<string, string>>,
): CatalogConfig {
  const fromTags = catalogInfoFromTags(tagged, capabilities);
  const variants = new Set([...variantCapabilities, ...Object.values(fromTags).flatMap((i) => i.variants.map((v) => v.capability))]);
  const plain: CatalogCapabilityInfo = { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [] };
  const listed = capabilities.filter((c) => !variants.has(c));
  const { dnsDomain, ...rest } = settings;
  const named = dnsDomain === undefined ? hosts : Object.fromEntries(listed.map((c) => [c, `${c}.${dnsDomain}`]));
  return {
    ...rest,
    capabilities: Object.fromEntries(listed.map((c) => [c, fromTags[c] ?? plain])),
    ...(named === undefined ? {} : { hosts: Object.fromEntries(listed.filter((c) => Object.hasOwn(named, c)).map((c) => [c, named[c]])) }),
  };
}

function parseElbBudget(raw: unknown, rawAccount: unknown): ElbCallBudget | undefined {
  let account = DEFAULT_ACCOUNT_ELB_BUCKET;
  if (rawAccount !== undefined) {
    const a = rawAccount as Partial<AccountElbBucket> | null;
    if (typeof a !== 'object' || a === null || !(typeof a.refillPerSecond === 'number' && a.refillPerSecond > 0) || !(Number.isInteger(a.burst) && (a.burst as number) >= 1)) {
      fail(`accountElbBucket ${JSON.stringify(rawAccount)} must be {"refillPerSecond": a positive number, "burst": a whole number ≥ 1}`);
    }
    account = { refillPerSecond: a.refillPerSecond as number, burst: a.burst as number };
  }
  if (raw === undefined) return undefined;
  const b = raw as Partial<ElbCallBudget> | null;
  if (typeof b !== 'object' || b === null) fail(`elbBudget ${JSON.stringify(raw)} must be {"callsPerSecond": …, "burst": …}`);
  const budget = { callsPerSecond: b.callsPerSecond as number, burst: b.burst as number };
  const problem = budgetProblem(budget, account);
  if (problem) fail(problem);
  return budget;
}

/** Shortest and longest `maxLeaseTtlSeconds`: the stack's own lease TTL is 5–3600 s; a day is the most any agent needs. */
export const MIN_MAX_LEASE_TTL_SECONDS = 5;
export const MAX_MAX_LEASE_TTL_SECONDS = 86_400;

function cidrList(name: string, value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((c) => typeof c === 'string')) fail(`${name} must be an array of CIDR strings`);
  for (const cidr of value as string[]) {
    try {
      parseCidr(cidr);
    } catch (cause) {
      throw new ConfigError(`${CONFIG_ENV}: ${name}: ${(cause as Error).message}`, { cause });
    }
  }
  return value as string[];
}

/** Largest `targetQuota`: ELB's quota can be raised, but not without bound. */
export const MAX_TARGET_QUOTA = 100_000;

/** A target quota as the runtime configuration takes it (and local mode's override): an integer in 1–MAX_TARGET_QUOTA. */
export function isTargetQuota(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_TARGET_QUOTA;
}

/** Why `value` is not a target quota ({@link isTargetQuota}). */
export function targetQuotaProblem(value: unknown): string {
  return `targetQuota ${JSON.stringify(value)} must be an integer in 1–${MAX_TARGET_QUOTA}`;
}

/** Ids are not checked for shape beyond this: one that names no group admits nothing (the safe direction). */
function groupIds(where: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((g) => typeof g === 'string' && g !== '')) {
    fail(`${where} must be a non-empty array of security group ids (sg-…), got ${JSON.stringify(value)}`);
  }
  return value as string[];
}

function parseAdmission(raw: unknown, capabilities: readonly string[]): AdmissionConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`admission must be an object { vpcId, securityGroups, byCapability? }, got ${JSON.stringify(raw)}`);
  const a = raw as Record<string, unknown>;
  if (typeof a.vpcId !== 'string' || a.vpcId === '') fail(`admission.vpcId must be a VPC id (vpc-…), got ${JSON.stringify(a.vpcId)}`);
  const securityGroups = groupIds('admission.securityGroups', a.securityGroups);
  const byCapability: Record<string, string[]> = {};
  if (a.byCapability !== undefined) {
    if (typeof a.byCapability !== 'object' || a.byCapability === null || Array.isArray(a.byCapability)) fail('admission.byCapability must be an object of capability name → security group ids');
    for (const [name, ids] of Object.entries(a.byCapability as Record<string, unknown>)) {
      if (!capabilities.includes(name)) fail(`admission.byCapability names "${name}", which is not among capabilities`);
      byCapability[name] = groupIds(`admission.byCapability.${name}`, ids);
    }
  }
  return { vpcId: a.vpcId, securityGroups, byCapability };
}

function portsOf(capability: string, text: unknown): PortRange[] {
  if (typeof text !== 'string') fail(`capability "${capability}" ports must be a string like "8080" or "9000-9099,8080", got ${JSON.stringify(text)}`);
  try {
    return parsePortRanges(text);
  } catch (cause) {
    throw new ConfigError(`${CONFIG_ENV}: capability "${capability}" ${(cause as Error).message}`, { cause });
  }
}

function parseVariantWeights(raw: unknown, capabilities: readonly string[], onLoadBalancer: boolean): Record<string, number> | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`variantWeights must be an object of capability name → weight, got ${JSON.stringify(raw)}`);
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) return undefined;
  if (!onLoadBalancer) fail('variantWeights needs loadBalancerArn or listenerArn: where the weighted listener rules are');
  for (const [name, weight] of entries) {
    if (!capabilities.includes(name)) fail(`variantWeights names "${name}", which is not among capabilities`);
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 100) fail(`variantWeights "${name}" ${JSON.stringify(weight)} must be a whole percent, 0–100`);
  }
  return Object.fromEntries(entries) as Record<string, number>;
}

/**
 * The runtime configuration once every capability's target group is known (`found` adds the
 * discovered ones; `tagged` are their groups' tags and `hosts` the DNS names of the load
 * balancers serving them, when resolved, for the catalog).
 */
export function completeRuntimeConfig(
  settings: RuntimeSettings,
  found: Readonly<Record<string, CapabilityRoute>> = {},
  tagged: readonly TaggedGroup[] = [],
  hosts?: Readonly<Record<string, string>>,
  loadBalancers?: LoadBalancerPlacement,
): RuntimeConfig {
  const missing = (settings.discover?.capabilities ?? []).filter((c) => !Object.hasOwn(found, c));
  if (missing.length > 0) fail(`no target group found for ${missing.map((c) => JSON.stringify(c)).join(', ')}`);
  // Declared ports win over a group's own port (which discovery reports).
  const routes = Object.fromEntries(
    Object.entries({ ...settings.capabilities, ...found }).map(([name, route]) => [name, Object.hasOwn(settings.ports, name) ? { ...route, ports: settings.ports[name] } : route]),
  );
  const names = [...Object.keys(settings.capabilities), ...(settings.discover?.capabilities ?? [])];
  return {
    ...(settings.catalog ? { catalog: catalogConfigOf(settings.catalog, names, Object.keys(settings.variantWeights ?? {}), tagged, hosts) } : {}),
    tableName: settings.tableName,
    routing: {
      capabilities: routes,
      allowedCidrs: settings.allowedCidrs,
      ...(settings.vpcCidrs ? { vpcCidrs: settings.vpcCidrs } : {}),
      maxLeaseTtlSeconds: settings.maxLeaseTtlSeconds,
    },
    safetyValveShare: settings.safetyValveShare,
    reconcileRepeatSeconds: settings.reconcileRepeatSeconds,
    ...(settings.elbBudget ? { elbBudget: settings.elbBudget } : {}),
    ...(settings.sharedElbBudget ? { sharedElbBudget: settings.sharedElbBudget } : {}),
    ...(settings.admission ? { admission: settings.admission } : {}),
    targetQuota: settings.targetQuota,
    ...(loadBalancers ? { loadBalancers } : {}),
    ...(settings.variantWeights && settings.discover
      ? {
          variants: {
            weights: settings.variantWeights,
            ...(settings.discover.loadBalancerArn ? { loadBalancerArn: settings.discover.loadBalancerArn } : { listenerArn: settings.discover.listenerArn }),
          },
        }
      : {}),
  };
}

/** Parses a configuration that names every target group (no discovery needed). */
export function parseRuntimeConfig(text: string | undefined): RuntimeConfig {
  const settings = parseRuntimeSettings(text);
  if (settings.discover) fail('lists capabilities to discover on a load balancer; resolve it with resolveRuntimeConfig');
  return completeRuntimeConfig(settings);
}

/** The address policy a routing configuration implies. */
export function addressPolicyFor(routing: RoutingConfig): AddressPolicy {
  return new AddressPolicy(routing.allowedCidrs, { allowLoopback: routing.allowLoopback === true, ...(routing.vpcCidrs ? { vpcCidrs: routing.vpcCidrs } : {}) });
}

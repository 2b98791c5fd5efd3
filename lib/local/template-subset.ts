import { ConfigError } from '../core/errors';
import { CAPABILITY_TAG } from '../core/lease-schema';
import { REGISTRY_STATE_ROLE, REGISTRY_STATE_ROLE_TAG } from '../core/registry-state';
import { CONFIG_ENV } from '../core/runtime-config';

/** A CloudFormation template, as `cdk synth` writes it. */
export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; DependsOn?: string | string[]; [k: string]: unknown }>;
  Outputs?: Record<string, { Value: unknown; [k: string]: unknown }>;
  Parameters?: Record<string, unknown>;
  Conditions?: Record<string, unknown>;
  Rules?: Record<string, unknown>;
  [k: string]: unknown;
}

/**
 * Resource types that mean the same thing on moto as on AWS. Lambda functions, their event
 * source mapping and custom resources are left out because the local poller and the
 * in-process handlers stand in for them; the tables live in DynamoDB Local. A Lambda target
 * group stays, with its function named by a local ARN (see {@link localFunctionArn}): the local
 * load balancer invokes that function's handler in-process.
 */
const LOCAL_TYPES = [/^AWS::EC2::/, /^AWS::ElasticLoadBalancingV2::/];

export interface TableSpec {
  readonly logicalId: string;
  readonly keySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  readonly attributeDefinitions: { AttributeName: string; AttributeType: 'S' | 'N' | 'B' }[];
  readonly streamViewType: string;
  readonly ttlAttribute?: string;
}

/** A Lambda function a Lambda target group of the template invokes. */
export interface LocalFunction {
  /** The ARN the local target group names it by. */
  readonly functionArn: string;
  /** Its environment variables, each resolved to text ({@link resolveText}). */
  readonly environment: Readonly<Record<string, string>>;
}

/** One load balancer of the template, with the listener carrying its capability rules and the capabilities they forward to. */
export interface TemplateLoadBalancer {
  readonly logicalId: string;
  readonly listenerLogicalId: string;
  /** Capabilities (and variants) whose groups its rules forward to, in template order. */
  readonly capabilities: readonly string[];
}

export interface LocalTemplate {
  readonly template: CfnTemplate;
  /** Every load balancer, in template order (the stack's first load balancer first). */
  readonly loadBalancers: readonly TemplateLoadBalancer[];
  /** Target group logical id → capability name, from the `agent-lb:capability` tag. */
  readonly capabilityGroups: Readonly<Record<string, string>>;
  /** Each capability group's tags (its policy and variant tags), by capability. */
  readonly capabilityTags: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** The lease table. */
  readonly table: TableSpec;
  /** The registry state table (tagged `agent-lb:role = registry-state`), when the stack has the capability catalog. */
  readonly registryTable?: TableSpec;
  /** The functions behind Lambda target groups, by logical id. */
  readonly lambdaFunctions: Readonly<Record<string, LocalFunction>>;
  /** The registry functions' `AGENT_LB_CONFIG`, resolved to text ({@link resolveText}: references as `<LogicalId>`). */
  readonly registryConfig?: string;
}

/** The ARN a Lambda target group names function `logicalId` by in local mode (nothing at that ARN exists in AWS). */
export function localFunctionArn(logicalId: string): string {
  return `arn:aws:lambda:us-east-1:000000000000:function:${logicalId}`;
}

/**
 * A template value as text: strings as they are, `Fn::Join` joined, a `Ref` or `Fn::GetAtt` as
 * `<LogicalId>` / `<LogicalId.Attribute>` (what local mode puts in its place is its own business).
 */
export function resolveText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === 'string') return `<${v.Ref}>`;
    if (Array.isArray(v['Fn::GetAtt'])) return `<${(v['Fn::GetAtt'] as unknown[]).join('.')}>`;
    if (Array.isArray(v['Fn::Join'])) {
      const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
      return (parts ?? []).map(resolveText).join(sep ?? '');
    }
  }
  return JSON.stringify(value);
}

function referencedIds(value: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => referencedIds(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'Ref' && typeof v === 'string') out.add(v);
      else if (k === 'Fn::GetAtt') out.add(Array.isArray(v) ? String(v[0]) : String(v).split('.')[0]);
      else if (k === 'Fn::Sub') {
        const text = Array.isArray(v) ? String(v[0]) : String(v);
        for (const m of text.matchAll(/\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}/g)) out.add(m[1]);
        referencedIds(v, out);
      } else referencedIds(v, out);
    }
  }
  return out;
}

function tagValue(props: Record<string, unknown> | undefined, key: string): string | undefined {
  const tags = props?.Tags as { Key: string; Value: string }[] | undefined;
  return tags?.find((t) => t.Key === key)?.Value;
}

/**
 * The part of the synthesized stack that moto provisions: networking and load balancing,
 * closed under dependencies (a kept resource never refers to a dropped one).
 */
export function localSubset(source: CfnTemplate): LocalTemplate {
  const { resources, lambdaFunctions } = withLocalLambdaTargets(source.Resources);
  const nested = Object.keys(resources).find((id) => resources[id].Type === 'AWS::CloudFormation::Stack');
  if (nested !== undefined) throw new ConfigError(`local mode cannot model nested stack ${nested}: inline it first (synthesizeTemplate does)`);
  const kept = new Set(Object.keys(resources).filter((id) => LOCAL_TYPES.some((re) => re.test(resources[id].Type))));
  for (let changed = true; changed; ) {
    changed = false;
    for (const id of [...kept]) {
      const r = resources[id];
      const deps = [...referencedIds(r.Properties), ...[r.DependsOn ?? []].flat()].filter((d) => d in resources);
      const missing = deps.find((d) => !kept.has(d));
      if (missing === undefined) continue;
      // Dropping a load balancer's piece would leave capabilities unrouted with no word said.
      if (/^AWS::ElasticLoadBalancingV2::/.test(r.Type)) {
        throw new ConfigError(`local mode cannot model ${id} (${r.Type}): it needs ${missing} (${resources[missing].Type}), which moto does not provision`);
      }
      kept.delete(id);
      changed = true;
    }
  }
  const out: CfnTemplate = { Resources: {} };
  for (const id of kept) out.Resources[id] = resources[id];
  const params = Object.fromEntries(Object.entries(source.Parameters ?? {}).filter(([k]) => k !== 'BootstrapVersion'));
  if (Object.keys(params).length) out.Parameters = params;
  if (source.Conditions) out.Conditions = source.Conditions;

  const capabilityGroups: Record<string, string> = {};
  const capabilityTags: Record<string, Record<string, string>> = {};
  for (const id of kept) {
    if (resources[id].Type !== 'AWS::ElasticLoadBalancingV2::TargetGroup') continue;
    const capability = tagValue(resources[id].Properties, CAPABILITY_TAG);
    if (!capability) continue;
    capabilityGroups[id] = capability;
    const tags = (resources[id].Properties?.Tags as { Key: string; Value: string }[] | undefined) ?? [];
    capabilityTags[capability] = Object.fromEntries(tags.map((t) => [t.Key, t.Value]));
  }
  if (Object.keys(capabilityGroups).length === 0) throw new ConfigError(`template has no target group tagged ${CAPABILITY_TAG}`);

  const tables = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
  const registry = tables.filter(([, r]) => tagValue(r.Properties, REGISTRY_STATE_ROLE_TAG) === REGISTRY_STATE_ROLE);
  const leases = tables.filter(([, r]) => tagValue(r.Properties, REGISTRY_STATE_ROLE_TAG) !== REGISTRY_STATE_ROLE);
  if (leases.length !== 1) throw new ConfigError(`template must hold exactly one lease table, found ${leases.length}`);
  if (registry.length > 1) throw new ConfigError(`template must hold at most one registry state table, found ${registry.length}`);
  return {
    template: out,
    loadBalancers: loadBalancersOf(out, capabilityGroups),
    capabilityGroups,
    capabilityTags,
    table: tableSpec(...leases[0]),
    ...(registry.length === 1 ? { registryTable: tableSpec(...registry[0]) } : {}),
    ...registryConfigOf(source.Resources),
    lambdaFunctions: Object.fromEntries(Object.entries(lambdaFunctions).filter(([, f]) => Object.values(out.Resources).some((r) => JSON.stringify(r.Properties ?? {}).includes(f.functionArn)))),
  };
}

/**
 * Each load balancer of the template, its capability listener (the one whose rules forward to
 * capability groups; of an HTTPS load balancer, not the redirect on 80) and the capabilities those
 * rules reach. A capability group no rule forwards to, or one on two load balancers, is refused.
 */
function loadBalancersOf(template: CfnTemplate, capabilityGroups: Readonly<Record<string, string>>): TemplateLoadBalancer[] {
  const resources = Object.entries(template.Resources);
  const ofType = (type: string) => resources.filter(([, r]) => r.Type === `AWS::ElasticLoadBalancingV2::${type}`);
  const refOf = (value: unknown) => (value as { Ref?: unknown } | undefined)?.Ref;
  const rules = ofType('ListenerRule');
  const groupsOf = (listenerId: string) => [...new Set(rules.filter(([, r]) => refOf(r.Properties?.ListenerArn) === listenerId).flatMap(([, r]) => [...referencedIds(r.Properties?.Actions)]))];
  const placed = new Map<string, string>();
  const out = ofType('LoadBalancer').map(([lb]) => {
    const listeners = ofType('Listener')
      .filter(([, l]) => refOf(l.Properties?.LoadBalancerArn) === lb)
      .map(([id]) => ({ id, groups: groupsOf(id) }));
    if (listeners.length === 0) throw new ConfigError(`local mode cannot model load balancer ${lb}: it has no listener`);
    const listener = listeners.reduce((best, l) => (l.groups.length > best.groups.length ? l : best));
    const capabilities = Object.keys(capabilityGroups).filter((id) => listener.groups.includes(id)).map((id) => capabilityGroups[id]);
    for (const c of capabilities) {
      const other = placed.get(c);
      if (other !== undefined) throw new ConfigError(`local mode cannot model capability ${c} on two load balancers (${other} and ${lb})`);
      placed.set(c, lb);
    }
    return { logicalId: lb, listenerLogicalId: listener.id, capabilities };
  });
  const unrouted = Object.values(capabilityGroups).find((c) => !placed.has(c));
  if (unrouted !== undefined) throw new ConfigError(`local mode cannot model capability ${unrouted}: no listener rule of a load balancer forwards to its target group`);
  return out;
}

function registryConfigOf(resources: CfnTemplate['Resources']): { registryConfig?: string } {
  for (const r of Object.values(resources)) {
    const value = (r.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables?.[CONFIG_ENV];
    if (r.Type === 'AWS::Lambda::Function' && value !== undefined) return { registryConfig: resolveText(value) };
  }
  return {};
}

function tableSpec(logicalId: string, table: CfnTemplate['Resources'][string]): TableSpec {
  const p = table.Properties ?? {};
  const stream = p.StreamSpecification as { StreamViewType?: string } | undefined;
  const ttl = p.TimeToLiveSpecification as { AttributeName?: string; Enabled?: boolean } | undefined;
  return {
    logicalId,
    keySchema: p.KeySchema as TableSpec['keySchema'],
    attributeDefinitions: p.AttributeDefinitions as TableSpec['attributeDefinitions'],
    streamViewType: stream?.StreamViewType ?? 'NEW_AND_OLD_IMAGES',
    ...(ttl?.Enabled && ttl.AttributeName ? { ttlAttribute: ttl.AttributeName } : {}),
  };
}

/**
 * The resources with every Lambda target group made local: its targets name their functions by
 * {@link localFunctionArn} instead of the function's `Arn` (the function is not provisioned), and
 * it no longer waits for the dropped invoke permission. moto keeps the group, and local mode
 * invokes each function's handler in-process.
 */
function withLocalLambdaTargets(source: CfnTemplate['Resources']): { resources: CfnTemplate['Resources']; lambdaFunctions: Record<string, LocalFunction> } {
  const resources: CfnTemplate['Resources'] = { ...source };
  const lambdaFunctions: Record<string, LocalFunction> = {};
  for (const [id, r] of Object.entries(source)) {
    if (r.Type !== 'AWS::ElasticLoadBalancingV2::TargetGroup' || r.Properties?.TargetType !== 'lambda') continue;
    const targets = ((r.Properties.Targets as { Id?: unknown }[] | undefined) ?? []).map((t) => {
      const att = (t.Id as { 'Fn::GetAtt'?: unknown[] } | undefined)?.['Fn::GetAtt'];
      const fn = Array.isArray(att) && att[1] === 'Arn' ? String(att[0]) : undefined;
      if (fn === undefined || source[fn]?.Type !== 'AWS::Lambda::Function') return t;
      const variables = (source[fn].Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};
      lambdaFunctions[fn] = { functionArn: localFunctionArn(fn), environment: Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, resolveText(v)])) };
      return { ...t, Id: localFunctionArn(fn) };
    });
    const dependsOn = [r.DependsOn ?? []].flat().filter((d) => source[d] === undefined || LOCAL_TYPES.some((re) => re.test(source[d].Type)));
    resources[id] = { ...r, Properties: { ...r.Properties, Targets: targets }, ...(dependsOn.length > 0 ? { DependsOn: dependsOn } : { DependsOn: undefined }) };
    if (dependsOn.length === 0) delete resources[id].DependsOn;
  }
  return { resources, lambdaFunctions };
}

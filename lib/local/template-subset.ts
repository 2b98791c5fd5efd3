import { ConfigError } from '../core/errors';
import { CAPABILITY_TAG } from '../core/lease-schema';

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
 * in-process handlers stand in for them; the lease table lives in DynamoDB Local.
 */
const LOCAL_TYPES = [/^AWS::EC2::/, /^AWS::ElasticLoadBalancingV2::/];

export interface TableSpec {
  readonly logicalId: string;
  readonly keySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  readonly attributeDefinitions: { AttributeName: string; AttributeType: 'S' | 'N' | 'B' }[];
  readonly streamViewType: string;
  readonly ttlAttribute?: string;
}

export interface LocalTemplate {
  readonly template: CfnTemplate;
  /** Target group logical id → capability name, from the `agent-lb:capability` tag. */
  readonly capabilityGroups: Readonly<Record<string, string>>;
  readonly table: TableSpec;
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
  const resources = source.Resources;
  const kept = new Set(Object.keys(resources).filter((id) => LOCAL_TYPES.some((re) => re.test(resources[id].Type))));
  for (let changed = true; changed; ) {
    changed = false;
    for (const id of [...kept]) {
      const r = resources[id];
      const deps = [...referencedIds(r.Properties), ...[r.DependsOn ?? []].flat()].filter((d) => d in resources);
      if (deps.some((d) => !kept.has(d))) {
        kept.delete(id);
        changed = true;
      }
    }
  }
  const out: CfnTemplate = { Resources: {} };
  for (const id of kept) out.Resources[id] = resources[id];
  const params = Object.fromEntries(Object.entries(source.Parameters ?? {}).filter(([k]) => k !== 'BootstrapVersion'));
  if (Object.keys(params).length) out.Parameters = params;
  if (source.Conditions) out.Conditions = source.Conditions;

  const capabilityGroups: Record<string, string> = {};
  for (const id of kept) {
    if (resources[id].Type !== 'AWS::ElasticLoadBalancingV2::TargetGroup') continue;
    const capability = tagValue(resources[id].Properties, CAPABILITY_TAG);
    if (capability) capabilityGroups[id] = capability;
  }
  if (Object.keys(capabilityGroups).length === 0) throw new ConfigError(`template has no target group tagged ${CAPABILITY_TAG}`);

  const tables = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::DynamoDB::Table');
  if (tables.length !== 1) throw new ConfigError(`template must hold exactly one lease table, found ${tables.length}`);
  const [tableId, table] = tables[0];
  const p = table.Properties ?? {};
  const stream = p.StreamSpecification as { StreamViewType?: string } | undefined;
  const ttl = p.TimeToLiveSpecification as { AttributeName?: string; Enabled?: boolean } | undefined;
  return {
    template: out,
    capabilityGroups,
    table: {
      logicalId: tableId,
      keySchema: p.KeySchema as TableSpec['keySchema'],
      attributeDefinitions: p.AttributeDefinitions as TableSpec['attributeDefinitions'],
      streamViewType: stream?.StreamViewType ?? 'NEW_AND_OLD_IMAGES',
      ...(ttl?.Enabled && ttl.AttributeName ? { ttlAttribute: ttl.AttributeName } : {}),
    },
  };
}

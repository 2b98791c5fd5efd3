import { ConfigError } from '../core/errors';
import type { CfnTemplate } from './template-subset';

/**
 * A deployment with several load balancers keeps the target groups and listener rules of the
 * second and later ones in a nested stack each (AgentLb's `Routes<n>`). moto cannot create a
 * nested stack (its template would be an S3 asset), so local mode provisions one flat template:
 * each nested stack's resources in the parent, under ids prefixed with the nested stack
 * resource's own id (a nested template reuses ids the parent has, e.g. the catalog's rule), its
 * parameters replaced by the values the parent passes, and the parent's `Outputs.<name>` reads of
 * it replaced by the output's value. What this cannot carry over faithfully is refused, in one
 * line naming the nested stack, never dropped.
 */

const NESTED_STACK = 'AWS::CloudFormation::Stack';

/** Nested templates by the logical id of their `AWS::CloudFormation::Stack` resource in the parent. */
export type NestedTemplates = Readonly<Record<string, CfnTemplate>>;

/** The parent template with every nested stack's resources in it; the parent is not changed. */
export function inlineNestedStacks(parent: CfnTemplate, nested: NestedTemplates): CfnTemplate {
  const stackIds = Object.keys(parent.Resources).filter((id) => parent.Resources[id].Type === NESTED_STACK);
  if (stackIds.length === 0) return parent;
  const inlined = new Map<string, CfnTemplate['Resources']>();
  const outputs = new Map<string, Map<string, unknown>>();
  const inlinedIds = new Map<string, string[]>();
  for (const stackId of stackIds) {
    const child = nested[stackId];
    if (child === undefined) throw new ConfigError(`local mode cannot model nested stack ${stackId}: its template is not in the synthesized assembly`);
    for (const section of ['Conditions', 'Mappings', 'Rules', 'Transform'] as const) {
      if (child[section] !== undefined) throw new ConfigError(`local mode cannot model nested stack ${stackId}: its template has ${section}`);
    }
    const parameters = (parent.Resources[stackId].Properties?.Parameters as Record<string, unknown> | undefined) ?? {};
    const undeclared = Object.keys(child.Parameters ?? {}).filter((p) => !Object.hasOwn(parameters, p));
    if (undeclared.length > 0) throw new ConfigError(`local mode cannot model nested stack ${stackId}: the parent passes no value for parameter ${undeclared[0]}`);
    const rename = (id: string) => `${stackId}${id}`;
    const rewrite = (value: unknown): unknown => rewriteReferences(value, stackId, child, parameters, rename);
    const resources: CfnTemplate['Resources'] = {};
    for (const [id, resource] of Object.entries(child.Resources)) {
      if (resource.Type === NESTED_STACK) throw new ConfigError(`local mode cannot model nested stack ${stackId}: it nests stack ${id} in turn`);
      if (resource.Condition !== undefined) throw new ConfigError(`local mode cannot model nested stack ${stackId}: its resource ${id} has a Condition`);
      const dependsOn = [resource.DependsOn ?? []].flat().map(rename);
      const copy: CfnTemplate['Resources'][string] = { ...resource, ...(resource.Properties ? { Properties: rewrite(resource.Properties) as Record<string, unknown> } : {}) };
      if (dependsOn.length > 0) copy.DependsOn = dependsOn;
      else delete copy.DependsOn;
      resources[rename(id)] = copy;
    }
    inlined.set(stackId, resources);
    inlinedIds.set(stackId, Object.keys(resources));
    outputs.set(stackId, new Map(Object.entries(child.Outputs ?? {}).map(([name, o]) => [name, rewrite(o.Value)])));
  }
  // The parent's own resources, reading the nested stacks' outputs in place and waiting for their resources.
  const fromParent = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(fromParent);
    if (value === null || typeof value !== 'object') return value;
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === 'string' && outputs.has(v.Ref)) throw new ConfigError(`local mode cannot model a Ref to nested stack ${v.Ref} (its ARN)`);
    const att = v['Fn::GetAtt'];
    const [target, attribute] = Array.isArray(att) ? att.map(String) : typeof att === 'string' ? [att.split('.')[0], att.split('.').slice(1).join('.')] : [];
    if (target !== undefined && outputs.has(target)) {
      const name = attribute?.startsWith('Outputs.') ? attribute.slice('Outputs.'.length) : undefined;
      const out = name === undefined ? undefined : outputs.get(target)!.get(name);
      if (out === undefined) throw new ConfigError(`local mode cannot model ${target}.${attribute}: nested stack ${target} has no such output`);
      return out;
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromParent(x)]));
  };
  // In the parent's order, each nested stack's resources where the stack was.
  const resources: CfnTemplate['Resources'] = {};
  for (const [id, resource] of Object.entries(parent.Resources)) {
    if (resource.Type === NESTED_STACK) {
      Object.assign(resources, inlined.get(id));
      continue;
    }
    const dependsOn = [resource.DependsOn ?? []].flat().flatMap((d) => inlinedIds.get(d) ?? [d]);
    const copy: CfnTemplate['Resources'][string] = { ...resource, ...(resource.Properties ? { Properties: fromParent(resource.Properties) as Record<string, unknown> } : {}) };
    if (dependsOn.length > 0) copy.DependsOn = dependsOn;
    else delete copy.DependsOn;
    resources[id] = copy;
  }
  return { ...parent, Resources: resources, ...(parent.Outputs ? { Outputs: fromParent(parent.Outputs) as CfnTemplate['Outputs'] } : {}) };
}

/** A nested template's value in the parent's terms: parameters by what the parent passes, own ids renamed. */
function rewriteReferences(value: unknown, stackId: string, child: CfnTemplate, parameters: Record<string, unknown>, rename: (id: string) => string): unknown {
  const again = (x: unknown) => rewriteReferences(x, stackId, child, parameters, rename);
  if (Array.isArray(value)) return value.map(again);
  if (value === null || typeof value !== 'object') return value;
  const v = value as Record<string, unknown>;
  if (typeof v.Ref === 'string') {
    if (Object.hasOwn(parameters, v.Ref)) return parameters[v.Ref];
    if (Object.hasOwn(child.Resources, v.Ref)) return { Ref: rename(v.Ref) };
    if (v.Ref.startsWith('AWS::')) return v;
    throw new ConfigError(`local mode cannot model nested stack ${stackId}: it refers to ${v.Ref}, which it neither declares nor is given`);
  }
  const att = v['Fn::GetAtt'];
  if (att !== undefined) {
    const [id, ...attribute] = Array.isArray(att) ? att.map(String) : String(att).split('.');
    if (!Object.hasOwn(child.Resources, id)) throw new ConfigError(`local mode cannot model nested stack ${stackId}: it reads ${id}.${attribute.join('.')}, which it does not declare`);
    return { 'Fn::GetAtt': [rename(id), attribute.join('.')] };
  }
  if (v['Fn::Sub'] !== undefined || v['Fn::ImportValue'] !== undefined) {
    throw new ConfigError(`local mode cannot model nested stack ${stackId}: it uses ${v['Fn::Sub'] !== undefined ? 'Fn::Sub' : 'Fn::ImportValue'}`);
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, again(x)]));
}

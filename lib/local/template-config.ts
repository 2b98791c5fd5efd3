import { ConfigError } from '../core/errors';
import { CapabilityRoute } from '../core/lease-schema';
import { SYNC_SERVICE_NAME } from '../core/metric-names';
import { completeRuntimeConfig, CONFIG_ENV, parseRuntimeSettings, RuntimeConfig } from '../core/runtime-config';
import { LocalDeployment } from './provision';
import { CfnTemplate } from './template-subset';

/**
 * Local mode runs the handlers with the configuration the deployed Lambdas get: the sync
 * function's `AGENT_LB_CONFIG` as the synthesized template writes it, its references resolved
 * against what moto provisioned (the table's local name, the load balancer's ARN, the VPC's id
 * and CIDR, the security groups' ids). So the address ranges, ports, maximum lease TTL, quota and
 * admission rules are the deployment's own, not local mode's guess.
 */

/** Resolves one template value (a string, or Ref / Fn::GetAtt / Fn::Join of those). */
function resolveValue(value: unknown, template: CfnTemplate, deployment: LocalDeployment): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  const v = value as Record<string, unknown>;
  if (typeof v.Ref === 'string') {
    const physical = deployment.physicalIds[v.Ref];
    if (physical !== undefined) return physical;
    if (template.Resources[v.Ref]?.Type === 'AWS::DynamoDB::Table') return deployment.tableName;
    throw new ConfigError(`${CONFIG_ENV} in the template refers to ${v.Ref}, which local mode did not provision`);
  }
  if (Array.isArray(v['Fn::GetAtt'])) {
    const [id, attribute] = v['Fn::GetAtt'] as [string, string];
    const resource = template.Resources[id];
    // A VPC's CIDR is what the template asked for; a security group's id is its physical id.
    if (resource?.Type === 'AWS::EC2::VPC' && attribute === 'CidrBlock' && typeof resource.Properties?.CidrBlock === 'string') return resource.Properties.CidrBlock;
    if (resource?.Type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId' && deployment.physicalIds[id] !== undefined) return deployment.physicalIds[id];
    throw new ConfigError(`${CONFIG_ENV} in the template needs ${id}.${attribute}, which local mode cannot resolve`);
  }
  if (Array.isArray(v['Fn::Join'])) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveValue(p, template, deployment)).join(separator);
  }
  throw new ConfigError(`${CONFIG_ENV} in the template holds ${JSON.stringify(value).slice(0, 80)}, which local mode cannot resolve`);
}

/** The sync function's `AGENT_LB_CONFIG` text with every reference resolved. */
export function templateConfigText(template: CfnTemplate, deployment: LocalDeployment): string {
  const sync = Object.values(template.Resources).find((r) => {
    const variables = (r.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables;
    return r.Type === 'AWS::Lambda::Function' && variables?.POWERTOOLS_SERVICE_NAME === SYNC_SERVICE_NAME && variables[CONFIG_ENV] !== undefined;
  });
  if (sync === undefined) throw new ConfigError(`the synthesized template has no sync function with ${CONFIG_ENV}`);
  return resolveValue((sync.Properties!.Environment as { Variables: Record<string, unknown> }).Variables[CONFIG_ENV], template, deployment);
}

export interface LocalRuntimeOptions {
  /**
   * Loopback agents (local processes on 127.0.0.1) are admitted on any port without an EC2
   * check; everything else goes through the deployment's checks against moto. Off: loopback
   * addresses are checked like any other (a test of admission does this).
   * @default true
   */
  readonly admitLoopback?: boolean;
}

/**
 * The runtime configuration of a local deployment: the template's, with the target groups moto
 * provisioned (their own ports from the template), and loopback allowed, as demo agents listen on it.
 */
export function localRuntimeConfig(template: CfnTemplate, deployment: LocalDeployment, options: LocalRuntimeOptions = {}): RuntimeConfig {
  const settings = parseRuntimeSettings(templateConfigText(template, deployment));
  const found: Record<string, CapabilityRoute> = {};
  for (const [capability, arn] of Object.entries(deployment.targetGroups)) {
    const port = deployment.targetPorts[capability];
    found[capability] = { targetGroupArn: arn, targetType: deployment.targetTypes[capability] ?? 'ip', ...(port === undefined ? {} : { ports: [{ from: port, to: port }] }) };
  }
  // The names-only form finds the groups by tag on AWS; here they are the ones just provisioned.
  // One process: a budget, if any, is kept in it (the template's shared bucket names a table of the stack, not of local mode).
  // The target quota holds on each load balancer, as on AWS: each capability counts on its own.
  const placement = Object.fromEntries(deployment.loadBalancers.flatMap((lb) => lb.capabilities.map((c) => [c, lb.loadBalancerArn] as const)));
  const config = completeRuntimeConfig({ ...settings, capabilities: settings.discover ? {} : settings.capabilities, discover: undefined, sharedElbBudget: undefined }, found, [], undefined, placement);
  return {
    ...config,
    routing: { ...config.routing, allowLoopback: true, admitLoopback: options.admitLoopback ?? true },
    // Weighted rules are read from the one listener local mode provisioned.
    ...(Object.keys(deployment.variantWeights).length > 0 ? { variants: { weights: deployment.variantWeights, listenerArn: deployment.listenerArn } } : {}),
  };
}

import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStackResourcesCommand,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../core/errors';
import { MAX_REQUEST_SECONDS_TAG, TargetType, VARIANT_WEIGHT_TAG } from '../core/lease-schema';
import { CfnTemplate, LocalFunction, localSubset, TableSpec } from './template-subset';
import { sleep } from '../core/concurrency';

/** One provisioned load balancer: its capability listener and the capabilities (and variants) it routes. */
export interface LocalLoadBalancer {
  readonly loadBalancerArn: string;
  readonly listenerArn: string;
  readonly capabilities: readonly string[];
}

export interface LocalDeployment {
  readonly stackName: string;
  readonly tableName: string;
  readonly streamArn: string;
  /** The first load balancer's (the one the stack's outputs name without a number). */
  readonly loadBalancerArn: string;
  readonly listenerArn: string;
  /** Every load balancer of the deployment, the first first; one table and one registry serve them all. */
  readonly loadBalancers: readonly LocalLoadBalancer[];
  /** capability → target group ARN */
  readonly targetGroups: Readonly<Record<string, string>>;
  readonly targetTypes: Readonly<Record<string, TargetType>>;
  /** capability → its target group's own port, as the template declares it */
  readonly targetPorts: Readonly<Record<string, number>>;
  /** Logical id → physical id of every resource moto created (VPC id, security group ids, ARNs). */
  readonly physicalIds: Readonly<Record<string, string>>;
  /** Weighted variants' configured weights by the capability their agents list (`vision-canary` → 10), from their groups' tags. */
  readonly variantWeights: Readonly<Record<string, number>>;
  /** Each capability's longest request, seconds, from its group's `agent-lb:max-request-seconds` tag. */
  readonly maxRequestSeconds: Readonly<Record<string, number>>;
  readonly ttlAttribute?: string;
  /** Each capability group's tags (policy, variants), by capability: what the catalog reads. */
  readonly capabilityTags: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** The registry state table in DynamoDB Local, when the stack has the capability catalog. */
  readonly registryTableName?: string;
  /** The registry functions' `AGENT_LB_CONFIG` as the template writes it (references as `<LogicalId>`). */
  readonly registryConfig?: string;
  /** The functions Lambda target groups invoke, by logical id, with the local ARN their group names. */
  readonly lambdaFunctions: Readonly<Record<string, LocalFunction>>;
}

export interface ProvisionOptions {
  readonly template: CfnTemplate;
  readonly stackName: string;
  readonly cfn: CloudFormationClient;
  readonly dynamodb: DynamoDBClient;
  readonly tableName?: string;
}


/**
 * Creates the synthesized stack's load-balancing part in moto through CloudFormation, and
 * the lease table in DynamoDB Local with the key schema, stream and TTL the template declares
 * (and the registry state table, when the stack has the capability catalog).
 * Resource ids come from the stack's resources (moto leaves change-set outputs empty).
 */
export async function provisionLocal(opts: ProvisionOptions): Promise<LocalDeployment> {
  const subset = localSubset(opts.template);
  await opts.cfn.send(new CreateStackCommand({ StackName: opts.stackName, TemplateBody: JSON.stringify(subset.template) }));
  for (let i = 0; ; i++) {
    const { Stacks = [] } = await opts.cfn.send(new DescribeStacksCommand({ StackName: opts.stackName }));
    const status = Stacks[0]?.StackStatus ?? '';
    if (status === 'CREATE_COMPLETE') break;
    if (status.endsWith('FAILED') || status.startsWith('ROLLBACK') || i > 300) {
      throw new ConfigError(`local stack ${opts.stackName} did not create: ${status} ${Stacks[0]?.StackStatusReason ?? ''}`);
    }
    await sleep(200);
  }
  const { StackResources = [] } = await opts.cfn.send(new DescribeStackResourcesCommand({ StackName: opts.stackName }));
  const physical = new Map(StackResources.map((r) => [r.LogicalResourceId ?? '', r.PhysicalResourceId ?? '']));
  const arnOf = (logicalId: string) => {
    const arn = physical.get(logicalId);
    if (!arn) throw new ConfigError(`local stack ${opts.stackName} has no ${logicalId}`);
    return arn;
  };
  const loadBalancers = subset.loadBalancers.map((lb) => ({ loadBalancerArn: arnOf(lb.logicalId), listenerArn: arnOf(lb.listenerLogicalId), capabilities: lb.capabilities }));
  if (loadBalancers.length === 0) throw new ConfigError(`local stack ${opts.stackName} has no load balancer`);

  const targetGroups: Record<string, string> = {};
  const targetTypes: Record<string, TargetType> = {};
  const targetPorts: Record<string, number> = {};
  const variantWeights: Record<string, number> = {};
  const maxRequestSeconds: Record<string, number> = {};
  for (const [logicalId, capability] of Object.entries(subset.capabilityGroups)) {
    const arn = physical.get(logicalId);
    if (!arn) throw new ConfigError(`local stack has no target group for capability ${capability}`);
    targetGroups[capability] = arn;
    const props = subset.template.Resources[logicalId].Properties;
    targetTypes[capability] = props?.TargetType === 'instance' ? 'instance' : 'ip';
    if (typeof props?.Port === 'number') targetPorts[capability] = props.Port;
    const tag = (key: string) => (props?.Tags as { Key: string; Value: string }[] | undefined)?.find((t) => t.Key === key)?.Value;
    const weight = tag(VARIANT_WEIGHT_TAG);
    if (weight !== undefined) variantWeights[capability] = Number(weight);
    const maxRequest = Number(tag(MAX_REQUEST_SECONDS_TAG));
    if (maxRequest > 0) maxRequestSeconds[capability] = maxRequest;
  }

  const tableName = opts.tableName ?? `${opts.stackName}-leases`;
  const { table } = subset;
  await createTable(opts.dynamodb, tableName, table, true);
  const registryTableName = subset.registryTable ? `${opts.stackName}-registry-state` : undefined;
  if (subset.registryTable && registryTableName) await createTable(opts.dynamodb, registryTableName, subset.registryTable, false);
  if (table.ttlAttribute) {
    await opts.dynamodb.send(
      new UpdateTimeToLiveCommand({ TableName: tableName, TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true } }),
    );
  }
  const described = await opts.dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
  const streamArn = described.Table?.LatestStreamArn;
  if (!streamArn) throw new ConfigError(`table ${tableName} has no stream`);

  return {
    stackName: opts.stackName,
    tableName,
    streamArn,
    loadBalancerArn: loadBalancers[0].loadBalancerArn,
    listenerArn: loadBalancers[0].listenerArn,
    loadBalancers,
    targetGroups,
    targetTypes,
    targetPorts,
    physicalIds: Object.fromEntries(physical),
    variantWeights,
    maxRequestSeconds,
    ...(table.ttlAttribute ? { ttlAttribute: table.ttlAttribute } : {}),
    capabilityTags: subset.capabilityTags,
    ...(registryTableName ? { registryTableName } : {}),
    ...(subset.registryConfig !== undefined ? { registryConfig: subset.registryConfig } : {}),
    lambdaFunctions: subset.lambdaFunctions,
  };
}

/** A table in DynamoDB Local with the key schema the template declares; the lease table with its stream. */
async function createTable(dynamodb: DynamoDBClient, name: string, spec: TableSpec, stream: boolean): Promise<void> {
  await dynamodb.send(
    new CreateTableCommand({
      TableName: name,
      KeySchema: spec.keySchema,
      AttributeDefinitions: spec.attributeDefinitions,
      BillingMode: 'PAY_PER_REQUEST',
      ...(stream ? { StreamSpecification: { StreamEnabled: true, StreamViewType: spec.streamViewType as 'NEW_AND_OLD_IMAGES' } } : {}),
    }),
  );
}

/** Target group ARN → target type, from the provisioned deployment's capability → type. */
export function targetTypesByArn(deployment: LocalDeployment): Record<string, TargetType> {
  return Object.fromEntries(Object.entries(deployment.targetGroups).map(([c, arn]) => [arn, deployment.targetTypes[c] ?? 'ip']));
}

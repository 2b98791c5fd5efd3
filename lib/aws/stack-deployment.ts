import { CloudFormationClient, CloudFormationClientConfig, DescribeStacksCommand, ListStackResourcesCommand, StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { Deployment } from '../core/deployment';
import { ConfigError } from '../core/errors';
import { createElbClient } from './clients';
import { capabilitiesFromTags, maxRequestSecondsFromTags, tagsOf } from './target-groups';

/** Logical id of the registry state table: its construct id under AgentLb is `RegistryState`. */
const REGISTRY_TABLE_ID = /RegistryState/;
/** Logical id of the catalog's function (AgentLb's `Catalog`) or of its stream reader (`CatalogStream`): there only with the catalog on. */
const CATALOG_FUNCTION_ID = /Catalog/;

/** CloudFormation client as the CLI uses it: the SDK's standard retries, a few more attempts than its default. */
export function createCloudFormationClient(config: CloudFormationClientConfig = {}): CloudFormationClient {
  return new CloudFormationClient({ retryMode: 'standard', maxAttempts: 5, ...config });
}

/**
 * Every resource of a stack and of its nested stacks, depth first: ListStackResources page by page
 * (DescribeStackResources answers only a stack's first 100 resources, and a load balancer's groups
 * and rules alone can be 200), then each `AWS::CloudFormation::Stack` by its stack id. AgentLbStack
 * puts the target groups and rules of its second and later load balancers in nested stacks.
 */
async function stackResources(cfn: CloudFormationClient, stackName: string): Promise<StackResourceSummary[]> {
  const own: StackResourceSummary[] = [];
  let nextToken: string | undefined;
  do {
    const page = await cfn.send(new ListStackResourcesCommand({ StackName: stackName, ...(nextToken ? { NextToken: nextToken } : {}) }));
    own.push(...(page.StackResourceSummaries ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  const nested = own.filter((r) => r.ResourceType === 'AWS::CloudFormation::Stack' && r.PhysicalResourceId);
  const inner = await Promise.all(nested.map((r) => stackResources(cfn, r.PhysicalResourceId!)));
  return [...own, ...inner.flat()];
}

/**
 * Finds a stack's lease table and each capability's target group from its resources and its nested
 * stacks' (outputs are not needed): the table is the stack's DynamoDB table, the groups are its
 * target groups on every load balancer by their `agent-lb:capability` tag, each with its longest
 * request from `agent-lb:max-request-seconds`. A missing stack surfaces as the SDK's error (the CLI names it).
 * @throws ConfigError when the stack has no lease table, or two groups carry one capability
 */
export async function describeStack(
  stackName: string,
  region: string,
  endpoint?: string,
  clients: { cfn?: CloudFormationClient; elb?: ElasticLoadBalancingV2Client } = {},
): Promise<Deployment> {
  const at = { region, ...(endpoint ? { endpoint } : {}) };
  const cfn = clients.cfn ?? createCloudFormationClient(at);
  const elb = clients.elb ?? createElbClient(at);
  try {
    const [StackResources] = await Promise.all([stackResources(cfn, stackName), cfn.send(new DescribeStacksCommand({ StackName: stackName }))]);
    const physical = (type: string) => StackResources.filter((r) => r.ResourceType === type).map((r) => r.PhysicalResourceId ?? '');
    // The registry state table is the one of construct id `RegistryState` (AgentLb's); the lease table is the other.
    const tables = StackResources.filter((r) => r.ResourceType === 'AWS::DynamoDB::Table');
    // With the catalog off the table holds the ELB call budget alone: no member index for discovery to read.
    const hasCatalog = StackResources.some((r) => r.ResourceType === 'AWS::Lambda::Function' && CATALOG_FUNCTION_ID.test(r.LogicalResourceId ?? ''));
    const registryTableName = hasCatalog ? tables.find((r) => REGISTRY_TABLE_ID.test(r.LogicalResourceId ?? ''))?.PhysicalResourceId : undefined;
    const tableName = tables.find((r) => !REGISTRY_TABLE_ID.test(r.LogicalResourceId ?? ''))?.PhysicalResourceId;
    if (!tableName) throw new ConfigError(`stack ${stackName} has no lease table`);
    const tags = await tagsOf(elb, physical('AWS::ElasticLoadBalancingV2::TargetGroup'));
    const targetGroups = capabilitiesFromTags(tags, `stack ${stackName}`);
    const maxRequestSeconds = maxRequestSecondsFromTags(tags, targetGroups);
    const [loadBalancerArn] = physical('AWS::ElasticLoadBalancingV2::LoadBalancer');
    const [listenerArn] = physical('AWS::ElasticLoadBalancingV2::Listener');
    return {
      region,
      ...(endpoint ? { dynamodbEndpoint: endpoint, elbv2Endpoint: endpoint } : {}),
      tableName,
      ...(registryTableName ? { registryTableName } : {}),
      targetGroups,
      ...(Object.keys(maxRequestSeconds).length > 0 ? { maxRequestSeconds } : {}),
      ...(loadBalancerArn ? { loadBalancerArn } : {}),
      ...(listenerArn ? { listenerArn } : {}),
    };
  } finally {
    if (!clients.cfn) cfn.destroy();
    if (!clients.elb) elb.destroy();
  }
}

import { readFileSync } from 'node:fs';
import { CloudFormationClient, DescribeStackResourcesCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeTagsCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { UsageError, ConfigError } from '../core/errors';
import { CAPABILITY_TAG } from '../core/lease-schema';

/** Where a deployment's lease table and target groups are: read from a local-mode state file or a CloudFormation stack. */
export interface Deployment {
  readonly region: string;
  readonly dynamodbEndpoint?: string;
  readonly elbv2Endpoint?: string;
  readonly tableName: string;
  readonly loadBalancerArn?: string;
  readonly listenerArn?: string;
  readonly targetGroups: Readonly<Record<string, string>>;
}

/**
 * Credentials for the clients of a local-mode deployment (a state file). The emulators accept
 * any, but the SDK sends nothing without some, and a newcomer with no AWS account has none.
 * DynamoDB Local wants letters and digits only.
 */
export const STATE_FILE_CREDENTIALS = { accessKeyId: 'agentlblocal', secretAccessKey: 'agentlblocal' } as const;

export function readStateFile(path: string): Deployment {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new UsageError(`cannot read state file ${path}: ${(cause as Error).message}`, { cause });
  }
  const s = raw as Partial<Deployment> | null;
  if (!s || typeof s.tableName !== 'string' || typeof s.region !== 'string' || typeof s.targetGroups !== 'object' || s.targetGroups === null) {
    throw new ConfigError(`state file ${path} lacks region, tableName or targetGroups`);
  }
  return s as Deployment;
}

/** Finds the table and each capability's target group from the stack's resources (outputs are not needed). */
export async function describeStack(stackName: string, region: string, endpoint?: string): Promise<Deployment> {
  const cfn = new CloudFormationClient({ region, ...(endpoint ? { endpoint } : {}) });
  const elb = new ElasticLoadBalancingV2Client({ region, ...(endpoint ? { endpoint } : {}) });
  const [{ StackResources = [] }] = await Promise.all([
    cfn.send(new DescribeStackResourcesCommand({ StackName: stackName })),
    cfn.send(new DescribeStacksCommand({ StackName: stackName })),
  ]).catch((cause: unknown) => {
    throw new UsageError(`stack ${stackName} not found in ${region}: ${(cause as Error).message}`, { cause });
  });
  const physical = (type: string) => StackResources.filter((r) => r.ResourceType === type).map((r) => r.PhysicalResourceId ?? '');
  const [tableName] = physical('AWS::DynamoDB::Table');
  if (!tableName) throw new ConfigError(`stack ${stackName} has no lease table`);
  const groupArns = physical('AWS::ElasticLoadBalancingV2::TargetGroup');
  const targetGroups: Record<string, string> = {};
  for (let i = 0; i < groupArns.length; i += 20) {
    const out = await elb.send(new DescribeTagsCommand({ ResourceArns: groupArns.slice(i, i + 20) }));
    for (const d of out.TagDescriptions ?? []) {
      const cap = d.Tags?.find((t) => t.Key === CAPABILITY_TAG)?.Value;
      if (cap && d.ResourceArn) targetGroups[cap] = d.ResourceArn;
    }
  }
  const [loadBalancerArn] = physical('AWS::ElasticLoadBalancingV2::LoadBalancer');
  const [listenerArn] = physical('AWS::ElasticLoadBalancingV2::Listener');
  return {
    region,
    ...(endpoint ? { dynamodbEndpoint: endpoint, elbv2Endpoint: endpoint } : {}),
    tableName,
    targetGroups,
    ...(loadBalancerArn ? { loadBalancerArn } : {}),
    ...(listenerArn ? { listenerArn } : {}),
  };
}

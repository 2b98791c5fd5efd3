import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { CloudFormationClient, DescribeStackResourcesCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeTagsCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { awsFailureKind } from '../aws/aws-errors';
import { ConfigError, LocalModeStoppedError, UsageError } from '../core/errors';
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
    // Only a missing stack is named here; no credentials, access denied and the rest are the
    // CLI's to explain (lib/cli/program.ts), whichever command met them.
    if (awsFailureKind(cause) === 'not-found') throw new UsageError(`stack ${stackName} not found in ${region}`, { cause });
    throw cause;
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

/** Whether something accepts TCP connections at `url`'s host and port (within `timeoutMs`). */
function accepts(url: string, timeoutMs: number): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A state file outlives a local mode that was killed: before any client retries against dead
 * endpoints, check that they still answer.
 * @throws LocalModeStoppedError naming the file and the endpoint that refuses
 */
export async function assertLocalModeRunning(stateFile: string, deployment: Deployment, timeoutMs = 2000): Promise<void> {
  for (const endpoint of [deployment.dynamodbEndpoint, deployment.elbv2Endpoint]) {
    if (endpoint !== undefined && !(await accepts(endpoint, timeoutMs))) throw new LocalModeStoppedError(stateFile, endpoint);
  }
}

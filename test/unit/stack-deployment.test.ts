import { CloudFormationClient, DescribeStacksCommand, ListStackResourcesCommand } from '@aws-sdk/client-cloudformation';
import { DescribeTagsCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { describeStack } from '../../lib/aws/stack-deployment';
import { CAPABILITY_TAG, MAX_REQUEST_SECONDS_TAG } from '../../lib/core/lease-schema';
import { ConfigError } from '../../lib/core/errors';

const cfnMock = mockClient(CloudFormationClient);
const elbMock = mockClient(ElasticLoadBalancingV2Client);
const cfn = new CloudFormationClient({ region: 'eu-west-1' });
const elb = new ElasticLoadBalancingV2Client({ region: 'eu-west-1' });
const tg = (n: number) => `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg-${n}/${n}`;
const LB = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/agents/1';

/** A stack with a table, a load balancer and one target group per entry of `tags` (its capability tag, or none). */
function stackWith(tags: readonly (string | undefined)[], registry: false | 'catalog' | 'budget only' = false) {
  cfnMock.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'AgentLb', StackStatus: 'CREATE_COMPLETE', CreationTime: new Date() }] });
  cfnMock.on(ListStackResourcesCommand).resolves({
    StackResourceSummaries: [
      // The registry state table comes first in some stacks: it is told apart by its logical id.
      ...(registry ? [{ ResourceType: 'AWS::DynamoDB::Table', PhysicalResourceId: 'state', LogicalResourceId: 'RegistryStateTable8E04E55D', ResourceStatus: 'CREATE_COMPLETE' as const, LastUpdatedTimestamp: new Date() }] : []),
      ...(registry === 'catalog' ? [{ ResourceType: 'AWS::Lambda::Function', PhysicalResourceId: 'catalog-fn', LogicalResourceId: 'AgentsCatalogFunction1A2B3C4D', ResourceStatus: 'CREATE_COMPLETE' as const, LastUpdatedTimestamp: new Date() }] : []),
      { ResourceType: 'AWS::DynamoDB::Table', PhysicalResourceId: 'leases', LogicalResourceId: 'T', ResourceStatus: 'CREATE_COMPLETE', LastUpdatedTimestamp: new Date() },
      { ResourceType: 'AWS::ElasticLoadBalancingV2::LoadBalancer', PhysicalResourceId: LB, LogicalResourceId: 'L', ResourceStatus: 'CREATE_COMPLETE', LastUpdatedTimestamp: new Date() },
      ...tags.map((_, n) => ({ ResourceType: 'AWS::ElasticLoadBalancingV2::TargetGroup', PhysicalResourceId: tg(n), LogicalResourceId: `G${n}`, ResourceStatus: 'CREATE_COMPLETE' as const, LastUpdatedTimestamp: new Date() })),
    ],
  });
  elbMock.on(DescribeTagsCommand).callsFake((input: { ResourceArns: string[] }) => ({
    TagDescriptions: input.ResourceArns.map((arn) => {
      const value = tags[Number(arn.split('/').pop())];
      return { ResourceArn: arn, Tags: value === undefined ? [] : [{ Key: CAPABILITY_TAG, Value: value }, { Key: MAX_REQUEST_SECONDS_TAG, Value: String(60 + Number(arn.split('/').pop())) }] };
    }),
  }));
}

beforeEach(() => {
  cfnMock.reset();
  elbMock.reset();
});

describe('describeStack', () => {
  it("finds the table and each capability's group by its tag, 20 groups per DescribeTags call; untagged groups are left out", async () => {
    stackWith([...Array.from({ length: 24 }, (_, n) => `cap-${n}`), undefined]);
    const d = await describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb });
    expect(d).toMatchObject({ region: 'eu-west-1', tableName: 'leases', loadBalancerArn: LB });
    expect(Object.keys(d.targetGroups)).toHaveLength(24);
    expect(d.targetGroups['cap-23']).toBe(tg(23));
    expect(d.maxRequestSeconds?.['cap-23']).toBe(83); // each group's agent-lb:max-request-seconds, for the sidecar's leave deadline
    expect(elbMock.commandCalls(DescribeTagsCommand).map((c) => c.args[0].input.ResourceArns!.length)).toEqual([20, 5]);
  });

  it('refuses two groups tagged with one capability, naming both (as the handlers do on a load balancer)', async () => {
    stackWith(['vision', 'speech', 'vision']);
    const attempt = describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb })).rejects.toThrow(
      `stack AgentLb routes to two target groups tagged ${CAPABILITY_TAG}=vision: ${tg(0)} and ${tg(2)}`,
    );
  });

  it('finds the registry state table (the capability catalog) beside the lease table', async () => {
    stackWith(['vision'], 'catalog');
    expect(await describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb })).toMatchObject({ tableName: 'leases', registryTableName: 'state' });
    stackWith(['vision']);
    expect((await describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb })).registryTableName).toBeUndefined();
    // The catalog off: the table holds the ELB call budget alone, no member index for discovery to read.
    stackWith(['vision'], 'budget only');
    expect(await describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb })).toMatchObject({ tableName: 'leases' });
    expect((await describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb })).registryTableName).toBeUndefined();
  });

  it('says when the stack has no lease table', async () => {
    cfnMock.on(DescribeStacksCommand).resolves({ Stacks: [] });
    cfnMock.on(ListStackResourcesCommand).resolves({ StackResourceSummaries: [] });
    await expect(describeStack('Other', 'eu-west-1', undefined, { cfn, elb })).rejects.toThrow(new ConfigError('stack Other has no lease table'));
  });

  it('finds the groups of every load balancer: pages of ListStackResources and the nested stacks holding later load balancers', async () => {
    stackWith(['vision']);
    const nestedId = 'arn:aws:cloudformation:eu-west-1:123456789012:stack/AgentLb-Routes2/1';
    const summary = (type: string, physical: string, logical: string) => ({ ResourceType: type, PhysicalResourceId: physical, LogicalResourceId: logical, ResourceStatus: 'CREATE_COMPLETE' as const, LastUpdatedTimestamp: new Date() });
    cfnMock
      .on(ListStackResourcesCommand, { StackName: 'AgentLb' })
      .resolves({ StackResourceSummaries: [summary('AWS::DynamoDB::Table', 'leases', 'T'), summary('AWS::ElasticLoadBalancingV2::TargetGroup', tg(0), 'G0')], NextToken: 'page2' })
      .on(ListStackResourcesCommand, { StackName: 'AgentLb', NextToken: 'page2' })
      .resolves({ StackResourceSummaries: [summary('AWS::CloudFormation::Stack', nestedId, 'Routes2')] })
      .on(ListStackResourcesCommand, { StackName: nestedId })
      .resolves({ StackResourceSummaries: [summary('AWS::ElasticLoadBalancingV2::TargetGroup', tg(1), 'G1')] });
    elbMock.on(DescribeTagsCommand).callsFake((input: { ResourceArns: string[] }) => ({
      TagDescriptions: input.ResourceArns.map((arn) => ({ ResourceArn: arn, Tags: [{ Key: CAPABILITY_TAG, Value: arn === tg(0) ? 'vision' : 'speech' }] })),
    }));
    const d = await describeStack('AgentLb', 'eu-west-1', undefined, { cfn, elb });
    expect(d.targetGroups).toEqual({ vision: tg(0), speech: tg(1) });
    expect(cfnMock.commandCalls(ListStackResourcesCommand).map((c) => [c.args[0].input.StackName, c.args[0].input.NextToken])).toEqual([
      ['AgentLb', undefined],
      ['AgentLb', 'page2'],
      [nestedId, undefined],
    ]);
  });
});

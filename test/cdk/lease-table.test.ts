import { AGENT_ATTRIBUTES } from '../../lib/core/lease-schema';
import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { describe, expect, it } from 'vitest';
import { LeaseTable } from '../../lib/constructs';

function tableStack(props: ConstructorParameters<typeof LeaseTable>[2] = {}) {
  const stack = new Stack(new App(), 'TableTest');
  const leases = new LeaseTable(stack, 'Leases', props);
  return { stack, leases, template: () => Template.fromStack(stack) };
}

describe('LeaseTable', () => {
  it('is the lease contract table: on-demand, key "target", TTL "expiresAt", stream of both images, PITR, AWS-managed KMS', () => {
    const { template } = tableStack();
    template().hasResourceProperties('AWS::DynamoDB::Table', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  it('keeps the leases when the table leaves the stack, by default', () => {
    tableStack().template().hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('honours a removal policy and deletion protection', () => {
    const { template } = tableStack({ removalPolicy: RemovalPolicy.DESTROY, deletionProtection: true });
    template().hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', Properties: Match.objectLike({ DeletionProtectionEnabled: true }) });
  });

  it('offers agents a managed policy: reads and releases, and writes of the agent attributes only', () => {
    const { template, leases, stack } = tableStack();
    const arn = { 'Fn::GetAtt': [stack.getLogicalId(leases.table.node.defaultChild as never), 'Arn'] };
    template().hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          { Sid: 'ReadAndReleaseLeases', Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:DeleteItem'], Resource: arn },
          {
            Sid: 'WriteAgentAttributesOnly',
            Effect: 'Allow',
            Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
            Resource: arn,
            Condition: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...AGENT_ATTRIBUTES] } },
          },
        ],
      },
    });
    expect(AGENT_ATTRIBUTES).not.toContain('rotation');
    expect(AGENT_ATTRIBUTES).not.toContain('rejection');
  });

  it('grants an agent role the same statements inline', () => {
    const { template, leases, stack } = tableStack();
    const role = new iam.Role(stack, 'AgentRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    leases.grantAgentAccess(role);
    const policies = template().findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap((p) => (p.Properties as { PolicyDocument: { Statement: { Action: string[]; Condition?: unknown }[] } }).PolicyDocument.Statement);
    expect(statements.map((s) => [s.Action, s.Condition])).toEqual([
      [['dynamodb:GetItem', 'dynamodb:DeleteItem'], undefined],
      [['dynamodb:PutItem', 'dynamodb:UpdateItem'], { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...AGENT_ATTRIBUTES] } }],
    ]);
  });
});

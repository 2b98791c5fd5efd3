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

  it('offers agents a managed policy with exactly the four item actions on the table', () => {
    const { template, leases, stack } = tableStack();
    template().hasResourceProperties('AWS::IAM::ManagedPolicy', {
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'LeaseItems',
            Effect: 'Allow',
            Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
            Resource: { 'Fn::GetAtt': [stack.getLogicalId(leases.table.node.defaultChild as never), 'Arn'] },
          },
        ],
      },
    });
  });

  it('grants an agent role the same four actions inline', () => {
    const { template, leases, stack } = tableStack();
    const role = new iam.Role(stack, 'AgentRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    leases.grantAgentAccess(role);
    const policies = template().findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap((p) => (p.Properties as { PolicyDocument: { Statement: { Action: string[] }[] } }).PolicyDocument.Statement);
    expect(statements.map((s) => s.Action)).toEqual([['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']]);
  });
});

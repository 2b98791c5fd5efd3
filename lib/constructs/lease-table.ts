import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { LEASE_ATTR } from '../core/lease-schema';

/**
 * The only table actions an agent needs: acquire (PutItem), renew and drain (UpdateItem),
 * release (DeleteItem) and read its own lease back (GetItem). No Scan, no Query, no stream.
 */
export const AGENT_TABLE_ACTIONS: readonly string[] = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
];

/** Properties of a {@link LeaseTable}. */
export interface LeaseTableProps {
  /**
   * Physical name of the table.
   *
   * @default - CloudFormation generates a unique name, which lets the table be replaced
   */
  readonly tableName?: string;

  /**
   * What happens to the table (and its leases) when it leaves the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Protect the table against deletion through the DynamoDB API.
   *
   * @default false
   */
  readonly deletionProtection?: boolean;
}

/**
 * The DynamoDB table agents hold their leases in (see the lease contract in docs/lease-contract.md).
 *
 * On-demand capacity, partition key `target` (S), TTL on `expiresAt`, a stream of new and old
 * images for the sync Lambda, point-in-time recovery and encryption with the AWS-managed KMS
 * key. `agentPolicy` is a managed policy to give agents: item reads and writes on this table
 * only.
 */
export class LeaseTable extends Construct {
  /** The underlying table. */
  public readonly table: dynamodb.Table;

  /** Name of the table. */
  public readonly tableName: string;

  /** ARN of the table. */
  public readonly tableArn: string;

  /** ARN of the table's stream (NEW_AND_OLD_IMAGES). */
  public readonly tableStreamArn: string;

  /** Managed policy for agents: GetItem, PutItem, UpdateItem and DeleteItem on this table, nothing else. */
  public readonly agentPolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: LeaseTableProps = {}) {
    super(scope, id);

    this.table = new dynamodb.Table(this, 'Table', {
      tableName: props.tableName,
      partitionKey: { name: LEASE_ATTR.target, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: LEASE_ATTR.expiresAt,
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    this.tableName = this.table.tableName;
    this.tableArn = this.table.tableArn;
    // A table created with `stream` always has a stream ARN.
    this.tableStreamArn = this.table.tableStreamArn!;

    this.agentPolicy = new iam.ManagedPolicy(this, 'AgentPolicy', {
      description: 'agent-lb agents: acquire, renew, drain and release leases (item reads and writes on the lease table only)',
      statements: [
        new iam.PolicyStatement({
          sid: 'LeaseItems',
          actions: [...AGENT_TABLE_ACTIONS],
          resources: [this.tableArn],
        }),
      ],
    });
  }

  /**
   * Grants an agent principal the item actions of the lease contract on this table, as an
   * inline statement. Prefer attaching {@link agentPolicy} to roles you manage outside CDK.
   */
  public grantAgentAccess(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...AGENT_TABLE_ACTIONS],
      resourceArns: [this.tableArn],
    });
  }
}

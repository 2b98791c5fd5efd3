import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { AGENT_ATTRIBUTES, LEASE_ATTR } from '../core/lease-schema';

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

/**
 * The agent grant as policy statements: reads and releases, and writes of the agent's own
 * attributes only. `dynamodb:Attributes` holds every top-level attribute a request names — the
 * item of a PutItem, the paths of an UpdateExpression, those of a ConditionExpression — so
 * `ForAllValues:StringEquals` over the contract's agent attributes refuses any write that names
 * `rotation` or `rejection` (or an attribute of the writer's own invention), however it is
 * spelled (`SET rotation.vision`, `#r` for it, the legacy AttributeUpdates). `ReturnValues` is
 * left free: it names no attribute, and the SDK reads `rotation` back with every renewal
 * (`ALL_NEW`). What IAM cannot express on ECS (a lease bound to its task's address) is in the
 * README's security model.
 */
export function agentLeaseStatements(tableArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({ sid: 'ReadAndReleaseLeases', actions: ['dynamodb:GetItem', 'dynamodb:DeleteItem'], resources: [tableArn] }),
    new iam.PolicyStatement({
      sid: 'WriteAgentAttributesOnly',
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
      resources: [tableArn],
      conditions: { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...AGENT_ATTRIBUTES] } },
    }),
  ];
}

/** The agent grant as a managed policy (attach it to roles managed outside CDK). */
export function agentManagedPolicy(scope: Construct, id: string, tableArn: string): iam.ManagedPolicy {
  return new iam.ManagedPolicy(scope, id, {
    description: 'agent-lb agents: acquire, renew, drain and release leases (item reads and writes on the lease table only; never the registry-written rotation or rejection)',
    statements: agentLeaseStatements(tableArn),
  });
}

/** The agent grant as inline statements on `grantee`. */
export function grantAgentLeaseAccess(grantee: iam.IGrantable, tableArn: string): iam.Grant {
  const [read, write] = agentLeaseStatements(tableArn);
  return iam.Grant.addToPrincipal({ grantee, actions: read.actions, resourceArns: [tableArn] }).combine(
    iam.Grant.addToPrincipal({ grantee, actions: write.actions, resourceArns: [tableArn], conditions: write.conditions }),
  );
}

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

  /** Managed policy for agents: GetItem and DeleteItem on this table, PutItem and UpdateItem of the agent attributes only, nothing else. */
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

    this.agentPolicy = agentManagedPolicy(this, 'AgentPolicy', this.tableArn);
  }

  /**
   * Grants an agent principal the item actions of the lease contract on this table, as an
   * inline statement. Prefer attaching {@link agentPolicy} to roles you manage outside CDK.
   */
  public grantAgentAccess(grantee: iam.IGrantable): iam.Grant {
    return grantAgentLeaseAccess(grantee, this.tableArn);
  }
}

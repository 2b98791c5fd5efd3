import { RemovalPolicy, Tags } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { CATALOG_ITEM_KEY, ELB_BUDGET_ITEM_KEY, MEMBERS_PARTITION_PREFIX, REGISTRY_STATE_KEY, REGISTRY_STATE_ROLE, REGISTRY_STATE_ROLE_TAG } from '../core/registry-state';

/** What the sync and reconcile Lambdas do on the registry state table: read and conditionally write items, Query a capability's members. */
export const REGISTRY_STATE_ACTIONS: readonly string[] = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query'];

/** What the sync and reconcile Lambdas do to the ELB call budget's shared item: read it and conditionally update it. */
export const ELB_BUDGET_ACTIONS: readonly string[] = ['dynamodb:GetItem', 'dynamodb:UpdateItem'];

/** Properties of a {@link RegistryStateTable}. */
export interface RegistryStateTableProps {
  /**
   * What happens to the table when it leaves the stack. It holds only what the registry derives
   * from the lease table and rebuilds in one reconcile pass, so by default it goes with the stack.
   *
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The registry's own DynamoDB table (format: lib/core/registry-state.ts): the capability catalog
 * document that `GET /agents` serves, the member index that trusted discovery queries, and the
 * ELB call budget's shared bucket every sync and reconcile container takes its tokens from.
 *
 * Why a table of its own rather than items in the lease table: agents hold PutItem, UpdateItem
 * and DeleteItem on the lease table, so an agent could overwrite a document kept there, and every
 * write to it would be one more stream record for the sync Lambda. Here only the registry writes
 * (agents get no permission at all), no stream is kept, and the public catalog Lambda may read the
 * catalog item and nothing else (`dynamodb:LeadingKeys`), so even a compromised catalog function
 * cannot read an address. On-demand capacity, partition key `pk` and sort key `sk` (both S),
 * encryption with the AWS-managed key, point-in-time recovery.
 */
export class RegistryStateTable extends Construct {
  public readonly table: dynamodb.Table;
  public readonly tableName: string;
  public readonly tableArn: string;

  constructor(scope: Construct, id: string, props: RegistryStateTableProps = {}) {
    super(scope, id);
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: REGISTRY_STATE_KEY.partition, type: dynamodb.AttributeType.STRING },
      sortKey: { name: REGISTRY_STATE_KEY.sort, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Cheap at this size, and what an account's backup policy (and cdk-nag) expects of every table.
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });
    Tags.of(this.table).add(REGISTRY_STATE_ROLE_TAG, REGISTRY_STATE_ROLE);
    this.tableName = this.table.tableName;
    this.tableArn = this.table.tableArn;
  }

  /** The registry's access (sync and reconcile): {@link REGISTRY_STATE_ACTIONS} on this table. */
  public grantRegistryAccess(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: [...REGISTRY_STATE_ACTIONS], resourceArns: [this.tableArn] });
  }

  /**
   * A registry function's access to the ELB call budget's shared bucket: GetItem and UpdateItem of
   * that item (`dynamodb:LeadingKeys` = its partition, which holds nothing else), no other item.
   * Returns the statement added to the grantee's policy.
   */
  public grantElbBudget(grantee: iam.IGrantable): iam.PolicyStatement {
    return this.grantOnPartitions(grantee, [...ELB_BUDGET_ACTIONS], 'ForAllValues:StringEquals', [ELB_BUDGET_ITEM_KEY.pk]);
  }

  /** The catalog Lambda's access: GetItem of the catalog document, and of no other item. Returns the statement added to the grantee's policy. */
  public grantCatalogRead(grantee: iam.IGrantable): iam.PolicyStatement {
    return this.grantOnPartitions(grantee, ['dynamodb:GetItem'], 'ForAllValues:StringEquals', [CATALOG_ITEM_KEY.pk]);
  }

  /**
   * Trusted discovery (`discoverAgents`, `agent-lb agents`): Query of the member index (agents'
   * addresses, ports, rotation states and metadata) and GetItem of the catalog document; nothing
   * else, and no write. Returns the statement added to the grantee's policy.
   */
  public grantDiscovery(grantee: iam.IGrantable): iam.PolicyStatement {
    return this.grantOnPartitions(grantee, ['dynamodb:Query', 'dynamodb:GetItem'], 'ForAllValues:StringLike', [`${MEMBERS_PARTITION_PREFIX}*`, CATALOG_ITEM_KEY.pk]);
  }

  // A statement of its own: grant conditions arrived in a later aws-cdk-lib than the oldest agent-lb supports.
  private grantOnPartitions(grantee: iam.IGrantable, actions: string[], operator: string, partitions: string[]): iam.PolicyStatement {
    const statement = new iam.PolicyStatement({ actions, resources: [this.tableArn], conditions: { [operator]: { 'dynamodb:LeadingKeys': partitions } } });
    grantee.grantPrincipal.addToPrincipalPolicy(statement);
    return statement;
  }
}

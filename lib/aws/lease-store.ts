import {
  AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { LeaseHeldError, LeaseLostError, LeaseStoreError } from '../core/errors';
import { LEASE_ATTR, LeaseStatus, RawItem } from '../core/lease-schema';

export interface ScanResult {
  readonly items: RawItem[];
  readonly consumedReadUnits: number;
  readonly pages: number;
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as { name?: string })?.name === 'ConditionalCheckFailedException';
}

function wrap(action: string, tableName: string, error: unknown, context: Record<string, unknown> = {}): LeaseStoreError {
  const name = (error as { name?: string })?.name ?? 'Error';
  return new LeaseStoreError(`${action} on table ${tableName} failed: ${name}: ${(error as Error)?.message ?? String(error)}`, {
    cause: error,
    context: { tableName, ...context },
  });
}

const key = (target: string): Record<string, AttributeValue> => ({ [LEASE_ATTR.target]: { S: target } });

/**
 * The lease table behind the contract's conditional writes. Converts DynamoDB exceptions
 * into agent-lb errors at this boundary; callers never see an SDK exception.
 */
export class LeaseStore {
  public constructor(
    private readonly client: DynamoDBClient,
    public readonly tableName: string,
  ) {}

  /**
   * Acquire: succeeds when nobody holds the key, the holder's lease expired, or we hold it.
   * `takeover` drops the condition (same address:port means same endpoint).
   */
  public async acquire(item: RawItem, leaseToken: string, nowSeconds: number, takeover = false): Promise<void> {
    const target = item[LEASE_ATTR.target]?.S ?? '';
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: item as Record<string, AttributeValue>,
          ...(takeover
            ? {}
            : {
                ConditionExpression: 'attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine',
                ExpressionAttributeNames: { '#target': LEASE_ATTR.target, '#expiresAt': LEASE_ATTR.expiresAt, '#leaseToken': LEASE_ATTR.leaseToken },
                ExpressionAttributeValues: { ':now': { N: String(nowSeconds) }, ':mine': { S: leaseToken } },
              }),
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseHeldError(target, { cause: error });
      throw wrap('acquire', this.tableName, error, { target });
    }
  }

  /**
   * Heartbeat: moves only `expiresAt`/`renewedAt`, so the stream sync sees a no-op. Resolves
   * to the item as it is after the write (`ReturnValues: ALL_NEW`, no extra read capacity), so
   * each heartbeat also brings the registry's latest `rotation`.
   */
  public async renew(target: string, leaseToken: string, expiresAt: number, renewedAtMs: number): Promise<RawItem | undefined> {
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: key(target),
          UpdateExpression: 'SET #expiresAt = :exp, #renewedAt = :ren',
          ConditionExpression: '#leaseToken = :mine',
          ExpressionAttributeNames: { '#expiresAt': LEASE_ATTR.expiresAt, '#renewedAt': LEASE_ATTR.renewedAt, '#leaseToken': LEASE_ATTR.leaseToken },
          ExpressionAttributeValues: { ':exp': { N: String(expiresAt) }, ':ren': { N: String(renewedAtMs) }, ':mine': { S: leaseToken } },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes as RawItem | undefined;
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseLostError(target, 'the lease was taken over or swept after expiry', { cause: error });
      throw wrap('renew', this.tableName, error, { target });
    }
  }

  /** Drain (or re-activate) a lease we hold; the target leaves rotation while the lease stays. Resolves to the item after the write. */
  public async setStatus(target: string, leaseToken: string, status: LeaseStatus): Promise<RawItem | undefined> {
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: key(target),
          UpdateExpression: 'SET #status = :status',
          ConditionExpression: '#leaseToken = :mine',
          ExpressionAttributeNames: { '#status': LEASE_ATTR.status, '#leaseToken': LEASE_ATTR.leaseToken },
          ExpressionAttributeValues: { ':status': { S: status }, ':mine': { S: leaseToken } },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes as RawItem | undefined;
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseLostError(target, 'the lease was taken over or swept after expiry', { cause: error });
      throw wrap('setStatus', this.tableName, error, { target });
    }
  }

  /** Release: deletes the lease only if we still hold it. Returns false when it was no longer ours. */
  public async release(target: string, leaseToken: string): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: key(target),
          ConditionExpression: '#leaseToken = :mine',
          ExpressionAttributeNames: { '#leaseToken': LEASE_ATTR.leaseToken },
          ExpressionAttributeValues: { ':mine': { S: leaseToken } },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('release', this.tableName, error, { target });
    }
  }

  /** Deletes the lease if `expiresAt < cutoff` (now in the item's unit, see `expiryCutoff`); a renewal racing it wins. */
  public async deleteIfExpired(target: string, cutoff: number): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: key(target),
          ConditionExpression: '#expiresAt < :now',
          ExpressionAttributeNames: { '#expiresAt': LEASE_ATTR.expiresAt },
          ExpressionAttributeValues: { ':now': { N: String(cutoff) } },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('deleteIfExpired', this.tableName, error, { target });
    }
  }

  /** The item, strongly consistent by default (1 read request unit for an item ≤ 4 KB; 0.5 when eventually consistent). */
  public async get(target: string, consistent = true): Promise<RawItem | undefined> {
    try {
      const out = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: key(target), ConsistentRead: consistent }));
      return out.Item as RawItem | undefined;
    } catch (error) {
      throw wrap('get', this.tableName, error, { target });
    }
  }

  /** Every item, with consistent reads, following pagination. */
  public async scanAll(consistent = true): Promise<ScanResult> {
    const items: RawItem[] = [];
    let consumedReadUnits = 0;
    let pages = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    try {
      do {
        const out = await this.client.send(
          new ScanCommand({ TableName: this.tableName, ConsistentRead: consistent, ExclusiveStartKey: startKey, ReturnConsumedCapacity: 'TOTAL' }),
        );
        pages++;
        consumedReadUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
        items.push(...((out.Items ?? []) as RawItem[]));
        startKey = out.LastEvaluatedKey;
      } while (startKey);
    } catch (error) {
      throw wrap('scan', this.tableName, error);
    }
    return { items, consumedReadUnits, pages };
  }
}

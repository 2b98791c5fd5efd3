import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { applyUpdate, conditionHolds, ExpressionInput, Item } from './dynamo-expressions';

/**
 * The lease table in memory, behind a DynamoDB client's `send`, as the handlers use it: consistent
 * BatchGetItem, GetItem and Scan; UpdateItem, PutItem and DeleteItem applied with their conditions
 * and expressions as DynamoDB would (see dynamo-expressions.ts). It counts every request, and every
 * write that changed an item becomes a stream record (Lambda's shape, NEW_AND_OLD_IMAGES) in
 * `streamRecords`: what the registry's own writes feed back into the sync handler. The agents'
 * writes of a test are applied with {@link applyRecords} (they are the records being handled) and
 * are neither counted nor recorded.
 */
export class InMemoryLeaseTable {
  public readonly items = new Map<string, Item>();
  /** Requests per command name (`BatchGetItem`, `UpdateItem`, …), failed conditions included. */
  public readonly requests: Record<string, number> = {};
  /** Keys read by BatchGetItem and GetItem. */
  public keysRead = 0;
  /** Writes whose condition failed: a write unit each, no stream record. */
  public conditionFailures = 0;
  /** The stream records the client's writes caused, in order. */
  public readonly streamRecords: DynamoDBRecord[] = [];
  private sequence = 0;

  public constructor(
    public readonly tableName = 'leases',
    /** Epoch seconds stamped on the stream records (ApproximateCreationDateTime). */
    private readonly nowSeconds: () => number = () => Math.floor(Date.now() / 1000),
  ) {}

  /** Requests of these commands so far. */
  public count(...commands: string[]): number {
    return commands.reduce((n, c) => n + (this.requests[c] ?? 0), 0);
  }

  /** Write requests (UpdateItem, PutItem, DeleteItem) so far, failed conditions included: write units spent. */
  public get writes(): number {
    return this.count('UpdateItem', 'PutItem', 'DeleteItem');
  }

  /** The table as the records leave it: each key's last new image, nothing after a removal. */
  public applyRecords(records: readonly DynamoDBRecord[]): this {
    for (const r of records) {
      const key = (r.dynamodb?.Keys?.target as { S?: string } | undefined)?.S;
      if (!key) continue;
      if (r.dynamodb?.NewImage) this.items.set(key, r.dynamodb.NewImage as Item);
      else this.items.delete(key);
    }
    return this;
  }

  public put(...items: Item[]): this {
    for (const item of items) this.items.set(item.target.S!, item);
    return this;
  }

  /** Takes the stream records caused so far (the next batch the sync handler would get). */
  public takeStreamRecords(): DynamoDBRecord[] {
    return this.streamRecords.splice(0);
  }

  public asClient(): DynamoDBClient {
    const send = async (command: { constructor: { name: string }; input: Record<string, unknown> }) => this.handle(command.constructor.name.replace(/Command$/, ''), command.input);
    return { send, destroy: () => undefined, config: {} } as unknown as DynamoDBClient;
  }

  private handle(name: string, input: Record<string, unknown>): unknown {
    this.requests[name] = (this.requests[name] ?? 0) + 1;
    const keyOf = (k: unknown) => ((k as { target?: { S?: string } })?.target?.S ?? '') as string;
    switch (name) {
      case 'BatchGetItem': {
        const [[table, request]] = Object.entries(input.RequestItems as Record<string, { Keys: unknown[]; ConsistentRead?: boolean }>);
        if (table !== this.tableName) throw new Error(`BatchGetItem for an unknown table ${table}`);
        if (request.ConsistentRead !== true) throw new Error('BatchGetItem without ConsistentRead');
        if (request.Keys.length > 100) throw new Error(`BatchGetItem with ${request.Keys.length} keys (DynamoDB allows 100)`);
        this.keysRead += request.Keys.length;
        return { Responses: { [table]: request.Keys.flatMap((k) => (this.items.has(keyOf(k)) ? [this.items.get(keyOf(k))] : [])) }, UnprocessedKeys: {} };
      }
      case 'GetItem': {
        this.keysRead++;
        const item = this.items.get(keyOf(input.Key));
        return item ? { Item: item } : {};
      }
      case 'Scan':
        return { Items: [...this.items.values()], Count: this.items.size, ScannedCount: this.items.size };
      case 'UpdateItem':
      case 'PutItem':
      case 'DeleteItem': {
        const key = name === 'PutItem' ? keyOf(input.Item) : keyOf(input.Key);
        const old = this.items.get(key);
        const expressions = input as ExpressionInput;
        if (!conditionHolds(old, expressions)) {
          this.conditionFailures++;
          const returned = input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && old ? { Item: old } : {};
          throw Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException', $metadata: {} }, returned);
        }
        // UpdateItem on a missing item would create it; the lease store always conditions on the token, so this is a test bug.
        if (name === 'UpdateItem' && old === undefined) throw new Error(`UpdateItem would create ${key}`);
        const next = name === 'PutItem' ? (input.Item as Item) : name === 'DeleteItem' ? undefined : applyUpdate(old!, expressions);
        if (next) this.items.set(key, next);
        else this.items.delete(key);
        if (JSON.stringify(old) !== JSON.stringify(next)) this.record(key, old, next);
        return name === 'UpdateItem' && input.ReturnValues === 'ALL_NEW' ? { Attributes: next } : {};
      }
      default:
        throw new Error(`the in-memory lease table does not answer ${name}`);
    }
  }

  private record(key: string, oldImage: Item | undefined, newImage: Item | undefined): void {
    this.streamRecords.push({
      eventID: `registry-${++this.sequence}`,
      eventName: oldImage === undefined ? 'INSERT' : newImage === undefined ? 'REMOVE' : 'MODIFY',
      eventSource: 'aws:dynamodb',
      dynamodb: {
        Keys: { target: { S: key } },
        ...(oldImage ? { OldImage: oldImage as Record<string, never> } : {}),
        ...(newImage ? { NewImage: newImage as Record<string, never> } : {}),
        SequenceNumber: `9${String(this.sequence).padStart(20, '0')}`,
        ApproximateCreationDateTime: this.nowSeconds(),
        StreamViewType: 'NEW_AND_OLD_IMAGES',
      },
    });
  }
}


import { BatchGetItemCommand, DynamoDBClient, GetItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import type { Item } from './lease-fixtures';

type DynamoStub = AwsClientStub<DynamoDBClient>;

/**
 * The lease table as the handlers' consistent reads see it, behind aws-sdk-client-mock:
 * BatchGetItem (what sync and reconcile confirm with), GetItem and Scan answer from `items`.
 * `unprocessedOnce` makes the next BatchGetItem leave that many keys unprocessed, as DynamoDB
 * does under throttling.
 */
export class FakeLeaseTable {
  public readonly items = new Map<string, Item>();
  /** Keys asked for, per BatchGetItem call. */
  public readonly batchGets: string[][] = [];
  public unprocessedOnce = 0;

  public constructor(public readonly tableName = 'leases') {}

  public put(...items: Item[]): this {
    for (const item of items) this.items.set(item.target.S!, item);
    return this;
  }

  public delete(key: string): this {
    this.items.delete(key);
    return this;
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

  /** Answers the stub's reads from this table. */
  public install(stub: DynamoStub): this {
    stub.on(BatchGetItemCommand).callsFake((input: { RequestItems: Record<string, { Keys: { target: { S: string } }[]; ConsistentRead?: boolean }> }) => {
      const request = input.RequestItems[this.tableName];
      if (!request) throw new Error(`BatchGetItem for an unknown table: ${Object.keys(input.RequestItems).join(', ')}`);
      if (request.ConsistentRead !== true) throw new Error('BatchGetItem without ConsistentRead');
      if (request.Keys.length > 100) throw new Error(`BatchGetItem with ${request.Keys.length} keys (DynamoDB allows 100)`);
      const keys = request.Keys.map((k) => k.target.S);
      this.batchGets.push(keys);
      const skipped = keys.slice(0, Math.min(this.unprocessedOnce, keys.length));
      this.unprocessedOnce = 0;
      const answered = keys.slice(skipped.length);
      return {
        Responses: { [this.tableName]: answered.flatMap((k) => (this.items.has(k) ? [this.items.get(k)!] : [])) },
        UnprocessedKeys: skipped.length > 0 ? { [this.tableName]: { Keys: skipped.map((k) => ({ target: { S: k } })), ConsistentRead: true } } : {},
      };
    });
    stub.on(GetItemCommand).callsFake((input: { Key: { target: { S: string } } }) => {
      const item = this.items.get(input.Key.target.S);
      return item ? { Item: item } : {};
    });
    stub.on(ScanCommand).callsFake(() => ({ Items: [...this.items.values()], Count: this.items.size }));
    return this;
  }

  /** Every key read by BatchGetItem so far, in order. */
  public keysRead(): string[] {
    return this.batchGets.flat();
  }
}

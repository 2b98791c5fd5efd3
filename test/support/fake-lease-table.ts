import { BatchGetItemCommand, ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { applyUpdate, conditionHolds, ExpressionInput } from './dynamo-expressions';
import type { Item } from './lease-fixtures';

type DynamoStub = AwsClientStub<DynamoDBClient>;

/**
 * The lease table as the handlers' consistent reads see it, behind aws-sdk-client-mock:
 * BatchGetItem (what sync and reconcile confirm with), GetItem and Scan answer from `items`.
 * `unprocessedOnce` makes the next BatchGetItem leave that many keys unprocessed, as DynamoDB
 * does under throttling. The registry's UpdateItems (LeaseStore.writeEntries) are applied with
 * their conditions as DynamoDB would (dynamo-expressions.ts); the `rotation` entries they change
 * are listed in `rotationWrites`, the `rejection`s they write or remove in `rejectionWrites`.
 */
export class FakeLeaseTable {
  public readonly items = new Map<string, Item>();
  /** Keys asked for, per BatchGetItem call. */
  public readonly batchGets: string[][] = [];
  public unprocessedOnce = 0;
  /** Rotation entries written, as `key capability=state@since`, in order. */
  public readonly rotationWrites: string[] = [];
  /** Rejections written, as `key reason[capabilities]` or `key removed`, in order. */
  public readonly rejectionWrites: string[] = [];

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
    stub.on(UpdateItemCommand).callsFake((input: ExpressionInput & { Key: { target: { S: string } }; ReturnValuesOnConditionCheckFailure?: string }) => {
      if (!/#a0|#rejection/.test(input.UpdateExpression ?? '')) throw new Error(`FakeLeaseTable answers only the registry's writes, got ${input.UpdateExpression}`);
      const key = input.Key.target.S;
      const item = this.items.get(key);
      if (!conditionHolds(item, input)) {
        throw Object.assign(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }), item && input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' ? { Item: item } : {});
      }
      if (item === undefined) throw new Error(`UpdateItem would create ${key}`);
      const next = applyUpdate(item, input) as Item;
      const before = item.rotation?.M ?? {};
      for (const [capability, entry] of Object.entries(next.rotation?.M ?? {})) {
        if (JSON.stringify(before[capability]) !== JSON.stringify(entry)) this.rotationWrites.push(`${key} ${capability}=${entry.M!.state.S}@${entry.M!.since.N}`);
      }
      if (JSON.stringify(item.rejection) !== JSON.stringify(next.rejection)) {
        const r = next.rejection?.M;
        this.rejectionWrites.push(r === undefined ? `${key} removed` : `${key} ${r.reason.S}${r.capabilities?.SS ? `[${r.capabilities.SS.join(',')}]` : ''}`);
      }
      this.items.set(key, next);
      return {};
    });
    stub.on(ScanCommand).callsFake(() => ({ Items: [...this.items.values()], Count: this.items.size }));
    return this;
  }

  /** Every key read by BatchGetItem so far, in order. */
  public keysRead(): string[] {
    return this.batchGets.flat();
  }
}

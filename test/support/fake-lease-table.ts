import { AttributeValue, BatchGetItemCommand, ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import type { Item } from './lease-fixtures';

type DynamoStub = AwsClientStub<DynamoDBClient>;

/**
 * The lease table as the handlers' consistent reads see it, behind aws-sdk-client-mock:
 * BatchGetItem (what sync and reconcile confirm with), GetItem and Scan answer from `items`.
 * `unprocessedOnce` makes the next BatchGetItem leave that many keys unprocessed, as DynamoDB
 * does under throttling. The registry's `rotation` UpdateItems (LeaseStore.writeRotation) are
 * applied with their conditions (token, map, older entry) and listed in `rotationWrites`; its
 * `rejection` UpdateItems (LeaseStore.writeRejection) with theirs (token and renewedAt as judged)
 * and listed in `rejectionWrites`.
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
    stub.on(UpdateItemCommand).callsFake((input: { Key: { target: { S: string } }; UpdateExpression: string; ExpressionAttributeNames: Record<string, string>; ExpressionAttributeValues: Record<string, AttributeValue> }) => {
      const key = input.Key.target.S;
      if (input.UpdateExpression.includes('#rejection')) return this.writeRejection(key, input);
      if (!input.UpdateExpression.includes('#rotation')) throw new Error(`FakeLeaseTable answers only the registry's writes, got ${input.UpdateExpression}`);
      const item = this.items.get(key);
      const fail = () => {
        throw Object.assign(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }), item ? { Item: item } : {});
      };
      if (!item || item.leaseToken?.S !== input.ExpressionAttributeValues[':token'].S) fail();
      const map = { ...(item!.rotation?.M ?? {}) };
      const values = input.ExpressionAttributeValues;
      let capability: string;
      let entry: AttributeValue;
      if (input.UpdateExpression === 'SET #rotation = :rotation') {
        if (item!.rotation !== undefined) fail();
        [capability, entry] = Object.entries(values[':rotation'].M!)[0];
      } else {
        capability = input.ExpressionAttributeNames['#capability'];
        entry = values[':entry'];
        if (item!.rotation?.M === undefined) fail();
        const since = map[capability]?.M?.since?.N;
        if (since !== undefined && Number(since) >= Number(values[':since'].N)) fail();
      }
      map[capability] = entry as (typeof map)[string];
      this.items.set(key, { ...item!, rotation: { M: map } });
      this.rotationWrites.push(`${key} ${capability}=${entry.M!.state.S}@${entry.M!.since.N}`);
      return {};
    });
    stub.on(ScanCommand).callsFake(() => ({ Items: [...this.items.values()], Count: this.items.size }));
    return this;
  }

  /** `SET rejection = :rejection` / `REMOVE rejection`, on the token and renewedAt as judged (absent: attribute_not_exists). */
  private writeRejection(key: string, input: { UpdateExpression: string; ConditionExpression?: string; ExpressionAttributeValues?: Record<string, AttributeValue> }): object {
    const item = this.items.get(key);
    const values = input.ExpressionAttributeValues ?? {};
    const same = (attr: 'leaseToken' | 'renewedAt') => {
      const judged = values[`:${attr}`];
      const now = item?.[attr];
      return judged === undefined ? now === undefined : JSON.stringify(now) === JSON.stringify(judged);
    };
    const removing = input.UpdateExpression === 'REMOVE #rejection';
    if (!item || !same('leaseToken') || !same('renewedAt') || (removing && item.rejection === undefined)) {
      throw new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    }
    const next = { ...item };
    if (removing) delete next.rejection;
    else next.rejection = values[':rejection'] as Item[string];
    this.items.set(key, next);
    const r = values[':rejection']?.M;
    this.rejectionWrites.push(removing ? `${key} removed` : `${key} ${r!.reason.S}${r!.capabilities?.SS ? `[${r!.capabilities.SS.join(',')}]` : ''}`);
    return {};
  }

  /** Every key read by BatchGetItem so far, in order. */
  public keysRead(): string[] {
    return this.batchGets.flat();
  }
}

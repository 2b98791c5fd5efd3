import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { RawItem } from '../lib/core/lease-schema';

/**
 * The lease table as the sync handler's confirming read (BatchGetItem) sees it, in memory: each
 * key's last new image from the records written so far, nothing after a removal. B1 and the
 * projection apply each batch's records before handing it over, as the table holds a batch's
 * writes before the stream delivers them.
 */
export class InMemoryLeaseTable {
  public readonly items = new Map<string, RawItem>();
  public batchGets = 0;
  public keysRead = 0;

  public applyRecords(records: readonly DynamoDBRecord[]): void {
    for (const r of records) {
      const key = (r.dynamodb?.Keys?.target as { S?: string } | undefined)?.S;
      if (!key) continue;
      if (r.dynamodb?.NewImage) this.items.set(key, r.dynamodb.NewImage as RawItem);
      else this.items.delete(key);
    }
  }

  public asClient(): DynamoDBClient {
    const send = async (command: { constructor: { name: string }; input: { RequestItems?: Record<string, { Keys: { target: { S: string } }[] }> } }) => {
      if (command.constructor.name !== 'BatchGetItemCommand') throw new Error(`the in-memory lease table answers BatchGetItem only, not ${command.constructor.name}`);
      const [[tableName, request]] = Object.entries(command.input.RequestItems ?? {});
      this.batchGets++;
      this.keysRead += request.Keys.length;
      return { Responses: { [tableName]: request.Keys.flatMap((k) => (this.items.has(k.target.S) ? [this.items.get(k.target.S)] : [])) }, UnprocessedKeys: {} };
    };
    return { send, destroy: () => undefined } as unknown as DynamoDBClient;
  }
}

import { gunzipSync, gzipSync } from 'node:zlib';
import {
  AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { catalogEtag, CatalogDocument, formatCatalog, parseCatalog } from '../core/catalog-document';
import { RegistryStateError } from '../core/errors';
import { RawItem } from '../core/lease-schema';
import {
  CATALOG_ITEM_KEY,
  CatalogMember,
  decodeMember,
  encodeMember,
  memberReadAt,
  membersPartition,
  REGISTRY_STATE_ATTR,
  REGISTRY_STATE_KEY,
} from '../core/registry-state';

/** A catalog document as stored, with its ETag. */
export interface StoredCatalog {
  readonly document: CatalogDocument;
  readonly etag: string;
}

/** A capability's members as the index holds them. */
export interface MemberQuery {
  readonly members: CatalogMember[];
  /** Lease key → when the registry read the lease each item was written from. */
  readonly readAt: ReadonlyMap<string, number>;
  /** Read capacity the Query consumed (DynamoDB's count). */
  readonly consumedReadUnits: number;
  /** Items DynamoDB looked at: only this capability's, whatever the fleet's size. */
  readonly scannedCount: number;
}

/** What a conditional member write did: `stale` when the index already holds a newer read of the lease. */
export type MemberWriteOutcome = 'written' | 'stale';

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as { name?: string })?.name === 'ConditionalCheckFailedException';
}

const K = REGISTRY_STATE_KEY;
const A = REGISTRY_STATE_ATTR;
const catalogKey = (): Record<string, AttributeValue> => ({ [K.partition]: { S: CATALOG_ITEM_KEY.pk }, [K.sort]: { S: CATALOG_ITEM_KEY.sk } });
const memberKey = (capability: string, target: string): Record<string, AttributeValue> => ({ [K.partition]: { S: membersPartition(capability) }, [K.sort]: { S: target } });
/** A member write lands unless the index already holds a read of the lease at least as new. */
const unlessNewerRead = (readAt: number) => ({
  ConditionExpression: 'attribute_not_exists(#pk) OR #readAt <= :readAt',
  ExpressionAttributeNames: { '#pk': K.partition, '#readAt': A.readAt },
  ExpressionAttributeValues: { ':readAt': { N: String(Math.floor(readAt)) } as AttributeValue },
});

/**
 * The registry state table (lib/core/registry-state.ts): the catalog document, stored gzip'd so
 * even a hundred capabilities cost a few read and write units, and the member index. Every write
 * is conditional — the document on the revision it follows, a member on the time its lease was
 * read — so two writers (a sync batch and a reconcile pass) never undo each other's newer work.
 * DynamoDB failures become {@link RegistryStateError}.
 */
export class RegistryStateStore {
  public constructor(
    private readonly client: DynamoDBClient,
    public readonly tableName: string,
  ) {}

  private fail(action: string, error: unknown, context: Record<string, unknown> = {}): RegistryStateError {
    const name = (error as { name?: string })?.name ?? 'Error';
    return new RegistryStateError(`${action} on table ${this.tableName} failed: ${name}: ${(error as Error)?.message ?? String(error)}`, {
      cause: error,
      context: { tableName: this.tableName, ...context },
    });
  }

  /** The stored document; `undefined` before the registry's first write (or when the item is not one). Eventually consistent by default: 0.5 read units per 4 KB. */
  public async readCatalog(consistent = false): Promise<StoredCatalog | undefined> {
    let item: RawItem | undefined;
    try {
      const out = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: catalogKey(), ConsistentRead: consistent }));
      item = out.Item as RawItem | undefined;
    } catch (error) {
      throw this.fail('readCatalog', error);
    }
    const body = item?.[A.body]?.B as Uint8Array | undefined;
    if (body === undefined) return undefined;
    let document: CatalogDocument | undefined;
    try {
      document = parseCatalog(gunzipSync(body).toString('utf8'));
    } catch {
      document = undefined;
    }
    return document && { document, etag: item?.[A.etag]?.S ?? catalogEtag(document) };
  }

  /**
   * Writes `doc` if the stored document is still at `previousRevision` (`undefined`: there is
   * none). Resolves `conflict` when another writer got there first: read again and merge.
   */
  public async writeCatalog(doc: CatalogDocument, previousRevision: number | undefined): Promise<'written' | 'conflict'> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            ...catalogKey(),
            [A.revision]: { N: String(doc.revision) },
            [A.generatedAt]: { N: String(doc.generatedAt) },
            [A.etag]: { S: catalogEtag(doc) },
            [A.body]: { B: gzipSync(formatCatalog(doc)) },
          },
          ...(previousRevision === undefined
            ? { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': K.partition } }
            : { ConditionExpression: '#revision = :previous', ExpressionAttributeNames: { '#revision': A.revision }, ExpressionAttributeValues: { ':previous': { N: String(previousRevision) } } }),
        }),
      );
      return 'written';
    } catch (error) {
      if (isConditionFailure(error)) return 'conflict';
      throw this.fail('writeCatalog', error, { revision: doc.revision });
    }
  }

  /** Every member of one capability's group: one Query, paginated (strongly consistent by default, for the registry's recount). */
  public async queryMembers(capability: string, consistent = true): Promise<MemberQuery> {
    const members: CatalogMember[] = [];
    const readAt = new Map<string, number>();
    let consumedReadUnits = 0;
    let scannedCount = 0;
    let startKey: Record<string, AttributeValue> | undefined;
    try {
      do {
        const out = await this.client.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: '#pk = :pk',
            ExpressionAttributeNames: { '#pk': K.partition },
            ExpressionAttributeValues: { ':pk': { S: membersPartition(capability) } },
            ConsistentRead: consistent,
            ExclusiveStartKey: startKey,
            ReturnConsumedCapacity: 'TOTAL',
          }),
        );
        consumedReadUnits += out.ConsumedCapacity?.CapacityUnits ?? 0;
        scannedCount += out.ScannedCount ?? 0;
        for (const item of (out.Items ?? []) as RawItem[]) {
          const member = decodeMember(item);
          if (member === undefined) continue;
          members.push(member);
          readAt.set(member.target, memberReadAt(item));
        }
        startKey = out.LastEvaluatedKey;
      } while (startKey);
    } catch (error) {
      throw this.fail('queryMembers', error, { capability });
    }
    return { members, readAt, consumedReadUnits, scannedCount };
  }

  /** Writes a member read from its lease at `readAt`, unless the index holds a read at least as new. */
  public async putMember(member: CatalogMember, readAt: number): Promise<MemberWriteOutcome> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: encodeMember(member, readAt) as Record<string, AttributeValue>,
          ...unlessNewerRead(readAt),
        }),
      );
      return 'written';
    } catch (error) {
      if (isConditionFailure(error)) return 'stale';
      throw this.fail('putMember', error, { capability: member.capability, target: member.target });
    }
  }

  /** Removes a member its lease (read at `readAt`) no longer has, unless the index holds a newer read. */
  public async deleteMember(capability: string, target: string, readAt: number): Promise<MemberWriteOutcome> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: memberKey(capability, target),
          ...unlessNewerRead(readAt),
        }),
      );
      return 'written';
    } catch (error) {
      if (isConditionFailure(error)) return 'stale';
      throw this.fail('deleteMember', error, { capability, target });
    }
  }
}

import {
  AttributeValue,
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { LeaseHeldError, LeaseLostError, LeaseStoreError } from '../core/errors';
import { encodeRotationEntry } from '../core/lease-codec';
import { LEASE_ATTR, LeaseStatus, RawItem, RotationEntry } from '../core/lease-schema';
import { encodeRejection } from '../core/rejection';
import type { RejectionWrite } from '../core/rejection-planner';
import { sleep as defaultSleep } from '../core/concurrency';

/** BatchGetItem takes at most this many keys per call. */
export const MAX_KEYS_PER_BATCH_GET = 100;

export interface BatchReadOptions {
  /** Calls for one key set after DynamoDB left keys unprocessed (throttling), before giving up. @default 8 */
  readonly attempts?: number;
  /** First wait before reading unprocessed keys again, doubled each time (with jitter). @default 20 ms */
  readonly baseDelayMs?: number;
  /** Batches in flight at once. @default 8 */
  readonly concurrency?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What one `writeRotation` did: see {@link LeaseStore.writeRotation}. */
export type RotationWriteOutcome = 'written' | 'superseded' | 'gone';

/** What one `writeRejection` did: `written`, or `changed` (the item is no longer the one judged: nothing written). */
export type RejectionWriteOutcome = 'written' | 'changed';

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

  /**
   * The registry's `rotation` write (docs/lease-contract.md): `SET rotation.<capability> =
   * { state, since }` and nothing else, on the conditions `leaseToken = :t` (never into a
   * released or re-acquired lease: a missing item fails the condition, nothing is created) and
   * "no entry, or an older one" (`since` only moves forward, so a late writer never replaces
   * what a later one saw). The nested path needs the map: on a lease without one (every
   * acquire's PutItem writes none), the first entry is written as `SET rotation = :map` on
   * `attribute_not_exists(rotation)`, and a writer that loses that race writes the nested path
   * again. Resolves to what happened: `written`; `superseded` (the lease holds this or a newer
   * entry); `gone` (no item, or another token). One to three UpdateItems, one write unit each.
   * @throws LeaseStoreError when DynamoDB fails (after the SDK's retries)
   */
  public async writeRotation(target: string, leaseToken: string, capability: string, entry: RotationEntry): Promise<RotationWriteOutcome> {
    const value = encodeRotationEntry(entry) as AttributeValue;
    const names = { '#rotation': LEASE_ATTR.rotation, '#leaseToken': LEASE_ATTR.leaseToken };
    const values = { ':token': { S: leaseToken } };
    const nested = () =>
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: key(target),
        UpdateExpression: 'SET #rotation.#capability = :entry',
        // A malformed entry (not a map, or `since` not a number) is replaced like an older one.
        ConditionExpression:
          '#leaseToken = :token AND attribute_type(#rotation, :map) AND (attribute_not_exists(#rotation.#capability) OR NOT attribute_type(#rotation.#capability, :map) ' +
          'OR NOT attribute_type(#rotation.#capability.#since, :number) OR #rotation.#capability.#since < :since)',
        ExpressionAttributeNames: { ...names, '#capability': capability, '#since': 'since' },
        ExpressionAttributeValues: { ...values, ':entry': value, ':since': { N: String(Math.floor(entry.since)) }, ':map': { S: 'M' }, ':number': { S: 'N' } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
    const whole = () =>
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: key(target),
        UpdateExpression: 'SET #rotation = :rotation',
        // No map yet, or something that is not one (only the registry writes `rotation`: a malformed one is replaced).
        ConditionExpression: '#leaseToken = :token AND (attribute_not_exists(#rotation) OR NOT attribute_type(#rotation, :map))',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: { ...values, ':rotation': { M: { [capability]: value } }, ':map': { S: 'M' } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
    // Nested (the usual case); else create the map; else nested again (another writer made it meanwhile).
    for (const command of [nested, whole, nested]) {
      try {
        await this.client.send(command());
        return 'written';
      } catch (error) {
        if (!isConditionFailure(error)) throw wrap('writeRotation', this.tableName, error, { target, capability });
        // The item as it was when the condition failed (ReturnValuesOnConditionCheckFailure).
        const old = (error as { Item?: RawItem }).Item;
        if (old === undefined || old[LEASE_ATTR.leaseToken]?.S !== leaseToken) return 'gone';
        if (old[LEASE_ATTR.rotation]?.M !== undefined && command === nested) return 'superseded';
      }
    }
    return 'superseded';
  }

  /**
   * The registry's `rejection` write (docs/lease-contract.md): `SET rejection = :r`, or `REMOVE
   * rejection` when `write.rejection` is undefined, and nothing else, on the condition that the
   * item is still the one the verdict was judged on: the same `leaseToken` and `renewedAt` (or
   * their absence; a missing item fails it, so nothing is ever created). One UpdateItem, one write
   * unit; zero ELB calls. Resolves `changed` when the condition failed: a newer write of the agent
   * is judged on its own stream record.
   * @throws LeaseStoreError when DynamoDB fails (after the SDK's retries)
   */
  public async writeRejection(write: RejectionWrite): Promise<RejectionWriteOutcome> {
    const names: Record<string, string> = { '#target': LEASE_ATTR.target, '#rejection': LEASE_ATTR.rejection };
    const values: Record<string, AttributeValue> = {};
    const conditions = ['attribute_exists(#target)'];
    for (const [attr, value] of [
      [LEASE_ATTR.leaseToken, write.leaseToken],
      [LEASE_ATTR.renewedAt, write.renewedAt],
    ] as const) {
      names[`#${attr}`] = attr;
      if (value === undefined) conditions.push(`attribute_not_exists(#${attr})`);
      else {
        conditions.push(`#${attr} = :${attr}`);
        values[`:${attr}`] = value as AttributeValue;
      }
    }
    if (write.rejection === undefined) conditions.push('attribute_exists(#rejection)');
    else values[':rejection'] = encodeRejection(write.rejection) as AttributeValue;
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: key(write.target),
          UpdateExpression: write.rejection === undefined ? 'REMOVE #rejection' : 'SET #rejection = :rejection',
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeNames: names,
          ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
        }),
      );
      return 'written';
    } catch (error) {
      if (isConditionFailure(error)) return 'changed';
      throw wrap('writeRejection', this.tableName, error, { target: write.target });
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

  /**
   * Strongly consistent reads of `targets` with BatchGetItem: ≤ 100 keys per call, calls in
   * parallel, keys DynamoDB leaves unprocessed read again with backoff. Returns lease key → item
   * (`undefined` = no item) for every key asked. Throws {@link LeaseStoreError} when a call fails
   * (after the SDK's own retries) or keys stay unprocessed after `attempts` calls.
   */
  public async getMany(targets: readonly string[], options: BatchReadOptions = {}): Promise<Map<string, RawItem | undefined>> {
    const unique = [...new Set(targets)];
    const out = new Map<string, RawItem | undefined>(unique.map((t) => [t, undefined]));
    const batches: string[][] = [];
    for (let i = 0; i < unique.length; i += MAX_KEYS_PER_BATCH_GET) batches.push(unique.slice(i, i + MAX_KEYS_PER_BATCH_GET));
    const attempts = options.attempts ?? 8;
    const base = options.baseDelayMs ?? 20;
    const sleep = options.sleep ?? defaultSleep;
    const readBatch = async (batch: string[]) => {
      let keys: Record<string, AttributeValue>[] = batch.map(key);
      for (let attempt = 1; keys.length > 0; attempt++) {
        if (attempt > attempts) {
          throw new LeaseStoreError(`batchGet on table ${this.tableName} failed: ${keys.length} keys still unprocessed after ${attempts} calls`, {
            context: { tableName: this.tableName, unprocessed: keys.length },
          });
        }
        if (attempt > 1) await sleep(Math.random() * base * 2 ** (attempt - 2) + base / 2);
        let result;
        try {
          result = await this.client.send(new BatchGetItemCommand({ RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } } }));
        } catch (error) {
          throw wrap('batchGet', this.tableName, error, { keys: keys.length });
        }
        for (const item of (result.Responses?.[this.tableName] ?? []) as RawItem[]) {
          const target = item[LEASE_ATTR.target]?.S;
          if (target !== undefined && out.has(target)) out.set(target, item);
        }
        keys = (result.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Record<string, AttributeValue>[];
      }
    };
    let next = 0;
    const workers = Array.from({ length: Math.min(options.concurrency ?? 8, batches.length) }, async () => {
      while (next < batches.length) await readBatch(batches[next++]);
    });
    await Promise.all(workers);
    return out;
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

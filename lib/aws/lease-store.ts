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
import { quoteUntrusted } from '../core/untrusted-text';
import { LEASE_ATTR, LeaseStatus, RawItem, RotationEntry } from '../core/lease-schema';
import { entriesNewerThan, heldBy, LeaseWrite, MAX_ENTRIES_PER_WRITE, RegistryEntry, registryMaps } from '../core/registry-writes';
import { RejectionWrite, retryRejection } from '../core/rejection-planner';
import { registryUpdate } from './registry-update';
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

/** What one {@link LeaseStore.writeEntries} did, per entry, and the UpdateItems it took. */
export interface LeaseWriteOutcome {
  readonly written: number;
  /** The lease already held these entries as new (or, for a removal, not at all): nothing to write. */
  readonly superseded: number;
  /** The lease was released or re-acquired (another token): nothing written. */
  readonly gone: number;
  /** A rejection judged on an item the agent has written since (not only a heartbeat): nothing written; that write's own record is judged. */
  readonly outdated: number;
  /** UpdateItem requests sent (one write unit each, whether or not their condition held). */
  readonly updates: number;
  /** Of those, the ones that changed the item: one stream record each. */
  readonly changed: number;
}

/** UpdateItems one lease write takes at most (per chunk of entries) before it leaves the rest to the next observation. */
export const WRITE_ATTEMPTS = 3;

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
 * Why a write conditional on `leaseToken = :mine` failed, from the item as it was
 * (`ReturnValuesOnConditionCheckFailure: ALL_OLD`): gone, or held by another token.
 */
function lostBecause(error: unknown): string {
  const old = (error as { Item?: RawItem }).Item;
  if (old === undefined) return 'the lease item is gone (released by someone else, or swept after expiry)';
  const agentId = old[LEASE_ATTR.agentId]?.S;
  return `taken over by another holder${agentId === undefined ? '' : ` (agentId ${quoteUntrusted(agentId, 80)})`}`;
}

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
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return out.Attributes as RawItem | undefined;
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseLostError(target, lostBecause(error), { cause: error });
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
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return out.Attributes as RawItem | undefined;
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseLostError(target, lostBecause(error), { cause: error });
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
   * Deletes a lease whose `expiresAt` lies beyond `latest` (the deployment's maximum TTL from now,
   * in the item's unit): such a lease is never routed and would hold its key for years. A lease
   * renewed meanwhile to a sane expiry fails the condition and stays.
   */
  public async deleteIfExpiresAfter(target: string, latest: number): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: key(target),
          ConditionExpression: '#expiresAt > :latest',
          ExpressionAttributeNames: { '#expiresAt': LEASE_ATTR.expiresAt },
          ExpressionAttributeValues: { ':latest': { N: String(latest) } },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('deleteIfExpiresAfter', this.tableName, error, { target });
    }
  }

  /**
   * Deletes an item that has no numeric `expiresAt` (missing, or of another type): it is no
   * lease, and neither DynamoDB's TTL nor the expiry sweep would ever remove it. An item given a
   * numeric expiry meanwhile fails the condition and stays.
   */
  public async deleteIfNoExpiry(target: string): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: key(target),
          ConditionExpression: 'attribute_exists(#target) AND NOT attribute_type(#expiresAt, :number)',
          ExpressionAttributeNames: { '#target': LEASE_ATTR.target, '#expiresAt': LEASE_ATTR.expiresAt },
          ExpressionAttributeValues: { ':number': { S: 'N' } },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw wrap('deleteIfNoExpiry', this.tableName, error, { target });
    }
  }

  /**
   * The registry's write into one lease (docs/lease-contract.md, lib/core/registry-writes.ts):
   * every entry of `write` and its rejection in one UpdateItem (chunks of
   * {@link MAX_ENTRIES_PER_WRITE} entries, the rejection in the first), conditional on
   * `leaseToken` (a released or re-acquired lease is never written, nothing is created), on each
   * entry being newer than the stored one and, with a rejection, on the item being the one judged.
   * A failed condition is no error: the item DynamoDB returns with it says whether the lease is
   * gone, which entries it already holds as new, whether the map exists, and whether the
   * rejection still holds (only a heartbeat landed in between) or was judged on an older write;
   * the rest is written again, at most {@link WRITE_ATTEMPTS} UpdateItems in all (a writer that
   * keeps losing leaves the entries to the next observation). One write unit per UpdateItem for
   * an item ≤ 1 KB; each one that succeeds is one stream record.
   * @throws LeaseStoreError when DynamoDB fails (after the SDK's retries)
   */
  public async writeEntries(write: LeaseWrite): Promise<LeaseWriteOutcome> {
    const outcome = { written: 0, superseded: 0, gone: 0, outdated: 0, updates: 0, changed: 0 };
    const chunks = Math.max(1, Math.ceil(write.entries.length / MAX_ENTRIES_PER_WRITE));
    for (let chunk = 0; chunk < chunks; chunk++) {
      const from = chunk * MAX_ENTRIES_PER_WRITE;
      let entries: readonly RegistryEntry[] = write.entries.slice(from, from + MAX_ENTRIES_PER_WRITE);
      let rejection: RejectionWrite | undefined = chunk === 0 ? write.rejection : undefined;
      let maps = new Set(write.maps);
      for (let attempt = 1; entries.length > 0 || rejection !== undefined; attempt++) {
        const update = attempt > WRITE_ATTEMPTS ? undefined : registryUpdate(this.tableName, write.target, write.leaseToken, entries, maps, rejection);
        if (update === undefined) {
          outcome.superseded += entries.length + (rejection ? 1 : 0);
          break;
        }
        const carried = update.included.length + (update.rejection ? 1 : 0);
        outcome.superseded += update.skipped.length;
        outcome.updates++;
        try {
          await this.client.send(new UpdateItemCommand(update.input));
          outcome.written += carried;
          outcome.changed++;
          break;
        } catch (error) {
          if (!isConditionFailure(error)) throw wrap('writeEntries', this.tableName, error, { target: write.target, entries: carried });
          // The item as it was when the condition failed (ReturnValuesOnConditionCheckFailure).
          const old = (error as { Item?: RawItem }).Item;
          if (!heldBy(old, write.leaseToken)) {
            // This chunk's entries still in play, and every later chunk's.
            outcome.gone += carried + Math.max(0, write.entries.length - from - MAX_ENTRIES_PER_WRITE);
            return outcome;
          }
          const { newer, superseded } = entriesNewerThan(old, update.included);
          outcome.superseded += superseded.length;
          entries = newer;
          maps = new Set(registryMaps(old));
          if (rejection !== undefined) {
            const again = retryRejection(rejection, old);
            if (again === 'superseded') outcome.superseded++;
            else if (again === 'outdated') outcome.outdated++;
            rejection = typeof again === 'string' ? undefined : again;
          }
        }
      }
    }
    return outcome;
  }

  /**
   * One `rotation` entry, as {@link writeEntries} writes it (nested in place first, as into a
   * lease that already has the map): what tests and tools that play the registry use.
   */
  public async writeRotation(target: string, leaseToken: string, capability: string, entry: RotationEntry): Promise<RotationWriteOutcome> {
    const outcome = await this.writeEntries({
      target,
      leaseToken,
      entries: [{ attribute: LEASE_ATTR.rotation, key: capability, value: encodeRotationEntry(entry), since: entry.since }],
      maps: [LEASE_ATTR.rotation],
    });
    return outcome.written > 0 ? 'written' : outcome.gone > 0 ? 'gone' : 'superseded';
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

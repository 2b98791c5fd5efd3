import { AttributeValue, ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { ElbBudgetStateError } from '../core/errors';
import { ELB_BUDGET_ATTR, ELB_BUDGET_ITEM_KEY, REGISTRY_STATE_KEY } from '../core/registry-state';
import { SharedBucket } from '../core/shared-elb-bucket';

/** What a conditional write of the shared bucket did: `conflict` when another container wrote first, with the item as it is now when DynamoDB returned it. */
export type SharedBucketWrite = { readonly outcome: 'written' } | { readonly outcome: 'conflict'; readonly current?: SharedBucket };

const A = ELB_BUDGET_ATTR;
const key = (): Record<string, AttributeValue> => ({ [REGISTRY_STATE_KEY.partition]: { S: ELB_BUDGET_ITEM_KEY.pk }, [REGISTRY_STATE_KEY.sort]: { S: ELB_BUDGET_ITEM_KEY.sk } });
const finite = (v: AttributeValue | undefined): number | undefined => {
  const n = v?.N === undefined ? NaN : Number(v.N);
  return Number.isFinite(n) ? n : undefined;
};

/**
 * The bucket an item holds; `undefined` when there is none (or it has no readable version, which
 * the next write then replaces). Other unreadable fields count against the budget: no tokens, the
 * current time, so a damaged item never hands out a burst it does not have.
 */
export function decodeSharedBucket(item: Record<string, AttributeValue> | undefined, nowMs: number): SharedBucket | undefined {
  const version = finite(item?.[A.version]);
  if (item === undefined || version === undefined) return undefined;
  const holds: Record<string, number> = {};
  for (const [id, until] of Object.entries(item[A.holds]?.M ?? {})) {
    const at = finite(until);
    if (at !== undefined) holds[id] = at;
  }
  return { tokens: finite(item[A.tokens]) ?? 0, atMs: finite(item[A.atMs]) ?? nowMs, version, holds };
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof ConditionalCheckFailedException || (error as { name?: string })?.name === 'ConditionalCheckFailedException';
}

/**
 * The ELB call budget's shared bucket: one item of the registry state table
 * ({@link ELB_BUDGET_ITEM_KEY}), read consistently and replaced with a conditional UpdateItem on
 * the version it was read at, so two containers never both spend one token. A write that loses
 * the race comes back `conflict` with the winner's item (ReturnValuesOnConditionCheckFailure, no
 * second read). Each write is one write unit (the item stays far below 1 KB: at most a burst's
 * worth of holds). DynamoDB failures become {@link ElbBudgetStateError}.
 */
export class SharedBudgetStore {
  /** Reads and writes sent, conflicts among the writes: for the bench and the tests. */
  public reads = 0;
  public writes = 0;
  public conflicts = 0;

  public constructor(
    private readonly client: DynamoDBClient,
    public readonly tableName: string,
  ) {}

  private fail(action: string, error: unknown): ElbBudgetStateError {
    const name = (error as { name?: string })?.name ?? 'Error';
    return new ElbBudgetStateError(`${action} of the shared ELB call budget on table ${this.tableName} failed: ${name}: ${(error as Error)?.message ?? String(error)}`, {
      cause: error,
      context: { tableName: this.tableName },
    });
  }

  /** The bucket as stored now (a consistent read): `undefined` before the registry's first call. */
  public async read(nowMs: number): Promise<SharedBucket | undefined> {
    this.reads++;
    try {
      const out = await this.client.send(new GetItemCommand({ TableName: this.tableName, Key: key(), ConsistentRead: true }));
      return decodeSharedBucket(out.Item, nowMs);
    } catch (error) {
      throw this.fail('read', error);
    }
  }

  /** Writes `next` if the stored bucket is still at `readVersion` (`undefined`: none was stored, or none readable). */
  public async write(next: SharedBucket, readVersion: number | undefined, nowMs: number): Promise<SharedBucketWrite> {
    this.writes++;
    const holds: Record<string, AttributeValue> = Object.fromEntries(Object.entries(next.holds).map(([id, until]) => [id, { N: String(Math.ceil(until)) }]));
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: key(),
          UpdateExpression: 'SET #tokens = :tokens, #atMs = :atMs, #version = :next, #holds = :holds',
          ConditionExpression: readVersion === undefined ? 'attribute_not_exists(#version)' : '#version = :read',
          ExpressionAttributeNames: { '#tokens': A.tokens, '#atMs': A.atMs, '#version': A.version, '#holds': A.holds },
          ExpressionAttributeValues: {
            // Six decimals, rounded down (never a token more than there is): no exponent notation reaches DynamoDB.
            ':tokens': { N: (Math.floor(next.tokens * 1e6) / 1e6).toFixed(6) },
            ':atMs': { N: String(Math.floor(next.atMs)) },
            ':next': { N: String(next.version) },
            ':holds': { M: holds },
            ...(readVersion === undefined ? {} : { ':read': { N: String(readVersion) } }),
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { outcome: 'written' };
    } catch (error) {
      if (!isConditionFailure(error)) throw this.fail('write', error);
      this.conflicts++;
      const current = decodeSharedBucket((error as { Item?: Record<string, AttributeValue> }).Item, nowMs);
      return current === undefined ? { outcome: 'conflict' } : { outcome: 'conflict', current };
    }
  }
}

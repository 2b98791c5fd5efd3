/**
 * The SDK unit tests' shared set-up, in one place: the mocked DynamoDB client, the fake clock,
 * an `AgentLease` with the tests' defaults, and a one-item lease table behind aws-sdk-client-mock
 * (`SdkLeaseTable`): PutItem, UpdateItem (conditional on the token, `ReturnValues: ALL_NEW`),
 * GetItem and DeleteItem act on it as DynamoDB would, and the test plays the registry with
 * `setRotation` and `setRejection`. DynamoDB Local checks the same flows for real in
 * test/integration/sdk-lifecycle.test.ts.
 */
import {
  AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import type { AwsStub } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, vi } from 'vitest';
import type { RotationState } from '../../lib/core/lease-schema';
import { encodeRejection, StoredRejection } from '../../lib/core/rejection';
import { AgentLease, AgentLeaseOptions } from '../../lib/sdk';
import './lease-fixtures'; // registers the aws-sdk-client-mock matchers

/** The fake clock's start (epoch ms) in every SDK test; `NOW_S` in epoch seconds. */
export const NOW_MS = 1_800_000_000_000;
export const NOW_S = NOW_MS / 1000;

/** The DynamoDB client mock of the test file (each file runs in its own process). */
export const ddb = mockClient(DynamoDBClient);

/** As DynamoDB fails a condition; with `ReturnValuesOnConditionCheckFailure: ALL_OLD` it carries the item as it was (`old`). */
export const conditionFailed = (old?: Record<string, AttributeValue>): ConditionalCheckFailedException =>
  Object.assign(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }), old ? { Item: structuredClone(old) } : {});
export const throttled = (): ProvisionedThroughputExceededException =>
  new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} });

/** The options of the tests' lease: 10.0.3.17:8080, vision, ttl 30, no jitter (renewals exactly every ttl/3). */
export function leaseOptions(patch: Partial<AgentLeaseOptions> = {}): AgentLeaseOptions {
  return {
    tableName: 'leases',
    address: '10.0.3.17',
    port: 8080,
    capabilities: ['vision'],
    agentId: 'agent-1',
    ttl: 30,
    client: testClient(),
    random: () => 0.5,
    ...patch,
  };
}

export const newLease = (patch: Partial<AgentLeaseOptions> = {}): AgentLease => new AgentLease(leaseOptions(patch));

/** Before each test: the mock reset and the clock faked at `NOW_MS`; after it, real timers again. */
function useFakeClockAndMock(setUp: () => void): void {
  beforeEach(() => {
    ddb.reset();
    setUp();
    vi.useFakeTimers({ now: NOW_MS });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });
}

/** Registers the file's hooks with a `SdkLeaseTable` answering, emptied before each test; returns it. */
export function useSdkTable(): SdkLeaseTable {
  const table = new SdkLeaseTable();
  useFakeClockAndMock(() => table.reset(ddb));
  return table;
}

/** Registers the file's hooks with every write simply succeeding, for tests that assert the commands sent. */
export function useSdkMock(): void {
  useFakeClockAndMock(() => ddb.on(PutItemCommand).resolves({}).on(UpdateItemCommand).resolves({}).on(DeleteItemCommand).resolves({}));
}

type Item = Record<string, AttributeValue>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type DdbStub = AwsStub<any, any, any>;


export const DEFAULT_KEY = '10.0.3.17:8080';

export class SdkLeaseTable {
  public readonly items = new Map<string, Item>();
  /** Commands in order: put, renew, draining, active, get, delete. */
  public readonly log: string[] = [];
  /** The next command of that kind fails with this error (once). */
  public readonly failNext: Partial<Record<'put' | 'update' | 'get' | 'delete', Error>> = {};

  public constructor(ddb?: DdbStub) {
    if (ddb !== undefined) this.reset(ddb);
  }

  /** Empties the table and answers `ddb`'s commands from it (after `ddb.reset()`). */
  public reset(ddb: DdbStub): void {
    this.items.clear();
    this.log.length = 0;
    for (const key of Object.keys(this.failNext) as (keyof SdkLeaseTable['failNext'])[]) delete this.failNext[key];
    ddb.on(PutItemCommand).callsFake((input: { Item: Item; ConditionExpression?: string; ExpressionAttributeValues?: Item }) => {
      this.log.push('put');
      this.maybeFail('put');
      const key = input.Item.target.S!;
      const old = this.items.get(key);
      const held = old !== undefined && Number(old.expiresAt.N) >= Number(input.ExpressionAttributeValues?.[':now']?.N ?? 0);
      if (input.ConditionExpression !== undefined && held && old.leaseToken.S !== input.ExpressionAttributeValues?.[':mine']?.S) throw conditionFailed();
      this.items.set(key, structuredClone(input.Item));
      return {};
    });
    ddb.on(UpdateItemCommand).callsFake((input: { Key: Item; ExpressionAttributeValues: Item; ReturnValuesOnConditionCheckFailure?: string }) => {
      const values = input.ExpressionAttributeValues;
      const status = values[':status']?.S;
      this.log.push(status ?? 'renew');
      this.maybeFail('update');
      const item = this.items.get(input.Key.target.S!);
      if (item?.leaseToken?.S !== values[':mine']?.S) throw conditionFailed(input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' ? item : undefined);
      if (status !== undefined) item!.status = { S: status };
      else {
        item!.expiresAt = values[':exp'];
        item!.renewedAt = values[':ren'];
      }
      return { Attributes: structuredClone(item) };
    });
    ddb.on(GetItemCommand).callsFake((input: { Key: Item; ConsistentRead?: boolean }) => {
      this.log.push(input.ConsistentRead ? 'get' : 'get-eventually-consistent');
      this.maybeFail('get');
      const item = this.items.get(input.Key.target.S!);
      return item === undefined ? {} : { Item: structuredClone(item) };
    });
    ddb.on(DeleteItemCommand).callsFake((input: { Key: Item; ExpressionAttributeValues: Item }) => {
      this.log.push('delete');
      this.maybeFail('delete');
      const key = input.Key.target.S!;
      if (this.items.get(key)?.leaseToken?.S !== input.ExpressionAttributeValues[':mine']?.S) throw conditionFailed();
      this.items.delete(key);
      return {};
    });
  }

  /** The item of `key`, if any. */
  public get item(): Item | undefined {
    return this.items.get(DEFAULT_KEY);
  }

  public set item(item: Item | undefined) {
    if (item === undefined) this.items.delete(DEFAULT_KEY);
    else this.items.set(DEFAULT_KEY, item);
  }

  /** What the registry does: `SET rotation.<capability> = { state, since }` on the current item. */
  public setRotation(capability: string, state: RotationState, since: number, key = DEFAULT_KEY): void {
    const item = this.items.get(key);
    if (item === undefined) throw new Error(`no item ${key} to write rotation into`);
    const rotation = { ...(item.rotation?.M ?? {}) };
    rotation[capability] = { M: { state: { S: state }, since: { N: String(since) } } };
    item.rotation = { M: rotation };
  }

  /** What the registry does when it refuses the lease or some of its capabilities: `SET rejection = {…}`; undefined removes it. */
  public setRejection(rejection: StoredRejection | undefined, key = DEFAULT_KEY): void {
    const item = this.items.get(key);
    if (item === undefined) throw new Error(`no item ${key} to write a rejection into`);
    if (rejection === undefined) delete item.rejection;
    else item.rejection = encodeRejection(rejection) as AttributeValue;
  }

  /** Another holder takes the key over (same address:port, another token). */
  public takeOver(key = DEFAULT_KEY, agentId?: string): void {
    this.items.set(key, { ...this.items.get(key)!, leaseToken: { S: 'someone-else' }, ...(agentId ? { agentId: { S: agentId } } : {}) });
  }

  /** Another agent writes attributes of the item without the token (the agent grant cannot stop it on ECS). */
  public tamper(patch: Item, key = DEFAULT_KEY): void {
    this.items.set(key, { ...this.items.get(key)!, ...structuredClone(patch) });
  }

  private maybeFail(kind: keyof SdkLeaseTable['failNext']): void {
    const error = this.failNext[kind];
    if (error === undefined) return;
    delete this.failNext[kind];
    throw error;
  }

  public count(kind: string): number {
    return this.log.filter((k) => k === kind).length;
  }
}

export const testClient = (): DynamoDBClient => new DynamoDBClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

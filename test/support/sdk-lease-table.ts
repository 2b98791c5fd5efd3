/**
 * A one-item lease table behind aws-sdk-client-mock, for the SDK's unit tests: PutItem,
 * UpdateItem (conditional on the token, `ReturnValues: ALL_NEW`), GetItem and DeleteItem act on
 * it as DynamoDB would, and the test plays the registry with `setRotation`. DynamoDB Local
 * checks the same flows for real in test/integration/sdk-lifecycle.test.ts.
 */
import {
  AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { AwsStub } from 'aws-sdk-client-mock';
import type { RotationState } from '../../lib/core/lease-schema';

type Item = Record<string, AttributeValue>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type DdbStub = AwsStub<any, any, any>;

/** As DynamoDB fails a condition; with `ReturnValuesOnConditionCheckFailure: ALL_OLD` it carries the item as it was. */
const conditionFailed = (old?: Item) => Object.assign(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }), old ? { Item: structuredClone(old) } : {});

export const DEFAULT_KEY = '10.0.3.17:8080';

export class SdkLeaseTable {
  public readonly items = new Map<string, Item>();
  /** Commands in order: put, renew, draining, active, get, delete. */
  public readonly log: string[] = [];
  /** The next command of that kind fails with this error (once). */
  public readonly failNext: Partial<Record<'put' | 'update' | 'get' | 'delete', Error>> = {};

  public constructor(ddb: DdbStub) {
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

import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  InternalServerError,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  ResourceNotFoundException,
  ScanCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { LeaseStore } from '../../lib/aws/lease-store';
import { LeaseHeldError, LeaseLostError, LeaseStoreError } from '../../lib/core/errors';
import { encodeRotationEntry } from '../../lib/core/lease-codec';
import type { RawItem } from '../../lib/core/lease-schema';
import { entriesNewerThan, MAX_ENTRIES_PER_WRITE, RegistryEntry } from '../../lib/core/registry-writes';
import { encodeRejection, StoredRejection } from '../../lib/core/rejection';
import type { RejectionWrite } from '../../lib/core/rejection-planner';
import { InMemoryLeaseTable } from '../support/in-memory-lease-table';
import { leaseItem, T0 } from '../support/lease-fixtures';

const ddbMock = mockClient(DynamoDBClient);
const client = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const store = new LeaseStore(client, 'leases');

const TARGET = '10.0.0.1:8080';
const TOKEN = 'token-mine';
const item = leaseItem({ address: '10.0.0.1', leaseToken: TOKEN }) as RawItem;

const conditionFailed = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: { httpStatusCode: 400 } });
/** The same exception as another copy of the SDK (or a plain error) would carry it: by name only. */
const conditionFailedByName = () => Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });

beforeEach(() => {
  ddbMock.reset();
});

describe('LeaseStore writes follow the contract', () => {
  it('acquire puts the item on condition: free, expired, or already ours', async () => {
    // Prepare
    ddbMock.on(PutItemCommand).resolves({});

    // Act
    await store.acquire(item, TOKEN, T0);

    // Assess
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(PutItemCommand, {
      TableName: 'leases',
      Item: item as never,
      ConditionExpression: 'attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine',
      ExpressionAttributeNames: { '#target': 'target', '#expiresAt': 'expiresAt', '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: { ':now': { N: String(T0) }, ':mine': { S: TOKEN } },
    });
  });

  it('acquire with takeover drops the condition', async () => {
    // Prepare
    ddbMock.on(PutItemCommand).resolves({});

    // Act
    await store.acquire(item, TOKEN, T0, true);

    // Assess
    const input = ddbMock.commandCalls(PutItemCommand)[0].args[0].input;
    expect(input).toEqual({ TableName: 'leases', Item: item });
  });

  it('renew moves only expiresAt and renewedAt, on condition of our token', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act
    await store.renew(TARGET, TOKEN, T0 + 30, T0 * 1000);

    // Assess
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(UpdateItemCommand, {
      TableName: 'leases',
      Key: { target: { S: TARGET } },
      UpdateExpression: 'SET #expiresAt = :exp, #renewedAt = :ren',
      ConditionExpression: '#leaseToken = :mine',
      ExpressionAttributeNames: { '#expiresAt': 'expiresAt', '#renewedAt': 'renewedAt', '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: { ':exp': { N: String(T0 + 30) }, ':ren': { N: String(T0 * 1000) }, ':mine': { S: TOKEN } },
      ReturnValues: 'ALL_NEW',
    });
  });

  it('renew and setStatus resolve to the item after the write, rotation included', async () => {
    // Prepare
    const after = { ...item, rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: '1800000000000' } } } } } };
    ddbMock.on(UpdateItemCommand).resolves({ Attributes: after as never });

    // Act
    const renewed = await store.renew(TARGET, TOKEN, T0 + 30, T0 * 1000);
    const drained = await store.setStatus(TARGET, TOKEN, 'draining');

    // Assess
    expect(renewed).toEqual(after);
    expect(drained).toEqual(after);
    expect(ddbMock).toHaveReceivedCommandWith(UpdateItemCommand, { UpdateExpression: 'SET #status = :status', ReturnValues: 'ALL_NEW' });
  });

  it('setStatus (drain) sets status on condition of our token', async () => {
    // Prepare
    ddbMock.on(UpdateItemCommand).resolves({});

    // Act
    await store.setStatus(TARGET, TOKEN, 'draining');

    // Assess
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(UpdateItemCommand, {
      Key: { target: { S: TARGET } },
      UpdateExpression: 'SET #status = :status',
      ConditionExpression: '#leaseToken = :mine',
      ExpressionAttributeValues: { ':status': { S: 'draining' }, ':mine': { S: TOKEN } },
    });
  });

  it('release deletes on condition of our token and reports true', async () => {
    // Prepare
    ddbMock.on(DeleteItemCommand).resolves({});

    // Act
    const released = await store.release(TARGET, TOKEN);

    // Assess
    expect(released).toBe(true);
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(DeleteItemCommand, {
      TableName: 'leases',
      Key: { target: { S: TARGET } },
      ConditionExpression: '#leaseToken = :mine',
      ExpressionAttributeNames: { '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: { ':mine': { S: TOKEN } },
    });
  });

  it('deleteIfExpired deletes on condition #expiresAt < :now', async () => {
    // Prepare
    ddbMock.on(DeleteItemCommand).resolves({});

    // Act
    const deleted = await store.deleteIfExpired(TARGET, T0);

    // Assess
    expect(deleted).toBe(true);
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(DeleteItemCommand, {
      TableName: 'leases',
      Key: { target: { S: TARGET } },
      ConditionExpression: '#expiresAt < :now',
      ExpressionAttributeNames: { '#expiresAt': 'expiresAt' },
      ExpressionAttributeValues: { ':now': { N: String(T0) } },
    });
  });
});

describe('LeaseStore.deleteIfNoExpiry', () => {
  it('deletes an item only while it has no numeric expiresAt; a failed condition is false', async () => {
    ddbMock.on(DeleteItemCommand).resolvesOnce({}).rejectsOnce(conditionFailed());
    await expect(store.deleteIfNoExpiry(TARGET)).resolves.toBe(true);
    await expect(store.deleteIfNoExpiry(TARGET)).resolves.toBe(false);
    expect(ddbMock).toHaveReceivedCommandWith(DeleteItemCommand, {
      TableName: 'leases',
      Key: { target: { S: TARGET } },
      ConditionExpression: 'attribute_exists(#target) AND NOT attribute_type(#expiresAt, :number)',
      ExpressionAttributeNames: { '#target': 'target', '#expiresAt': 'expiresAt' },
      ExpressionAttributeValues: { ':number': { S: 'N' } },
    });
  });
});

describe('LeaseStore maps a failed condition to the contract\'s outcome', () => {
  describe.each([
    ['the SDK exception class', conditionFailed],
    ['an error named ConditionalCheckFailedException', conditionFailedByName],
  ])('with %s', (_label, makeError) => {
    it('acquire → LeaseHeldError with the target and the cause', async () => {
      // Prepare
      const cause = makeError();
      ddbMock.on(PutItemCommand).rejects(cause);

      // Act
      const error = await store.acquire(item, TOKEN, T0).catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(LeaseHeldError);
      expect(error).toMatchObject({ code: 'LEASE_HELD', context: { target: TARGET }, cause });
    });

    it('renew → LeaseLostError', async () => {
      // Prepare
      const cause = makeError();
      ddbMock.on(UpdateItemCommand).rejects(cause);

      // Act
      const error = await store.renew(TARGET, TOKEN, T0 + 30, T0 * 1000).catch((e: unknown) => e);

      // Assess
      expect(error).toBeInstanceOf(LeaseLostError);
      expect(error).toMatchObject({ code: 'LEASE_LOST', context: { target: TARGET }, cause });
    });

    it('setStatus → LeaseLostError', async () => {
      // Prepare
      ddbMock.on(UpdateItemCommand).rejects(makeError());

      // Act + Assess
      await expect(store.setStatus(TARGET, TOKEN, 'draining')).rejects.toBeInstanceOf(LeaseLostError);
    });

    it('release → false (the lease was no longer ours)', async () => {
      // Prepare
      ddbMock.on(DeleteItemCommand).rejects(makeError());

      // Act + Assess
      await expect(store.release(TARGET, TOKEN)).resolves.toBe(false);
    });

    it('deleteIfExpired → false (a renewal won)', async () => {
      // Prepare
      ddbMock.on(DeleteItemCommand).rejects(makeError());

      // Act + Assess
      await expect(store.deleteIfExpired(TARGET, T0)).resolves.toBe(false);
    });
  });
});

describe('LeaseStore wraps every other error in LeaseStoreError with its cause', () => {
  const errors: [string, () => Error][] = [
    ['ProvisionedThroughputExceededException', () => new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: { httpStatusCode: 400 } })],
    ['InternalServerError', () => new InternalServerError({ message: 'oops', $metadata: { httpStatusCode: 500 } })],
    ['ResourceNotFoundException', () => new ResourceNotFoundException({ message: 'Requested resource not found', $metadata: { httpStatusCode: 400 } })],
    ['a network error', () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
  ];
  const operations: [string, (s: LeaseStore) => Promise<unknown>][] = [
    ['acquire', (s) => s.acquire(item, TOKEN, T0)],
    ['renew', (s) => s.renew(TARGET, TOKEN, T0 + 30, T0 * 1000)],
    ['setStatus', (s) => s.setStatus(TARGET, TOKEN, 'active')],
    ['release', (s) => s.release(TARGET, TOKEN)],
    ['deleteIfExpired', (s) => s.deleteIfExpired(TARGET, T0)],
    ['get', (s) => s.get(TARGET)],
    ['scan', (s) => s.scanAll()],
  ];
  const cases = operations.flatMap(([op, run]) => errors.map(([name, make]) => [op, name, run, make] as const));

  it.each(cases)('%s with %s', async (op, _name, run, make) => {
    // Prepare
    const cause = make();
    ddbMock.onAnyCommand().rejects(cause);

    // Act
    const error = await run(store).catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(LeaseStoreError);
    expect(error).not.toBeInstanceOf(LeaseHeldError);
    expect(error).not.toBeInstanceOf(LeaseLostError);
    expect(error).toMatchObject({ code: 'LEASE_STORE', cause, context: expect.objectContaining({ tableName: 'leases' }) });
    expect((error as Error).message).toContain(`${op} on table leases failed`);
  });
});

describe('LeaseStore reads', () => {
  it('get reads consistently by default and returns undefined for a missing item', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves({});

    // Act
    const found = await store.get(TARGET);

    // Assess
    expect(found).toBeUndefined();
    expect(ddbMock).toHaveReceivedCommandExactlyOnceWith(GetItemCommand, { TableName: 'leases', Key: { target: { S: TARGET } }, ConsistentRead: true });
  });

  it('get returns the stored item', async () => {
    // Prepare
    ddbMock.on(GetItemCommand).resolves({ Item: item as never });

    // Act + Assess
    await expect(store.get(TARGET, false)).resolves.toEqual(item);
    expect(ddbMock).toHaveReceivedCommandWith(GetItemCommand, { ConsistentRead: false });
  });

  it('scanAll follows pagination with consistent reads and sums consumed capacity', async () => {
    // Prepare
    const [a, b, c] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((address) => leaseItem({ address }));
    ddbMock
      .on(ScanCommand)
      .resolvesOnce({ Items: [a, b] as never, LastEvaluatedKey: { target: b.target } as never, ConsumedCapacity: { CapacityUnits: 1.5 } })
      .resolvesOnce({ Items: [c] as never, ConsumedCapacity: { CapacityUnits: 0.5 } });

    // Act
    const result = await store.scanAll();

    // Assess
    expect(result).toEqual({ items: [a, b, c], consumedReadUnits: 2, pages: 2 });
    expect(ddbMock).toHaveReceivedCommandTimes(ScanCommand, 2);
    expect(ddbMock).toHaveReceivedNthCommandWith(ScanCommand, 1, { TableName: 'leases', ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' });
    expect(ddbMock).toHaveReceivedNthCommandWith(ScanCommand, 2, { TableName: 'leases', ConsistentRead: true, ExclusiveStartKey: { target: b.target } as never });
  });
});

describe('LeaseStore.getMany: consistent batched reads', () => {
  const items = Array.from({ length: 230 }, (_, i) => leaseItem({ address: `10.1.${i >> 8}.${i & 255}` }) as RawItem);
  const byKey = new Map(items.map((it) => [it.target.S!, it]));
  const noSleep = async () => {};

  it('reads ≤ 100 keys per BatchGetItem with ConsistentRead, and answers every key asked (undefined = no item)', async () => {
    // Prepare
    ddbMock.on(BatchGetItemCommand).callsFake((input: { RequestItems: { leases: { Keys: { target: { S: string } }[] } } }) => ({
      Responses: { leases: input.RequestItems.leases.Keys.flatMap((k) => (byKey.has(k.target.S) ? [byKey.get(k.target.S)] : [])) },
    }));
    const keys = [...byKey.keys(), '10.9.9.9:80', [...byKey.keys()][0]];

    // Act
    const reads = await store.getMany(keys, { sleep: noSleep });

    // Assess
    const calls = ddbMock.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input.RequestItems!.leases);
    expect(calls.map((r) => r.Keys!.length).sort((a, b) => a - b)).toEqual([31, 100, 100]);
    expect(calls.every((r) => r.ConsistentRead === true)).toBe(true);
    expect(reads.size).toBe(231);
    expect(reads.get('10.9.9.9:80')).toBeUndefined();
    expect(reads.has('10.9.9.9:80')).toBe(true);
    expect(reads.get(items[7].target.S!)).toEqual(items[7]);
  });

  it('reads keys DynamoDB left unprocessed again, with backoff', async () => {
    // Prepare: the first answer leaves two keys unprocessed
    const keys = items.slice(0, 5).map((it) => it.target.S!);
    ddbMock
      .on(BatchGetItemCommand)
      .resolvesOnce({ Responses: { leases: items.slice(0, 3) as never }, UnprocessedKeys: { leases: { Keys: keys.slice(3).map((k) => ({ target: { S: k } })) } } })
      .resolves({ Responses: { leases: items.slice(3, 5) as never } });
    const sleeps: number[] = [];

    // Act
    const reads = await store.getMany(keys, { sleep: async (ms) => void sleeps.push(ms) });

    // Assess
    expect([...reads.values()].every((v) => v !== undefined)).toBe(true);
    expect(ddbMock).toHaveReceivedNthCommandWith(BatchGetItemCommand, 2, { RequestItems: { leases: { Keys: keys.slice(3).map((k) => ({ target: { S: k } })), ConsistentRead: true } } });
    expect(sleeps).toHaveLength(1);
  });

  it('gives up with LeaseStoreError when keys stay unprocessed, or a call fails', async () => {
    ddbMock.on(BatchGetItemCommand).resolves({ Responses: { leases: [] }, UnprocessedKeys: { leases: { Keys: [{ target: { S: TARGET } }] } } });
    await expect(store.getMany([TARGET], { attempts: 3, sleep: noSleep })).rejects.toThrow(/1 keys still unprocessed after 3 calls/);
    expect(ddbMock).toHaveReceivedCommandTimes(BatchGetItemCommand, 3);

    ddbMock.reset();
    ddbMock.on(BatchGetItemCommand).rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    const error = await store.getMany([TARGET], { sleep: noSleep }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseStoreError);
    expect((error as LeaseStoreError).cause).toBeInstanceOf(ProvisionedThroughputExceededException);
  });

  it('makes no call for no keys', async () => {
    expect((await store.getMany([])).size).toBe(0);
    expect(ddbMock).not.toHaveReceivedAnyCommand();
  });
});

describe('LeaseStore.writeEntries: the registry writes into a lease, one UpdateItem, conditional on the lease token', () => {
  const since = T0 * 1000 + 500;
  const rotation = (key: string, state: string, at = since): RegistryEntry => ({ attribute: 'rotation', key, value: encodeRotationEntry({ state: state as never, since: at }), since: at });
  const failedWith = (old: RawItem | undefined) => Object.assign(conditionFailed(), old ? { Item: old } : {});
  const withRotation = (entries: Record<string, [string, number]>): RawItem => ({
    ...item,
    rotation: { M: Object.fromEntries(Object.entries(entries).map(([c, [state, at]]) => [c, encodeRotationEntry({ state: state as never, since: at })])) },
  });
  const inputs = () => ddbMock.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);

  it('sets every entry in place, on the token, the map, and for each an older, missing or malformed entry', async () => {
    ddbMock.on(UpdateItemCommand).resolves({});
    const outcome = await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy'), rotation('speech', 'initial')], maps: ['rotation'] });
    expect(outcome).toEqual({ written: 2, superseded: 0, gone: 0, outdated: 0, updates: 1, changed: 1 });
    const [input] = inputs();
    expect(input.UpdateExpression).toBe('SET #a0.#k0 = :v0, #a0.#k1 = :v1');
    expect(input.ConditionExpression).toBe(
      '#token = :token AND attribute_type(#a0, :m)' +
        ' AND (attribute_not_exists(#a0.#k0) OR NOT attribute_type(#a0.#k0, :m) OR NOT attribute_type(#a0.#k0.#since, :n) OR #a0.#k0.#since < :s0 OR #a0.#k0.#since > :f0)' +
        ' AND (attribute_not_exists(#a0.#k1) OR NOT attribute_type(#a0.#k1, :m) OR NOT attribute_type(#a0.#k1.#since, :n) OR #a0.#k1.#since < :s1 OR #a0.#k1.#since > :f1)',
    );
    expect(input.ExpressionAttributeNames).toEqual({ '#token': 'leaseToken', '#a0': 'rotation', '#since': 'since', '#k0': 'vision', '#k1': 'speech' });
    // An entry dated beyond the clock-skew allowance (30 s) was forged: replaced like a malformed one.
    expect(input.ExpressionAttributeValues?.[':f0']).toEqual({ N: String(since + 30_000) });
    expect(input.ExpressionAttributeValues).toMatchObject({ ':token': { S: TOKEN }, ':s0': { N: String(since) }, ':v0': { M: { state: { S: 'healthy' }, since: { N: String(since) } } } });
    expect(input.ReturnValuesOnConditionCheckFailure).toBe('ALL_OLD');
  });

  it('planned from a lease without the map (every fresh acquire): the map is written whole, on there being none', async () => {
    ddbMock.on(UpdateItemCommand).resolves({});
    await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy'), rotation('speech', 'initial')], maps: [] });
    const [input] = inputs();
    expect(input.UpdateExpression).toBe('SET #a0 = :w0');
    expect(input.ConditionExpression).toBe('#token = :token AND (attribute_not_exists(#a0) OR NOT attribute_type(#a0, :m))');
    expect(Object.keys(input.ExpressionAttributeValues?.[':w0'].M ?? {})).toEqual(['vision', 'speech']);
  });

  it('guessed wrong (no map after all): the item DynamoDB returns says so, and the map is written whole', async () => {
    ddbMock.on(UpdateItemCommand).rejectsOnce(failedWith(item)).resolves({});
    await expect(store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy')], maps: ['rotation'] })).resolves.toMatchObject({ written: 1, updates: 2, changed: 1 });
    expect(inputs().map((i) => i.UpdateExpression)).toEqual(['SET #a0.#k0 = :v0', 'SET #a0 = :w0']);
  });

  it('loses the race to create the map: writes the entries in place', async () => {
    const made = withRotation({ speech: ['initial', 1] });
    ddbMock.on(UpdateItemCommand).rejectsOnce(failedWith(made)).resolves({});
    await expect(store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy')], maps: [] })).resolves.toMatchObject({ written: 1, updates: 2 });
    expect(inputs().map((i) => i.UpdateExpression)).toEqual(['SET #a0 = :w0', 'SET #a0.#k0 = :v0']);
  });

  it('one entry already newer in the lease: the others are written again without it, in a second UpdateItem', async () => {
    ddbMock.on(UpdateItemCommand).rejectsOnce(failedWith(withRotation({ vision: ['draining', since + 1] }))).resolves({});
    const outcome = await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy'), rotation('speech', 'healthy')], maps: ['rotation'] });
    expect(outcome).toEqual({ written: 1, superseded: 1, gone: 0, outdated: 0, updates: 2, changed: 1 });
    expect(inputs()[1].ExpressionAttributeNames).toMatchObject({ '#k0': 'speech' });
  });

  it.each([
    ['the lease was released (no item)', undefined, { gone: 2 }],
    ['the lease was re-acquired (another token)', leaseItem({ address: '10.0.0.1', leaseToken: 'token-new' }) as RawItem, { gone: 2 }],
    ['the lease already holds these entries or newer ones', withRotation({ vision: ['draining', since + 1], speech: ['healthy', since] }), { superseded: 2 }],
    ['the lease already holds the same states, seen earlier by another writer (on change only)', withRotation({ vision: ['healthy', since - 1], speech: ['healthy', since - 900] }), { superseded: 2 }],
  ] as const)('a failed condition is a no-op, never an error: %s', async (_name, old, expected) => {
    ddbMock.on(UpdateItemCommand).rejects(failedWith(old));
    await expect(store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy'), rotation('speech', 'healthy')], maps: ['rotation'] })).resolves.toMatchObject({
      written: 0,
      updates: 1,
      changed: 0,
      ...expected,
    });
  });

  it('gives up after three UpdateItems when writers keep racing it (the next observation writes the entry)', async () => {
    ddbMock.on(UpdateItemCommand).rejects(failedWith(item)).rejectsOnce(failedWith(item)).rejectsOnce(failedWith(withRotation({ speech: ['healthy', 1] }))).rejectsOnce(failedWith(item));
    await expect(store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy')], maps: [] })).resolves.toMatchObject({ written: 0, superseded: 1, updates: 3 });
  });

  it('removes an entry, on the same conditions', async () => {
    ddbMock.on(UpdateItemCommand).resolves({});
    await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [{ attribute: 'rotation', key: 'vision', since }], maps: ['rotation'] });
    expect(inputs()[0].UpdateExpression).toBe('REMOVE #a0.#k0');
    ddbMock.reset();
    // Nothing to remove from a lease without the map: no request at all.
    await expect(store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [{ attribute: 'rotation', key: 'vision', since }], maps: [] })).resolves.toMatchObject({ superseded: 1, updates: 0 });
    expect(ddbMock).not.toHaveReceivedAnyCommand();
  });

  it(`more than ${MAX_ENTRIES_PER_WRITE} entries go in chunks, each within DynamoDB's 4 KB expression limit`, async () => {
    ddbMock.on(UpdateItemCommand).resolves({});
    const entries = Array.from({ length: MAX_ENTRIES_PER_WRITE + 3 }, (_, i) => rotation(`capability-number-${String(i).padStart(40, '0')}`, 'healthy'));
    await expect(store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries, maps: ['rotation'] })).resolves.toMatchObject({ written: MAX_ENTRIES_PER_WRITE + 3, updates: 2 });
    for (const input of inputs()) expect(Buffer.byteLength(input.ConditionExpression!) + Buffer.byteLength(input.UpdateExpression!)).toBeLessThan(4096);
  });

  it('against the table as DynamoDB evaluates it: written once, then superseded, never into another token, never creating an item', async () => {
    const table = new InMemoryLeaseTable('leases').put(item as never);
    const real = new LeaseStore(table.asClient(), 'leases');
    await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'initial', since)], maps: [] })).resolves.toMatchObject({ written: 1, changed: 1 });
    await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy', since + 5), rotation('speech', 'healthy', since + 5)], maps: [] })).resolves.toMatchObject({
      written: 2,
      updates: 2,
      changed: 1,
    });
    await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'initial', since + 1)], maps: ['rotation'] })).resolves.toMatchObject({ superseded: 1, changed: 0 });
    await expect(real.writeEntries({ target: TARGET, leaseToken: 'someone-else', entries: [rotation('vision', 'draining', since + 9)], maps: ['rotation'] })).resolves.toMatchObject({ gone: 1, changed: 0 });
    await expect(real.writeEntries({ target: '10.9.9.9:80', leaseToken: TOKEN, entries: [rotation('vision', 'draining', since + 9)], maps: [] })).resolves.toMatchObject({ gone: 1 });
    expect(table.items.has('10.9.9.9:80')).toBe(false);
    expect(table.items.get(TARGET)?.rotation).toEqual(withRotation({ vision: ['healthy', since + 5], speech: ['healthy', since + 5] }).rotation);
    expect(table.streamRecords).toHaveLength(2);
  });

  it('an entry an agent forged with a since in the future is overwritten, even naming the same state (condition and retry alike)', async () => {
    const forged = withRotation({ vision: ['healthy', 4_102_444_800_000], speech: ['absent', 4_102_444_800_000] });
    const table = new InMemoryLeaseTable('leases').put(forged as never);
    const real = new LeaseStore(table.asClient(), 'leases');
    await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy', since)], maps: ['rotation'] })).resolves.toMatchObject({ written: 1, changed: 1 });
    expect(table.items.get(TARGET)?.rotation).toEqual(withRotation({ vision: ['healthy', since], speech: ['absent', 4_102_444_800_000] }).rotation);
    // From the item a failed condition returned: the forged entry is still to be written.
    expect(entriesNewerThan(forged, [rotation('speech', 'absent', since)]).newer).toHaveLength(1);
    expect(entriesNewerThan(withRotation({ speech: ['absent', since - 5] }), [rotation('speech', 'absent', since)]).newer).toHaveLength(0);
  });

  describe('with the lease\'s rejection: in the same UpdateItem, on the item judged', () => {
    const refused: StoredRejection = { reason: 'unknown-capability', message: 'capability "ocr" is not routed', capabilities: ['ocr'], since };
    const told = (judged: RawItem, rejection: StoredRejection | null = refused): RejectionWrite => ({
      target: TARGET,
      leaseToken: judged.leaseToken,
      renewedAt: judged.renewedAt,
      judged,
      ...(rejection ? { rejection } : {}),
    });
    const beat = { ...item, expiresAt: { N: String(T0 + 40) }, renewedAt: { N: String(T0 * 1000 + 10_000) } } as RawItem;

    it('rotation entries and the rejection: one UpdateItem, conditional on the token, the entries and renewedAt as judged', async () => {
      ddbMock.on(UpdateItemCommand).resolves({});
      const outcome = await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy')], maps: ['rotation'], rejection: told(item) });
      expect(outcome).toEqual({ written: 2, superseded: 0, gone: 0, outdated: 0, updates: 1, changed: 1 });
      const [input] = inputs();
      expect(input.UpdateExpression).toBe('SET #a0.#k0 = :v0, #rejection = :rejection');
      expect(input.ConditionExpression).toMatch(/^#token = :token AND attribute_type\(#a0, :m\) AND \(.*\) AND #renewedAt = :renewedAt$/);
      expect(input.ExpressionAttributeValues?.[':rejection']).toEqual(encodeRejection(refused));
    });

    it('a rejection alone: one UpdateItem; a removal asks for one to remove', async () => {
      ddbMock.on(UpdateItemCommand).resolves({});
      await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [], maps: [], rejection: told(item) });
      await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [], maps: [], rejection: told(item, null) });
      expect(inputs().map((i) => [i.UpdateExpression, i.ConditionExpression])).toEqual([
        ['SET #rejection = :rejection', '#token = :token AND #renewedAt = :renewedAt'],
        ['REMOVE #rejection', '#token = :token AND #renewedAt = :renewedAt AND attribute_exists(#rejection)'],
      ]);
    });

    it('against the table as DynamoDB evaluates it: a heartbeat in between costs one more UpdateItem, an agent\'s rewrite leaves it to that write\'s record', async () => {
      const table = new InMemoryLeaseTable('leases').put(beat as never);
      const real = new LeaseStore(table.asClient(), 'leases');
      // Judged before the heartbeat: written again on the heartbeat's renewedAt, with the entry.
      await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy')], maps: [], rejection: told(item) })).resolves.toEqual({
        written: 2,
        superseded: 0,
        gone: 0,
        outdated: 0,
        updates: 2,
        changed: 1,
      });
      expect(table.items.get(TARGET)?.rejection).toEqual(encodeRejection(refused));
      // Told already (another pass): nothing more.
      await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [], maps: [], rejection: told(item) })).resolves.toMatchObject({ superseded: 1, written: 0, changed: 0 });
      // The agent changed its capabilities meanwhile: a removal judged on the old item is outdated.
      const fixed = { ...table.items.get(TARGET)!, capabilities: { SS: ['speech'] }, renewedAt: { N: String(T0 * 1000 + 20_000) } };
      table.put(fixed as never);
      await expect(real.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [], maps: [], rejection: told(beat, null) })).resolves.toMatchObject({ outdated: 1, written: 0, updates: 1 });
      // A lease without a token: conditional on there being none, on an item that exists; never creates one.
      const { leaseToken: _none, ...tokenless } = item as Record<string, RawItem[string]>;
      table.put({ ...tokenless, target: { S: '10.0.0.9:8080' } } as never);
      await expect(real.writeEntries({ target: '10.0.0.9:8080', leaseToken: undefined, entries: [], maps: [], rejection: { ...told(tokenless), target: '10.0.0.9:8080' } })).resolves.toMatchObject({ written: 1 });
      await expect(real.writeEntries({ target: '10.0.0.8:8080', leaseToken: undefined, entries: [], maps: [], rejection: { ...told(tokenless), target: '10.0.0.8:8080' } })).resolves.toMatchObject({ gone: 1 });
      expect(table.items.has('10.0.0.8:8080')).toBe(false);
    });
  });

  it('DynamoDB failing is a LeaseStoreError naming the target', async () => {
    ddbMock.on(UpdateItemCommand).rejects(new InternalServerError({ message: 'boom', $metadata: { httpStatusCode: 500 } }));
    const error = await store.writeEntries({ target: TARGET, leaseToken: TOKEN, entries: [rotation('vision', 'healthy')], maps: ['rotation'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseStoreError);
    expect((error as Error).message).toContain('writeEntries on table leases failed');
  });

  it('writeRotation: one entry, what tools that play the registry call', async () => {
    ddbMock.on(UpdateItemCommand).resolves({});
    await expect(store.writeRotation(TARGET, TOKEN, 'vision', { state: 'healthy', since })).resolves.toBe('written');
    ddbMock.on(UpdateItemCommand).rejects(failedWith(undefined));
    await expect(store.writeRotation(TARGET, TOKEN, 'vision', { state: 'healthy', since })).resolves.toBe('gone');
    ddbMock.on(UpdateItemCommand).rejects(failedWith(withRotation({ vision: ['healthy', since] })));
    await expect(store.writeRotation(TARGET, TOKEN, 'vision', { state: 'healthy', since })).resolves.toBe('superseded');
  });
});

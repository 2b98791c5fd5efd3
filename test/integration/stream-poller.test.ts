import {
  CreateTableCommand,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  TrimmedDataAccessException,
  _Record,
} from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDbLocal, startDynamoDbLocal } from '../../lib/local/emulators';
import { StreamHandler, StreamPoller, StreamPollerOptions, toLambdaRecord } from '../../lib/local/stream/stream-poller';
import { sleep } from '../../lib/core/concurrency';

let ddbLocal: DynamoDbLocal;
let ddb: DynamoDBClient;
let streams: DynamoDBStreamsClient;
const pollers: StreamPoller[] = [];
let tableCounter = 0;

/** Fast polling so the suite stays quick; semantics do not depend on it. */
const FAST: Partial<StreamPollerOptions> = { pollIntervalMs: 50, retryBaseDelayMs: 20, retryMaxDelayMs: 200, shardDiscoveryIntervalMs: 200 };

async function createStreamTable(ttl = false): Promise<{ table: string; streamArn: string }> {
  const table = `stream-test-${++tableCounter}`;
  const res = await ddb.send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'k', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'k', KeyType: 'HASH' }],
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    }),
  );
  if (ttl) await ddb.send(new UpdateTimeToLiveCommand({ TableName: table, TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiresAt' } }));
  const streamArn = res.TableDescription?.LatestStreamArn;
  if (!streamArn) throw new Error('no stream ARN');
  return { table, streamArn };
}

function put(table: string, k: string, extra: Record<string, { N: string } | { S: string }> = {}): Promise<unknown> {
  return ddb.send(new PutItemCommand({ TableName: table, Item: { k: { S: k }, ...extra } }));
}

async function putMany(table: string, count: number): Promise<string[]> {
  const keys = Array.from({ length: count }, (_, i) => `k${i}`);
  for (const k of keys) await put(table, k);
  return keys;
}

function poller(options: Omit<StreamPollerOptions, 'client'> & { client?: DynamoDBStreamsClient }): StreamPoller {
  const p = new StreamPoller({ ...FAST, client: streams, ...options });
  pollers.push(p);
  return p.start();
}

const keyOf = (r: DynamoDBRecord): string => r.dynamodb?.Keys?.k?.S ?? '?';
const keysOf = (e: DynamoDBStreamEvent): string[] => e.Records.map(keyOf);

// The TTL sweep of DynamoDB Local runs about every 10 s: start that table first, check it last.
let ttlTable: { table: string; streamArn: string };
const ttlRecords: DynamoDBRecord[] = [];

beforeAll(async () => {
  ddbLocal = await startDynamoDbLocal();
  ddb = new DynamoDBClient(ddbLocal.clientConfig);
  streams = new DynamoDBStreamsClient(ddbLocal.clientConfig);
  ttlTable = await createStreamTable(true);
  await put(ttlTable.table, 'expired', { expiresAt: { N: String(Math.floor(Date.now() / 1000) - 60) }, agentId: { S: 'gone' } });
  await put(ttlTable.table, 'live', { expiresAt: { N: String(Math.floor(Date.now() / 1000) + 3600) } });
  poller({
    streamArn: ttlTable.streamArn,
    handler: async (event) => {
      ttlRecords.push(...event.Records);
    },
  });
});

afterEach(async () => {
  // Keep the TTL poller (the first one) running across tests.
  await Promise.all(pollers.splice(1).map((p) => p.stop()));
});

afterAll(async () => {
  await Promise.all(pollers.map((p) => p.stop()));
  ddb?.destroy();
  streams?.destroy();
  await ddbLocal?.stop();
});

describe('toLambdaRecord', () => {
  it("converts a Streams API record to Lambda's event record", () => {
    const record: _Record = {
      eventID: 'e1',
      eventName: 'REMOVE',
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: 'us-east-1',
      userIdentity: { Type: 'Service', PrincipalId: 'dynamodb.amazonaws.com' },
      dynamodb: {
        ApproximateCreationDateTime: new Date(1_700_000_000_000),
        Keys: { k: { S: 'a' } },
        OldImage: {
          k: { S: 'a' },
          n: { N: '1' },
          b: { B: new Uint8Array([1, 2, 3]) },
          bs: { BS: [new Uint8Array([255])] },
          ss: { SS: ['x', 'y'] },
          m: { M: { l: { L: [{ BOOL: true }, { NULL: true }, { NS: ['1', '2'] }] } } },
        },
        SequenceNumber: '100',
        SizeBytes: 42,
        StreamViewType: 'NEW_AND_OLD_IMAGES',
      },
    };
    expect(toLambdaRecord(record, 'arn:stream')).toEqual({
      eventID: 'e1',
      eventName: 'REMOVE',
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: 'us-east-1',
      eventSourceARN: 'arn:stream',
      userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' },
      dynamodb: {
        ApproximateCreationDateTime: 1_700_000_000,
        Keys: { k: { S: 'a' } },
        OldImage: {
          k: { S: 'a' },
          n: { N: '1' },
          b: { B: 'AQID' },
          bs: { BS: ['/w=='] },
          ss: { SS: ['x', 'y'] },
          m: { M: { l: { L: [{ BOOL: true }, { NULL: true }, { NS: ['1', '2'] }] } } },
        },
        SequenceNumber: '100',
        SizeBytes: 42,
        StreamViewType: 'NEW_AND_OLD_IMAGES',
      },
    });
  });
});

describe('StreamPoller against DynamoDB Local', () => {
  it('delivers INSERT, MODIFY and REMOVE in order with their images, in Lambda event shape', async () => {
    const { table, streamArn } = await createStreamTable();
    const records: DynamoDBRecord[] = [];
    await put(table, 'a', { v: { N: '1' } }); // before the poller starts: read from TRIM_HORIZON
    const p = poller({ streamArn, handler: async (e) => void records.push(...e.Records) });
    await ddb.send(new UpdateItemCommand({ TableName: table, Key: { k: { S: 'a' } }, UpdateExpression: 'SET v = :v', ExpressionAttributeValues: { ':v': { N: '2' } } }));
    await put(table, 'b', { v: { S: 'x' } });
    await ddb.send(new DeleteItemCommand({ TableName: table, Key: { k: { S: 'a' } } }));
    await p.drain(10_000);

    expect(records.map((r) => `${r.eventName}:${keyOf(r)}`)).toEqual(['INSERT:a', 'MODIFY:a', 'INSERT:b', 'REMOVE:a']);
    const [insert, modify, , remove] = records as [DynamoDBRecord, DynamoDBRecord, DynamoDBRecord, DynamoDBRecord];
    expect(insert.dynamodb?.NewImage).toEqual({ k: { S: 'a' }, v: { N: '1' } });
    expect(insert.dynamodb?.OldImage).toBeUndefined();
    expect(modify.dynamodb?.OldImage).toEqual({ k: { S: 'a' }, v: { N: '1' } });
    expect(modify.dynamodb?.NewImage).toEqual({ k: { S: 'a' }, v: { N: '2' } });
    expect(remove.dynamodb?.OldImage).toEqual({ k: { S: 'a' }, v: { N: '2' } });
    expect(remove.dynamodb?.NewImage).toBeUndefined();
    for (const r of records) {
      expect(r.eventSourceARN).toBe(streamArn);
      expect(r.eventSource).toBe('aws:dynamodb');
      expect(r.dynamodb?.StreamViewType).toBe('NEW_AND_OLD_IMAGES');
      expect(typeof r.dynamodb?.SizeBytes).toBe('number');
      // Epoch seconds (DynamoDB Local rounds down to the minute).
      const created = r.dynamodb?.ApproximateCreationDateTime ?? 0;
      expect(Math.abs(created - Date.now() / 1000)).toBeLessThan(120);
    }
    const sequence = records.map((r) => BigInt(r.dynamodb?.SequenceNumber ?? '0'));
    expect([...sequence].sort((x, y) => (x < y ? -1 : 1))).toEqual(sequence);
  });

  it('batchItemFailures: redelivers from the earliest reported record on, never a record before it', async () => {
    const { table, streamArn } = await createStreamTable();
    const keys = await putMany(table, 10);
    const invocations: string[][] = [];
    const acked: string[] = [];
    const handler: StreamHandler = async (event): Promise<DynamoDBBatchResponse> => {
      const batch = keysOf(event);
      invocations.push(batch);
      const seq = (k: string): string => event.Records.find((r) => keyOf(r) === k)?.dynamodb?.SequenceNumber ?? '';
      let failures: string[] = [];
      if (invocations.length === 1) failures = [seq('k6'), seq('k3')]; // the earliest one counts
      if (invocations.length === 2) failures = [seq('k7')];
      const firstFailed = failures.length ? Math.min(...failures.map((s) => event.Records.findIndex((r) => r.dynamodb?.SequenceNumber === s))) : batch.length;
      acked.push(...batch.slice(0, firstFailed));
      return { batchItemFailures: failures.map((itemIdentifier) => ({ itemIdentifier })) };
    };
    const p = poller({ streamArn, handler, batchSize: 10 });
    await p.drain(10_000);
    expect(invocations).toEqual([keys, keys.slice(3), keys.slice(7)]);
    expect(acked).toEqual(keys);
    expect(p.stats().recordsDelivered).toBe(10);
  });

  it('a batch that throws once is bisected; the halves are retried in order and every record is delivered once', async () => {
    const { table, streamArn } = await createStreamTable();
    const keys = await putMany(table, 8);
    const invocations: string[][] = [];
    const acked: string[] = [];
    const errors: unknown[] = [];
    const p = poller({
      streamArn,
      batchSize: 8,
      onError: (err) => errors.push(err),
      handler: async (event) => {
        invocations.push(keysOf(event));
        if (invocations.length === 1) throw new Error('transient');
        acked.push(...keysOf(event));
      },
    });
    await p.drain(10_000);
    expect(invocations).toEqual([keys, keys.slice(0, 4), keys.slice(4)]);
    expect(acked).toEqual(keys);
    expect(errors).toHaveLength(1);
  });

  it('a record that keeps failing is isolated by bisection and retried until it succeeds; nothing is skipped or reordered', async () => {
    const { table, streamArn } = await createStreamTable();
    const keys = await putMany(table, 8);
    const invocations: string[][] = [];
    const acked: string[] = [];
    let poisonFailures = 0;
    const outcomes: string[] = [];
    const p = poller({
      streamArn,
      batchSize: 8,
      onBatch: (info) => outcomes.push(`${info.size}:${info.outcome}`),
      handler: async (event) => {
        const batch = keysOf(event);
        invocations.push(batch);
        if (batch.includes('k5') && poisonFailures < 3) {
          poisonFailures++;
          throw new Error('poison');
        }
        acked.push(...batch);
      },
    });
    await p.drain(10_000);
    expect(acked).toEqual(keys);
    expect(invocations).toEqual([keys, keys.slice(0, 4), keys.slice(4), ['k4', 'k5'], ['k4'], ['k5'], ['k6', 'k7']]);
    expect(outcomes).toEqual(['8:error', '4:success', '4:error', '2:error', '1:success', '1:success', '2:success']);
  });

  it('only a finite maxRetries gives up on a batch, and reports it to onDiscard', async () => {
    const { table, streamArn } = await createStreamTable();
    await putMany(table, 3);
    const delivered: string[] = [];
    const discarded: string[][] = [];
    let k1Attempts = 0;
    const p = poller({
      streamArn,
      batchSize: 1,
      maxRetries: 2,
      onDiscard: (d) => discarded.push(d.records.map(keyOf)),
      handler: async (e) => {
        if (keysOf(e).includes('k1')) {
          k1Attempts++;
          throw new Error('always');
        }
        delivered.push(...keysOf(e));
      },
    });
    await p.drain(10_000);
    expect(delivered).toEqual(['k0', 'k2']);
    expect(discarded).toEqual([['k1']]);
    expect(k1Attempts).toBe(3);
    expect(p.stats()).toMatchObject({ recordsDelivered: 2, recordsDiscarded: 1, failedInvocations: 3 });
  });

  it('drain that times out says why: a batch failing without progress, or a stream that keeps growing', async () => {
    const stuck = await createStreamTable();
    await putMany(stuck.table, 2);
    let failures = 0;
    let retrying!: () => void;
    const retried = new Promise<void>((resolve) => (retrying = resolve));
    const failing = poller({
      streamArn: stuck.streamArn,
      bisectOnError: false,
      handler: async (e) => {
        if (++failures === 2) retrying();
        return { batchItemFailures: [{ itemIdentifier: e.Records[0].dynamodb!.SequenceNumber! }] };
      },
    });
    // Under way before drain starts, so its window sees retries whatever the machine's load; it never drains: the deadline ends the wait.
    await retried;
    await expect(failing.drain(1_500)).rejects.toThrow(/delivering a batch: attempt \d+, last partial-failure.*0 records acknowledged in \d+ invocations \(\d+ failed\): no progress, the handler keeps failing the same batch/);
    expect(failures).toBeGreaterThan(1);

    const growing = await createStreamTable();
    await put(growing.table, 'seed');
    let writes = 0;
    let echoing!: () => void;
    const echoed = new Promise<void>((resolve) => (echoing = resolve));
    // Every batch writes a record of its own (as a registry writing into the leases it was told about).
    const feeding = poller({
      streamArn: growing.streamArn,
      handler: async () => {
        await put(growing.table, `echo-${++writes}`);
        if (writes === 2) echoing();
      },
    });
    await echoed;
    await expect(feeding.drain(1_500)).rejects.toThrow(/records acknowledged in \d+ invocations \(0 failed\): records kept coming faster than they were delivered/);
  });

  it('honours batchSize and the batching window', async () => {
    const { table, streamArn } = await createStreamTable();
    const keys = await putMany(table, 7);
    const sized: string[][] = [];
    const p1 = poller({ streamArn, batchSize: 3, handler: async (e) => void sized.push(keysOf(e)) });
    await p1.drain(10_000);
    expect(sized).toEqual([keys.slice(0, 3), keys.slice(3, 6), keys.slice(6)]);
    await p1.stop();

    const windowed: string[][] = [];
    const p2 = poller({ streamArn, checkpoints: p1.checkpoints(), batchingWindowMs: 1500, handler: async (e) => void windowed.push(keysOf(e)) });
    for (const k of ['w0', 'w1', 'w2', 'w3']) {
      await put(table, k);
      await sleep(100);
    }
    await p2.drain(10_000);
    expect(windowed).toEqual([['w0', 'w1', 'w2', 'w3']]);
  });

  it("starts a batching window when the previous invocation completes (Lambda's rule for streams): a record after a quiet spell goes at the next read", async () => {
    const { table, streamArn } = await createStreamTable();
    const windowMs = 5_000;
    const batches: { keys: string[]; lagMs: number }[] = [];
    const p = poller({ streamArn, batchingWindowMs: windowMs, handler: async () => undefined, onBatch: (info) => void batches.push({ keys: [], lagMs: info.pollerLagMs }) });
    await put(table, 'q0');
    await p.drain(30_000);
    // A quiet spell longer than the window: the next window ran out long before the record comes.
    await sleep(windowMs + 500);
    await put(table, 'q1');
    await p.drain(30_000);
    expect(batches).toHaveLength(2);
    // With the window counted from a batch's first record (Kafka's rule) q1 would wait all of it.
    expect(batches[1].lagMs).toBeLessThan(windowMs);
  });

  it('stop() waits for the in-flight invocation; a poller resumed from checkpoints delivers only newer records', async () => {
    const { table, streamArn } = await createStreamTable();
    await putMany(table, 2);
    let inFlight = false;
    let finished = false;
    const first: string[] = [];
    const p1 = poller({
      streamArn,
      handler: async (e) => {
        inFlight = true;
        await sleep(300);
        first.push(...keysOf(e));
        finished = true;
      },
    });
    while (!inFlight) await sleep(10);
    await p1.stop();
    expect(finished).toBe(true);
    expect(first).toEqual(['k0', 'k1']);

    await put(table, 'later');
    const second: string[] = [];
    const p2 = poller({ streamArn, checkpoints: p1.checkpoints(), handler: async (e) => void second.push(...keysOf(e)) });
    await p2.drain(10_000);
    expect(second).toEqual(['later']);
  });

  it('expired or trimmed iterators are replaced after the last delivered record: no loss, no duplicate', async () => {
    const { table, streamArn } = await createStreamTable();
    const client = new DynamoDBStreamsClient(ddbLocal.clientConfig);
    const pending: Error[] = [];
    let getRecordsCalls = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetRecordsCommand' && ++getRecordsCalls % 2 === 0) {
          const err = pending.shift();
          if (err) throw err;
        }
        return next(args);
      },
      { step: 'initialize', name: 'inject-iterator-failures' },
    );
    const delivered: string[] = [];
    const errors: string[] = [];
    const p = poller({
      streamArn,
      client,
      batchingWindowMs: 300, // records sit in the buffer when the iterator "expires"
      onError: (err) => errors.push((err as Error).name),
      handler: async (e) => void delivered.push(...keysOf(e)),
    });
    await putMany(table, 3);
    pending.push(
      new ExpiredIteratorException({ message: 'Iterator expired', $metadata: {} }),
      new TrimmedDataAccessException({ message: 'trimmed', $metadata: {} }),
    );
    while (pending.length > 0) await sleep(10);
    await p.drain(10_000);
    for (const k of ['x0', 'x1', 'x2']) await put(table, k);
    pending.push(new ExpiredIteratorException({ message: 'Iterator expired', $metadata: {} }));
    while (pending.length > 0) await sleep(10);
    await p.drain(10_000);
    expect(delivered).toEqual(['k0', 'k1', 'k2', 'x0', 'x1', 'x2']);
    expect(errors).toEqual([]); // handled silently, as Lambda does
    client.destroy();
  });

  it('DynamoDB Local TTL deletions arrive as records with the old image and eventName UNKNOWN_TO_SDK_VERSION', async () => {
    const deadline = Date.now() + 25_000;
    const isRemoval = (r: DynamoDBRecord): boolean => keyOf(r) === 'expired' && r.dynamodb?.NewImage === undefined;
    const isLive = (r: DynamoDBRecord): boolean => keyOf(r) === 'live';
    while (!(ttlRecords.some(isRemoval) && ttlRecords.some(isLive)) && Date.now() < deadline) await sleep(100);
    const removal = ttlRecords.find(isRemoval);
    expect(removal).toBeDefined();
    expect(removal?.eventName).toBe('UNKNOWN_TO_SDK_VERSION');
    expect(removal?.dynamodb?.OldImage).toMatchObject({ k: { S: 'expired' }, agentId: { S: 'gone' } });
    // DynamoDB Local's TTL sweep may delete 'expired' before 'live' is written (a loaded machine):
    // the order that holds is per item.
    const events = ttlRecords.map((r) => `${r.eventName}:${keyOf(r)}`);
    expect([...events].sort()).toEqual(['INSERT:expired', 'INSERT:live', 'UNKNOWN_TO_SDK_VERSION:expired']);
    expect(events.indexOf('INSERT:expired')).toBeLessThan(events.indexOf('UNKNOWN_TO_SDK_VERSION:expired'));
  });
});

describe('StreamPoller shard lineage (scripted stream)', () => {
  it('reads a parent shard to its end before its child, and follows new shards', async () => {
    const arn = 'arn:aws:dynamodb:local:000000000000:table/t/stream/1';
    const rec = (seq: number): _Record => ({ eventName: 'INSERT', dynamodb: { SequenceNumber: String(seq), Keys: { k: { S: `r${seq}` } } } });
    // The child is listed first; the parent is closed and holds records 1-3, the child 4-5.
    const shards: Record<string, _Record[]> = { parent: [rec(1), rec(2), rec(3)], child: [rec(4), rec(5)] };
    const calls: string[] = [];
    const fake = {
      send: async (command: unknown): Promise<unknown> => {
        if (command instanceof DescribeStreamCommand) {
          return { StreamDescription: { Shards: [{ ShardId: 'child', ParentShardId: 'parent' }, { ShardId: 'parent' }] } };
        }
        if (command instanceof GetShardIteratorCommand) {
          calls.push(`iterator:${command.input.ShardId}`);
          return { ShardIterator: `${command.input.ShardId}:0` };
        }
        if (command instanceof GetRecordsCommand) {
          const [shard, offset] = (command.input.ShardIterator ?? '').split(':') as [string, string];
          const all = shards[shard] ?? [];
          const page = all.slice(Number(offset), Number(offset) + 2);
          const next = Number(offset) + page.length;
          calls.push(`read:${shard}`);
          // The parent is closed: no next iterator once read to its end. The child stays open.
          return { Records: page, NextShardIterator: shard === 'parent' && next >= all.length ? undefined : `${shard}:${next}` };
        }
        throw new Error('unexpected command');
      },
    } as unknown as DynamoDBStreamsClient;
    const delivered: string[] = [];
    const p = poller({ streamArn: arn, client: fake, batchSize: 2, handler: async (e) => void delivered.push(...keysOf(e)) });
    await p.drain(5000);
    expect(delivered).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(calls.indexOf('iterator:child')).toBeGreaterThan(calls.lastIndexOf('read:parent'));
    expect(p.stats().shards).toMatchObject({ parent: { status: 'finished', checkpoint: '3' }, child: { status: 'running', checkpoint: '5' } });
  });
});

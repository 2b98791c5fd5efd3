import { performance } from 'node:perf_hooks';
import {
  BatchGetItemCommand,
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  DynamoDBClientConfig,
  PutItemCommand,
  UpdateItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand, DescribeStreamCommand } from '@aws-sdk/client-dynamodb-streams';
import { sleep } from '../lib/core/concurrency';

export interface WarmUpReport {
  readonly seconds: number;
  readonly requests: number;
  /** Write latency in the first and the last second of the warm-up, p50 ms: what a cold JVM costs. */
  readonly firstSecondP50Ms: number;
  readonly lastSecondP50Ms: number;
}

const TABLE = 'bench-warm-up';

/**
 * Brings a freshly started DynamoDB Local up to speed before a benchmark measures through it.
 * DynamoDB Local is a JVM: for its first seconds it interprets and compiles its request path,
 * and writes take 100–900 ms instead of 3 ms (measured at 200 writes/s on the 2-core bench
 * machine: p50 920 ms in the first second, 25 ms in the fifth, 3–4 ms from the seventh on). A
 * DynamoDB table on AWS has no such phase, so a join measured in it would time the emulator's
 * compiler, not the registry. The same kinds of request the fleet and the registry make
 * (PutItem, UpdateItem returning the item, consistent BatchGetItem, GetRecords of a stream) go
 * to a scratch table with a stream of its own, which is deleted afterwards; nothing touches the
 * lease table or its stream.
 */
export async function warmUpDynamoDb(config: DynamoDBClientConfig, seconds: number, ratePerSecond = 200): Promise<WarmUpReport> {
  const ddb = new DynamoDBClient({ ...config, maxAttempts: 3 });
  const streams = new DynamoDBStreamsClient({ ...config, maxAttempts: 3 });
  try {
    const created = await ddb.send(
      new CreateTableCommand({
        TableName: TABLE,
        KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
      }),
    );
    await waitUntilTableExists({ client: ddb, maxWaitTime: 30 }, { TableName: TABLE });
    const streamArn = created.TableDescription?.LatestStreamArn;
    let reading = streamArn !== undefined;
    const reader = (async () => {
      if (!streamArn) return;
      const shard = (await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }))).StreamDescription?.Shards?.[0]?.ShardId;
      if (!shard) return;
      let iterator = (await streams.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shard, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
      while (reading && iterator) {
        iterator = (await streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }))).NextShardIterator;
        await sleep(250);
      }
    })();
    const p50s: number[] = [];
    let requests = 0;
    for (let s = 0; s < seconds; s++) {
      const t0 = performance.now();
      const latencies: number[] = [];
      const sent: Promise<void>[] = [];
      for (let k = 0; k < ratePerSecond; k++) {
        await sleep(t0 + (k * 1000) / ratePerSecond - performance.now());
        const target = { S: `10.9.${Math.floor((k % 500) / 250)}.${(k % 250) + 1}:8080` };
        const command =
          k % 4 === 0
            ? new PutItemCommand({ TableName: TABLE, Item: { target, leaseToken: { S: `w${s}-${k}` }, capabilities: { SS: ['a', 'b'] }, expiresAt: { N: String(Math.floor(Date.now() / 1000) + 60) } } })
            : k % 4 === 3 && k >= 100
              ? new BatchGetItemCommand({ RequestItems: { [TABLE]: { Keys: Array.from({ length: 50 }, (_, i) => ({ target: { S: `10.9.0.${i + 1}:8080` } })), ConsistentRead: true } } })
              : new UpdateItemCommand({
                  TableName: TABLE,
                  Key: { target },
                  UpdateExpression: 'SET #e = :e',
                  ExpressionAttributeNames: { '#e': 'expiresAt' },
                  ExpressionAttributeValues: { ':e': { N: String(Math.floor(Date.now() / 1000) + 60) } },
                  ReturnValues: 'ALL_NEW',
                });
        const start = performance.now();
        requests++;
        sent.push(
          ddb.send(command as PutItemCommand).then(
            () => void latencies.push(performance.now() - start),
            () => undefined,
          ),
        );
      }
      await Promise.all(sent);
      latencies.sort((a, b) => a - b);
      p50s.push(Math.round((latencies[Math.floor(latencies.length / 2)] ?? 0) * 10) / 10);
    }
    reading = false;
    await reader.catch(() => undefined);
    await ddb.send(new DeleteTableCommand({ TableName: TABLE })).catch(() => undefined);
    return { seconds, requests, firstSecondP50Ms: p50s[0] ?? 0, lastSecondP50Ms: p50s.at(-1) ?? 0 };
  } finally {
    ddb.destroy();
    streams.destroy();
  }
}

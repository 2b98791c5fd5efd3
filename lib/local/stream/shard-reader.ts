import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  GetShardIteratorCommandInput,
  _Record,
  Shard,
} from '@aws-sdk/client-dynamodb-streams';

/**
 * Reading a DynamoDB stream, one shard at a time: shard discovery (DescribeStream, paged), the
 * shard iterator (resumed after the last delivered record), and pages of records into the
 * shard's read-ahead buffer. What to do with the buffer is the poller's.
 */

export interface Buffered {
  readonly record: _Record;
  /** When the poller read it (epoch ms). */
  readonly readAt: number;
}

export interface ShardState {
  readonly id: string;
  readonly parentId?: string;
  readonly initialPosition: 'TRIM_HORIZON' | 'LATEST';
  status: 'waiting' | 'running' | 'finished';
  iterator?: string;
  /** NextShardIterator came back empty: the shard is closed and read to its end. */
  ended: boolean;
  /** Last delivered sequence number. */
  checkpoint?: string;
  buffer: Buffered[];
  /** Tick of the latest GetRecords that found nothing new while nothing was pending. */
  caughtUpTick: number;
  /** Set by `drain`: read without waiting for the poll interval. */
  readNow: boolean;
  apiErrors: number;
  /** The batch being delivered: the attempt at its first pending record, and how the last invocation went. */
  delivering?: { attempt: number; lastOutcome?: 'success' | 'partial-failure' | 'error' };
}

/** Errors after which the shard is read again from after its checkpoint (the buffer is dropped). */
const NAMES_EXPIRED = new Set(['ExpiredIteratorException', 'TrimmedDataAccessException']);

function errorName(err: unknown): string {
  return (err as { name?: string } | null)?.name ?? '';
}

/** Whether `error` means the shard iterator is no longer valid (expired, or its records trimmed). */
export function isExpiredIterator(error: unknown): boolean {
  return NAMES_EXPIRED.has(errorName(error));
}

export class ShardReader {
  public constructor(
    private readonly client: DynamoDBStreamsClient,
    private readonly streamArn: string,
    /** Told of an error the reader recovered from itself (a trimmed checkpoint, a vanished shard). */
    private readonly onRecovered: (error: unknown, shardId: string) => void,
  ) {}

  /** Every shard of the stream (DescribeStream, following LastEvaluatedShardId). */
  public async describeAllShards(abortSignal: AbortSignal): Promise<Shard[]> {
    const shards: Shard[] = [];
    let exclusiveStartShardId: string | undefined;
    do {
      const res = await this.client.send(
        new DescribeStreamCommand({ StreamArn: this.streamArn, ...(exclusiveStartShardId ? { ExclusiveStartShardId: exclusiveStartShardId } : {}) }),
        { abortSignal },
      );
      shards.push(...(res.StreamDescription?.Shards ?? []));
      exclusiveStartShardId = res.StreamDescription?.LastEvaluatedShardId;
    } while (exclusiveStartShardId);
    return shards;
  }

  /**
   * Sets `shard.iterator`: after the checkpoint when there is one, else at the shard's initial
   * position. A checkpoint older than the stream's retention restarts at TRIM_HORIZON; a shard
   * that no longer exists is ended. Both are told to `onRecovered`.
   */
  public async openIterator(shard: ShardState, abortSignal: AbortSignal): Promise<void> {
    const base = { StreamArn: this.streamArn, ShardId: shard.id };
    const input: GetShardIteratorCommandInput =
      shard.checkpoint !== undefined
        ? { ...base, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: shard.checkpoint }
        : { ...base, ShardIteratorType: shard.initialPosition };
    try {
      const res = await this.client.send(new GetShardIteratorCommand(input), { abortSignal });
      shard.iterator = res.ShardIterator;
      if (shard.iterator === undefined) shard.ended = true;
    } catch (err) {
      const name = errorName(err);
      if (name === 'TrimmedDataAccessException' && shard.checkpoint !== undefined) {
        // The records after our checkpoint are gone (older than the stream's retention).
        this.onRecovered(err, shard.id);
        const res = await this.client.send(new GetShardIteratorCommand({ ...base, ShardIteratorType: 'TRIM_HORIZON' }), { abortSignal });
        shard.iterator = res.ShardIterator;
        if (shard.iterator === undefined) shard.ended = true;
        return;
      }
      if (name === 'ResourceNotFoundException') {
        // The shard (or stream) no longer exists: nothing more can be read from it.
        this.onRecovered(err, shard.id);
        shard.ended = true;
        return;
      }
      throw err;
    }
  }

  /**
   * One page of at most `limit` records (opening the iterator first if needed) appended to the
   * shard's buffer, stamped with `now()`; returns how many were read.
   */
  public async readPage(shard: ShardState, limit: number, abortSignal: AbortSignal, now: () => number = Date.now): Promise<number> {
    if (shard.iterator === undefined) await this.openIterator(shard, abortSignal);
    if (shard.iterator === undefined) return 0;
    const res = await this.client.send(new GetRecordsCommand({ ShardIterator: shard.iterator, Limit: limit }), { abortSignal });
    const readAt = now();
    for (const record of res.Records ?? []) shard.buffer.push({ record, readAt });
    shard.iterator = res.NextShardIterator;
    if (shard.iterator === undefined) shard.ended = true;
    return res.Records?.length ?? 0;
  }
}

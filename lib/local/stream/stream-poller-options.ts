import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { DeliveryPolicy } from './batch-delivery';

/** What the local stream poller is given and what it tells (semantics: stream-poller.ts). */

export type StreamHandler = (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse | void>;

export type StreamPollerOperation = 'DescribeStream' | 'GetShardIterator' | 'GetRecords' | 'handler';

export interface StreamPollerBatchInfo {
  readonly shardId: string;
  /** Records in this invocation. */
  readonly size: number;
  readonly firstSequenceNumber: string;
  readonly lastSequenceNumber: string;
  /** 1 for the first invocation of the first record, 2+ for retries. */
  readonly attempt: number;
  readonly outcome: 'success' | 'partial-failure' | 'error';
  /** Records acknowledged by this invocation (all of them on success). */
  readonly processed: number;
  /** Handler run time. */
  readonly durationMs: number;
  /** From the poller reading the batch's first record to the end of this invocation. */
  readonly pollerLagMs: number;
  /**
   * Lambda's IteratorAge: now minus the last record's ApproximateCreationDateTime. DynamoDB
   * Local rounds that timestamp down to the minute, so locally prefer `pollerLagMs`.
   */
  readonly iteratorAgeMs?: number;
  readonly error?: unknown;
}

export interface StreamPollerDiscard {
  readonly shardId: string;
  readonly records: readonly DynamoDBRecord[];
  readonly error?: unknown;
}

export interface StreamPollerOptions {
  readonly streamArn: string;
  readonly client: DynamoDBStreamsClient;
  readonly handler: StreamHandler;
  /** Maximum records per invocation, 1–10000. Default 100. */
  readonly batchSize?: number;
  /**
   * Lambda's MaximumBatchingWindowInSeconds, as it works for streams: a window begins when the
   * previous invocation completes, and records read meanwhile go together when it ends (one read
   * after it ended goes at once). Default 0.
   */
  readonly batchingWindowMs?: number;
  /** Pause between polls of a shard that had nothing more to read. Default 250 (~4×/s). */
  readonly pollIntervalMs?: number;
  /** Split a failing batch in two and retry the halves in order. Default true. */
  readonly bisectOnError?: boolean;
  /** Give up on a batch after this many failed retries. Default Infinity: never skip a record. */
  readonly maxRetries?: number;
  /** First retry delay; doubles per consecutive failure. Default 100. */
  readonly retryBaseDelayMs?: number;
  /** Longest retry delay (also for failing stream API calls). Default 5000. */
  readonly retryMaxDelayMs?: number;
  /** DescribeStream period, to find new shards. Default 1000. */
  readonly shardDiscoveryIntervalMs?: number;
  /** Where to start in shards present at the first DescribeStream. Later shards always start at TRIM_HORIZON. Default TRIM_HORIZON. */
  readonly startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** Resume: shard id → last delivered sequence number (from an earlier poller's `checkpoints()`). */
  readonly checkpoints?: Readonly<Record<string, string>>;
  /** After every invocation of the handler. */
  readonly onBatch?: (info: StreamPollerBatchInfo) => void;
  /** Failed handler invocations and stream API calls (all are retried). */
  readonly onError?: (error: unknown, context: { readonly operation: StreamPollerOperation; readonly shardId?: string }) => void;
  /** Only with a finite `maxRetries`: a batch given up on. */
  readonly onDiscard?: (discard: StreamPollerDiscard) => void;
}

export interface StreamPollerShardStats {
  readonly status: 'waiting' | 'running' | 'finished';
  /** Last delivered sequence number. */
  readonly checkpoint?: string;
  /** Records read and not yet delivered. */
  readonly buffered: number;
}

export interface StreamPollerStats {
  readonly running: boolean;
  /** Handler invocations, failed ones included. */
  readonly invocations: number;
  readonly failedInvocations: number;
  /** Records acknowledged by the handler. */
  readonly recordsDelivered: number;
  readonly recordsDiscarded: number;
  readonly lastBatchAt?: number;
  readonly lastPollerLagMs?: number;
  readonly shards: Readonly<Record<string, StreamPollerShardStats>>;
}

/** The poller's settings with defaults applied, each checked against its range. */
export interface PollerSettings extends DeliveryPolicy {
  readonly batchSize: number;
  readonly batchingWindowMs: number;
  readonly pollIntervalMs: number;
  readonly discoveryIntervalMs: number;
  readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
}

/** @throws RangeError naming the option, its value and its range */
export function pollerSettings(options: StreamPollerOptions): PollerSettings {
  const maxRetries = options.maxRetries ?? Infinity;
  if (!(maxRetries >= 0)) throw new RangeError(`maxRetries must be ≥ 0, got ${maxRetries}`);
  return {
    batchSize: positiveInt(options.batchSize, 100, 'batchSize', 10_000),
    batchingWindowMs: nonNegative(options.batchingWindowMs, 0, 'batchingWindowMs'),
    pollIntervalMs: nonNegative(options.pollIntervalMs, 250, 'pollIntervalMs'),
    bisectOnError: options.bisectOnError ?? true,
    maxRetries,
    retryBaseDelayMs: nonNegative(options.retryBaseDelayMs, 100, 'retryBaseDelayMs'),
    retryMaxDelayMs: nonNegative(options.retryMaxDelayMs, 5000, 'retryMaxDelayMs'),
    discoveryIntervalMs: nonNegative(options.shardDiscoveryIntervalMs, 1000, 'shardDiscoveryIntervalMs'),
    startingPosition: options.startingPosition ?? 'TRIM_HORIZON',
  };
}

function positiveInt(value: number | undefined, fallback: number, name: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer from 1 to ${max}, got ${v}`);
  return v;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!(v >= 0)) throw new RangeError(`${name} must be ≥ 0, got ${v}`);
  return v;
}

import {
  AttributeValue as StreamsAttributeValue,
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  GetShardIteratorCommandInput,
  _Record,
  Shard,
} from '@aws-sdk/client-dynamodb-streams';
import type { AttributeValue as LambdaAttributeValue, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent, StreamRecord } from 'aws-lambda';

/**
 * A local stand-in for Lambda's DynamoDB event source mapping: it reads a stream (here from
 * DynamoDB Local) and invokes a handler with the exact event Lambda would build.
 *
 * Semantics, as in Lambda (ParallelizationFactor 1, ReportBatchItemFailures on):
 * - every shard is polled (default every 250 ms, ~4×/s) from TRIM_HORIZON, following
 *   NextShardIterator; new shards are found with DescribeStream (default every second) and a
 *   child shard starts only once its parent has been read to the end and fully delivered;
 * - one batch per shard at a time, shards in parallel; a batch holds up to `batchSize` records
 *   and is sent as soon as it is full, the batching window has passed since its first record
 *   was read, or the shard has ended;
 * - `batchItemFailures`: records before the earliest reported record are done, the rest are
 *   retried, in order, from that record (an identifier that is not in the batch fails the batch);
 * - a thrown error (or rejected promise) fails the batch; with `bisectOnError` the batch is
 *   split in two halves, retried in order;
 * - retries use exponential backoff (`retryBaseDelayMs` doubling up to `retryMaxDelayMs`).
 *   **No record is ever skipped**: by default a failing record is retried until it succeeds or
 *   the poller is stopped, which blocks its shard (as Lambda does until the record expires).
 *   Only a finite `maxRetries` gives up on a batch, reporting it to `onDiscard` first;
 * - an expired or trimmed shard iterator is replaced by one AFTER_SEQUENCE_NUMBER the last
 *   delivered record (the read-ahead buffer is dropped and read again), so nothing is
 *   delivered twice or lost; if even that position has been trimmed (older than 24 h on AWS)
 *   reading restarts at TRIM_HORIZON and `onError` is told.
 *
 * Delivery is at-least-once as with Lambda: a record is delivered again only when the
 * invocation that contained it failed at or before it.
 */

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
  /** Wait this long after a batch's first record for more records (Lambda's MaximumBatchingWindowInSeconds). Default 0. */
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

interface Buffered {
  readonly record: _Record;
  readonly readAt: number;
}

interface ShardState {
  readonly id: string;
  readonly parentId?: string;
  readonly initialPosition: 'TRIM_HORIZON' | 'LATEST';
  status: 'waiting' | 'running' | 'finished';
  iterator?: string;
  /** NextShardIterator came back empty: the shard is closed and read to its end. */
  ended: boolean;
  checkpoint?: string;
  buffer: Buffered[];
  /** Tick of the latest GetRecords that found nothing new while nothing was pending. */
  caughtUpTick: number;
  /** Set by `drain`: read without waiting for the poll interval. */
  readNow: boolean;
  apiErrors: number;
}

const NAMES_EXPIRED = new Set(['ExpiredIteratorException', 'TrimmedDataAccessException']);

function errorName(err: unknown): string {
  return (err as { name?: string } | null)?.name ?? '';
}

function toLambdaValue(value: StreamsAttributeValue): LambdaAttributeValue {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString('base64') };
  if (value.BS !== undefined) return { BS: value.BS.map((b) => Buffer.from(b).toString('base64')) };
  if (value.M !== undefined) return { M: toLambdaImage(value.M) };
  if (value.L !== undefined) return { L: value.L.map(toLambdaValue) };
  if (value.SS !== undefined) return { SS: [...value.SS] };
  if (value.NS !== undefined) return { NS: [...value.NS] };
  if (value.S !== undefined) return { S: value.S };
  if (value.N !== undefined) return { N: value.N };
  if (value.BOOL !== undefined) return { BOOL: value.BOOL };
  if (value.NULL !== undefined) return { NULL: value.NULL };
  // DynamoDB Local's stream drops the type of an empty map (`"m": {}` where GetItem and AWS
  // streams say `"m": {"M": {}}`); no other value serializes without a type.
  if (Object.keys(value).length === 0) return { M: {} };
  return { ...(value as object) } as LambdaAttributeValue;
}

function toLambdaImage(image: Record<string, StreamsAttributeValue>): Record<string, LambdaAttributeValue> {
  const out: Record<string, LambdaAttributeValue> = {};
  for (const [name, value] of Object.entries(image)) out[name] = toLambdaValue(value);
  return out;
}

/**
 * A Streams API record → the record of Lambda's DynamoDB event: dates become epoch seconds,
 * binary values base64 strings, `userIdentity` gets Lambda's lower-case keys, and
 * `eventSourceARN` is added. `eventName` is passed through (DynamoDB Local labels TTL
 * deletions `UNKNOWN_TO_SDK_VERSION`, Lambda's type does not know that value).
 */
export function toLambdaRecord(record: _Record, eventSourceARN: string): DynamoDBRecord {
  const src = record.dynamodb ?? {};
  const dynamodb: StreamRecord = {};
  if (src.ApproximateCreationDateTime !== undefined) dynamodb.ApproximateCreationDateTime = src.ApproximateCreationDateTime.getTime() / 1000;
  if (src.Keys !== undefined) dynamodb.Keys = toLambdaImage(src.Keys);
  if (src.NewImage !== undefined) dynamodb.NewImage = toLambdaImage(src.NewImage);
  if (src.OldImage !== undefined) dynamodb.OldImage = toLambdaImage(src.OldImage);
  if (src.SequenceNumber !== undefined) dynamodb.SequenceNumber = src.SequenceNumber;
  if (src.SizeBytes !== undefined) dynamodb.SizeBytes = src.SizeBytes;
  if (src.StreamViewType !== undefined) dynamodb.StreamViewType = src.StreamViewType;
  const out: DynamoDBRecord = {
    ...(record.eventID === undefined ? {} : { eventID: record.eventID }),
    ...(record.eventName === undefined ? {} : { eventName: record.eventName as DynamoDBRecord['eventName'] }),
    ...(record.eventVersion === undefined ? {} : { eventVersion: record.eventVersion }),
    ...(record.eventSource === undefined ? {} : { eventSource: record.eventSource }),
    ...(record.awsRegion === undefined ? {} : { awsRegion: record.awsRegion }),
    dynamodb,
    eventSourceARN,
  };
  if (record.userIdentity !== undefined) {
    out.userIdentity = {
      ...(record.userIdentity.Type === undefined ? {} : { type: record.userIdentity.Type }),
      ...(record.userIdentity.PrincipalId === undefined ? {} : { principalId: record.userIdentity.PrincipalId }),
    };
  }
  return out;
}

/** Index of the first record to retry, or undefined when the whole batch succeeded. */
function firstFailure(response: DynamoDBBatchResponse | void, batch: readonly Buffered[]): number | undefined {
  const failures = response?.batchItemFailures;
  if (failures === undefined || failures === null || failures.length === 0) return undefined;
  let first = Infinity;
  for (const failure of failures) {
    const id = failure?.itemIdentifier;
    const index = typeof id === 'string' && id !== '' ? batch.findIndex((b) => b.record.dynamodb?.SequenceNumber === id) : -1;
    if (index < 0) return 0; // Lambda: an identifier that is missing or not in the batch fails the batch
    first = Math.min(first, index);
  }
  return first;
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

export class StreamPoller {
  private readonly streamArn: string;
  private readonly client: DynamoDBStreamsClient;
  private readonly handler: StreamHandler;
  private readonly batchSize: number;
  private readonly batchingWindowMs: number;
  private readonly pollIntervalMs: number;
  private readonly bisectOnError: boolean;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly retryMaxDelayMs: number;
  private readonly discoveryIntervalMs: number;
  private readonly startingPosition: 'TRIM_HORIZON' | 'LATEST';
  private readonly options: StreamPollerOptions;

  private readonly shards = new Map<string, ShardState>();
  private readonly workers = new Map<string, Promise<void>>();
  /** Wake-ups of sleeping loops (drain and stop use them); retry backoffs only end early on stop. */
  private readonly pollSleepers = new Set<() => void>();
  private readonly retrySleepers = new Set<() => void>();
  private readonly discoverySleepers = new Set<() => void>();
  private running = false;
  private stopping: Promise<void> | undefined;
  private abort = new AbortController();
  private discovery: Promise<void> | undefined;
  private firstDiscoveryDone = false;
  /** Monotonic counter stamped on every stream read; `drain` compares against it. */
  private tick = 0;
  private discoveredTick = 0;
  private counters = { invocations: 0, failedInvocations: 0, recordsDelivered: 0, recordsDiscarded: 0 };
  private lastBatchAt: number | undefined;
  private lastPollerLagMs: number | undefined;

  public constructor(options: StreamPollerOptions) {
    this.options = options;
    this.streamArn = options.streamArn;
    this.client = options.client;
    this.handler = options.handler;
    this.batchSize = positiveInt(options.batchSize, 100, 'batchSize', 10_000);
    this.batchingWindowMs = nonNegative(options.batchingWindowMs, 0, 'batchingWindowMs');
    this.pollIntervalMs = nonNegative(options.pollIntervalMs, 250, 'pollIntervalMs');
    this.bisectOnError = options.bisectOnError ?? true;
    this.maxRetries = options.maxRetries ?? Infinity;
    if (!(this.maxRetries >= 0)) throw new RangeError(`maxRetries must be ≥ 0, got ${this.maxRetries}`);
    this.retryBaseDelayMs = nonNegative(options.retryBaseDelayMs, 100, 'retryBaseDelayMs');
    this.retryMaxDelayMs = nonNegative(options.retryMaxDelayMs, 5000, 'retryMaxDelayMs');
    this.discoveryIntervalMs = nonNegative(options.shardDiscoveryIntervalMs, 1000, 'shardDiscoveryIntervalMs');
    this.startingPosition = options.startingPosition ?? 'TRIM_HORIZON';
  }

  public isRunning(): boolean {
    return this.running;
  }

  /** Starts polling (no-op when running). A stopped poller resumes from its checkpoints. */
  public start(): this {
    if (this.running) return this;
    if (this.stopping !== undefined) throw new Error('stream poller is still stopping: await stop() before start()');
    this.running = true;
    this.abort = new AbortController();
    for (const shard of this.shards.values()) {
      if (shard.status === 'finished') continue;
      shard.status = 'waiting';
      shard.iterator = undefined;
      shard.buffer = [];
      shard.ended = false;
    }
    this.discovery = this.discoveryLoop();
    return this;
  }

  /**
   * Stops polling and resolves once every in-flight handler invocation has returned (an
   * invocation is never interrupted; a batch waiting for a retry is abandoned undelivered and
   * will be read again by a poller resumed from `checkpoints()`).
   */
  public stop(): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    if (!this.running) return Promise.resolve();
    this.running = false;
    this.abort.abort();
    this.wake(this.pollSleepers);
    this.wake(this.retrySleepers);
    this.wake(this.discoverySleepers);
    this.stopping = (async () => {
      try {
        await this.discovery;
        await Promise.all([...this.workers.values()]);
        this.workers.clear();
      } finally {
        this.stopping = undefined;
      }
    })();
    return this.stopping;
  }

  /**
   * Resolves once every record written to the stream before this call has been delivered
   * (acknowledged by the handler): after a DescribeStream and, on every shard, a read that
   * found nothing new, all started after this call. Wakes sleeping shards so this is quick.
   * Rejects after `timeoutMs` (default 30 s), e.g. when the handler keeps failing.
   */
  public async drain(timeoutMs = 30_000): Promise<void> {
    if (!this.running) throw new Error('stream poller is not running');
    const mark = ++this.tick;
    const deadline = Date.now() + timeoutMs;
    this.pollBehind(mark);
    for (let round = 1; ; round++) {
      if (this.drainedSince(mark)) return;
      if (!this.running) throw new Error('stream poller stopped while draining');
      if (Date.now() >= deadline) {
        const lagging = [...this.shards.values()].filter((s) => s.status !== 'finished' && s.caughtUpTick <= mark);
        throw new Error(
          `stream poller not drained within ${timeoutMs} ms: ` +
            (this.discoveredTick <= mark ? 'no DescribeStream succeeded; ' : '') +
            `shards behind: ${lagging.map((s) => `${s.id} (${s.status}, ${s.buffer.length} buffered)`).join(', ') || 'none'}`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
      // A read that was already under way when we started does not count: poll again soon.
      if (round % 5 === 0) this.pollBehind(mark);
    }
  }

  /** Shard id → last delivered sequence number; pass to a new poller's `checkpoints` to resume. */
  public checkpoints(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const shard of this.shards.values()) if (shard.checkpoint !== undefined) out[shard.id] = shard.checkpoint;
    return out;
  }

  public stats(): StreamPollerStats {
    const shards: Record<string, StreamPollerShardStats> = {};
    for (const s of this.shards.values()) {
      shards[s.id] = { status: s.status, buffered: s.buffer.length, ...(s.checkpoint === undefined ? {} : { checkpoint: s.checkpoint }) };
    }
    return {
      running: this.running,
      ...this.counters,
      ...(this.lastBatchAt === undefined ? {} : { lastBatchAt: this.lastBatchAt }),
      ...(this.lastPollerLagMs === undefined ? {} : { lastPollerLagMs: this.lastPollerLagMs }),
      shards,
    };
  }

  // ---- internals ------------------------------------------------------------------------

  private drainedSince(mark: number): boolean {
    if (this.discoveredTick <= mark) return false;
    for (const s of this.shards.values()) if (s.status !== 'finished' && s.caughtUpTick <= mark) return false;
    return true;
  }

  /** Makes every shard not yet caught up since `mark` (and discovery) read now. */
  private pollBehind(mark: number): void {
    for (const s of this.shards.values()) if (s.caughtUpTick <= mark) s.readNow = true;
    this.wake(this.pollSleepers);
    if (this.discoveredTick <= mark) this.wake(this.discoverySleepers);
  }

  private sleep(ms: number, kind: 'poll' | 'retry' | 'discovery'): Promise<void> {
    if (!this.running) return Promise.resolve();
    const sleepers = kind === 'poll' ? this.pollSleepers : kind === 'retry' ? this.retrySleepers : this.discoverySleepers;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      sleepers.add(done);
    });
  }

  private wake(sleepers: Set<() => void>): void {
    for (const wake of [...sleepers]) wake();
  }

  private backoff(failures: number): number {
    return Math.min(this.retryMaxDelayMs, this.retryBaseDelayMs * 2 ** Math.max(0, failures - 1));
  }

  private reportError(error: unknown, operation: StreamPollerOperation, shardId?: string): void {
    try {
      this.options.onError?.(error, { operation, ...(shardId === undefined ? {} : { shardId }) });
    } catch {
      // a failing observer must not stop the poller
    }
  }

  private async discoveryLoop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const startedTick = ++this.tick;
      try {
        const shards = await this.describeAllShards();
        this.registerShards(shards);
        this.discoveredTick = startedTick;
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        failures++;
        this.reportError(err, 'DescribeStream');
      }
      this.startEligibleShards();
      await this.sleep(failures > 0 ? this.backoff(failures) : this.discoveryIntervalMs, failures > 0 ? 'retry' : 'discovery');
    }
  }

  private async describeAllShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let exclusiveStartShardId: string | undefined;
    do {
      const res = await this.client.send(
        new DescribeStreamCommand({ StreamArn: this.streamArn, ...(exclusiveStartShardId ? { ExclusiveStartShardId: exclusiveStartShardId } : {}) }),
        { abortSignal: this.abort.signal },
      );
      shards.push(...(res.StreamDescription?.Shards ?? []));
      exclusiveStartShardId = res.StreamDescription?.LastEvaluatedShardId;
    } while (exclusiveStartShardId);
    return shards;
  }

  private registerShards(shards: readonly Shard[]): void {
    const initial = !this.firstDiscoveryDone;
    this.firstDiscoveryDone = true;
    for (const shard of shards) {
      if (!shard.ShardId || this.shards.has(shard.ShardId)) continue;
      const checkpoint = this.options.checkpoints?.[shard.ShardId];
      this.shards.set(shard.ShardId, {
        id: shard.ShardId,
        ...(shard.ParentShardId ? { parentId: shard.ParentShardId } : {}),
        initialPosition: initial ? this.startingPosition : 'TRIM_HORIZON',
        status: 'waiting',
        ended: false,
        ...(checkpoint === undefined ? {} : { checkpoint }),
        buffer: [],
        caughtUpTick: 0,
        readNow: false,
        apiErrors: 0,
      });
    }
  }

  /** Starts every waiting shard whose parent is finished or unknown (trimmed away). */
  private startEligibleShards(): void {
    if (!this.running) return;
    for (const shard of this.shards.values()) {
      if (shard.status !== 'waiting' || this.workers.has(shard.id)) continue;
      const parent = shard.parentId === undefined ? undefined : this.shards.get(shard.parentId);
      if (parent !== undefined && parent.status !== 'finished') continue;
      shard.status = 'running';
      const worker = this.runShard(shard).finally(() => {
        this.workers.delete(shard.id);
        if (shard.status === 'finished') this.startEligibleShards();
      });
      this.workers.set(shard.id, worker);
    }
  }

  private async getIterator(shard: ShardState): Promise<void> {
    const base = { StreamArn: this.streamArn, ShardId: shard.id };
    const input: GetShardIteratorCommandInput =
      shard.checkpoint !== undefined
        ? { ...base, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: shard.checkpoint }
        : { ...base, ShardIteratorType: shard.initialPosition };
    try {
      const res = await this.client.send(new GetShardIteratorCommand(input), { abortSignal: this.abort.signal });
      shard.iterator = res.ShardIterator;
      if (shard.iterator === undefined) shard.ended = true;
    } catch (err) {
      const name = errorName(err);
      if (name === 'TrimmedDataAccessException' && shard.checkpoint !== undefined) {
        // The records after our checkpoint are gone (older than the stream's retention).
        this.reportError(err, 'GetShardIterator', shard.id);
        const res = await this.client.send(new GetShardIteratorCommand({ ...base, ShardIteratorType: 'TRIM_HORIZON' }), { abortSignal: this.abort.signal });
        shard.iterator = res.ShardIterator;
        if (shard.iterator === undefined) shard.ended = true;
        return;
      }
      if (name === 'ResourceNotFoundException') {
        // The shard (or stream) no longer exists: nothing more can be read from it.
        this.reportError(err, 'GetShardIterator', shard.id);
        shard.ended = true;
        return;
      }
      throw err;
    }
  }

  /**
   * One shard, one batch at a time: deliver what is due, otherwise read. Reads are at most one
   * per `pollIntervalMs` (records arriving meanwhile coalesce into one batch, as with Lambda's
   * ~4 polls per second), except right after a full page, when more is probably waiting, and
   * when `drain` asks for a read now.
   */
  private async runShard(shard: ShardState): Promise<void> {
    const limit = Math.min(1000, this.batchSize);
    let lastReadAt = -Infinity;
    let backlog = false;
    while (this.running) {
      const first = shard.buffer[0];
      const now = Date.now();
      if (first !== undefined && (shard.buffer.length >= this.batchSize || shard.ended || now - first.readAt >= this.batchingWindowMs)) {
        const batch = shard.buffer.slice(0, this.batchSize);
        if (await this.deliver(shard, batch)) shard.buffer.splice(0, batch.length);
        continue;
      }
      if (shard.ended) {
        shard.status = 'finished';
        return;
      }

      let wakeAt = backlog || shard.readNow ? now : lastReadAt + this.pollIntervalMs;
      if (first !== undefined) wakeAt = Math.min(wakeAt, first.readAt + this.batchingWindowMs);
      if (wakeAt > now) {
        await this.sleep(wakeAt - now, 'poll');
        continue;
      }

      shard.readNow = false;
      lastReadAt = now;
      const startedTick = ++this.tick;
      try {
        if (shard.iterator === undefined) await this.getIterator(shard);
        let read = 0;
        if (shard.iterator !== undefined) {
          const res = await this.client.send(new GetRecordsCommand({ ShardIterator: shard.iterator, Limit: limit }), { abortSignal: this.abort.signal });
          const readAt = Date.now();
          for (const record of res.Records ?? []) shard.buffer.push({ record, readAt });
          read = res.Records?.length ?? 0;
          shard.iterator = res.NextShardIterator;
          if (shard.iterator === undefined) shard.ended = true;
        }
        backlog = read >= limit;
        shard.apiErrors = 0;
        if (read === 0 && shard.buffer.length === 0) shard.caughtUpTick = startedTick;
      } catch (err) {
        if (!this.running) break;
        if (NAMES_EXPIRED.has(errorName(err))) {
          // Read again after the last delivered record; whatever was buffered is read again.
          shard.iterator = undefined;
          shard.buffer = [];
          backlog = true;
          continue;
        }
        shard.apiErrors++;
        this.reportError(err, shard.iterator === undefined ? 'GetShardIterator' : 'GetRecords', shard.id);
        await this.sleep(this.backoff(shard.apiErrors), 'retry');
      }
    }
  }

  /**
   * Delivers `batch` until every record is acknowledged (true) or the poller stops (false).
   * `shard.checkpoint` advances with every acknowledged record.
   */
  private async deliver(shard: ShardState, batch: readonly Buffered[]): Promise<boolean> {
    const queue: Buffered[][] = [[...batch]];
    let failures = 0;
    let attempt = 1;
    while (queue.length > 0) {
      if (!this.running) return false;
      const current = queue[0] as Buffered[];
      const event: DynamoDBStreamEvent = { Records: current.map((b) => toLambdaRecord(b.record, this.streamArn)) };
      const started = Date.now();
      let failedAt: number | undefined;
      let error: unknown;
      let threw = false;
      this.counters.invocations++;
      try {
        failedAt = firstFailure(await this.handler(event), current);
      } catch (err) {
        threw = true;
        error = err;
        failedAt = 0;
      }
      const ended = Date.now();
      const processed = failedAt ?? current.length;
      if (processed > 0) {
        shard.checkpoint = current[processed - 1]?.record.dynamodb?.SequenceNumber ?? shard.checkpoint;
        this.counters.recordsDelivered += processed;
      }
      this.report(shard, current, {
        attempt,
        outcome: failedAt === undefined ? 'success' : threw ? 'error' : 'partial-failure',
        processed,
        durationMs: ended - started,
        ...(threw ? { error } : {}),
      });
      if (failedAt === undefined) {
        queue.shift();
        failures = 0;
        attempt = 1;
        continue;
      }

      this.counters.failedInvocations++;
      if (threw) this.reportError(error, 'handler', shard.id);
      failures = processed > 0 ? 1 : failures + 1;
      attempt++;
      if (processed > 0) queue[0] = current.slice(processed);
      else if (threw && this.bisectOnError && current.length > 1) {
        const half = Math.ceil(current.length / 2);
        queue.splice(0, 1, current.slice(0, half), current.slice(half));
      }
      if (failures > this.maxRetries) {
        const dropped = queue.shift() as Buffered[];
        this.discard(shard, dropped, error);
        failures = 0;
        attempt = 1;
        continue;
      }
      await this.sleep(this.backoff(failures), 'retry');
    }
    return true;
  }

  private discard(shard: ShardState, records: readonly Buffered[], error: unknown): void {
    this.counters.recordsDiscarded += records.length;
    shard.checkpoint = records.at(-1)?.record.dynamodb?.SequenceNumber ?? shard.checkpoint;
    try {
      this.options.onDiscard?.({
        shardId: shard.id,
        records: records.map((b) => toLambdaRecord(b.record, this.streamArn)),
        ...(error === undefined ? {} : { error }),
      });
    } catch {
      // observers must not stop the poller
    }
  }

  private report(
    shard: ShardState,
    batch: readonly Buffered[],
    result: Pick<StreamPollerBatchInfo, 'attempt' | 'outcome' | 'processed' | 'durationMs' | 'error'>,
  ): void {
    const now = Date.now();
    const first = batch[0];
    const last = batch.at(-1);
    const created = last?.record.dynamodb?.ApproximateCreationDateTime;
    const pollerLagMs = first === undefined ? 0 : now - first.readAt;
    this.lastBatchAt = now;
    this.lastPollerLagMs = pollerLagMs;
    if (this.options.onBatch === undefined) return;
    try {
      this.options.onBatch({
        shardId: shard.id,
        size: batch.length,
        firstSequenceNumber: first?.record.dynamodb?.SequenceNumber ?? '',
        lastSequenceNumber: last?.record.dynamodb?.SequenceNumber ?? '',
        pollerLagMs,
        ...(created === undefined ? {} : { iteratorAgeMs: now - created.getTime() }),
        ...result,
      });
    } catch {
      // observers must not stop the poller
    }
  }
}

/** `new StreamPoller(options).start()` */
export function startStreamPoller(options: StreamPollerOptions): StreamPoller {
  return new StreamPoller(options).start();
}

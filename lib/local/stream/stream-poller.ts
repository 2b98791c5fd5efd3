import type { Shard } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBStreamEvent } from 'aws-lambda';
import { afterInvocation, DeliveryState, InvocationOutcome, outcomeOfResponse, retryDelayMs, startDelivery } from './batch-delivery';
import { toLambdaRecord } from './lambda-stream-event';
import { Buffered, isExpiredIterator, ShardReader, ShardState } from './shard-reader';
import {
  PollerSettings,
  pollerSettings,
  StreamHandler,
  StreamPollerBatchInfo,
  StreamPollerOperation,
  StreamPollerOptions,
  StreamPollerShardStats,
  StreamPollerStats,
} from './stream-poller-options';

export type {
  StreamHandler,
  StreamPollerBatchInfo,
  StreamPollerDiscard,
  StreamPollerOperation,
  StreamPollerOptions,
  StreamPollerShardStats,
  StreamPollerStats,
} from './stream-poller-options';
export { toLambdaRecord } from './lambda-stream-event';

/**
 * A local stand-in for Lambda's DynamoDB event source mapping: it reads a stream (here from
 * DynamoDB Local) and invokes a handler with the exact event Lambda would build.
 *
 * Semantics, as in Lambda (ParallelizationFactor 1, ReportBatchItemFailures on):
 * - every shard is polled (default every 250 ms, ~4×/s) from TRIM_HORIZON, following
 *   NextShardIterator; new shards are found with DescribeStream (default every second) and a
 *   child shard starts only once its parent has been read to the end and fully delivered;
 * - one batch per shard at a time, shards in parallel; a batch holds up to `batchSize` records
 *   and is sent as soon as it is full, the batching window has passed since the shard's previous
 *   invocation completed (or since the shard was first read), or the shard has ended;
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

export class StreamPoller {
  private readonly streamArn: string;
  private readonly handler: StreamHandler;
  private readonly settings: PollerSettings;
  private readonly reader: ShardReader;
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
  private counters: Counters = { invocations: 0, failedInvocations: 0, recordsDelivered: 0, recordsDiscarded: 0 };
  private lastBatchAt: number | undefined;
  private lastPollerLagMs: number | undefined;

  public constructor(options: StreamPollerOptions) {
    this.options = options;
    this.streamArn = options.streamArn;
    this.handler = options.handler;
    this.settings = pollerSettings(options);
    this.reader = new ShardReader(options.client, options.streamArn, (error, shardId) => this.reportError(error, 'GetShardIterator', shardId));
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
    const before = { ...this.counters };
    this.pollBehind(mark);
    for (let round = 1; ; round++) {
      if (this.drainedSince(mark)) return;
      if (!this.running) throw new Error('stream poller stopped while draining');
      if (Date.now() >= deadline) {
        const lagging = [...this.shards.values()].filter((s) => s.status !== 'finished' && s.caughtUpTick <= mark);
        throw new Error(
          `stream poller not drained within ${timeoutMs} ms: ` +
            (this.discoveredTick <= mark ? 'no DescribeStream succeeded; ' : '') +
            `shards behind: ${lagging.map((s) => `${s.id} (${shardProgress(s)})`).join(', ') || 'none'}; ` +
            drainProgress(before, this.counters),
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
    return retryDelayMs(failures, this.settings);
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
        const shards = await this.reader.describeAllShards(this.abort.signal);
        this.registerShards(shards);
        this.discoveredTick = startedTick;
        failures = 0;
      } catch (err) {
        if (!this.running) break;
        failures++;
        this.reportError(err, 'DescribeStream');
      }
      this.startEligibleShards();
      await this.sleep(failures > 0 ? this.backoff(failures) : this.settings.discoveryIntervalMs, failures > 0 ? 'retry' : 'discovery');
    }
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
        initialPosition: initial ? this.settings.startingPosition : 'TRIM_HORIZON',
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

  /**
   * One shard, one batch at a time: deliver what is due, otherwise read. Reads are at most one
   * per `pollIntervalMs` (records arriving meanwhile coalesce into one batch, as with Lambda's
   * ~4 polls per second), except right after a full page, when more is probably waiting, and
   * when `drain` asks for a read now.
   */
  private async runShard(shard: ShardState): Promise<void> {
    const { batchSize, batchingWindowMs, pollIntervalMs } = this.settings;
    const limit = Math.min(1000, batchSize);
    let lastReadAt = -Infinity;
    let backlog = false;
    // Lambda's batching window for streams: "the next batching window begins as soon as the
    // previous function invocation completes" (AWS Lambda developer guide, event source mappings,
    // batching behavior) — not at the first record, as for Kafka and Amazon MQ. Records that come
    // while a window runs wait for its end; one that comes after it ran out goes at the next read.
    let windowStart = Date.now();
    while (this.running) {
      const first = shard.buffer[0];
      const now = Date.now();
      if (first !== undefined && (shard.buffer.length >= batchSize || shard.ended || now - windowStart >= batchingWindowMs)) {
        const batch = shard.buffer.slice(0, batchSize);
        if (await this.deliver(shard, batch)) shard.buffer.splice(0, batch.length);
        windowStart = Date.now();
        continue;
      }
      if (shard.ended) {
        shard.status = 'finished';
        return;
      }

      let wakeAt = backlog || shard.readNow ? now : lastReadAt + pollIntervalMs;
      if (first !== undefined) wakeAt = Math.min(wakeAt, windowStart + batchingWindowMs);
      if (wakeAt > now) {
        await this.sleep(wakeAt - now, 'poll');
        continue;
      }

      shard.readNow = false;
      lastReadAt = now;
      const startedTick = ++this.tick;
      try {
        const read = await this.reader.readPage(shard, limit, this.abort.signal);
        backlog = read >= limit;
        shard.apiErrors = 0;
        if (read === 0 && shard.buffer.length === 0) shard.caughtUpTick = startedTick;
      } catch (err) {
        if (!this.running) break;
        if (isExpiredIterator(err)) {
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
   * Delivers `batch` until every record is acknowledged or discarded (true) or the poller stops
   * (false); the rules are batch-delivery.ts's. `shard.checkpoint` advances with every
   * acknowledged record.
   */
  private async deliver(shard: ShardState, batch: readonly Buffered[]): Promise<boolean> {
    try {
      return await this.deliverEach(shard, startDelivery(batch));
    } finally {
      shard.delivering = undefined;
    }
  }

  private async deliverEach(shard: ShardState, start: DeliveryState<Buffered>): Promise<boolean> {
    let state = start;
    while (state.queue.length > 0) {
      if (!this.running) return false;
      shard.delivering = { attempt: state.attempt, ...(shard.delivering?.lastOutcome ? { lastOutcome: shard.delivering.lastOutcome } : {}) };
      const current = state.queue[0];
      const event: DynamoDBStreamEvent = { Records: current.map((b) => toLambdaRecord(b.record, this.streamArn)) };
      const started = Date.now();
      let outcome: InvocationOutcome;
      let error: unknown;
      this.counters.invocations++;
      try {
        outcome = outcomeOfResponse(await this.handler(event), current, (b) => b.record.dynamodb?.SequenceNumber);
      } catch (err) {
        error = err;
        outcome = { kind: 'error' };
      }
      const ended = Date.now();
      shard.delivering = { attempt: state.attempt, lastOutcome: outcome.kind };
      const step = afterInvocation(state, outcome, this.settings);
      const processed = step.acknowledged.length;
      if (processed > 0) {
        shard.checkpoint = step.acknowledged[processed - 1]?.record.dynamodb?.SequenceNumber ?? shard.checkpoint;
        this.counters.recordsDelivered += processed;
      }
      this.report(shard, current, {
        attempt: state.attempt,
        outcome: outcome.kind,
        processed,
        durationMs: ended - started,
        ...(outcome.kind === 'error' ? { error } : {}),
      });
      if (outcome.kind !== 'success') {
        this.counters.failedInvocations++;
        if (outcome.kind === 'error') this.reportError(error, 'handler', shard.id);
      }
      if (step.discarded) this.discard(shard, step.discarded, error);
      state = step.state;
      if (step.retryAfterMs !== undefined) await this.sleep(step.retryAfterMs, 'retry');
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

interface Counters {
  invocations: number;
  failedInvocations: number;
  recordsDelivered: number;
  recordsDiscarded: number;
}

/** A lagging shard for drain's error: what it holds, and the batch it is stuck on, if any. */
function shardProgress(s: ShardState): string {
  const batch = s.delivering === undefined ? '' : `, delivering a batch: attempt ${s.delivering.attempt}${s.delivering.lastOutcome ? `, last ${s.delivering.lastOutcome}` : ''}`;
  return `${s.status}, ${s.buffer.length} buffered${batch}`;
}

/**
 * What the poller did while drain waited, and what that means: a handler failing the same batch
 * (no record acknowledged) reads differently from a stream that keeps growing (records
 * acknowledged by the thousand, yet never caught up: something keeps writing, perhaps the
 * handler's own writes coming back).
 */
function drainProgress(before: Counters, after: Counters): string {
  const delivered = after.recordsDelivered - before.recordsDelivered;
  const invocations = after.invocations - before.invocations;
  const failed = after.failedInvocations - before.failedInvocations;
  const what = `while draining: ${delivered} records acknowledged in ${invocations} invocations (${failed} failed)`;
  if (invocations === 0) return `${what}: no invocation ended (one still running, or the stream reads failing?)`;
  if (delivered === 0) return `${what}: no progress, the handler keeps failing the same batch`;
  return `${what}: records kept coming faster than they were delivered (is something, perhaps the handler itself, writing on every batch?)`;
}

/** `new StreamPoller(options).start()` */
export function startStreamPoller(options: StreamPollerOptions): StreamPoller {
  return new StreamPoller(options).start();
}

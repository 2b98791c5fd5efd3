import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import type { AttributeValue, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { DynamoDbRestart, LocalStack } from '../../lib/local/local-stack';
import { FaultProxy, FaultProxyOptions } from './fault-proxy';
import { HandlerChaosCounters, instrumentElbClient, withHandlerChaos } from './handler-chaos';
import { Random } from '../support/prng';

/**
 * The chaos run's view of the system under test: local mode's own `LocalStack` (synthesized
 * template, provisioning, poller, the real handlers), driven through its seams: DynamoDB Local
 * file-backed and restartable on its port, the handlers' ELB clients behind the fault proxy and
 * tagged with their origin, the sync handler wrapped for kills and duplicates, replays from an
 * earlier checkpoint. What this file adds is counting: deliveries, redeliveries, the handlers'
 * warnings, reconcile failures.
 */

export interface ChaosStackOptions {
  readonly capabilities: readonly string[];
  readonly reconcileIntervalMs: number;
  readonly proxy: Omit<FaultProxyOptions, 'upstreamPort'>;
  readonly handlerRandom: Random;
  readonly killRate: number;
  readonly duplicateRate: number;
  readonly pollIntervalMs?: number;
  readonly batchSize?: number;
  /** Every target group's deregistration delay, seconds. @default 3 */
  readonly deregistrationDelaySeconds?: number;
}

export type RestartReport = DynamoDbRestart;

export interface StackCounters {
  reconcilePasses: number;
  reconcileFailures: number;
  pollerErrors: number;
  replays: number;
  /** Records delivered again after the handler had acknowledged them (replays). */
  recordsRedelivered: number;
  /** Distinct stream records seen. */
  streamRecords: number;
  handlerInvocations: number;
  failedInvocations: number;
}

type SyncHandler = (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse>;

export class ChaosHarness {
  public readonly counters: StackCounters = {
    reconcilePasses: 0,
    reconcileFailures: 0,
    pollerErrors: 0,
    replays: 0,
    recordsRedelivered: 0,
    streamRecords: 0,
    handlerInvocations: 0,
    failedInvocations: 0,
  };
  public readonly restarts: RestartReport[] = [];
  /** The handlers' warnings and errors: message → count. */
  public readonly handlerWarnings = new Map<string, number>();
  /** Why reconcile passes failed: message → count. */
  public readonly reconcileFailureReasons = new Map<string, number>();
  /** For post-mortems: every invocation with a one-line summary of its records (when `traceInvocations`). */
  public traceInvocations = false;
  public readonly invocationTrace: { at: number; records: string[] }[] = [];
  public handlerChaos!: { counters: HandlerChaosCounters; enabled: { value: boolean } };
  public proxy!: FaultProxy;
  public stack!: LocalStack;
  private readonly acked = new Set<string>();
  private readonly seen = new Set<string>();

  private constructor(
    public readonly dbPath: string,
    private readonly options: ChaosStackOptions,
  ) {}

  public static async start(options: ChaosStackOptions): Promise<ChaosHarness> {
    const harness = new ChaosHarness(mkdtempSync(join(tmpdir(), 'agent-lb-chaos-ddb-')), options);
    try {
      harness.stack = await LocalStack.start({
        capabilities: options.capabilities,
        dbPath: harness.dbPath,
        reconcileIntervalMs: options.reconcileIntervalMs,
        batchSize: options.batchSize ?? 100,
        pollIntervalMs: options.pollIntervalMs ?? 250,
        deregistrationDelaySeconds: options.deregistrationDelaySeconds ?? 3,
        logger: harness.countingLogger(),
        elbEndpointProxy: async ({ port }) => (harness.proxy = await FaultProxy.start({ ...options.proxy, upstreamPort: port })),
        wrapElbClient: (client, handler) => instrumentElbClient(client, handler),
        wrapSyncHandler: (sync) => harness.observed(sync as SyncHandler),
        onReconcile: () => harness.counters.reconcilePasses++,
        onError: (where, error) => (where === 'poller' ? harness.counters.pollerErrors++ : harness.reconcileFailed(error)),
      });
      return harness;
    } catch (error) {
      rmSync(harness.dbPath, { recursive: true, force: true });
      throw error;
    }
  }

  /** The handlers' logger, counting their warnings and errors by message and error (for the run's table). */
  private countingLogger(): Logger {
    const logger = new Logger({ serviceName: 'agent-lb-chaos', logLevel: 'SILENT' });
    for (const level of ['warn', 'error'] as const) {
      const original = logger[level].bind(logger);
      logger[level] = ((message: string, extra?: { error?: string }) => {
        const why = `${level}: ${message}${extra?.error ? `: ${String(extra.error).replace(/arn:\S+/g, '…').slice(0, 140)}` : ''}`;
        this.handlerWarnings.set(why, (this.handlerWarnings.get(why) ?? 0) + 1);
        original(message, extra as never);
      }) as typeof logger.warn;
    }
    return logger;
  }

  /** The sync handler with kills and duplicates, counting what it was given and what it acknowledged. */
  private observed(sync: SyncHandler): SyncHandler {
    const chaos = withHandlerChaos(sync, { random: this.options.handlerRandom, killRate: this.options.killRate, duplicateRate: this.options.duplicateRate });
    this.handlerChaos = chaos;
    return async (event) => {
      this.counters.handlerInvocations++;
      const seqs = event.Records.map((r) => r.dynamodb?.SequenceNumber ?? '');
      for (const s of seqs) {
        if (this.acked.has(s)) this.counters.recordsRedelivered++;
        if (!this.seen.has(s)) {
          this.seen.add(s);
          this.counters.streamRecords++;
        }
      }
      if (this.traceInvocations) this.invocationTrace.push({ at: Date.now(), records: event.Records.map(summary) });
      let response: DynamoDBBatchResponse;
      try {
        response = await chaos.handler(event);
      } catch (error) {
        this.counters.failedInvocations++;
        throw error;
      }
      const failedAt = response.batchItemFailures.length > 0 ? seqs.indexOf(response.batchItemFailures[0].itemIdentifier) : -1;
      if (failedAt >= 0) this.counters.failedInvocations++;
      for (const s of failedAt >= 0 ? seqs.slice(0, failedAt) : seqs) this.acked.add(s);
      return response;
    };
  }

  private reconcileFailed(error: unknown): void {
    this.counters.reconcileFailures++;
    const why = String((error as Error)?.message ?? error).slice(0, 160);
    this.reconcileFailureReasons.set(why, (this.reconcileFailureReasons.get(why) ?? 0) + 1);
  }

  /** One reconcile pass, after any pass in flight; failures are counted, not thrown. */
  public async reconcileNow(): Promise<void> {
    try {
      await this.stack.reconcileNow();
      this.counters.reconcilePasses++;
    } catch (error) {
      this.reconcileFailed(error);
    }
  }

  /** The poller replaced by one resumed `backMs` ago (see LocalStack.replay). */
  public async replay(backMs: number): Promise<void> {
    if (await this.stack.replay(backMs)) this.counters.replays++;
  }

  public async restartDynamoDb(): Promise<RestartReport> {
    const report = await this.stack.restartDynamoDb();
    this.restarts.push(report);
    return report;
  }

  public drain(timeoutMs = 60_000): Promise<void> {
    return this.stack.drain(timeoutMs);
  }

  public async stop(): Promise<void> {
    await this.stack.stop();
    rmSync(this.dbPath, { recursive: true, force: true });
  }
}

/** `<seq> <target> <old image> > <new image>`, each image as status:capabilities:token prefix. */
function summary(r: DynamoDBRecord): string {
  const img = (i: Record<string, AttributeValue> | undefined) => (i ? `${i.status?.S}:${i.capabilities?.SS?.join('+')}:${i.leaseToken?.S?.slice(0, 6)}` : '-');
  return `${r.dynamodb?.SequenceNumber} ${r.dynamodb?.Keys?.target?.S} ${img(r.dynamodb?.OldImage)} > ${img(r.dynamodb?.NewImage)}`;
}

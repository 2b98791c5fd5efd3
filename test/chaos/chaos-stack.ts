import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { ElasticLoadBalancingV2Client, ModifyTargetGroupAttributesCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createReconcileHandler } from '../../lib/handlers/reconcile-handler';
import { createSyncHandler } from '../../lib/handlers/stream-sync-handler';
import { createElbClient } from '../../lib/aws/clients';
import { DEFAULT_ALLOWED_CIDRS } from '../../lib/core/address-policy';
import { RuntimeConfig } from '../../lib/core/runtime-config';
import { DynamoDbLocal, MotoServer, startDynamoDbLocal, startMotoServer } from '../../lib/local/emulators';
import { LocalDeployment, provisionLocal } from '../../lib/local/provision';
import { StreamPoller } from '../../lib/local/stream/stream-poller';
import { synthesizeTemplate } from '../../lib/local/synth-template';
import { FaultProxy, FaultProxyOptions } from './fault-proxy';
import { HandlerChaosCounters, instrumentElbClient, withHandlerChaos } from './handler-chaos';
import { Random } from '../support/prng';
import { localMetrics } from '../../lib/local/local-stack';

/**
 * The system under test, composed from the same pieces `LocalStack` uses (synthesized
 * template, provisioning, poller, the real sync and reconcile handlers) but with the seams a
 * chaos run needs: DynamoDB Local file-backed and restartable on its port, the handlers' ELB
 * clients behind the fault proxy, the sync handler wrapped for kills and duplicates, and the
 * poller replaceable by one resumed from an earlier checkpoint.
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
  /**
   * Every target group's deregistration delay, in seconds: deregistered targets drain that long
   * (moto launcher's ELB model) before they are gone. @default 3
   */
  readonly deregistrationDelaySeconds?: number;
}

export interface RestartReport {
  readonly downMs: number;
  readonly streamArnBefore: string;
  readonly streamArnAfter: string;
  readonly shardsBefore: readonly string[];
  readonly shardsAfter: readonly string[];
}

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

/** Metrics that go nowhere (as in local mode): the checker has its own figures. */
const silentMetrics = (logger: Logger): Metrics => localMetrics(logger, 'agent-lb-chaos');

export class ChaosStack {
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
  public handlerChaos!: { counters: HandlerChaosCounters; enabled: { value: boolean } };
  private poller!: StreamPoller;
  private streamsClient?: DynamoDBStreamsClient;
  private readonly clients: { destroy(): void }[] = [];
  /** A DynamoDB client for a handler (destroyed on stop); its endpoint survives restarts (same port). */
  private newDynamoClient(): DynamoDBClient {
    const client = new DynamoDBClient({ ...this.ddb.clientConfig });
    this.clients.push(client);
    return client;
  }
  private handler!: (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse>;
  private reconcile!: () => Promise<unknown>;
  private reconcileTimer?: NodeJS.Timeout;
  private reconcileRunning: Promise<void> = Promise.resolve();
  private snapshotTimer?: NodeJS.Timeout;
  private readonly snapshots: { at: number; checkpoints: Record<string, string> }[] = [];
  private readonly acked = new Set<string>();
  private readonly seen = new Set<string>();
  private stopped = false;
  /** For post-mortems: every invocation with a one-line summary of its records. */
  public traceInvocations = false;
  public readonly invocationTrace: { at: number; records: string[] }[] = [];
  private pollerSwap: Promise<void> = Promise.resolve();

  private constructor(
    public readonly dbPath: string,
    public ddb: DynamoDbLocal,
    public readonly moto: MotoServer,
    public readonly proxy: FaultProxy,
    public readonly deployment: LocalDeployment,
    public readonly runtimeConfig: RuntimeConfig,
    private readonly options: ChaosStackOptions,
  ) {}

  public static async start(options: ChaosStackOptions): Promise<ChaosStack> {
    const dbPath = mkdtempSync(join(tmpdir(), 'agent-lb-chaos-ddb-'));
    const servers = Promise.allSettled([startDynamoDbLocal({ dbPath }), startMotoServer()]);
    let synth: ReturnType<typeof synthesizeTemplate> | undefined;
    let synthError: unknown;
    try {
      synth = synthesizeTemplate({ capabilities: options.capabilities });
    } catch (error) {
      synthError = error;
    }
    const [ddbResult, motoResult] = await servers;
    const stopAll = async () => {
      await Promise.allSettled([ddbResult, motoResult].map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
      rmSync(dbPath, { recursive: true, force: true });
    };
    if (synth === undefined || ddbResult.status === 'rejected' || motoResult.status === 'rejected') {
      await stopAll();
      throw synthError ?? (ddbResult.status === 'rejected' ? ddbResult.reason : (motoResult as PromiseRejectedResult).reason);
    }
    const ddb = ddbResult.value;
    const moto = motoResult.value;
    let proxy: FaultProxy | undefined;
    try {
      const dynamodb = new DynamoDBClient({ ...ddb.clientConfig, maxAttempts: 5 });
      const deployment = await provisionLocal({
        template: synth.template,
        stackName: synth.stackName,
        cfn: new CloudFormationClient({ ...moto.clientConfig }),
        dynamodb,
      });
      dynamodb.destroy();
      const elb = new ElasticLoadBalancingV2Client({ ...moto.clientConfig });
      for (const arn of Object.values(deployment.targetGroups)) {
        await elb.send(
          new ModifyTargetGroupAttributesCommand({
            TargetGroupArn: arn,
            Attributes: [{ Key: 'deregistration_delay.timeout_seconds', Value: String(options.deregistrationDelaySeconds ?? 3) }],
          }),
        );
      }
      elb.destroy();
      proxy = await FaultProxy.start({ ...options.proxy, upstreamPort: moto.port });
      const runtimeConfig: RuntimeConfig = {
        tableName: deployment.tableName,
        routing: {
          allowedCidrs: DEFAULT_ALLOWED_CIDRS,
          capabilities: Object.fromEntries(
            Object.entries(deployment.targetGroups).map(([c, arn]) => [c, { targetGroupArn: arn, targetType: deployment.targetTypes[c] ?? 'ip' }]),
          ),
        },
        safetyValveShare: 0.5,
        reconcileRepeatSeconds: 0,
      };
      const stack = new ChaosStack(dbPath, ddb, moto, proxy, deployment, runtimeConfig, options);
      stack.wire();
      return stack;
    } catch (error) {
      await proxy?.close();
      await stopAll();
      throw error;
    }
  }

  /** Handlers built once, as in a warm Lambda container; their clients outlive DynamoDB Local restarts (same port). */
  private wire(): void {
    const elbConfig = { endpoint: this.proxy.endpoint, region: this.moto.clientConfig.region, credentials: this.moto.clientConfig.credentials };
    const syncElb = instrumentElbClient(createElbClient(elbConfig), 'sync');
    const reconcileElb = instrumentElbClient(createElbClient(elbConfig), 'reconcile');
    this.clients.push(syncElb, reconcileElb);
    const logger = new Logger({ serviceName: 'agent-lb-chaos', logLevel: 'SILENT' });
    // The handlers' warnings and errors, counted by message and error (for the run's table).
    for (const level of ['warn', 'error'] as const) {
      const original = logger[level].bind(logger);
      logger[level] = ((message: string, extra?: { error?: string }) => {
        const why = `${level}: ${message}${extra?.error ? `: ${String(extra.error).replace(/arn:\S+/g, '…').slice(0, 140)}` : ''}`;
        this.handlerWarnings.set(why, (this.handlerWarnings.get(why) ?? 0) + 1);
        original(message, extra as never);
      }) as typeof logger.warn;
    }
    const sync = createSyncHandler({
      config: this.runtimeConfig,
      elbClient: syncElb,
      dynamoClient: this.newDynamoClient(),
      logger,
      metrics: silentMetrics(logger),
    });
    const reconcile = createReconcileHandler({
      config: this.runtimeConfig,
      elbClient: reconcileElb,
      dynamoClient: this.newDynamoClient(),
      logger,
      metrics: silentMetrics(logger),
    });
    this.reconcile = () => reconcile();
    const chaos = withHandlerChaos(sync, { random: this.options.handlerRandom, killRate: this.options.killRate, duplicateRate: this.options.duplicateRate });
    this.handlerChaos = chaos;
    this.handler = async (event) => {
      this.counters.handlerInvocations++;
      const seqs = event.Records.map((r) => r.dynamodb?.SequenceNumber ?? '');
      for (const s of seqs) {
        if (this.acked.has(s)) this.counters.recordsRedelivered++;
        if (!this.seen.has(s)) {
          this.seen.add(s);
          this.counters.streamRecords++;
        }
      }
      if (this.traceInvocations) {
        this.invocationTrace.push({
          at: Date.now(),
          records: event.Records.map((r) => {
            const o = r.dynamodb?.OldImage;
            const n = r.dynamodb?.NewImage;
            const img = (i: typeof o) => (i ? `${i.status?.S}:${i.capabilities?.SS?.join('+')}:${i.leaseToken?.S?.slice(0, 6)}` : '-');
            return `${r.dynamodb?.SequenceNumber} ${r.dynamodb?.Keys?.target?.S} ${img(o)} > ${img(n)}`;
          }),
        });
      }
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
    this.poller = this.newPoller();
    this.poller.start();
    this.snapshotTimer = setInterval(() => {
      const checkpoints = this.poller.checkpoints();
      if (Object.keys(checkpoints).length > 0) this.snapshots.push({ at: Date.now(), checkpoints });
      if (this.snapshots.length > 600) this.snapshots.shift();
    }, 1000);
    this.scheduleReconcile();
  }

  private newPoller(checkpoints?: Record<string, string>): StreamPoller {
    this.streamsClient?.destroy();
    this.streamsClient = new DynamoDBStreamsClient({ ...this.ddb.clientConfig });
    return new StreamPoller({
      streamArn: this.deployment.streamArn,
      client: this.streamsClient,
      handler: this.handler,
      batchSize: this.options.batchSize ?? 100,
      pollIntervalMs: this.options.pollIntervalMs ?? 250,
      bisectOnError: true,
      ...(checkpoints ? { checkpoints } : {}),
      onError: () => this.counters.pollerErrors++,
    });
  }

  /**
   * A pass every reconcile interval, as a rate schedule fires, one at a time as in one warm
   * container: a pass that runs longer than the interval delays the next one to its end.
   */
  private scheduleReconcile(at = Date.now() + this.options.reconcileIntervalMs): void {
    if (this.stopped) return;
    this.reconcileTimer = setTimeout(() => {
      const started = Date.now();
      void this.reconcileNow().finally(() => this.scheduleReconcile(Math.max(Date.now(), started + this.options.reconcileIntervalMs)));
    }, Math.max(0, at - Date.now()));
  }

  /** One reconcile pass, after any pass in flight; failures are counted, not thrown. */
  public reconcileNow(): Promise<void> {
    const run = this.reconcileRunning.then(async () => {
      try {
        await this.reconcile();
        this.counters.reconcilePasses++;
      } catch (error) {
        this.counters.reconcileFailures++;
        const why = String((error as Error)?.message ?? error).slice(0, 160);
        this.reconcileFailureReasons.set(why, (this.reconcileFailureReasons.get(why) ?? 0) + 1);
      }
    });
    this.reconcileRunning = run;
    return run;
  }

  /**
   * Replaces the poller by one resumed from the checkpoint it had `backMs` ago: every record
   * since then is delivered again, in order, after later ones were already applied.
   */
  public replay(backMs: number): Promise<void> {
    this.pollerSwap = this.pollerSwap.then(async () => {
      if (this.stopped) return;
      const cutoff = Date.now() - backMs;
      const snapshot = [...this.snapshots].reverse().find((s) => s.at <= cutoff) ?? this.snapshots[0];
      if (snapshot === undefined) return;
      await this.poller.stop();
      this.poller = this.newPoller(snapshot.checkpoints);
      this.poller.start();
      this.counters.replays++;
    });
    return this.pollerSwap;
  }

  private async streamView(): Promise<{ arn: string; shards: string[] }> {
    const client = new DynamoDBClient({ ...this.ddb.clientConfig });
    const streams = new DynamoDBStreamsClient({ ...this.ddb.clientConfig });
    try {
      const table = await client.send(new DescribeTableCommand({ TableName: this.deployment.tableName }));
      const arn = table.Table?.LatestStreamArn ?? '';
      const described = await streams.send(new DescribeStreamCommand({ StreamArn: arn }));
      return { arn, shards: (described.StreamDescription?.Shards ?? []).map((s) => s.ShardId ?? '') };
    } finally {
      client.destroy();
      streams.destroy();
    }
  }

  /**
   * Kills DynamoDB Local (SIGKILL to its process group, as a crash) and starts it again on the
   * same port with the same data directory. Every client keeps its endpoint.
   */
  public async restartDynamoDb(): Promise<RestartReport> {
    const before = await this.streamView();
    const started = Date.now();
    try {
      process.kill(-this.ddb.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await this.ddb.stop();
    this.ddb = await startDynamoDbLocal({ dbPath: this.dbPath, port: this.ddb.port });
    const downMs = Date.now() - started;
    const after = await this.streamView();
    const report = { downMs, streamArnBefore: before.arn, streamArnAfter: after.arn, shardsBefore: before.shards, shardsAfter: after.shards };
    this.restarts.push(report);
    return report;
  }

  /** Waits until the poller has delivered everything written so far. */
  public async drain(timeoutMs = 60_000): Promise<void> {
    await this.pollerSwap;
    await this.poller.drain(timeoutMs);
  }

  public async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconcileTimer);
    clearInterval(this.snapshotTimer);
    await this.pollerSwap.catch(() => undefined);
    await this.poller.stop().catch(() => undefined);
    this.streamsClient?.destroy();
    await this.reconcileRunning.catch(() => undefined);
    for (const client of this.clients) client.destroy();
    await this.proxy.close();
    await Promise.allSettled([this.ddb.stop(), this.moto.stop()]);
    rmSync(this.dbPath, { recursive: true, force: true });
  }
}

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { createReconcileHandler } from '../handlers/reconcile-handler';
import { createSyncHandler } from '../handlers/stream-sync-handler';
import { formatStateFile, LocalState, routingFor } from '../core/deployment';
import { RuntimeConfig } from '../core/runtime-config';
import { createElbClient } from '../aws/clients';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { ReconcileReport } from '../registry/reconcile';
import { DynamoDbLocal, MotoServer, startDynamoDbLocal, startMotoServer } from './emulators';
import { LocalDeployment, provisionLocal } from './provision';
import { StreamPoller, StreamPollerBatchInfo } from './stream/stream-poller';
import { checkLocalContext, synthesizeTemplate } from './synth-template';

export interface LocalStackOptions {
  /** Replace the cdk.json context's capability list. */
  readonly capabilities?: readonly string[];
  /** The cdk.json whose `agent-lb` context is provisioned. @default agent-lb's own (the example) */
  readonly cdkJsonPath?: string;
  /** How often the reconcile handler runs. @default 5000 */
  readonly reconcileIntervalMs?: number;
  /** Stream poll interval per shard. @default 250 (Lambda polls about 4×/s) */
  readonly pollIntervalMs?: number;
  /** @default 1000, like the stack's event source mapping */
  readonly batchSize?: number;
  /** @default 0 locally, so changes show at once */
  readonly batchingWindowMs?: number;
  /** Keep DynamoDB Local's data in this directory (survives a restart). @default in memory */
  readonly dbPath?: string;
  /** Write the join file here once everything is ready. */
  readonly stateFile?: string;
  /** Wraps the ELB client the handlers use (fault injection in chaos runs). */
  readonly wrapElbClient?: (client: ElasticLoadBalancingV2Client) => ElasticLoadBalancingV2Client;
  /** Progress while starting, for people watching. */
  readonly onProgress?: (step: string) => void;
  readonly onBatch?: (info: StreamPollerBatchInfo) => void;
  readonly onReconcile?: (report: ReconcileReport) => void;
  readonly onError?: (where: 'poller' | 'reconcile', error: unknown) => void;
  /** Logger of both handlers (tests capture rejections from it). @default a silent logger */
  readonly logger?: Logger;
  /** Metrics of each handler (tests capture the EMF). @default metrics that publish nothing */
  readonly metrics?: (handler: 'sync' | 'reconcile') => Metrics;
}

export interface LocalStackCounters {
  readonly recordsSynced: number;
  readonly batches: number;
  readonly elbMutatingCalls: number;
  readonly reconcileRuns: number;
  readonly lastSyncLagMs?: number;
}

/**
 * The whole system on one machine: DynamoDB Local for the lease table and its stream, moto for
 * ELBv2 provisioned from the deployable stack's template, the local poller feeding the real
 * sync handler, and the real reconcile handler on a short interval.
 */
export class LocalStack {
  private readonly tally = { recordsSynced: 0, batches: 0, reconcileRuns: 0, lastSyncLagMs: undefined as number | undefined };
  private reconcileTimer?: NodeJS.Timeout;
  private reconcileRunning?: Promise<void>;
  private stopped = false;

  private constructor(
    public readonly state: LocalState,
    public readonly deployment: LocalDeployment,
    public readonly runtimeConfig: RuntimeConfig,
    /** Clients of the local servers, for agents and checks (not wrapped by fault injection). */
    public readonly dynamodb: DynamoDBClient,
    public readonly elbv2: ElasticLoadBalancingV2Client,
    private readonly servers: { ddb: DynamoDbLocal; moto: MotoServer },
    private readonly poller: StreamPoller,
    private readonly reconcile: () => Promise<ReconcileReport[]>,
    private readonly mutatingCalls: () => number,
    private readonly options: LocalStackOptions,
  ) {}

  /** What the handlers have done so far. */
  public get counters(): LocalStackCounters {
    return { ...this.tally, elbMutatingCalls: this.mutatingCalls() };
  }

  /** Starts both servers in parallel, provisions from the synthesized template, then starts syncing. */
  public static async start(options: LocalStackOptions = {}): Promise<LocalStack> {
    const progress = options.onProgress ?? (() => undefined);
    checkLocalContext(options.cdkJsonPath);
    progress('starting DynamoDB Local and moto_server');
    // Synthesis is CPU-bound and the servers start in child processes: overlap them.
    const serversStarting = Promise.allSettled([startDynamoDbLocal(options.dbPath ? { dbPath: options.dbPath } : {}), startMotoServer()]);
    let synth: ReturnType<typeof synthesizeTemplate>;
    try {
      synth = synthesizeTemplate({
        ...(options.capabilities ? { capabilities: options.capabilities } : {}),
        ...(options.cdkJsonPath ? { cdkJsonPath: options.cdkJsonPath } : {}),
      });
    } catch (error) {
      await stopSettled(await serversStarting);
      throw error;
    }
    const [ddbResult, motoResult] = await serversStarting;
    if (ddbResult.status === 'rejected' || motoResult.status === 'rejected') {
      await stopSettled([ddbResult, motoResult]);
      throw ddbResult.status === 'rejected' ? ddbResult.reason : (motoResult as PromiseRejectedResult).reason;
    }
    const servers = { ddb: ddbResult.value, moto: motoResult.value };
    try {
      return await LocalStack.provisionAndRun(servers, synth, options, progress);
    } catch (error) {
      await Promise.allSettled([servers.ddb.stop(), servers.moto.stop()]);
      throw error;
    }
  }

  private static async provisionAndRun(
    servers: { ddb: DynamoDbLocal; moto: MotoServer },
    synth: ReturnType<typeof synthesizeTemplate>,
    options: LocalStackOptions,
    progress: (step: string) => void,
  ): Promise<LocalStack> {
    const dynamodb = new DynamoDBClient({ ...servers.ddb.clientConfig, maxAttempts: 5 });
    const elbv2 = createElbClient({ ...servers.moto.clientConfig });
    progress(`provisioning stack ${synth.stackName} from its synthesized template`);
    const deployment = await provisionLocal({
      template: synth.template,
      stackName: synth.stackName,
      cfn: new CloudFormationClient({ ...servers.moto.clientConfig }),
      dynamodb,
    });
    const runtimeConfig: RuntimeConfig = {
      tableName: deployment.tableName,
      // Demo agents listen on 127.0.0.1; loopback stays refused on AWS.
      routing: routingFor(deployment.targetGroups, targetTypesByArn(deployment), true),
      safetyValveShare: 0.5,
      reconcileRepeatSeconds: 0,
    };

    const handlerElb = countingElbClient(options.wrapElbClient ? options.wrapElbClient(createElbClient({ ...servers.moto.clientConfig })) : createElbClient({ ...servers.moto.clientConfig }));
    const logger = options.logger ?? new Logger({ serviceName: 'agent-lb-local', logLevel: 'SILENT' });
    const telemetry = (handler: 'sync' | 'reconcile') => options.metrics?.(handler) ?? localMetrics(logger);
    const sync = createSyncHandler({ config: runtimeConfig, elbClient: handlerElb.client, dynamoClient: dynamodb, logger, metrics: telemetry('sync') });
    const reconcile = createReconcileHandler({ config: runtimeConfig, elbClient: handlerElb.client, dynamoClient: dynamodb, logger, metrics: telemetry('reconcile') });

    let stack: LocalStack | undefined;
    const poller = new StreamPoller({
      streamArn: deployment.streamArn,
      client: new DynamoDBStreamsClient({ ...servers.ddb.clientConfig }),
      handler: sync,
      batchSize: options.batchSize ?? 1000,
      batchingWindowMs: options.batchingWindowMs ?? 0,
      pollIntervalMs: options.pollIntervalMs ?? 250,
      bisectOnError: true,
      onBatch: (info) => {
        stack?.noteBatch(info);
        options.onBatch?.(info);
      },
      onError: (error) => options.onError?.('poller', error),
    });
    const state: LocalState = {
      region: servers.ddb.clientConfig.region,
      dynamodbEndpoint: servers.ddb.endpoint,
      elbv2Endpoint: servers.moto.endpoint,
      tableName: deployment.tableName,
      loadBalancerArn: deployment.loadBalancerArn,
      listenerArn: deployment.listenerArn,
      targetGroups: deployment.targetGroups,
    };
    stack = new LocalStack(state, deployment, runtimeConfig, dynamodb, elbv2, servers, poller, reconcile, handlerElb.mutating, options);
    poller.start();
    stack.scheduleReconcile();
    try {
      if (options.stateFile) writeStateFile(options.stateFile, state);
    } catch (error) {
      // Nothing of a stack that failed to start may keep running (the poller and the reconcile timer would hold the process).
      await stack.stop();
      throw error;
    }
    progress('ready');
    return stack;
  }

  private noteBatch(info: StreamPollerBatchInfo): void {
    this.tally.batches++;
    this.tally.recordsSynced += info.processed;
    this.tally.lastSyncLagMs = info.pollerLagMs;
  }

  /** Targets and lease store views for status displays and checks. */
  public sources(): { elb: ElbTargets; store: LeaseStore } {
    return { elb: new ElbTargets(this.elbv2), store: new LeaseStore(this.dynamodb, this.state.tableName) };
  }

  /** Runs one reconcile pass now (after any pass in flight), outside the timer. */
  public async reconcileNow(): Promise<ReconcileReport> {
    await this.reconcileRunning;
    const run = this.reconcile().then(([report]) => report);
    this.reconcileRunning = run.then(
      () => undefined,
      () => undefined,
    );
    const report = await run;
    this.tally.reconcileRuns++;
    return report;
  }

  /** Waits until every stream record written so far has gone through the sync handler. */
  public drain(timeoutMs = 30_000): Promise<void> {
    return this.poller.drain(timeoutMs);
  }

  private scheduleReconcile(): void {
    const interval = this.options.reconcileIntervalMs ?? 5000;
    if (interval <= 0 || this.stopped) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileNow()
        .then((report) => this.options.onReconcile?.(report))
        .catch((error: unknown) => this.options.onError?.('reconcile', error))
        .finally(() => this.scheduleReconcile());
    }, interval);
  }

  /** Stops syncing, then both servers; their process trees are gone and ports free when this resolves. Idempotent. */
  public async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconcileTimer);
    await this.poller.stop().catch(() => undefined);
    await this.reconcileRunning;
    this.dynamodb.destroy();
    this.elbv2.destroy();
    await Promise.allSettled([this.servers.ddb.stop(), this.servers.moto.stop()]);
  }
}

/** Target group ARN → target type, from the provisioned deployment's capability → type. */
function targetTypesByArn(deployment: LocalDeployment): Record<string, 'ip' | 'instance'> {
  return Object.fromEntries(Object.entries(deployment.targetGroups).map(([c, arn]) => [arn, deployment.targetTypes[c] ?? 'ip']));
}

async function stopSettled(results: PromiseSettledResult<{ stop(): Promise<void> }>[]): Promise<void> {
  await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
}

/** Metrics that go nowhere: locally the live view shows the figures, and EMF lines would garble it. */
export function localMetrics(logger: Logger, namespace = 'agent-lb-local'): Metrics {
  const previous = process.env.POWERTOOLS_METRICS_DISABLED;
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  try {
    return new Metrics({ namespace, serviceName: namespace, logger });
  } finally {
    if (previous === undefined) delete process.env.POWERTOOLS_METRICS_DISABLED;
    else process.env.POWERTOOLS_METRICS_DISABLED = previous;
  }
}

/** Counts Register/DeregisterTargets requests sent (each retry attempt included), as AWS's throttle sees them. */
function countingElbClient(client: ElasticLoadBalancingV2Client): { client: ElasticLoadBalancingV2Client; mutating: () => number } {
  let mutating = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'RegisterTargetsCommand' || context.commandName === 'DeregisterTargetsCommand') mutating++;
      return next(args);
    },
    { step: 'finalizeRequest', name: 'agentLbCountMutatingCalls' },
  );
  return { client, mutating: () => mutating };
}

/** Writes atomically, so a client polling for the file never reads half of it; creates the file's directory. */
export function writeStateFile(path: string, state: LocalState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, formatStateFile(state));
  renameSync(tmp, path);
}

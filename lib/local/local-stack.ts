import { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client, ModifyTargetGroupAttributesCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { LocalState } from '../core/deployment';
import { ConfigError } from '../core/errors';
import { addressPolicyFor, DEFAULT_SAFETY_VALVE_SHARE, isTargetQuota, RuntimeConfig, targetQuotaProblem } from '../core/runtime-config';
import { createDynamoClient } from '../aws/dynamo-client';
import { createElbClient } from '../aws/clients';
import { createEc2Client } from '../aws/ec2-holders';
import { ElbTargets } from '../aws/elb-targets';
import { loadBalancerDnsNames } from '../aws/load-balancers';
import { LeaseStore } from '../aws/lease-store';
import { RegistryStateStore } from '../aws/registry-state-store';
import { ReconcileReport } from '../registry/reconcile';
import { RotationPoll } from '../registry/rotation-poll';
import { createReconcileHandler } from '../handlers/reconcile-handler';
import { createSyncHandler } from '../handlers/stream-sync-handler';
import { assertPortFree, DynamoDbLocal, MotoServer, startDynamoDbLocal, startMotoServer } from './emulators';
import { createAgentInterfaces } from './agent-interfaces';
import { countingElbClient, localMetrics } from './handler-telemetry';
import { checkDataPlaneOptions, followTargetChanges, LOCAL_LOAD_BALANCER_HOST, LocalDataPlane, LocalDataPlaneOptions, startLocalDataPlane } from './local-data-plane';
import { LocalCatalog, LocalLoadBalancerAddress, openLocalCatalog } from './local-catalog';
import type { LambdaInvoker } from './data-plane';
import { LocalDeployment, provisionLocal } from './provision';
import { localRuntimeConfig } from './template-config';
import { writeStateFile } from './state-file';
import { StreamHandler, StreamPoller, StreamPollerBatchInfo } from './stream/stream-poller';
import { createCatalogStreamHandler } from '../handlers/catalog-stream-handler';
import { checkLocalContext, synthesizeTemplate } from './synth-template';


export interface LocalStackOptions {
  /** Replace the cdk.json context's capability list. */
  readonly capabilities?: readonly string[];
  /** The cdk.json whose `agent-lb` context is provisioned. @default agent-lb's own (the example) */
  readonly cdkJsonPath?: string;
  /**
   * The load balancer's target quota, as cdk.json's `targetQuota` sets it for a deployment whose
   * ALB quota was raised (ALB's default is 1 000 targets per load balancer, every registration in
   * every group counting once): the stack is synthesized with it, so the sync and reconcile
   * handlers, and the quota alarm, get it as the deployed ones would. Checked like the runtime
   * configuration's (an integer in 1–MAX_TARGET_QUOTA) before anything starts.
   * @default the cdk.json context's, else DEFAULT_TARGET_QUOTA
   */
  readonly targetQuota?: number;
  /** How often the reconcile handler runs. @default 5000 */
  readonly reconcileIntervalMs?: number;
  /**
   * How often the registry's rotation poll reads the groups' health and writes what changed into
   * the leases' `rotation` (RotationPoll: one DescribeTargetHealth per group, lease reads only on
   * change), so agents learn they are serving without waiting for a reconcile pass. 0 turns it off.
   * @default 1000
   */
  readonly rotationPollIntervalMs?: number;
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
  /** Wraps the ELB client of each handler (instrumentation in chaos runs); each handler has its own, as each Lambda does. */
  readonly wrapElbClient?: (client: ElasticLoadBalancingV2Client, handler: 'sync' | 'reconcile') => ElasticLoadBalancingV2Client;
  /**
   * Puts something in front of moto's ELB endpoint for the handlers' clients (a fault-injecting
   * proxy in chaos runs); agents, checks and the CLI keep talking to moto directly. Closed on stop.
   */
  readonly elbEndpointProxy?: (upstream: { readonly port: number; readonly endpoint: string }) => Promise<LocalEndpointProxy>;
  /** Wraps the EC2 client of each handler (admission's lookups: a test throttles or counts them). */
  readonly wrapEc2Client?: (client: EC2Client, handler: 'sync' | 'reconcile') => EC2Client;
  /** Wraps the sync handler the poller invokes (kills, duplicate deliveries, delivery counts in chaos runs). */
  readonly wrapSyncHandler?: (handler: StreamHandler) => StreamHandler;
  /** Every target group's deregistration delay, seconds (moto launcher's ELB model drains that long). @default the template's */
  readonly deregistrationDelaySeconds?: number;
  /**
   * Runs the local data plane: an HTTP endpoint on 127.0.0.1 that routes requests as the ALB
   * would from moto's ELBv2 state, runs each group's health checks and reports the states into
   * moto. Its endpoint is the state's `loadBalancerEndpoint`. @default none
   */
  readonly dataPlane?: LocalDataPlaneOptions;
  /**
   * Admit loopback agents (127.0.0.1: local processes) on any port without an EC2 check. Off,
   * a loopback address needs a network interface in moto's VPC carrying an admitted security
   * group, like any other address. @default true
   */
  readonly admitLoopback?: boolean;
  /** Progress while starting, for people watching. */
  readonly onProgress?: (step: string) => void;
  readonly onBatch?: (info: StreamPollerBatchInfo) => void;
  readonly onReconcile?: (report: ReconcileReport) => void;
  readonly onError?: (where: 'poller' | 'reconcile' | 'data-plane', error: unknown) => void;
  /** Logger of both handlers (tests capture rejections from it). @default a silent logger */
  readonly logger?: Logger;
  /** Metrics of each handler (tests capture the EMF). @default metrics that publish nothing */
  readonly metrics?: (handler: 'sync' | 'reconcile') => Metrics;
}

/** A stand-in endpoint in front of a local server. */
export interface LocalEndpointProxy {
  readonly endpoint: string;
  close(): Promise<void>;
}

/** What a DynamoDB Local restart changed: how long it was down, and its stream before and after. */
export interface DynamoDbRestart {
  readonly downMs: number;
  readonly streamArnBefore: string;
  readonly streamArnAfter: string;
  readonly shardsBefore: readonly string[];
  readonly shardsAfter: readonly string[];
}

/** Poller checkpoints kept for {@link LocalStack.replay}: one a second, ten minutes' worth. */
const CHECKPOINT_HISTORY = 600;

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
 * sync handler, and the real reconcile handler on a rate schedule. Its seams (an endpoint proxy
 * in front of ELB, a wrapped sync handler, DynamoDB Local restarts, replays from an earlier
 * checkpoint) are what the chaos run drives.
 */
export class LocalStack {
  private readonly tally = { recordsSynced: 0, batches: 0, reconcileRuns: 0, lastSyncLagMs: undefined as number | undefined };
  private reconcileTimer?: NodeJS.Timeout;
  /**
   * Reconcile passes and rotation polls, one at a time, as one reconcile container runs them:
   * a poll that wrote `rotation` between a pass's group reads and its writes made the pass write
   * the same entries again (a failed conditional write per lease, or a second write and stream
   * record when the pass's `since` was later), and the other way round.
   */
  private reconcileLane: Promise<void> = Promise.resolve();
  private checkpointTimer?: NodeJS.Timeout;
  private readonly checkpointHistory: { at: number; checkpoints: Record<string, string> }[] = [];
  private poller!: StreamPoller;
  private streamsClient?: DynamoDBStreamsClient;
  /** With a catalog: the stream's second reader, feeding the catalog stream handler, as its own event source mapping does on AWS. */
  private catalogPoller?: StreamPoller;
  private catalogStreamsClient?: DynamoDBStreamsClient;
  private pollerSwap: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(
    public readonly state: LocalState,
    public readonly deployment: LocalDeployment,
    public readonly runtimeConfig: RuntimeConfig,
    /** Clients of the local servers, for agents and checks (not behind the endpoint proxy). */
    public readonly dynamodb: DynamoDBClient,
    public readonly elbv2: ElasticLoadBalancingV2Client,
    private readonly servers: { ddb: DynamoDbLocal; moto: MotoServer },
    private readonly handlers: { sync: StreamHandler; catalogStream?: StreamHandler; reconcile: () => Promise<ReconcileReport[]>; rotationPoll: RotationPoll; catalog: LocalCatalog; clients: { destroy(): void }[]; proxy?: LocalEndpointProxy },
    private readonly mutatingCalls: () => number,
    private readonly options: LocalStackOptions,
    /** The local data plane of each load balancer (`deployment.loadBalancers`, same order), when `dataPlane` was given. */
    public readonly dataPlanes: readonly LocalDataPlane[] = [],
  ) {}

  /** The first load balancer's local data plane (the one on `dataPlane.port`), when `dataPlane` was given. */
  public get dataPlane(): LocalDataPlane | undefined {
    return this.dataPlanes[0];
  }

  /** The local data plane that routes `capability` (or a variant), when `dataPlane` was given. */
  public dataPlaneOf(capability: string): LocalDataPlane | undefined {
    const i = this.deployment.loadBalancers.findIndex((lb) => lb.capabilities.includes(capability));
    return i < 0 ? undefined : this.dataPlanes[i];
  }

  /** What the handlers have done so far. */
  public get counters(): LocalStackCounters {
    return { ...this.tally, elbMutatingCalls: this.mutatingCalls() };
  }

  /** Client settings of DynamoDB Local (endpoint, region, credentials); the endpoint survives {@link restartDynamoDb}. */
  public get dynamodbClientConfig(): DynamoDbLocal['clientConfig'] {
    return this.servers.ddb.clientConfig;
  }

  /** Client settings of moto's ELBv2 (the real endpoint, not the proxy's). */
  public get elbv2ClientConfig(): MotoServer['clientConfig'] {
    return this.servers.moto.clientConfig;
  }

  /** Starts both servers in parallel, provisions from the synthesized template, then starts syncing. */
  public static async start(options: LocalStackOptions = {}): Promise<LocalStack> {
    const progress = options.onProgress ?? (() => undefined);
    checkLocalContext(options.cdkJsonPath);
    if (options.targetQuota !== undefined && !isTargetQuota(options.targetQuota)) throw new ConfigError(`LocalStack: ${targetQuotaProblem(options.targetQuota)}`);
    if (options.dataPlane !== undefined) {
      checkDataPlaneOptions(options.dataPlane);
      if (options.dataPlane.port) await assertPortFree('the load balancer', options.dataPlane.port);
    }
    progress('starting DynamoDB Local and moto_server');
    // With a data plane attached, moto's targets start `initial` and drain at the data plane's pace.
    const motoOptions = options.dataPlane ? { healthReporter: true, timeScale: options.dataPlane.timeScale ?? 1 } : {};
    // Synthesis is CPU-bound and the servers start in child processes: overlap them.
    const serversStarting = Promise.allSettled([startDynamoDbLocal(options.dbPath ? { dbPath: options.dbPath } : {}), startMotoServer(motoOptions)]);
    let synth: ReturnType<typeof synthesizeTemplate>;
    try {
      synth = synthesizeTemplate({
        ...(options.capabilities ? { capabilities: options.capabilities } : {}),
        ...(options.cdkJsonPath ? { cdkJsonPath: options.cdkJsonPath } : {}),
        ...(options.targetQuota !== undefined ? { targetQuota: options.targetQuota } : {}),
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
    if (options.deregistrationDelaySeconds !== undefined) {
      const Attributes = [{ Key: 'deregistration_delay.timeout_seconds', Value: String(options.deregistrationDelaySeconds) }];
      for (const arn of Object.values(deployment.targetGroups)) await elbv2.send(new ModifyTargetGroupAttributesCommand({ TargetGroupArn: arn, Attributes }));
    }
    // One local load balancer per load balancer of the deployment, started before the catalog
    // exists: the catalog names each one's port. The catalog's function behind their Lambda target
    // groups is invoked once it is open (nothing knows the later ports before `ready` anyway).
    let openedCatalog: (catalog: LocalCatalog) => void = () => undefined;
    const catalogOpen = new Promise<LocalCatalog>((resolve) => (openedCatalog = resolve));
    const dataPlanes = options.dataPlane === undefined ? [] : await startDataPlanes(servers.moto, deployment, options, progress, (arn, event) => catalogOpen.then((c) => c.invoke(arn, event)));
    try {
      return await LocalStack.runHandlers(servers, synth, deployment, dataPlanes, openedCatalog, options, progress, dynamodb, elbv2);
    } catch (error) {
      await Promise.allSettled(dataPlanes.map((d) => d.stop()));
      throw error;
    }
  }

  private static async runHandlers(
    servers: { ddb: DynamoDbLocal; moto: MotoServer },
    synth: ReturnType<typeof synthesizeTemplate>,
    deployment: LocalDeployment,
    dataPlanes: readonly LocalDataPlane[],
    openedCatalog: (catalog: LocalCatalog) => void,
    options: LocalStackOptions,
    progress: (step: string) => void,
    dynamodb: DynamoDBClient,
    elbv2: ElasticLoadBalancingV2Client,
  ): Promise<LocalStack> {
    // Where the catalog says each capability is reached: its local load balancer's host and port,
    // which a client reaches; without a data plane nothing serves HTTP, and the catalog names moto's
    // DNS names, read as the functions read them on AWS.
    const arns = deployment.loadBalancers.map((lb) => lb.loadBalancerArn);
    const addresses: Map<string, LocalLoadBalancerAddress> | undefined =
      deployment.registryTableName === undefined
        ? undefined
        : dataPlanes.length > 0
          ? new Map(dataPlanes.map((d, i) => [arns[i], { host: LOCAL_LOAD_BALANCER_HOST, port: Number(new URL(d.endpoint).port) }]))
          : new Map([...(await loadBalancerDnsNames(elbv2, arns))].map(([arn, host]) => [arn, { host }]));
    const catalog = openLocalCatalog(deployment, servers.ddb.clientConfig, addresses);
    openedCatalog(catalog);
    // The deployed Lambdas' own configuration (ranges, ports, maximum TTL, admission, quota),
    // resolved against moto; demo agents listen on 127.0.0.1, which stays refused on AWS. As on
    // AWS, the reconcile pass holds a variant without a healthy target at weight 0.
    const runtimeConfig: RuntimeConfig = {
      ...localRuntimeConfig(synth.template, deployment, { admitLoopback: options.admitLoopback ?? true }),
      ...(catalog.config ? { catalog: catalog.config } : {}),
      safetyValveShare: DEFAULT_SAFETY_VALVE_SHARE,
      reconcileRepeatSeconds: 0,
    };

    const proxy = options.elbEndpointProxy ? await options.elbEndpointProxy({ port: servers.moto.port, endpoint: servers.moto.endpoint }) : undefined;
    // Each handler has its own clients, as each Lambda function does; they keep their endpoints across a DynamoDB Local restart (same port).
    const elbFor = (handler: 'sync' | 'reconcile') => {
      const client = createElbClient({ ...servers.moto.clientConfig, ...(proxy ? { endpoint: proxy.endpoint } : {}) });
      return options.wrapElbClient ? options.wrapElbClient(client, handler) : client;
    };
    const counted = countingElbClient([elbFor('sync'), elbFor('reconcile')]);
    const [syncElb, reconcileElb] = counted.clients;
    const syncDynamo = createDynamoClient({ ...servers.ddb.clientConfig });
    const reconcileDynamo = createDynamoClient({ ...servers.ddb.clientConfig });
    const logger = options.logger ?? new Logger({ serviceName: 'agent-lb-local', logLevel: 'SILENT' });
    const telemetry = (handler: 'sync' | 'reconcile') => options.metrics?.(handler) ?? localMetrics(logger);
    // Admission asks moto's EC2, where the template's VPC and security groups were provisioned.
    const ec2For = (handler: 'sync' | 'reconcile') => {
      const client = createEc2Client({ ...servers.moto.clientConfig });
      return options.wrapEc2Client ? options.wrapEc2Client(client, handler) : client;
    };
    const [syncEc2, reconcileEc2] = [ec2For('sync'), ec2For('reconcile')];
    const sync = createSyncHandler({ config: runtimeConfig, elbClient: syncElb, dynamoClient: syncDynamo, ec2Client: syncEc2, logger, metrics: telemetry('sync') });
    const reconcile = createReconcileHandler({
      config: runtimeConfig,
      elbClient: reconcileElb,
      dynamoClient: reconcileDynamo,
      ec2Client: reconcileEc2,
      logger,
      metrics: telemetry('reconcile'),
    });
    // The catalog's own reader of the stream (its configuration is explicit: the ELB client is never called).
    const catalogDynamo = createDynamoClient({ ...servers.ddb.clientConfig });
    const catalogStream = runtimeConfig.catalog ? createCatalogStreamHandler({ config: runtimeConfig, elbClient: reconcileElb, dynamoClient: catalogDynamo, logger, metrics: localMetrics(logger) }) : undefined;
    const handlers = {
      catalog,
      sync: options.wrapSyncHandler ? options.wrapSyncHandler(sync) : sync,
      ...(catalogStream ? { catalogStream } : {}),
      reconcile: () => reconcile(),
      // Reconcile's job, with reconcile's clients (its ELB calls count as reconcile's).
      rotationPoll: new RotationPoll({
        elb: new ElbTargets(reconcileElb),
        store: new LeaseStore(reconcileDynamo, deployment.tableName),
        routing: runtimeConfig.routing,
        policy: addressPolicyFor(runtimeConfig.routing),
        ...(runtimeConfig.catalog ? { catalog: { state: new RegistryStateStore(reconcileDynamo, runtimeConfig.catalog.tableName), catalog: runtimeConfig.catalog } } : {}),
      }),
      clients: [syncElb, reconcileElb, syncDynamo, reconcileDynamo, catalogDynamo, syncEc2, reconcileEc2],
      ...(proxy ? { proxy } : {}),
    };
    // Each local load balancer follows the target changes the handlers make, as they happen.
    if (dataPlanes.length > 0) for (const client of [syncElb, reconcileElb]) followTargetChanges(client, dataPlanes);
    const state: LocalState = {
      region: servers.ddb.clientConfig.region,
      dynamodbEndpoint: servers.ddb.endpoint,
      elbv2Endpoint: servers.moto.endpoint,
      ...(dataPlanes.length > 0 ? { loadBalancerEndpoint: dataPlanes[0].endpoint } : {}),
      tableName: deployment.tableName,
      loadBalancerArn: deployment.loadBalancerArn,
      listenerArn: deployment.listenerArn,
      loadBalancers: deployment.loadBalancers.map((lb, i) => ({ ...lb, ...(dataPlanes[i] ? { endpoint: dataPlanes[i].endpoint } : {}) })),
      targetGroups: deployment.targetGroups,
      maxRequestSeconds: deployment.maxRequestSeconds,
      ...(deployment.registryTableName ? { registryTableName: deployment.registryTableName } : {}),
    };
    // The first revision now, so `GET /agents` answers from the start; sync and reconcile keep it current.
    const built = await catalog.build(runtimeConfig.routing, addressPolicyFor(runtimeConfig.routing));
    if (built?.error) options.onError?.('reconcile', built.error);
    const stack = new LocalStack(state, deployment, runtimeConfig, dynamodb, elbv2, servers, handlers, counted.mutating, options, dataPlanes);
    stack.poller = stack.newPoller();
    stack.poller.start();
    stack.catalogPoller = stack.newCatalogPoller();
    stack.catalogPoller?.start();
    stack.checkpointTimer = setInterval(() => stack.keepCheckpoints(), 1000);
    stack.scheduleReconcile();
    stack.handlers.rotationPoll.start(
      options.rotationPollIntervalMs ?? 1000,
      (error) => options.onError?.('reconcile', error),
      (poll) => stack.inReconcileLane(poll),
    );
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

  /** A poller feeding the sync handler, resumed from `checkpoints` when given; with a fresh stream client. */
  private newPoller(checkpoints?: Record<string, string>): StreamPoller {
    this.streamsClient?.destroy();
    this.streamsClient = new DynamoDBStreamsClient({ ...this.servers.ddb.clientConfig });
    return new StreamPoller({
      streamArn: this.deployment.streamArn,
      client: this.streamsClient,
      handler: this.handlers.sync,
      batchSize: this.options.batchSize ?? 1000,
      batchingWindowMs: this.options.batchingWindowMs ?? 0,
      pollIntervalMs: this.options.pollIntervalMs ?? 250,
      bisectOnError: true,
      ...(checkpoints ? { checkpoints } : {}),
      onBatch: (info) => {
        this.noteBatch(info);
        this.options.onBatch?.(info);
      },
      onError: (error) => this.options.onError?.('poller', error),
    });
  }

  /** With a catalog, the stream's second reader: the same batching as the sync's, its own position (never replayed with it). */
  private newCatalogPoller(): StreamPoller | undefined {
    const handler = this.handlers.catalogStream;
    if (handler === undefined) return undefined;
    this.catalogStreamsClient = new DynamoDBStreamsClient({ ...this.servers.ddb.clientConfig });
    return new StreamPoller({
      streamArn: this.deployment.streamArn,
      client: this.catalogStreamsClient,
      handler,
      batchSize: this.options.batchSize ?? 1000,
      batchingWindowMs: this.options.batchingWindowMs ?? 0,
      pollIntervalMs: this.options.pollIntervalMs ?? 250,
      bisectOnError: true,
      onError: (error) => this.options.onError?.('poller', error),
    });
  }

  private keepCheckpoints(): void {
    const checkpoints = this.poller.checkpoints();
    if (Object.keys(checkpoints).length > 0) this.checkpointHistory.push({ at: Date.now(), checkpoints });
    if (this.checkpointHistory.length > CHECKPOINT_HISTORY) this.checkpointHistory.shift();
  }

  private noteBatch(info: StreamPollerBatchInfo): void {
    this.tally.batches++;
    this.tally.recordsSynced += info.processed;
    this.tally.lastSyncLagMs = info.pollerLagMs;
  }

  /**
   * Puts a network interface for each address into moto's VPC, carrying the agents' security
   * group (or `securityGroupIds`): what admits an agent at a non-loopback address, as an ECS task's
   * or an instance's interface does on AWS. Returns the interface ids.
   */
  public addAgentInterfaces(addresses: readonly string[], securityGroupIds?: readonly string[]): Promise<string[]> {
    return createAgentInterfaces(this.servers.moto.clientConfig, this.runtimeConfig.admission, addresses, securityGroupIds);
  }

  /** Targets and lease store views for status displays and checks. */
  public sources(): { elb: ElbTargets; store: LeaseStore } {
    return { elb: new ElbTargets(this.elbv2), store: new LeaseStore(this.dynamodb, this.state.tableName) };
  }

  /** Runs one reconcile pass now (after any pass in flight), outside the schedule. */
  public async reconcileNow(): Promise<ReconcileReport> {
    const report = await this.inReconcileLane(() => this.handlers.reconcile().then(([report]) => report));
    this.tally.reconcileRuns++;
    return report;
  }

  /** Runs `work` after the reconcile pass or rotation poll in flight, if any. */
  private inReconcileLane<T>(work: () => Promise<T>): Promise<T> {
    const run = this.reconcileLane.then(work);
    this.reconcileLane = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Waits until every stream record written so far has gone through the sync handler (and, with a catalog, the catalog stream handler). */
  public async drain(timeoutMs = 30_000): Promise<void> {
    await this.pollerSwap;
    await Promise.all([this.poller.drain(timeoutMs), this.catalogPoller?.drain(timeoutMs)]);
  }

  /**
   * Replaces the poller by one resumed from the checkpoint it had `backMs` ago (the oldest kept
   * when none is that old): every record since then is delivered again, in order, after later
   * ones were already applied, as after a lost checkpoint. Resolves false when there was no
   * checkpoint yet to resume from.
   */
  public replay(backMs: number): Promise<boolean> {
    const swap = this.pollerSwap.then(async () => {
      if (this.stopped) return false;
      const cutoff = Date.now() - backMs;
      const snapshot = [...this.checkpointHistory].reverse().find((s) => s.at <= cutoff) ?? this.checkpointHistory[0];
      if (snapshot === undefined) return false;
      await this.poller.stop();
      this.poller = this.newPoller(snapshot.checkpoints);
      this.poller.start();
      return true;
    });
    this.pollerSwap = swap.then(
      () => undefined,
      () => undefined,
    );
    return swap;
  }

  /**
   * Kills DynamoDB Local (SIGKILL to its process group, as a crash) and starts it again on the
   * same port with the same data directory (`dbPath` must be set). Every client keeps its endpoint.
   */
  public async restartDynamoDb(): Promise<DynamoDbRestart> {
    const dbPath = this.options.dbPath;
    if (dbPath === undefined) throw new Error('restartDynamoDb needs a file-backed DynamoDB Local: start the LocalStack with dbPath');
    const before = await this.streamView();
    const started = Date.now();
    const old = this.servers.ddb;
    try {
      process.kill(-old.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await old.stop();
    this.servers.ddb = await startDynamoDbLocal({ dbPath, port: old.port });
    const downMs = Date.now() - started;
    const after = await this.streamView();
    return { downMs, streamArnBefore: before.arn, streamArnAfter: after.arn, shardsBefore: before.shards, shardsAfter: after.shards };
  }

  private async streamView(): Promise<{ arn: string; shards: string[] }> {
    const streams = new DynamoDBStreamsClient({ ...this.servers.ddb.clientConfig });
    try {
      const table = await this.dynamodb.send(new DescribeTableCommand({ TableName: this.state.tableName }));
      const arn = table.Table?.LatestStreamArn ?? '';
      const described = await streams.send(new DescribeStreamCommand({ StreamArn: arn }));
      return { arn, shards: (described.StreamDescription?.Shards ?? []).map((s) => s.ShardId ?? '') };
    } finally {
      streams.destroy();
    }
  }

  /**
   * A pass every interval, as a rate schedule fires, one at a time as in one warm container: a
   * pass that runs longer than the interval delays the next one to its end.
   */
  private scheduleReconcile(at = Date.now() + (this.options.reconcileIntervalMs ?? 5000)): void {
    const interval = this.options.reconcileIntervalMs ?? 5000;
    if (interval <= 0 || this.stopped) return;
    this.reconcileTimer = setTimeout(() => {
      const started = Date.now();
      this.reconcileNow()
        .then((report) => this.options.onReconcile?.(report))
        .catch((error: unknown) => this.options.onError?.('reconcile', error))
        .finally(() => this.scheduleReconcile(Math.max(Date.now(), started + interval)));
    }, Math.max(0, at - Date.now()));
  }

  /** Stops syncing, then both servers; their process trees are gone and ports free when this resolves. Idempotent. */
  public async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconcileTimer);
    clearInterval(this.checkpointTimer);
    await this.pollerSwap;
    await this.poller?.stop().catch(() => undefined);
    await this.catalogPoller?.stop().catch(() => undefined);
    this.streamsClient?.destroy();
    this.catalogStreamsClient?.destroy();
    await this.handlers.rotationPoll.stop();
    this.handlers.catalog.stop();
    await this.reconcileLane;
    await Promise.all(this.dataPlanes.map((d) => d.stop()));
    for (const client of this.handlers.clients) client.destroy();
    this.dynamodb.destroy();
    this.elbv2.destroy();
    await this.handlers.proxy?.close().catch(() => undefined);
    await Promise.allSettled([this.servers.ddb.stop(), this.servers.moto.stop()]);
  }
}

/**
 * A local data plane per load balancer of the deployment, in its order: the first on
 * `dataPlane.port` (what `--lb-port` sets, as with one load balancer), the others on free ports.
 * If one cannot start, those started are stopped.
 */
async function startDataPlanes(moto: MotoServer, deployment: LocalDeployment, options: LocalStackOptions, progress: (step: string) => void, invokeLambda: LambdaInvoker): Promise<LocalDataPlane[]> {
  const started: LocalDataPlane[] = [];
  const many = deployment.loadBalancers.length > 1;
  try {
    for (const [i, lb] of deployment.loadBalancers.entries()) {
      progress(many ? `starting load balancer ${i + 1} of ${deployment.loadBalancers.length} (local data plane)` : 'starting the load balancer (local data plane)');
      started.push(
        await startLocalDataPlane({
          moto,
          loadBalancerArn: lb.loadBalancerArn,
          listenerArn: lb.listenerArn,
          options: { ...options.dataPlane, port: i === 0 ? (options.dataPlane?.port ?? 0) : 0 },
          // The catalog's function, run in-process behind its Lambda target group (one on every load balancer).
          invokeLambda,
          onError: (error) => options.onError?.('data-plane', error),
        }),
      );
    }
    return started;
  } catch (error) {
    await Promise.allSettled(started.map((d) => d.stop()));
    throw error;
  }
}

async function stopSettled(results: PromiseSettledResult<{ stop(): Promise<void> }>[]): Promise<void> {
  await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
}

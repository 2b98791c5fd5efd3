import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IDependable } from 'constructs';
import { DEFAULT_ALLOWED_CIDRS, parseCidr } from '../core/address-policy';
import { CAPABILITY_NAME } from '../core/lease-schema';
import type { CapabilityTargetType } from './capability-router';

/** CloudWatch namespace of the metrics both Lambdas emit (Powertools EMF). */
export const METRICS_NAMESPACE = 'AgentLb';
/** `service` dimension (and Powertools service name) of the stream-sync Lambda. */
export const SYNC_SERVICE_NAME = 'agent-lb-sync';
/** `service` dimension (and Powertools service name) of the reconcile Lambda. */
export const RECONCILE_SERVICE_NAME = 'agent-lb-reconcile';
/** Environment variable holding the runtime configuration JSON. */
export const CONFIG_ENV = 'AGENT_LB_CONFIG';

/** Lambda allows 4 KB of environment variables per function (keys and values). */
const LAMBDA_ENV_LIMIT = 4096;

/**
 * What the sync and reconcile Lambdas read from `AGENT_LB_CONFIG`; parsed by
 * `parseRuntimeSettings` in lib/core. With a load balancer, capabilities are a list of names
 * whose target groups the functions find on it at cold start.
 */
export interface AgentLbRuntimeConfigJson {
  readonly tableName: string;
  readonly loadBalancerArn?: string;
  readonly capabilities: Record<string, { readonly targetGroupArn: string; readonly targetType: CapabilityTargetType }> | readonly string[];
  readonly allowedCidrs: string[];
  readonly safetyValveShare: number;
  readonly reconcileRepeatSeconds: number;
}

/** The target group a capability's agents are registered in. */
export interface RegistrySyncCapability {
  /** Target group of the capability. */
  readonly targetGroup: elbv2.IApplicationTargetGroup;

  /**
   * Kind of target the group takes; leases with the other kind of address are rejected.
   *
   * @default 'ip'
   */
  readonly targetType?: CapabilityTargetType;
}

/** Properties of a {@link RegistrySync}. */
export interface RegistrySyncProps {
  /** The lease table; it must have a stream with new and old images. */
  readonly table: dynamodb.ITable;

  /** Each capability's target group, by capability name. */
  readonly capabilities: Readonly<Record<string, RegistrySyncCapability>>;

  /**
   * The load balancer whose listener rules forward to the capability target groups, each
   * tagged `agent-lb:capability = <name>`. When set, the functions get only the capability
   * names and find the target groups on it at cold start (one DescribeTargetGroups page and a
   * DescribeTags call per 20 groups), which keeps their environment within Lambda's 4 KB for
   * up to 100 capabilities; the whole construct then deploys after the load balancer's rules.
   *
   * @default - every target group ARN is passed in the environment (about 20 capabilities fit)
   */
  readonly loadBalancer?: elbv2.IApplicationLoadBalancer;

  /**
   * VPC of the target groups; its CIDR is always an allowed lease address range.
   *
   * @default - only `allowedCidrs`
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Address ranges IP leases may register from (loopback, link-local, multicast and
   * unspecified addresses are refused whatever this says).
   *
   * @default - 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and 100.64.0.0/10
   */
  readonly allowedCidrs?: readonly string[];

  /**
   * Largest share of a target group's registered targets one reconcile pass may remove because
   * their lease is absent (a wiped, recreated or misconfigured table looks like that); above it
   * those removals wait for the next pass to agree, and `SafetyValveTripped` is emitted. Expired
   * leases are proof enough and are removed at once. In (0, 1].
   *
   * @default 0.5
   */
  readonly safetyValveShare?: number;

  /**
   * Largest number of stream records per sync invocation, 1–10000. Every batch costs at most
   * two ELB calls per touched target group, so bigger batches share those calls among more
   * records (bench B1: 9.7× fewer calls than a per-event registrar at 100, 50× at 1000); the
   * batching window, not the size, bounds the latency.
   *
   * @default 1000
   */
  readonly batchSize?: number;

  /**
   * Time the event source gathers records before invoking sync, 0–300 seconds. Longer windows
   * mean fewer ELB calls and more latency.
   *
   * @default Duration.seconds(1)
   */
  readonly maxBatchingWindow?: Duration;

  /**
   * Retries of a failed batch before its records go to the failure queue, 0–10000.
   *
   * @default 10
   */
  readonly retryAttempts?: number;

  /**
   * Age after which a stream record is sent to the failure queue instead of being retried,
   * 60 seconds–7 days. Reconcile repairs what the sync missed.
   *
   * @default Duration.hours(1)
   */
  readonly maxRecordAge?: Duration;

  /**
   * Time between two scheduled reconcile invocations, a whole number of minutes.
   *
   * @default Duration.minutes(1)
   */
  readonly reconcileInterval?: Duration;

  /**
   * Repeat the reconcile pass every so often inside one invocation, 0–600 whole seconds and
   * less than `reconcileInterval`; the function's timeout becomes `reconcileInterval` so the
   * passes cover the whole interval. 0 runs one pass per invocation.
   *
   * @default Duration.seconds(0)
   */
  readonly reconcileRepeat?: Duration;

  /**
   * Sync iterator age above which the `SyncIteratorAge` alarm fires.
   *
   * @default Duration.seconds(60)
   */
  readonly iteratorAgeAlarmThreshold?: Duration;

  /**
   * Actions every alarm of this construct triggers (e.g. an SNS topic action).
   *
   * @default - no actions; the alarms only show in the console and the dashboard
   */
  readonly alarmActions?: readonly cloudwatch.IAlarmAction[];

  /**
   * Name of the CloudWatch dashboard.
   *
   * @default - CloudFormation generates a name
   */
  readonly dashboardName?: string;

  /**
   * Retention of both Lambdas' log groups.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

function lambdaEntry(name: string): string {
  // From lib/constructs (tsx) or dist/lib/constructs (compiled): the repository's lambdas/ folder.
  const base = path.resolve(__dirname, '..', '..', 'lambdas', name);
  for (const ext of ['.ts', '.js']) if (existsSync(base + ext)) return base + ext;
  throw new Error(`Lambda entry ${base}.ts not found`);
}

function secondsOf(d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  const s = d.toSeconds({ integral: false });
  return Token.isUnresolved(s) ? undefined : s;
}

function checkRange(what: string, value: number | undefined, min: number, max: number, unit = ''): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!(Number.isInteger(value) && value >= min && value <= max)) {
    throw new Error(`${what} ${value}${unit} is out of range ${min}–${max}${unit}`);
  }
}

/**
 * Keeps each capability's target group equal to the live leases that list it.
 *
 * - **sync**: a Lambda on the lease table's stream (TRIM_HORIZON, bisect on error,
 *   ReportBatchItemFailures, an encrypted SQS queue for records that exhaust their retries);
 * - **reconcile**: a Lambda on an EventBridge schedule that deletes expired leases and repairs
 *   drift both ways;
 * - alarms on the failure queue, the sync iterator age, both functions' errors and the
 *   reconcile safety valve, and a dashboard per capability.
 *
 * Both functions read `AGENT_LB_CONFIG` (see {@link AgentLbRuntimeConfigJson}) and publish
 * metrics in namespace `AgentLb` with dimension `service`. Their roles may register and
 * deregister targets only in the given target groups.
 */
export class RegistrySync extends Construct {
  /** The stream-sync function. */
  public readonly syncFunction: nodejs.NodejsFunction;

  /** The reconcile function. */
  public readonly reconcileFunction: nodejs.NodejsFunction;

  /** Queue receiving descriptions of stream batches the sync gave up on. */
  public readonly failureQueue: sqs.Queue;

  /** The schedule that invokes reconcile. */
  public readonly reconcileSchedule: events.Rule;

  /** Every alarm this construct defines. */
  public readonly alarms: readonly cloudwatch.Alarm[];

  /** The operations dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;

  /** The runtime configuration both functions get, as a JSON string (may contain tokens). */
  public readonly runtimeConfigJson: string;

  constructor(scope: Construct, id: string, props: RegistrySyncProps) {
    super(scope, id);

    const share = props.safetyValveShare ?? 0.5;
    if (!Token.isUnresolved(share) && !(share > 0 && share <= 1)) {
      throw new Error(`safetyValveShare ${share} is out of range (0, 1]`);
    }
    checkRange('batchSize', props.batchSize, 1, 10_000);
    checkRange('maxBatchingWindow', secondsOf(props.maxBatchingWindow), 0, 300, ' seconds');
    checkRange('retryAttempts', props.retryAttempts, 0, 10_000);
    checkRange('maxRecordAge', secondsOf(props.maxRecordAge), 60, 604_800, ' seconds');
    const interval = props.reconcileInterval ?? Duration.minutes(1);
    const intervalSeconds = secondsOf(interval);
    if (intervalSeconds !== undefined && !(intervalSeconds >= 60 && intervalSeconds % 60 === 0)) {
      throw new Error(`reconcileInterval ${intervalSeconds} seconds must be a whole number of minutes, at least 1`);
    }
    const repeatSeconds = secondsOf(props.reconcileRepeat) ?? 0;
    checkRange('reconcileRepeat', repeatSeconds, 0, 600, ' seconds');
    const allowedCidrs = [...(props.allowedCidrs ?? DEFAULT_ALLOWED_CIDRS)];
    for (const cidr of allowedCidrs) {
      if (Token.isUnresolved(cidr)) continue;
      try {
        parseCidr(cidr);
      } catch {
        throw new Error(`allowedCidrs: ${JSON.stringify(cidr)} is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>`);
      }
    }
    if (props.vpc) allowedCidrs.push(props.vpc.vpcCidrBlock);
    for (const name of Object.keys(props.capabilities)) {
      if (!CAPABILITY_NAME.test(name)) throw new Error(`Capability name ${JSON.stringify(name)} must match ${CAPABILITY_NAME.source}`);
    }
    if (!props.table.tableStreamArn) throw new Error('The lease table must have a stream (NEW_AND_OLD_IMAGES)');
    this.node.addValidation({
      validate: () =>
        intervalSeconds !== undefined && repeatSeconds > 0 && repeatSeconds >= intervalSeconds
          ? [`reconcileRepeat ${repeatSeconds} seconds must be less than reconcileInterval ${intervalSeconds} seconds`]
          : [],
    });

    const config: AgentLbRuntimeConfigJson = {
      tableName: props.table.tableName,
      ...(props.loadBalancer
        ? { loadBalancerArn: props.loadBalancer.loadBalancerArn, capabilities: Object.keys(props.capabilities) }
        : {
            capabilities: Object.fromEntries(
              Object.entries(props.capabilities).map(([name, c]) => [name, { targetGroupArn: c.targetGroup.targetGroupArn, targetType: c.targetType ?? 'ip' }]),
            ),
          }),
      allowedCidrs,
      safetyValveShare: share,
      reconcileRepeatSeconds: repeatSeconds,
    };
    this.runtimeConfigJson = Stack.of(this).toJsonString(config);
    this.node.addValidation({ validate: () => this.checkEnvironmentSize(config) });

    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const targetGroupArns = Object.values(props.capabilities).map((c) => c.targetGroup.targetGroupArn);
    const registerTargets =
      targetGroupArns.length > 0
        ? new iam.PolicyStatement({
            sid: 'RegisterInCapabilityTargetGroups',
            actions: ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'],
            resources: targetGroupArns,
          })
        : undefined;

    // ---- sync: DynamoDB stream → RegisterTargets / DeregisterTargets
    this.syncFunction = this.createFunction('Sync', {
      entry: 'stream-sync',
      service: SYNC_SERVICE_NAME,
      description: 'agent-lb: applies lease changes from the table stream to the capability target groups',
      timeout: Duration.seconds(60),
      retention,
    });
    if (registerTargets) this.syncFunction.addToRolePolicy(registerTargets);
    if (props.loadBalancer) this.syncFunction.addToRolePolicy(findTargetGroups());
    // Before registering or deregistering, sync reads the leases (BatchGetItem, consistent): a
    // stream that is behind (or replayed) must neither put a dead lease in nor take a live one out.
    props.table.grant(this.syncFunction, 'dynamodb:BatchGetItem');

    this.failureQueue = new sqs.Queue(this, 'SyncFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.syncFunction.addEventSource(
      new DynamoEventSource(props.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: props.batchSize ?? 1000,
        maxBatchingWindow: props.maxBatchingWindow ?? Duration.seconds(1),
        bisectBatchOnError: true,
        retryAttempts: props.retryAttempts ?? 10,
        maxRecordAge: props.maxRecordAge ?? Duration.hours(1),
        reportBatchItemFailures: true,
        parallelizationFactor: 1,
        onFailure: new SqsDlq(this.failureQueue),
      }),
    );

    // ---- reconcile: schedule → delete expired leases, repair drift
    this.reconcileFunction = this.createFunction('Reconcile', {
      entry: 'reconcile',
      service: RECONCILE_SERVICE_NAME,
      description: 'agent-lb: deletes expired leases and repairs drift between live leases and target groups',
      timeout: repeatSeconds > 0 ? Duration.seconds(Math.min(intervalSeconds ?? 60, 900)) : Duration.seconds(60),
      retention,
      asyncRetries: 0,
    });
    if (registerTargets) this.reconcileFunction.addToRolePolicy(registerTargets);
    if (props.loadBalancer) this.reconcileFunction.addToRolePolicy(findTargetGroups());
    this.reconcileFunction.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ReadTargetHealth',
        // elasticloadbalancing:Describe* actions support no resource-level permissions: "*" is the only valid resource.
        actions: ['elasticloadbalancing:DescribeTargetHealth'],
        resources: ['*'],
      }),
    );
    props.table.grantReadData(this.reconcileFunction);
    props.table.grant(this.reconcileFunction, 'dynamodb:DeleteItem');

    this.reconcileSchedule = new events.Rule(this, 'ReconcileSchedule', {
      description: 'agent-lb: runs the reconcile Lambda',
      schedule: events.Schedule.rate(interval),
      targets: [new eventsTargets.LambdaFunction(this.reconcileFunction, { retryAttempts: 2, maxEventAge: Duration.minutes(1) })],
    });

    // ---- alarms
    const alarms: cloudwatch.Alarm[] = [];
    const alarm = (alarmId: string, alarmProps: cloudwatch.AlarmProps) => {
      const a = new cloudwatch.Alarm(this, alarmId, { treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING, ...alarmProps });
      for (const action of props.alarmActions ?? []) a.addAlarmAction(action);
      alarms.push(a);
      return a;
    };
    alarm('SyncFailuresAlarm', {
      alarmDescription: 'agent-lb: stream records the sync Lambda gave up on are in the failure queue; reconcile repairs the target groups, inspect the queue',
      metric: this.failureQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
    const iteratorAgeThreshold = props.iteratorAgeAlarmThreshold ?? Duration.seconds(60);
    alarm('SyncIteratorAgeAlarm', {
      alarmDescription: 'agent-lb: the sync Lambda lags behind the lease stream; target groups are stale',
      metric: this.syncFunction.metric('IteratorAge', { period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: iteratorAgeThreshold.toMilliseconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
    alarm('SyncErrorsAlarm', {
      alarmDescription: 'agent-lb: the sync Lambda failed',
      metric: this.syncFunction.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    alarm('ReconcileErrorsAlarm', {
      alarmDescription: 'agent-lb: the reconcile Lambda failed',
      metric: this.reconcileFunction.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    alarm('SafetyValveAlarm', {
      alarmDescription: 'agent-lb: reconcile held back removals because too many targets of a group had no lease at once (is the lease table the right one?)',
      metric: this.reconcileMetric('SafetyValveTripped'),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
    this.alarms = alarms;

    // ---- dashboard
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
    });
    const capabilityWidgets = Object.entries(props.capabilities).map(
      ([name, c]) =>
        new cloudwatch.GraphWidget({
          title: `Targets: ${name}`,
          width: 8,
          left: [
            c.targetGroup.metrics.healthyHostCount({ label: 'healthy', statistic: cloudwatch.Stats.MINIMUM, period: Duration.minutes(1) }),
            c.targetGroup.metrics.unhealthyHostCount({ label: 'unhealthy', statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(1) }),
          ],
          leftYAxis: { min: 0 },
        }),
    );
    this.dashboard.addWidgets(new cloudwatch.TextWidget({ markdown: '# agent-lb\nHealthy and unhealthy targets per capability; lease sync and reconcile.', width: 24, height: 2 }));
    for (let i = 0; i < capabilityWidgets.length; i += 3) this.dashboard.addWidgets(...capabilityWidgets.slice(i, i + 3));
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Registrations and deregistrations',
        width: 8,
        left: [
          this.syncMetric('Registrations', { label: 'sync registrations' }),
          this.syncMetric('Deregistrations', { label: 'sync deregistrations' }),
          this.reconcileMetric('DriftRegistered', { label: 'reconcile: drift registered' }),
          this.reconcileMetric('DriftDeregistered', { label: 'reconcile: drift deregistered' }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Rejected leases',
        width: 8,
        left: [
          this.syncMetric('RejectedLeases', { label: 'sync' }),
          this.reconcileMetric('RejectedLeases', { label: 'reconcile' }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'Sync lag',
        width: 8,
        left: [
          this.syncMetric('SyncLagMs', { label: 'lag p99 (ms)', statistic: cloudwatch.Stats.p(99) }),
          this.syncMetric('SyncLagMs', { label: 'lag max (ms)', statistic: cloudwatch.Stats.MAXIMUM }),
          this.syncFunction.metric('IteratorAge', { label: 'iterator age max (ms)', statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(1) }),
        ],
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lease lifecycle',
        width: 8,
        left: [
          this.syncMetric('Releases', { label: 'releases' }),
          this.syncMetric('TtlDeletions', { label: 'TTL deletions' }),
          this.reconcileMetric('ExpiredLeasesDeleted', { label: 'expired leases deleted' }),
          this.syncMetric('NoopRecords', { label: 'no-op records (heartbeats)' }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: 'ELB calls and errors',
        width: 8,
        left: [this.syncMetric('ElbCalls', { label: 'sync ELB calls' }), this.reconcileMetric('SafetyValveTripped', { label: 'safety valve tripped' })],
        right: [
          this.syncFunction.metricErrors({ label: 'sync errors', period: Duration.minutes(1) }),
          this.reconcileFunction.metricErrors({ label: 'reconcile errors', period: Duration.minutes(1) }),
        ],
      }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 8, alarms }),
    );
  }

  /** A metric the sync Lambda emits (namespace `AgentLb`, `service = agent-lb-sync`), summed per minute. */
  public syncMetric(metricName: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.serviceMetric(SYNC_SERVICE_NAME, metricName, options);
  }

  /** A metric the reconcile Lambda emits (namespace `AgentLb`, `service = agent-lb-reconcile`), summed per minute. */
  public reconcileMetric(metricName: string, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.serviceMetric(RECONCILE_SERVICE_NAME, metricName, options);
  }

  private serviceMetric(service: string, metricName: string, options: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName,
      dimensionsMap: { service },
      statistic: cloudwatch.Stats.SUM,
      period: Duration.minutes(1),
      ...options,
    });
  }

  private createFunction(
    id: string,
    opts: { entry: string; service: string; description: string; timeout: Duration; retention: logs.RetentionDays; asyncRetries?: number },
  ): nodejs.NodejsFunction {
    // Own role and log group: no AWS managed policy, log writes only to this function's group.
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `agent-lb ${opts.service} function`,
    });
    const logGroup = new logs.LogGroup(this, `${id}Logs`, { retention: opts.retention });
    logGroup.grantWrite(role);
    return new nodejs.NodejsFunction(this, id, {
      entry: lambdaEntry(opts.entry),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout: opts.timeout,
      description: opts.description,
      role,
      logGroup,
      // Scheduled (async) invocations are not retried: the next tick runs a fresh pass anyway.
      ...(opts.asyncRetries !== undefined ? { retryAttempts: opts.asyncRetries } : {}),
      environment: {
        [CONFIG_ENV]: this.runtimeConfigJson,
        POWERTOOLS_SERVICE_NAME: opts.service,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
      },
      bundling: {
        forceDockerBundling: false,
        // Ship the SDK versions the handlers were tested with, not the runtime's.
        bundleAwsSDK: true,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        target: 'node22',
        format: nodejs.OutputFormat.CJS,
      },
    });
  }

  /**
   * Holds back the functions (created or updated) and what invokes them (the stream's event
   * source mapping, the reconcile schedule) until `dependencies` are deployed: with
   * `loadBalancer`, a cold start looks the target groups up through the listener rules, so the
   * rules of every capability in the configuration must exist first.
   */
  public invokeAfter(...dependencies: IDependable[]): void {
    const mapping = this.syncFunction.node.children.find((c): c is lambda.EventSourceMapping => c instanceof lambda.EventSourceMapping);
    for (const trigger of [this.syncFunction, this.reconcileFunction, mapping, this.reconcileSchedule]) {
      for (const d of dependencies) trigger?.node.addDependency(d);
    }
  }

  /**
   * Lambda refuses environments over 4 KB. Target group ARNs are only known at deploy time, so
   * each is counted at its longest realistic length (124 characters), and a generated table
   * name at 100 characters.
   */
  private checkEnvironmentSize(config: AgentLbRuntimeConfigJson): string[] {
    const estimate = JSON.stringify({
      ...config,
      tableName: Token.isUnresolved(config.tableName) ? 'x'.repeat(100) : config.tableName,
      ...(config.loadBalancerArn ? { loadBalancerArn: 'x'.repeat(160) } : {}),
      capabilities: Array.isArray(config.capabilities)
        ? config.capabilities
        : Object.fromEntries(Object.entries(config.capabilities).map(([n, c]) => [n, { ...c, targetGroupArn: 'x'.repeat(124) }])),
      allowedCidrs: config.allowedCidrs.map((c) => (Token.isUnresolved(c) ? 'x'.repeat(18) : c)),
    });
    const others = `${CONFIG_ENV}POWERTOOLS_SERVICE_NAME${RECONCILE_SERVICE_NAME}POWERTOOLS_METRICS_NAMESPACE${METRICS_NAMESPACE}POWERTOOLS_LOG_LEVELINFONODE_OPTIONS--enable-source-maps`;
    const total = estimate.length + others.length;
    if (total <= LAMBDA_ENV_LIMIT) return [];
    const n = Array.isArray(config.capabilities) ? config.capabilities.length : Object.keys(config.capabilities).length;
    return [
      `${CONFIG_ENV} for ${n} capabilities may reach ${total} bytes of Lambda environment; Lambda allows ${LAMBDA_ENV_LIMIT} bytes. ` +
        (config.loadBalancerArn
          ? 'Use fewer or shorter capability names, or fewer allowedCidrs, per stack'
          : 'Pass `loadBalancer` so the functions find the target groups themselves, or use fewer capabilities per stack'),
    ];
  }
}

/** Finding target groups by tag: ELBv2 Describe* actions take no resource-level permissions, so "*" is the only valid resource. */
function findTargetGroups(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'FindCapabilityTargetGroups',
    actions: ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTags'],
    resources: ['*'],
  });
}

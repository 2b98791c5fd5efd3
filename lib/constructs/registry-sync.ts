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
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, IDependable } from 'constructs';
import { parseCidr } from '../core/address-policy';
import { CAPABILITY_NAME, DEFAULT_MAX_LEASE_TTL_SECONDS, PortRange } from '../core/lease-schema';
import { formatPortRanges, portRangeProblem } from '../core/port-ranges';
import { DEFAULT_SYNC_BATCH_SIZE } from '../core/elb-call-budget';
import type { CapabilityTargetType } from './capability-props';
import { handlerCode, HandlerName } from './handler-code';
import { describeAgentInterfaces, findTargetGroups, nameCatalogLoadBalancers, readTargetGroupPorts, readTargetHealth } from './registry-permissions';
import { catalogSettingsJson, checkCatalogAttributes, RegistrySyncCatalog } from './registry-catalog';
import { checkedVariantWeights, guardVariantRules, RegistrySyncVariants } from './registry-variants';
import { CATALOG_STREAM_SERVICE_NAME, ErrorMetricName, METRICS_NAMESPACE, RECONCILE_SERVICE_NAME, ReconcileMetricName, SYNC_SERVICE_NAME, SyncMetricName } from '../core/metric-names';
import {
  AdmissionConfigJson,
  CONFIG_ENV,
  DEFAULT_SAFETY_VALVE_SHARE,
  DEFAULT_TARGET_QUOTA,
  MAX_MAX_LEASE_TTL_SECONDS,
  MAX_RECONCILE_REPEAT_SECONDS,
  MAX_TARGET_QUOTA,
  MIN_MAX_LEASE_TTL_SECONDS,
} from '../core/runtime-config';
import { AgentLbRuntimeConfigJson, lambdaEnvironmentProblems } from './lambda-environment';
import type { RegistryStateTable } from './registry-state-table';
import { registryAlarms, registryDashboard } from './registry-monitoring';
import { AgentLbValidationError } from './validation-error';
import type { IConstruct } from 'constructs';

export { CATALOG_STREAM_SERVICE_NAME, METRICS_NAMESPACE, RECONCILE_SERVICE_NAME, SYNC_SERVICE_NAME } from '../core/metric-names';

/** Times the catalog stream's event source mapping retries a failing batch (bisected) before it moves on; reconcile repairs the rest. */
export const CATALOG_STREAM_RETRY_ATTEMPTS = 3;
export { CONFIG_ENV } from '../core/runtime-config';
export type { AgentLbRuntimeConfigJson } from './lambda-environment';
export type { RegistrySyncVariants } from './registry-variants';
export type { RegistrySyncCatalog } from './registry-catalog';

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

  /**
   * Ports a lease may name for this capability; leases on other ports are rejected for it.
   *
   * @default - the target group's own port, read by the functions at cold start
   */
  readonly ports?: readonly PortRange[];

  /**
   * The target group's own port, when known: `ports` equal to it need no room in the functions'
   * environment (they read the group's port at cold start).
   *
   * @default - unknown: `ports` are always written
   */
  readonly targetGroupPort?: number;
}

/** Admission by AWS facts: which security groups' network interfaces may serve. */
export interface RegistrySyncAdmission {
  /** The agents' security group(s): admitted for every capability without a list of its own. */
  readonly agentSecurityGroups: readonly ec2.ISecurityGroup[];

  /**
   * Capabilities that admit only these groups instead (capability name → groups).
   *
   * @default - none
   */
  readonly byCapability?: Readonly<Record<string, readonly ec2.ISecurityGroup[]>>;
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
   * up to 100 capabilities. Call {@link RegistrySync.invokeAfter} with the listener rules, so no
   * function looks before they exist.
   *
   * @default - `listener`'s load balancer when `listener` is set, else every target group ARN is
   * passed in the environment (about 20 capabilities fit)
   */
  readonly loadBalancer?: elbv2.IApplicationLoadBalancer;

  /**
   * A listener whose load balancer routes to the capability target groups, for when the load
   * balancer itself is not at hand (a listener imported into the stack): the functions look its
   * load balancer up (one DescribeListeners call) and then find the target groups on it as with
   * `loadBalancer`. Ignored when `loadBalancer` is set.
   *
   * @default - see `loadBalancer`
   */
  readonly listener?: elbv2.IApplicationListener;

  /**
   * The deployment's other load balancers, when its capabilities do not fit one (see
   * `AgentLbStack`): the functions find each capability's target group on `loadBalancer` or on
   * one of these. One table, one registry, one ELB call budget for them all. Needs `loadBalancer`;
   * weighted variants stay on `loadBalancer`.
   *
   * @default - none
   */
  readonly moreLoadBalancers?: readonly elbv2.IApplicationLoadBalancer[];

  /**
   * Weighted variants among `capabilities` and the listener rules that forward to them by weight.
   * The reconcile Lambda keeps each variant at weight 0 in those rules until its group has a
   * healthy target, and puts its configured weight back then; it may modify those rules only.
   * Needs `loadBalancer` or `listener`, where it reads the rules.
   *
   * @default - no variants
   */
  readonly variants?: RegistrySyncVariants;

  /**
   * The capability catalog the registry keeps current: its document and member index live in
   * `table` (a {@link RegistryStateTable}), which both functions may read and write (never the
   * agents). `headerName` and `pathPrefix` are how the catalog tells clients to ask for a
   * capability; `attributes` the metadata keys it may show (`catalogAttributes`).
   *
   * @default - no catalog
   */
  readonly catalog?: RegistrySyncCatalog;

  /**
   * The registry state table whose ELB budget item every sync and reconcile container takes its
   * Register/Deregister tokens from, so that the budget bounds the whole registry (every stream
   * shard, every container, sync and reconcile together). Both roles may GetItem and UpdateItem
   * that one item and no other (`dynamodb:LeadingKeys`).
   *
   * @default - the catalog's table when there is a catalog; without either, each container keeps
   * a bucket of its own and the budget bounds one container
   */
  readonly elbBudgetTable?: RegistryStateTable;

  /**
   * VPC of the target groups: its CIDR is the range IP leases may register from, and with
   * `admission` its network interfaces are the ones that admit addresses. Needed unless
   * `allowedCidrs` names the ranges.
   *
   * @default - only `allowedCidrs`
   */
  readonly vpc?: ec2.IVpc;

  /**
   * Address ranges besides the VPC's that IP leases may register from (peered VPCs, on premises;
   * leases there need `availabilityZone: all`). Loopback, link-local, multicast and unspecified
   * addresses are refused whatever this says.
   *
   * @default - none: the VPC's CIDR only
   */
  readonly allowedCidrs?: readonly string[];

  /**
   * Register an IP target only once EC2 shows its address on a network interface of `vpc`
   * carrying an admitted security group (an instance target: the instance's groups). Needs `vpc`.
   *
   * @default - no admission check: every valid lease in the allowed ranges is registered
   */
  readonly admission?: RegistrySyncAdmission;

  /**
   * Longest lease TTL: a lease whose `expiresAt` lies further ahead than now + this (30 s of clock
   * skew allowed) is rejected, and reconcile deletes it so its address:port is free again.
   * 5 seconds to 1 day.
   *
   * @default Duration.hours(1) - the SDK's own ceiling
   */
  readonly maxLeaseTtl?: Duration;

  /**
   * Registered targets each load balancer may hold, all its groups together (ALB's "Targets per
   * Application Load Balancer" quota, adjustable in Service Quotas). With `moreLoadBalancers`,
   * each load balancer's capabilities are counted against it apart: leases beyond are rejected
   * `over-quota`, first come first served, and an alarm fires when the fullest load balancer
   * reaches 80 %. 1–100000.
   *
   * @default 1000
   */
  readonly targetQuota?: number;

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
   * batching window, not the size, bounds the latency. Under the ELB call budget the batch is
   * the queue of changes waiting for a token: keep it larger than one round of changes
   * (see DEFAULT_SYNC_BATCH_SIZE).
   *
   * @default 10000
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

function secondsOf(d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  const s = d.toSeconds({ integral: false });
  return Token.isUnresolved(s) ? undefined : s;
}

function checkRange(scope: IConstruct, what: string, value: number | undefined, min: number, max: number, unit = ''): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!(Number.isInteger(value) && value >= min && value <= max)) {
    throw new AgentLbValidationError(scope, `${what} ${value}${unit} is out of range ${min}–${max}${unit}`);
  }
}

/**
 * Keeps each capability's target group equal to the live leases that list it.
 *
 * - **sync**: a Lambda on the lease table's stream (TRIM_HORIZON, bisect on error,
 *   ReportBatchItemFailures, an encrypted SQS queue for records that exhaust their retries);
 * - **reconcile**: a Lambda on an EventBridge schedule that deletes expired leases and repairs
 *   drift both ways;
 * - with a catalog, **catalog stream**: a second Lambda on the same stream (DynamoDB Streams
 *   serves two readers per shard of a single-Region table) that keeps the catalog's member index;
 * - alarms on the failure queue, the sync iterator age, both functions' errors and the
 *   reconcile safety valve, and a dashboard per capability.
 *
 * Both functions read `AGENT_LB_CONFIG` (see {@link AgentLbRuntimeConfigJson}) and publish
 * metrics in namespace `AgentLb` with dimension `service`. Their roles may register and
 * deregister targets only in the given target groups.
 */
export class RegistrySync extends Construct {
  /** The stream-sync function. */
  public readonly syncFunction: lambda.Function;

  /** The reconcile function. */
  public readonly reconcileFunction: lambda.Function;

  /**
   * With a catalog: the catalog stream function, the lease stream's second reader, which keeps the
   * catalog's member index for every lease change so that its writes never delay the sync's next
   * batch. @default - none without a catalog
   */
  public readonly catalogStreamFunction?: lambda.Function;

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

    const share = props.safetyValveShare ?? DEFAULT_SAFETY_VALVE_SHARE;
    if (!Token.isUnresolved(share) && !(share > 0 && share <= 1)) {
      throw new AgentLbValidationError(this, `safetyValveShare ${share} is out of range (0, 1]`);
    }
    checkRange(this, 'batchSize', props.batchSize, 1, 10_000);
    checkRange(this, 'maxBatchingWindow', secondsOf(props.maxBatchingWindow), 0, 300, ' seconds');
    checkRange(this, 'retryAttempts', props.retryAttempts, 0, 10_000);
    checkRange(this, 'maxRecordAge', secondsOf(props.maxRecordAge), 60, 604_800, ' seconds');
    const interval = props.reconcileInterval ?? Duration.minutes(1);
    const intervalSeconds = secondsOf(interval);
    if (intervalSeconds !== undefined && !(intervalSeconds >= 60 && intervalSeconds % 60 === 0)) {
      throw new AgentLbValidationError(this, `reconcileInterval ${intervalSeconds} seconds must be a whole number of minutes, at least 1`);
    }
    const repeatSeconds = secondsOf(props.reconcileRepeat) ?? 0;
    checkRange(this, 'reconcileRepeat', repeatSeconds, 0, MAX_RECONCILE_REPEAT_SECONDS, ' seconds');
    const allowedCidrs = [...(props.allowedCidrs ?? [])];
    if (!props.vpc && props.allowedCidrs === undefined) {
      throw new AgentLbValidationError(this, 'RegistrySync needs vpc (its CIDR is where lease addresses may come from) or allowedCidrs naming the ranges');
    }
    if (props.admission && !props.vpc) throw new AgentLbValidationError(this, 'admission needs vpc: the network interfaces that admit addresses are the VPC\'s');
    const maxLeaseTtlSeconds = secondsOf(props.maxLeaseTtl) ?? DEFAULT_MAX_LEASE_TTL_SECONDS;
    checkRange(this, 'maxLeaseTtl', maxLeaseTtlSeconds, MIN_MAX_LEASE_TTL_SECONDS, MAX_MAX_LEASE_TTL_SECONDS, ' seconds');
    const targetQuota = props.targetQuota ?? DEFAULT_TARGET_QUOTA;
    checkRange(this, 'targetQuota', targetQuota, 1, MAX_TARGET_QUOTA);
    for (const [name, c] of Object.entries(props.capabilities)) {
      for (const range of c.ports ?? []) {
        const problem = Token.isUnresolved(range.from) || Token.isUnresolved(range.to) ? undefined : portRangeProblem(range);
        if (problem) throw new AgentLbValidationError(this, `capability "${name}": ${problem}`);
      }
    }
    for (const cidr of allowedCidrs) {
      if (Token.isUnresolved(cidr)) continue;
      try {
        parseCidr(cidr);
      } catch {
        throw new AgentLbValidationError(this, `allowedCidrs: ${JSON.stringify(cidr)} is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>`);
      }
    }
    if (Object.keys(props.capabilities).length === 0) {
      throw new AgentLbValidationError(this, 'RegistrySync needs at least one capability: with none it would register nothing');
    }
    for (const name of Object.keys(props.capabilities)) {
      if (!CAPABILITY_NAME.test(name)) throw new AgentLbValidationError(this, `Capability name ${JSON.stringify(name)} must match ${CAPABILITY_NAME.source}`);
    }
    if (!props.table.tableStreamArn) {
      throw new AgentLbValidationError(this, 'The lease table must have a stream (NEW_AND_OLD_IMAGES); import an existing one with Table.fromTableAttributes(scope, id, { tableName, tableStreamArn })');
    }
    this.node.addValidation({
      validate: () =>
        intervalSeconds !== undefined && repeatSeconds > 0 && repeatSeconds >= intervalSeconds
          ? [`reconcileRepeat ${repeatSeconds} seconds must be less than reconcileInterval ${intervalSeconds} seconds`]
          : [],
    });

    checkCatalogAttributes(this, props.catalog?.attributes ?? []);
    const variantWeights = checkedVariantWeights(this, props);
    if ((props.moreLoadBalancers?.length ?? 0) > 0 && !props.loadBalancer) {
      throw new AgentLbValidationError(this, 'moreLoadBalancers needs loadBalancer: the first of the deployment\'s load balancers, where weighted variants are');
    }
    const more = props.moreLoadBalancers ?? [];
    const discoverOn = props.loadBalancer
      ? { loadBalancerArn: props.loadBalancer.loadBalancerArn, ...(more.length > 0 ? { moreLoadBalancerArns: more.map((lb) => lb.loadBalancerArn) } : {}) }
      : props.listener
        ? { listenerArn: props.listener.listenerArn }
        : undefined;
    // Declared ports, where they are not simply the group's own port (which the functions read at cold start).
    const declaredPorts = Object.fromEntries(
      Object.entries(props.capabilities)
        .filter(([, c]) => c.ports !== undefined && !(c.ports.length === 1 && c.ports[0].from === c.targetGroupPort && c.ports[0].to === c.targetGroupPort))
        .map(([name, c]) => [name, formatPortRanges(c.ports!)]),
    );
    const admission: AdmissionConfigJson | undefined = props.admission && {
      vpcId: props.vpc!.vpcId,
      securityGroups: props.admission.agentSecurityGroups.map((g) => g.securityGroupId),
      ...(Object.keys(props.admission.byCapability ?? {}).length > 0
        ? { byCapability: Object.fromEntries(Object.entries(props.admission.byCapability!).map(([name, groups]) => [name, groups.map((g) => g.securityGroupId)])) }
        : {}),
    };
    const budgetTable = props.elbBudgetTable ?? props.catalog?.table;
    const config: AgentLbRuntimeConfigJson = {
      tableName: props.table.tableName,
      ...(discoverOn
        ? { ...discoverOn, capabilities: Object.keys(props.capabilities) }
        : {
            capabilities: Object.fromEntries(
              Object.entries(props.capabilities).map(([name, c]) => [
                name,
                { targetGroupArn: c.targetGroup.targetGroupArn, targetType: c.targetType ?? 'ip', ...(c.ports ? { ports: formatPortRanges(c.ports) } : {}) },
              ]),
            ),
          }),
      ...(props.vpc ? { vpcCidrs: [props.vpc.vpcCidrBlock] } : {}),
      allowedCidrs,
      maxLeaseTtlSeconds,
      ...(discoverOn && Object.keys(declaredPorts).length > 0 ? { ports: declaredPorts } : {}),
      ...(admission ? { admission } : {}),
      // Per load balancer: the functions find which load balancer each group is on at cold start
      // and count each one's targets against it apart.
      targetQuota,
      safetyValveShare: share,
      reconcileRepeatSeconds: repeatSeconds,
      ...(variantWeights ? { variantWeights } : {}),
      ...(props.catalog ? { catalog: catalogSettingsJson(props.catalog) } : {}),
      // The catalog's table is named once, under catalog.
      ...(budgetTable ? { sharedElbBudget: budgetTable === props.catalog?.table ? {} : { tableName: budgetTable.tableName } } : {}),
    };
    this.runtimeConfigJson = Stack.of(this).toJsonString(config);
    this.node.addValidation({ validate: () => lambdaEnvironmentProblems(config) });

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
    // Named groups without declared ports take their own port, which the functions read at cold start.
    const readsGroupPorts = !discoverOn && Object.values(props.capabilities).some((c) => c.ports === undefined);
    const describeGroups = discoverOn ? findTargetGroups(discoverOn.listenerArn !== undefined) : readsGroupPorts ? readTargetGroupPorts() : undefined;
    if (describeGroups) this.syncFunction.addToRolePolicy(describeGroups);
    // The functions that build the catalog document (the sync for its drains) name each capability's load balancer in it.
    const catalogHosts = props.catalog ? nameCatalogLoadBalancers(describeGroups === undefined) : undefined;
    if (catalogHosts) this.syncFunction.addToRolePolicy(catalogHosts);
    if (admission) this.syncFunction.addToRolePolicy(describeAgentInterfaces());
    // Before registering or deregistering, sync reads the leases (BatchGetItem, consistent): a
    // stream that is behind (or replayed) must neither put a dead lease in nor take a live one out.
    // UpdateItem: the `rotation` feedback (conditional on the lease token; docs/lease-contract.md).
    props.table.grant(this.syncFunction, 'dynamodb:BatchGetItem', 'dynamodb:UpdateItem');
    // The catalog: its member index and document, in the registry's own table.
    props.catalog?.table.grantRegistryAccess(this.syncFunction);
    // The ELB call budget every container shares: its one item, read and conditionally updated.
    budgetTable?.grantElbBudget(this.syncFunction);

    this.failureQueue = new sqs.Queue(this, 'SyncFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // Both readers of the lease stream read it alike (position, batches, bisect, item failures, order per shard).
    const leaseStream = (retryAttempts: number, onFailure?: SqsDlq) =>
      new DynamoEventSource(props.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: props.batchSize ?? DEFAULT_SYNC_BATCH_SIZE,
        maxBatchingWindow: props.maxBatchingWindow ?? Duration.seconds(1),
        bisectBatchOnError: true,
        retryAttempts,
        maxRecordAge: props.maxRecordAge ?? Duration.hours(1),
        reportBatchItemFailures: true,
        parallelizationFactor: 1,
        ...(onFailure ? { onFailure } : {}),
      });
    this.syncFunction.addEventSource(leaseStream(props.retryAttempts ?? 10, new SqsDlq(this.failureQueue)));

    // ---- catalog stream: the same stream → the catalog's member index and document
    if (props.catalog) {
      this.catalogStreamFunction = this.createFunction('CatalogStream', {
        entry: 'catalog-stream',
        service: CATALOG_STREAM_SERVICE_NAME,
        description: 'agent-lb: keeps the capability catalog current from the lease table stream',
        timeout: Duration.seconds(60),
        retention,
      });
      // Consistent reads of the changed leases (what is true now, not what a record carried); the
      // member index and document in the registry table. No ELB write, no lease write.
      props.table.grant(this.catalogStreamFunction, 'dynamodb:BatchGetItem');
      props.catalog.table.grantRegistryAccess(this.catalogStreamFunction);
      if (describeGroups) this.catalogStreamFunction.addToRolePolicy(describeGroups);
      if (catalogHosts) this.catalogStreamFunction.addToRolePolicy(catalogHosts);
      // Records it gives up on are not queued: reconcile rewrites what the index lacks within a pass.
      this.catalogStreamFunction.addEventSource(leaseStream(CATALOG_STREAM_RETRY_ATTEMPTS));
    }

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
    if (describeGroups) this.reconcileFunction.addToRolePolicy(describeGroups);
    if (catalogHosts) this.reconcileFunction.addToRolePolicy(catalogHosts);
    this.reconcileFunction.addToRolePolicy(readTargetHealth());
    if (admission) this.reconcileFunction.addToRolePolicy(describeAgentInterfaces());
    if (variantWeights) for (const s of guardVariantRules(props.variants!.rules)) this.reconcileFunction.addToRolePolicy(s);
    props.table.grantReadData(this.reconcileFunction);
    props.table.grant(this.reconcileFunction, 'dynamodb:DeleteItem', 'dynamodb:UpdateItem');
    props.catalog?.table.grantRegistryAccess(this.reconcileFunction);
    budgetTable?.grantElbBudget(this.reconcileFunction);

    this.reconcileSchedule = new events.Rule(this, 'ReconcileSchedule', {
      description: 'agent-lb: runs the reconcile Lambda',
      schedule: events.Schedule.rate(interval),
      targets: [new eventsTargets.LambdaFunction(this.reconcileFunction, { retryAttempts: 2, maxEventAge: Duration.minutes(1) })],
    });

    const alarms = registryAlarms(this, { alarmActions: props.alarmActions, iteratorAgeAlarmThreshold: props.iteratorAgeAlarmThreshold, targetQuota });
    this.alarms = alarms;

    this.dashboard = registryDashboard(this, { dashboardName: props.dashboardName, capabilities: props.capabilities, alarms });
  }

  /** A metric the sync Lambda emits (namespace `AgentLb`, `service = agent-lb-sync`), summed per minute. */
  public syncMetric(metricName: SyncMetricName | ErrorMetricName, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return this.serviceMetric(SYNC_SERVICE_NAME, metricName, options);
  }

  /** A metric the reconcile Lambda emits (namespace `AgentLb`, `service = agent-lb-reconcile`), summed per minute. */
  public reconcileMetric(metricName: ReconcileMetricName | ErrorMetricName, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
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
    opts: { entry: HandlerName; service: string; description: string; timeout: Duration; retention: logs.RetentionDays; asyncRetries?: number },
  ): lambda.Function {
    // Own role and log group: no AWS managed policy, log writes only to this function's group.
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `agent-lb ${opts.service} function`,
    });
    const logGroup = new logs.LogGroup(this, `${id}Logs`, { retention: opts.retention });
    logGroup.grantWrite(role);
    // Pre-bundled code (see handler-code.ts): the SDK versions the handlers were tested with ship inside.
    return new lambda.Function(this, id, {
      code: handlerCode(this, opts.entry),
      handler: 'index.handler',
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
    });
  }

  /**
   * Holds back the functions (created or updated) and what invokes them (the stream's event
   * source mapping, the reconcile schedule) until `dependencies` are deployed: with
   * `loadBalancer`, a cold start looks the target groups up through the listener rules, so the
   * rules of every capability in the configuration must exist first.
   */
  public invokeAfter(...dependencies: IDependable[]): void {
    const mappingOf = (fn: lambda.Function | undefined) => fn?.node.children.find((c): c is lambda.EventSourceMapping => c instanceof lambda.EventSourceMapping);
    for (const trigger of [this.syncFunction, this.reconcileFunction, mappingOf(this.syncFunction), this.catalogStreamFunction, mappingOf(this.catalogStreamFunction), this.reconcileSchedule]) {
      for (const d of dependencies) trigger?.node.addDependency(d);
    }
  }
}

import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { ERROR_METRICS, ErrorMetricName, RECONCILE_METRICS, ReconcileMetricName, SYNC_METRICS, SyncMetricName } from '../core/metric-names';
import { QUOTA_ALARM_SHARE, quotaAlarmThreshold } from '../core/target-quota';

/**
 * What the alarms and the dashboard watch: the parts of a registry (`RegistrySync` is one) they
 * read. Declared here, so this file needs nothing of the construct that calls it.
 */
export interface MonitoredRegistry extends Construct {
  readonly syncFunction: lambda.IFunction;
  readonly reconcileFunction: lambda.IFunction;
  /** With a catalog: the lease stream's second reader. */
  readonly catalogStreamFunction?: lambda.IFunction;
  readonly failureQueue: sqs.IQueue;
  syncMetric(metricName: SyncMetricName | ErrorMetricName, options?: cloudwatch.MetricOptions): cloudwatch.Metric;
  reconcileMetric(metricName: ReconcileMetricName | ErrorMetricName, options?: cloudwatch.MetricOptions): cloudwatch.Metric;
}

/** A capability's target group, as the dashboard graphs it. */
export interface MonitoredCapability {
  readonly targetGroup: elbv2.IApplicationTargetGroup;
}

/** Where the alarms of a registry go, and when the lag alarm fires. */
export interface RegistryAlarmOptions {
  readonly alarmActions?: readonly cloudwatch.IAlarmAction[];
  /** @default Duration.seconds(60) */
  readonly iteratorAgeAlarmThreshold?: Duration;
  /** The load balancer's target quota: the quota alarm fires at 80 % of it. @default - no quota alarm */
  readonly targetQuota?: number;
}

/**
 * The alarms of a registry (construct ids under it): records in the failure queue,
 * sync (and catalog stream) iterator age, errors of either function, the reconcile safety valve, and the target quota.
 */
export function registryAlarms(sync: MonitoredRegistry, options: RegistryAlarmOptions): cloudwatch.Alarm[] {
  const alarms: cloudwatch.Alarm[] = [];
  const alarm = (alarmId: string, alarmProps: cloudwatch.AlarmProps) => {
    const a = new cloudwatch.Alarm(sync, alarmId, { treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING, ...alarmProps });
    for (const action of options.alarmActions ?? []) a.addAlarmAction(action);
    alarms.push(a);
    return a;
  };
  alarm('SyncFailuresAlarm', {
    alarmDescription: 'agent-lb: stream records the sync Lambda gave up on are in the failure queue; reconcile repairs the target groups, inspect the queue',
    metric: sync.failureQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
    threshold: 0,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });
  const iteratorAgeThreshold = options.iteratorAgeAlarmThreshold ?? Duration.seconds(60);
  alarm('SyncIteratorAgeAlarm', {
    alarmDescription: 'agent-lb: the sync Lambda lags behind the lease stream; target groups are stale',
    metric: sync.syncFunction.metric('IteratorAge', { period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
    threshold: iteratorAgeThreshold.toMilliseconds(),
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
  });
  alarm('SyncErrorsAlarm', {
    alarmDescription: 'agent-lb: the sync Lambda failed',
    metric: sync.syncFunction.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
  });
  if (sync.catalogStreamFunction) {
    alarm('CatalogStreamIteratorAgeAlarm', {
      alarmDescription: 'agent-lb: the catalog stream Lambda lags behind the lease stream; GET /agents and trusted discovery show stale members (routing is not affected)',
      metric: sync.catalogStreamFunction.metric('IteratorAge', { period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: iteratorAgeThreshold.toMilliseconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
    });
  }
  alarm('ReconcileErrorsAlarm', {
    alarmDescription: 'agent-lb: the reconcile Lambda failed',
    metric: sync.reconcileFunction.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
  });
  alarm('SafetyValveAlarm', {
    alarmDescription: 'agent-lb: reconcile held back removals because too many targets of a group had no lease at once (is the lease table the right one?)',
    metric: sync.reconcileMetric(RECONCILE_METRICS.safetyValveTripped),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
  });
  if (options.targetQuota !== undefined) {
    alarm('TargetQuotaAlarm', {
      alarmDescription: `agent-lb: a load balancer (the fullest) holds ${Math.round(QUOTA_ALARM_SHARE * 100)} % or more of its target quota (${options.targetQuota} per load balancer); beyond it leases on it are rejected over-quota`,
      metric: sync.reconcileMetric(RECONCILE_METRICS.registeredTargets, { statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(5) }),
      threshold: quotaAlarmThreshold(options.targetQuota),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
  }
  return alarms;
}

/** What the dashboard shows besides the functions' own metrics. */
export interface RegistryDashboardOptions {
  readonly dashboardName?: string;
  readonly capabilities: Readonly<Record<string, MonitoredCapability>>;
  readonly alarms: readonly cloudwatch.IAlarm[];
}

/**
 * The operations dashboard of a registry (construct id `Dashboard` under it): healthy
 * and unhealthy targets per capability, registrations, rejections, sync lag, lease lifecycle, ELB
 * calls and errors, and the alarms.
 */
export function registryDashboard(sync: MonitoredRegistry, options: RegistryDashboardOptions): cloudwatch.Dashboard {
  const dashboard = new cloudwatch.Dashboard(sync, 'Dashboard', {
    dashboardName: options.dashboardName,
    defaultInterval: Duration.hours(3),
  });
  const capabilityWidgets = Object.entries(options.capabilities).map(
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
  dashboard.addWidgets(new cloudwatch.TextWidget({ markdown: '# agent-lb\nHealthy and unhealthy targets per capability; lease sync and reconcile.', width: 24, height: 2 }));
  for (let i = 0; i < capabilityWidgets.length; i += 3) dashboard.addWidgets(...capabilityWidgets.slice(i, i + 3));
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Registrations and deregistrations',
      width: 8,
      left: [
        sync.syncMetric(SYNC_METRICS.registrations, { label: 'sync registrations' }),
        sync.syncMetric(SYNC_METRICS.deregistrations, { label: 'sync deregistrations' }),
        sync.reconcileMetric(RECONCILE_METRICS.driftRegistered, { label: 'reconcile: drift registered' }),
        sync.reconcileMetric(RECONCILE_METRICS.driftDeregistered, { label: 'reconcile: drift deregistered' }),
      ],
    }),
    new cloudwatch.GraphWidget({
      title: 'Rejected leases',
      width: 8,
      left: [
        sync.syncMetric(SYNC_METRICS.rejectedLeases, { label: 'sync' }),
        sync.reconcileMetric(RECONCILE_METRICS.rejectedLeases, { label: 'reconcile' }),
        sync.syncMetric(SYNC_METRICS.notAdmitted, { label: 'sync: not admitted' }),
        sync.syncMetric(SYNC_METRICS.overQuota, { label: 'sync: over quota' }),
        sync.reconcileMetric(RECONCILE_METRICS.notAdmittedRemoved, { label: 'reconcile: not admitted, removed' }),
      ],
      right: [sync.reconcileMetric(RECONCILE_METRICS.registeredTargets, { label: 'targets on the fullest load balancer', statistic: cloudwatch.Stats.MAXIMUM })],
    }),
    new cloudwatch.GraphWidget({
      title: 'Sync lag',
      width: 8,
      left: [
        sync.syncMetric(SYNC_METRICS.syncLagMs, { label: 'lag p99 (ms)', statistic: cloudwatch.Stats.p(99) }),
        sync.syncMetric(SYNC_METRICS.syncLagMs, { label: 'lag max (ms)', statistic: cloudwatch.Stats.MAXIMUM }),
        sync.syncFunction.metric('IteratorAge', { label: 'iterator age max (ms)', statistic: cloudwatch.Stats.MAXIMUM, period: Duration.minutes(1) }),
      ],
    }),
  );
  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Lease lifecycle',
      width: 8,
      left: [
        sync.syncMetric(SYNC_METRICS.releases, { label: 'releases' }),
        sync.syncMetric(SYNC_METRICS.ttlDeletions, { label: 'TTL deletions' }),
        sync.reconcileMetric(RECONCILE_METRICS.expiredLeasesDeleted, { label: 'expired leases deleted' }),
        sync.syncMetric(SYNC_METRICS.noopRecords, { label: 'no-op records (heartbeats)' }),
      ],
    }),
    new cloudwatch.GraphWidget({
      title: 'ELB calls and errors',
      width: 8,
      left: [
        sync.syncMetric(SYNC_METRICS.elbCalls, { label: 'sync ELB calls' }),
        sync.reconcileMetric(RECONCILE_METRICS.safetyValveTripped, { label: 'safety valve tripped' }),
        sync.reconcileMetric(RECONCILE_METRICS.variantsHeldOut, { label: 'variants held at weight 0 (no healthy target)', statistic: cloudwatch.Stats.MAXIMUM }),
      ],
      right: [
        sync.syncFunction.metricErrors({ label: 'sync errors', period: Duration.minutes(1) }),
        sync.reconcileFunction.metricErrors({ label: 'reconcile errors', period: Duration.minutes(1) }),
        sync.syncMetric(ERROR_METRICS.ELB_TRANSIENT, { label: 'sync: ELB changes left for a retry' }),
        sync.reconcileMetric(ERROR_METRICS.ELB_TRANSIENT, { label: 'reconcile: ELB changes left for the next pass' }),
        sync.syncMetric(ERROR_METRICS.ELB_PERMANENT, { label: 'targets ELB refused' }),
      ],
    }),
    new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 8, alarms: [...options.alarms] }),
  );
  return dashboard;
}

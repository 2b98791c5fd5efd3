import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { ReconcileReport } from './reconcile';
import { StreamSyncReport } from './stream-sync';

/** Leases, not reasons: one lease with two problems counts once. */
function rejectedLeaseCount(rejections: readonly { target?: string }[]): number {
  const keyed = new Set(rejections.filter((r) => r.target !== undefined).map((r) => r.target));
  return keyed.size + rejections.filter((r) => r.target === undefined).length;
}

/** Writes a sync report as EMF metrics and log lines. Rejections are logged one per lease, with their reason. */
export function publishSyncReport(report: StreamSyncReport, lagMs: number | undefined, logger: Logger, metrics: Metrics): void {
  metrics.addMetric('Records', MetricUnit.Count, report.records);
  metrics.addMetric('NoopRecords', MetricUnit.Count, report.kinds.heartbeat + report.kinds.noop);
  metrics.addMetric('Registrations', MetricUnit.Count, report.registrations);
  metrics.addMetric('Deregistrations', MetricUnit.Count, report.deregistrations);
  metrics.addMetric('ChangesWithheld', MetricUnit.Count, report.registrationsWithheld + report.deregistrationsWithheld);
  metrics.addMetric('ChangesAlreadyApplied', MetricUnit.Count, report.alreadyApplied);
  metrics.addMetric('ElbCalls', MetricUnit.Count, report.elbCalls);
  metrics.addMetric('LeasesRead', MetricUnit.Count, report.leasesRead);
  if (report.confirmReadMs !== undefined) metrics.addMetric('ConfirmReadMs', MetricUnit.Milliseconds, report.confirmReadMs);
  metrics.addMetric('RejectedLeases', MetricUnit.Count, rejectedLeaseCount(report.rejections) + report.refusedByElb.length);
  metrics.addMetric('TtlDeletions', MetricUnit.Count, report.kinds['ttl-deletion']);
  metrics.addMetric('Releases', MetricUnit.Count, report.kinds.release);
  if (lagMs !== undefined) metrics.addMetric('SyncLagMs', MetricUnit.Milliseconds, lagMs);
  for (const r of report.rejections) logger.warn('lease rejected', { reason: r.reason, target: r.target, capability: r.capability, detail: r.message });
  for (const r of report.refusedByElb) logger.error('target refused by ELB', { target: r.key, error: r.error.message });
  if (report.readError) {
    logger.warn('lease table read failed; nothing sent, batch will be retried from the first changed record', {
      firstFailedRecordId: report.firstFailedRecordId,
      error: report.readError.message,
    });
  }
  if (report.transientError) {
    logger.warn('ELB change not applied; batch will be retried from the first unapplied record', {
      firstFailedRecordId: report.firstFailedRecordId,
      error: report.transientError.message,
    });
  }
  logger.info('batch synced', {
    records: report.records,
    kinds: report.kinds,
    registrations: report.registrations,
    deregistrations: report.deregistrations,
    registrationsWithheld: report.registrationsWithheld,
    deregistrationsWithheld: report.deregistrationsWithheld,
    alreadyApplied: report.alreadyApplied,
    refusedBefore: report.refusedBefore,
    elbCalls: report.elbCalls,
  });
  metrics.publishStoredMetrics();
}

export function publishReconcileReport(report: ReconcileReport, logger: Logger, metrics: Metrics): void {
  metrics.addMetric('ExpiredLeasesDeleted', MetricUnit.Count, report.expiredLeasesDeleted);
  metrics.addMetric('DriftRegistered', MetricUnit.Count, report.driftRegistered);
  metrics.addMetric('DriftDeregistered', MetricUnit.Count, report.driftDeregistered);
  metrics.addMetric('SafetyValveTripped', MetricUnit.Count, report.safetyValveTripped.length);
  metrics.addMetric('RemovalsHeld', MetricUnit.Count, report.removalsHeld);
  metrics.addMetric('DrainingRevived', MetricUnit.Count, report.drainingRevived);
  metrics.addMetric('RejectedLeases', MetricUnit.Count, rejectedLeaseCount(report.rejections));
  metrics.addMetric('LiveLeases', MetricUnit.Count, report.liveLeases);
  metrics.addMetric('ElbCalls', MetricUnit.Count, report.elbCalls);
  if (report.safetyValveTripped.length > 0) {
    logger.warn('safety valve tripped: targets without a lease are removed only when a second pass agrees', {
      capabilities: report.safetyValveTripped,
      removalsHeld: report.removalsHeld,
    });
  }
  for (const e of report.errors) logger.error('ELB change failed during reconcile', { error: e.message });
  logger.info('reconciled', {
    liveLeases: report.liveLeases,
    expiredLeasesDeleted: report.expiredLeasesDeleted,
    driftRegistered: report.driftRegistered,
    drainingRevived: report.drainingRevived,
    driftDeregistered: report.driftDeregistered,
    removalsHeld: report.removalsHeld,
    registrationsWithheld: report.registrationsWithheld,
    deregistrationsWithheld: report.deregistrationsWithheld,
    refusedBefore: report.refusedBefore,
    rejectedLeases: report.rejections.length,
  });
  metrics.publishStoredMetrics();
}

import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { AgentLbError } from '../core/errors';
import type { BudgetReport } from '../core/elb-call-budget';
import { BUDGET_METRICS, CATALOG_STREAM_METRICS, errorMetricName, RECONCILE_METRICS, SYNC_METRICS } from '../core/metric-names';
import { ReconcileReport } from '../registry/reconcile';
import type { CatalogReport } from '../registry/catalog-update';
import type { CatalogStreamReport } from '../registry/catalog-stream';
import type { RegistryWriteReport } from '../registry/registry-writes';
import { StreamSyncReport } from '../registry/stream-sync';

/** Leases, not reasons: one lease with two problems counts once. */
function rejectedLeaseCount(rejections: readonly { target?: string }[]): number {
  const keyed = new Set(rejections.filter((r) => r.target !== undefined).map((r) => r.target));
  return keyed.size + rejections.filter((r) => r.target === undefined).length;
}

/** One count per error code met, under the name the metric map gives it (errors without a code count as `OtherErrors`). */
function addErrorMetrics(metrics: Metrics, errors: readonly unknown[]): void {
  const counts = new Map<string, number>();
  for (const error of errors) {
    const name = errorMetricName(error instanceof AgentLbError ? error.code : undefined);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  for (const [name, count] of counts) metrics.addMetric(name, MetricUnit.Count, count);
}

/**
 * An invocation that failed as a whole (its configuration could not be resolved, no target
 * group could be read): counted under its error code's metric and logged with the code, then
 * rethrown by the handler so Lambda retries it.
 */
export function publishInvocationFailure(error: unknown, logger: Logger, metrics: Metrics): void {
  addErrorMetrics(metrics, [error]);
  logger.error('invocation failed', {
    code: error instanceof AgentLbError ? error.code : undefined,
    error: error instanceof Error ? error.message : String(error),
  });
  metrics.publishStoredMetrics();
}

/**
 * Something a configuration was resolved without (the catalog's hosts): counted under its error
 * code's metric, published with the invocation's report, and logged as a warning; the invocation goes on.
 */
export function publishResolutionWarning(error: AgentLbError, logger: Logger, metrics: Metrics): void {
  addErrorMetrics(metrics, [error]);
  logger.warn('configuration resolved without a part the catalog uses', { code: error.code, error: error.message });
}

/**
 * The shared ELB call budget could not be reached: the container keeps to its fallback share
 * (shared-bucket-gate.ts) for a while. Counted under `ElbBudgetStateErrors` and logged as a warning.
 */
export function publishBudgetFallback(error: AgentLbError, logger: Logger, metrics: Metrics): void {
  addErrorMetrics(metrics, [error]);
  logger.warn('the shared ELB call budget is out of reach: this container keeps to its fallback share of it', { code: error.code, error: error.message });
}

/** Calls a container made from its fallback share, outside the shared budget (published with the invocation's report). */
export function addOffBudgetCalls(calls: number, metrics: Metrics): void {
  metrics.addMetric(BUDGET_METRICS.elbCallsOffSharedBudget, MetricUnit.Count, calls);
}

/** Writes a sync report as EMF metrics and log lines. Rejections are logged one per lease, with their reason. */
export function publishSyncReport(report: StreamSyncReport, lagMs: number | undefined, logger: Logger, metrics: Metrics): void {
  metrics.addMetric(SYNC_METRICS.records, MetricUnit.Count, report.records);
  metrics.addMetric(SYNC_METRICS.noopRecords, MetricUnit.Count, report.kinds.heartbeat + report.kinds.registry + report.kinds.noop);
  metrics.addMetric(SYNC_METRICS.registrations, MetricUnit.Count, report.registrations);
  metrics.addMetric(SYNC_METRICS.deregistrations, MetricUnit.Count, report.deregistrations);
  metrics.addMetric(SYNC_METRICS.changesWithheld, MetricUnit.Count, report.registrationsWithheld + report.deregistrationsWithheld);
  metrics.addMetric(SYNC_METRICS.changesAlreadyApplied, MetricUnit.Count, report.alreadyApplied);
  metrics.addMetric(SYNC_METRICS.elbCalls, MetricUnit.Count, report.elbCalls);
  metrics.addMetric(SYNC_METRICS.leasesRead, MetricUnit.Count, report.leasesRead);
  if (report.confirmReadMs !== undefined) metrics.addMetric(SYNC_METRICS.confirmReadMs, MetricUnit.Milliseconds, report.confirmReadMs);
  metrics.addMetric(SYNC_METRICS.rejectedLeases, MetricUnit.Count, rejectedLeaseCount(report.rejections) + report.refusedByElb.length);
  metrics.addMetric(SYNC_METRICS.ttlDeletions, MetricUnit.Count, report.kinds['ttl-deletion']);
  metrics.addMetric(SYNC_METRICS.releases, MetricUnit.Count, report.kinds.release);
  if (lagMs !== undefined) metrics.addMetric(SYNC_METRICS.syncLagMs, MetricUnit.Milliseconds, lagMs);
  metrics.addMetric(SYNC_METRICS.ec2Calls, MetricUnit.Count, report.ec2Calls);
  metrics.addMetric(SYNC_METRICS.notAdmitted, MetricUnit.Count, report.notAdmitted);
  metrics.addMetric(SYNC_METRICS.overQuota, MetricUnit.Count, report.overQuota);
  metrics.addMetric(SYNC_METRICS.memberWrites, MetricUnit.Count, report.catalog.memberWrites);
  metrics.addMetric(SYNC_METRICS.catalogUpdates, MetricUnit.Count, report.catalog.published ? 1 : 0);
  if (report.budget) publishBudget(report.budget, metrics);
  addErrorMetrics(metrics, [
    ...(report.ec2Error ? [report.ec2Error] : []),
    ...report.refusedByElb.map((r) => r.error),
    ...(report.transientError ? [report.transientError] : []),
    ...(report.readError ? [report.readError] : []),
    ...(report.registryWrites.firstError ? [report.registryWrites.firstError] : []),
    ...(report.catalog.error ? [report.catalog.error] : []),
  ]);
  for (const r of report.rejections) logger.warn('lease rejected', { reason: r.reason, target: r.target, capability: r.capability, detail: r.message });
  for (const r of report.refusedByElb) logger.error('target refused by ELB', { target: r.key, error: r.error.message });
  if (report.readError) {
    logger.warn('lease table read failed; nothing sent, batch will be retried from the first changed record', {
      firstFailedRecordId: report.firstFailedRecordId,
      error: report.readError.message,
    });
  }
  if (report.ec2Error) {
    logger.warn('EC2 could not say who holds the addresses to register; they wait, the batch will be retried from their first record', {
      firstFailedRecordId: report.firstFailedRecordId,
      error: report.ec2Error.message,
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
    ec2Calls: report.ec2Calls,
    notAdmitted: report.notAdmitted,
    overQuota: report.overQuota,
    registryWrites: writesSummary(report.registryWrites),
    catalog: catalogSummary(report.catalog),
  });
  metrics.publishStoredMetrics();
}

/** Writes a catalog stream report as EMF metrics and a log line; a failed step is logged as the batch's retry. */
export function publishCatalogStreamReport(report: CatalogStreamReport, lagMs: number | undefined, logger: Logger, metrics: Metrics): void {
  metrics.addMetric(CATALOG_STREAM_METRICS.records, MetricUnit.Count, report.records);
  metrics.addMetric(CATALOG_STREAM_METRICS.leasesChanged, MetricUnit.Count, report.leasesChanged);
  metrics.addMetric(CATALOG_STREAM_METRICS.memberWrites, MetricUnit.Count, report.catalog.memberWrites);
  metrics.addMetric(CATALOG_STREAM_METRICS.catalogUpdates, MetricUnit.Count, report.catalog.published ? 1 : 0);
  if (lagMs !== undefined) metrics.addMetric(CATALOG_STREAM_METRICS.catalogLagMs, MetricUnit.Milliseconds, lagMs);
  addErrorMetrics(metrics, report.catalog.error ? [report.catalog.error] : []);
  if (report.catalog.error) {
    logger.warn('capability catalog not updated; the batch will be retried from the first changed record (reconcile repairs what is lost)', {
      firstFailedRecordId: report.firstFailedRecordId,
      error: report.catalog.error.message,
    });
  }
  logger.info('catalog updated', { records: report.records, leasesChanged: report.leasesChanged, catalog: catalogSummary(report.catalog) });
  metrics.publishStoredMetrics();
}

/** The catalog step of a report, for its log line (the error as its message). */
function catalogSummary(r: CatalogReport): Record<string, number | string | boolean> {
  const { error, ...rest } = r;
  return error ? { ...rest, error: error.message } : rest;
}

/** The registry's writes into leases of a report, for its log line (the error as its message). */
function writesSummary(r: RegistryWriteReport): Record<string, number | string> {
  const { firstError, ...counts } = r;
  return firstError ? { ...counts, error: firstError.message } : counts;
}

export function publishReconcileReport(report: ReconcileReport, logger: Logger, metrics: Metrics): void {
  metrics.addMetric(RECONCILE_METRICS.expiredLeasesDeleted, MetricUnit.Count, report.expiredLeasesDeleted);
  metrics.addMetric(RECONCILE_METRICS.farFutureLeasesDeleted, MetricUnit.Count, report.farFutureLeasesDeleted);
  metrics.addMetric(RECONCILE_METRICS.driftRegistered, MetricUnit.Count, report.driftRegistered);
  metrics.addMetric(RECONCILE_METRICS.driftDeregistered, MetricUnit.Count, report.driftDeregistered);
  metrics.addMetric(RECONCILE_METRICS.safetyValveTripped, MetricUnit.Count, report.safetyValveTripped.length);
  metrics.addMetric(RECONCILE_METRICS.removalsHeld, MetricUnit.Count, report.removalsHeld);
  metrics.addMetric(RECONCILE_METRICS.drainingRevived, MetricUnit.Count, report.drainingRevived);
  metrics.addMetric(RECONCILE_METRICS.rejectedLeases, MetricUnit.Count, rejectedLeaseCount(report.rejections));
  metrics.addMetric(RECONCILE_METRICS.liveLeases, MetricUnit.Count, report.liveLeases);
  metrics.addMetric(RECONCILE_METRICS.elbCalls, MetricUnit.Count, report.elbCalls);
  metrics.addMetric(RECONCILE_METRICS.variantsHeldOut, MetricUnit.Count, report.variantsHeldOut.length);
  metrics.addMetric(RECONCILE_METRICS.ec2Calls, MetricUnit.Count, report.ec2Calls);
  metrics.addMetric(RECONCILE_METRICS.notAdmitted, MetricUnit.Count, report.notAdmitted);
  metrics.addMetric(RECONCILE_METRICS.notAdmittedRemoved, MetricUnit.Count, report.notAdmittedRemoved);
  metrics.addMetric(RECONCILE_METRICS.overQuota, MetricUnit.Count, report.overQuota);
  metrics.addMetric(RECONCILE_METRICS.registeredTargets, MetricUnit.Count, report.registeredTargets);
  if (report.budget) publishBudget(report.budget, metrics);
  metrics.addMetric(RECONCILE_METRICS.memberRepairs, MetricUnit.Count, report.catalog.memberWrites);
  metrics.addMetric(RECONCILE_METRICS.catalogUpdates, MetricUnit.Count, report.catalog.published ? 1 : 0);
  addErrorMetrics(metrics, [
    ...report.errors,
    ...(report.ec2Error ? [report.ec2Error] : []),
    ...(report.registryWrites.firstError ? [report.registryWrites.firstError] : []),
    ...(report.catalog.error ? [report.catalog.error] : []),
  ]);
  if (report.ec2Error) logger.warn('EC2 could not say who holds the addresses of this pass: their registrations wait, no target was removed for it', { error: report.ec2Error.message });
  if (report.catalog.error) logger.warn('capability catalog not updated; the next pass tries again', { error: report.catalog.error.message });
  if (report.safetyValveTripped.length > 0) {
    logger.warn('safety valve tripped: targets without a lease are removed only when a second pass agrees', {
      capabilities: report.safetyValveTripped,
      removalsHeld: report.removalsHeld,
    });
  }
  if (report.variantsHeldOut.length > 0) {
    logger.warn('variants without a healthy target are held at weight 0; their share goes to the stable group', { variants: report.variantsHeldOut });
  }
  for (const e of report.errors) logger.error('ELB change failed during reconcile', { error: e.message });
  logger.info('reconciled', {
    liveLeases: report.liveLeases,
    expiredLeasesDeleted: report.expiredLeasesDeleted,
    farFutureLeasesDeleted: report.farFutureLeasesDeleted,
    driftRegistered: report.driftRegistered,
    drainingRevived: report.drainingRevived,
    driftDeregistered: report.driftDeregistered,
    removalsHeld: report.removalsHeld,
    registrationsWithheld: report.registrationsWithheld,
    deregistrationsWithheld: report.deregistrationsWithheld,
    refusedBefore: report.refusedBefore,
    rejectedLeases: report.rejections.length,
    notAdmitted: report.notAdmitted,
    notAdmittedRemoved: report.notAdmittedRemoved,
    overQuota: report.overQuota,
    registeredTargets: report.registeredTargets,
    ec2Calls: report.ec2Calls,
    registryWrites: writesSummary(report.registryWrites),
    catalog: catalogSummary(report.catalog),
  });
  metrics.publishStoredMetrics();
}

/** The ELB call budget's figures of a batch or a pass, under the names both functions share. */
function publishBudget(budget: BudgetReport, metrics: Metrics): void {
  metrics.addMetric(BUDGET_METRICS.elbCallsPerSecond, MetricUnit.CountPerSecond, budget.callsPerSecond);
  metrics.addMetric(BUDGET_METRICS.elbCallBudgetPerSecond, MetricUnit.CountPerSecond, budget.budgetPerSecond);
  metrics.addMetric(BUDGET_METRICS.queuedChanges, MetricUnit.Count, budget.queued);
  metrics.addMetric(BUDGET_METRICS.oldestQueuedChangeMs, MetricUnit.Milliseconds, budget.oldestAgeMs);
}

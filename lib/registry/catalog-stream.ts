import { catalogChanges } from '../core/catalog-members';
import { leaseKeyOf } from '../core/lease-codec';
import { LeaseChangeRecord, planStreamBatch } from '../core/stream-planner';
import { CatalogDeps, CatalogReport, updateCatalogForLeases } from './catalog-update';

export interface CatalogStreamReport {
  readonly records: number;
  /** Leases whose member index entries the batch brought up to date: not heartbeats, not the registry's own writes. */
  readonly leasesChanged: number;
  readonly catalog: CatalogReport;
  /** With a catalog error: the first record of a changed lease, from which the batch is tried again. */
  readonly firstFailedRecordId?: string;
}

/**
 * The catalog's own reader of the lease stream (a second event source mapping, a second local
 * poller): the member index entries of the leases a batch changed, written from a consistent read
 * of those leases now, and a new catalog revision if the counts moved.
 *
 * It used to be a step of the stream sync, beside the routing work; but a Lambda returns only
 * when everything it started has ended, and the next batch waits for that return: one member
 * write per capability of every new lease held each registration of the next batch (B2 on
 * e02d80c, deployed batching: registrar p99 1.99 s, 1.37 s with the catalog's calls made no-ops).
 * Here its writes delay only the catalog, which clients poll anyway.
 *
 * A failed step is tried again from its first changed record (the batch's retry; reconcile
 * repairs the index within a pass whatever is lost); heartbeats and the registry's own writes
 * (`rotation`, `rejection`) cost nothing: their writers keep the index for them.
 */
export async function syncCatalogBatch(records: readonly LeaseChangeRecord[], deps: CatalogDeps): Promise<CatalogStreamReport> {
  const plan = planStreamBatch(records, deps.policy, deps.routing);
  const changes = catalogChanges(records, plan.kinds, deps.routing);
  const catalog = await updateCatalogForLeases(deps, changes);
  // Every change is tried again from the first record of a lease it was about (a metadata change
  // moves the catalog but no route, so the routing plan's record indexes do not name it).
  const failedIndex = catalog.error ? records.findIndex((r) => changes.has(r.key ?? leaseKeyOf(r.newImage) ?? leaseKeyOf(r.oldImage) ?? '')) : -1;
  return {
    records: records.length,
    leasesChanged: changes.size,
    catalog,
    ...(failedIndex < 0 ? {} : { firstFailedRecordId: records[failedIndex].id }),
  };
}


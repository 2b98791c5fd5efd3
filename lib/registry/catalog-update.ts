import { AddressPolicy } from '../core/address-policy';
import { buildCatalogCapability, CatalogCapability, CatalogConfig, catalogOwners, groupsOf, GroupSummary, mergeCatalogCapabilities, nextCatalog, summarizeGroup } from '../core/catalog-document';
import { IndexedGroup, indexDrift, membersByGroup, membersOfItem, memberWrites } from '../core/catalog-members';
import { mapLimit } from '../core/concurrency';
import { LeaseStoreError, RegistryStateError } from '../core/errors';
import { RawItem, RoutingConfig } from '../core/lease-schema';
import { CatalogMember } from '../core/registry-state';
import { LeaseStore } from '../aws/lease-store';
import { RegistryStateStore } from '../aws/registry-state-store';

/** Member index writes made at once. */
export const MEMBER_WRITES_AT_A_TIME = 16;
/** Groups a reconcile pass reads at once (one Query each). */
const GROUPS_AT_A_TIME = 8;
/** Times a document write is tried again after another writer published first (each time recounted). */
const PUBLISH_ATTEMPTS = 3;

/** Where the catalog lives and what it says of each capability: what a sync or reconcile handler is given when the catalog is on. */
export interface RegistryCatalog {
  readonly state: RegistryStateStore;
  readonly catalog: CatalogConfig;
}

export interface CatalogDeps extends RegistryCatalog {
  /** The lease table: changed leases are read from it before their entries are written. */
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

/** What one catalog step did. Never thrown: the catalog must not hold up routing. */
export interface CatalogReport {
  /** Member index items written or removed. */
  readonly memberWrites: number;
  /** Writes the index refused because it already held a newer read of the lease. */
  readonly staleWrites: number;
  /** Groups counted again (one Query each). */
  readonly groupsCounted: number;
  /** The document's revision after the step, when it was read or written. */
  readonly revision?: number;
  /** Whether the step moved the revision. */
  readonly published: boolean;
  readonly error?: RegistryStateError;
}

export const NO_CATALOG_CHANGE: CatalogReport = { memberWrites: 0, staleWrites: 0, groupsCounted: 0, published: false };

function asStateError(error: unknown): RegistryStateError {
  if (error instanceof RegistryStateError) return error;
  const message = error instanceof LeaseStoreError ? error.message : String((error as Error)?.message ?? error);
  return new RegistryStateError(`catalog update failed: ${message}`, { cause: error });
}

interface Tally {
  memberWrites: number;
  staleWrites: number;
  groupsCounted: number;
}

async function applyWrites(deps: CatalogDeps, puts: readonly CatalogMember[], deletes: readonly { capability: string; target: string }[], readAt: number, tally: Tally): Promise<void> {
  const jobs: (() => Promise<'written' | 'stale'>)[] = [
    ...puts.map((m) => () => deps.state.putMember(m, readAt)),
    ...deletes.map((d) => () => deps.state.deleteMember(d.capability, d.target, readAt)),
  ];
  const outcomes = await mapLimit(jobs, MEMBER_WRITES_AT_A_TIME, (job) => job());
  tally.memberWrites += outcomes.filter((o) => o === 'written').length;
  tally.staleWrites += outcomes.filter((o) => o === 'stale').length;
}

/**
 * After a stream batch: the entries of the leases it changed (`changes`: lease key → the groups
 * its images named; see `catalogChanges`), written from a consistent read of those leases now, so
 * a late or replayed record writes what is true rather than what it carried; then the catalog
 * entries of the touched capabilities counted again and the document published if it changed.
 * Cost: one read unit per changed lease, a write unit per entry, one Query per group of a touched
 * capability, a document read and, on a change, a write.
 */
export async function updateCatalogForLeases(deps: CatalogDeps, changes: ReadonlyMap<string, ReadonlySet<string>>): Promise<CatalogReport> {
  if (changes.size === 0) return NO_CATALOG_CHANGE;
  const now = deps.now ?? Date.now;
  const tally: Tally = { memberWrites: 0, staleWrites: 0, groupsCounted: 0 };
  try {
    const readAt = now();
    const items = await deps.store.getMany([...changes.keys()]);
    const puts: CatalogMember[] = [];
    const deletes: { capability: string; target: string }[] = [];
    const touched = new Set<string>();
    for (const [target, known] of changes) {
      const writes = memberWrites(target, membersOfItem(items.get(target), deps.policy, deps.routing, Math.floor(readAt / 1000)), known);
      puts.push(...writes.puts);
      deletes.push(...writes.deletes);
      for (const c of [...known, ...writes.puts.map((m) => m.capability)]) touched.add(c);
    }
    await applyWrites(deps, puts, deletes, readAt, tally);
    const owners = catalogOwners(deps.catalog);
    const names = new Set([...touched].flatMap((c) => (owners.has(c) ? [owners.get(c)!] : [])));
    return { ...(await publish(deps, names, tally)), ...tally };
  } catch (error) {
    return { ...tally, published: false, error: asStateError(error) };
  }
}

/** Counts the groups of `names` from the index (all capabilities when the document is not there yet) and publishes what changed. */
async function publish(deps: CatalogDeps, names: ReadonlySet<string>, tally: Tally, counted?: ReadonlyMap<string, GroupSummary>): Promise<Pick<CatalogReport, 'published' | 'revision'>> {
  const now = deps.now ?? Date.now;
  let summaries = counted;
  for (let attempt = 1; attempt <= PUBLISH_ATTEMPTS; attempt++) {
    const current = await deps.state.readCatalog(true);
    const wanted = current === undefined ? new Set(Object.keys(deps.catalog.capabilities)) : names;
    const updated = new Map<string, CatalogCapability>();
    for (const name of wanted) {
      const groups = groupsOf(deps.catalog, name);
      const fresh = summaries ?? (await countGroups(deps, groups, tally));
      updated.set(name, buildCatalogCapability(deps.catalog, name, (g) => fresh.get(g)));
    }
    const doc = nextCatalog(current?.document, mergeCatalogCapabilities(deps.catalog, current?.document.capabilities, updated), now());
    if (doc === undefined) return { published: false, ...(current ? { revision: current.document.revision } : {}) };
    if ((await deps.state.writeCatalog(doc, current?.document.revision)) === 'written') return { published: true, revision: doc.revision };
    // Another writer published meanwhile, perhaps from a newer read of the same groups: count again.
    summaries = undefined;
  }
  return { published: false };
}

async function countGroups(deps: CatalogDeps, groups: readonly string[], tally: Tally): Promise<Map<string, GroupSummary>> {
  const out = new Map<string, GroupSummary>();
  for (const group of groups) {
    const { members } = await deps.state.queryMembers(group);
    tally.groupsCounted++;
    out.set(group, summarizeGroup(members, deps.catalog.attributes));
  }
  return out;
}

/**
 * A reconcile pass's share: every routed group's index read (one Query each) and compared with
 * what the pass's scan wants; entries that disagree are read again from the lease table and, if
 * they still disagree, rewritten or removed (never over a newer read); then the whole document is
 * counted from the repaired index and published if it changed. What a lost stream batch, a failed
 * write or an expired lease left wrong is right again after one pass.
 */
export async function repairCatalog(deps: CatalogDeps, scanItems: readonly RawItem[], scanReadAt: number): Promise<CatalogReport> {
  const now = deps.now ?? Date.now;
  const tally: Tally = { memberWrites: 0, staleWrites: 0, groupsCounted: 0 };
  try {
    const wanted = membersByGroup(scanItems, deps.policy, deps.routing, Math.floor(scanReadAt / 1000));
    const indexed = new Map<string, IndexedGroup>();
    const drifted = new Map<string, Set<string>>();
    const groups = Object.keys(deps.routing.capabilities);
    const reads = await mapLimit(groups, GROUPS_AT_A_TIME, (group) => deps.state.queryMembers(group));
    groups.forEach((group, i) => {
      tally.groupsCounted++;
      indexed.set(group, reads[i]);
      for (const target of indexDrift(wanted.get(group)!, reads[i], scanReadAt)) drifted.set(target, (drifted.get(target) ?? new Set()).add(group));
    });
    if (drifted.size > 0) {
      // The scan is a few hundred milliseconds old by now: judge each drifted lease by a fresh read.
      const readAt = now();
      const items = await deps.store.getMany([...drifted.keys()]);
      const puts: CatalogMember[] = [];
      const deletes: { capability: string; target: string }[] = [];
      for (const [target, groups] of drifted) {
        const writes = memberWrites(target, membersOfItem(items.get(target), deps.policy, deps.routing, Math.floor(readAt / 1000)), groups);
        puts.push(...writes.puts.filter((m) => groups.has(m.capability)));
        deletes.push(...writes.deletes);
      }
      await applyWrites(deps, puts, deletes, readAt, tally);
      for (const [group, read] of indexed) {
        const gone = new Set(deletes.filter((d) => d.capability === group).map((d) => d.target));
        const replaced = new Map(puts.filter((p) => p.capability === group).map((p) => [p.target, p]));
        const members = [...read.members.filter((m) => !gone.has(m.target) && !replaced.has(m.target)), ...replaced.values()];
        indexed.set(group, { members, readAt: read.readAt });
      }
    }
    const summaries = new Map([...indexed].map(([group, read]) => [group, summarizeGroup(read.members, deps.catalog.attributes)]));
    return { ...(await publish(deps, new Set(Object.keys(deps.catalog.capabilities)), tally, summaries)), ...tally };
  } catch (error) {
    return { ...tally, published: false, error: asStateError(error) };
  }
}

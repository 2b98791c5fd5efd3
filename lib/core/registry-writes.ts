import { LEASE_ATTR, RawAttributeValue, RawItem, REGISTRY_ATTRS, RegistryAttribute } from './lease-schema';

/**
 * The registry's own writes into lease items (docs/lease-contract.md), whatever they say: an
 * entry of a map attribute only the registry writes (`rotation.<capability>` today), each entry
 * carrying `since` (epoch ms). Pure: planners of each attribute produce {@link PlannedEntry}s;
 * {@link byLease} turns them into one write per lease, which the lease store sends as one
 * UpdateItem conditional on the lease token (never into a released or re-acquired lease) and on
 * each entry being newer than the stored one (`since` only moves forward). What a write that lost
 * a race still has to do is decided here too ({@link entriesNewerThan}), from the item DynamoDB
 * returns with a failed condition.
 */

/** One entry of a registry-owned map attribute: `<attribute>.<key>`. */
export interface RegistryEntry {
  readonly attribute: RegistryAttribute;
  /** The entry's key in the map (a capability name for `rotation`). */
  readonly key: string;
  /** The entry (a Map holding `since`); `undefined` removes the entry. */
  readonly value?: RawAttributeValue;
  /** Epoch ms. The entry replaces (or removes) only a stored one with an older `since`, or a malformed one. */
  readonly since: number;
}

/** An entry some planner wants in a lease, with what it was planned from. */
export interface PlannedEntry {
  readonly target: string;
  /** The token of the lease it was planned from: the write is conditional on it. */
  readonly leaseToken: string;
  readonly entry: RegistryEntry;
  /**
   * Whether the item it was planned from held `entry.attribute` as a map. Decides the first
   * UpdateItem's form: set the entry in place, or write the map whole (an acquire's PutItem
   * leaves none). A wrong guess costs one failed UpdateItem, then the other form.
   */
  readonly mapPresent: boolean;
}

/** Everything the registry writes into one lease at once: one UpdateItem (chunked only past {@link MAX_ENTRIES_PER_WRITE} entries). */
export interface LeaseWrite {
  readonly target: string;
  readonly leaseToken: string;
  readonly entries: readonly RegistryEntry[];
  /** The attributes to set in place; the others are written whole. */
  readonly maps: readonly RegistryAttribute[];
}

/** Entries one UpdateItem carries at most: each adds about 110 characters of condition, and DynamoDB takes 4 KB of expression. */
export const MAX_ENTRIES_PER_WRITE = 25;

/**
 * One write per (lease key, token), with one entry per (attribute, key): the newest `since` wins
 * (a later observation supersedes an earlier one of the same pass, so `initial` followed by
 * `healthy` is written once, as `healthy`). Order: leases as first planned, entries likewise.
 */
export function byLease(planned: readonly PlannedEntry[]): LeaseWrite[] {
  const leases = new Map<string, { target: string; leaseToken: string; entries: Map<string, RegistryEntry>; maps: Set<RegistryAttribute> }>();
  for (const p of planned) {
    const id = `${p.target}\u0000${p.leaseToken}`;
    let lease = leases.get(id);
    if (lease === undefined) leases.set(id, (lease = { target: p.target, leaseToken: p.leaseToken, entries: new Map(), maps: new Set() }));
    const entryId = `${p.entry.attribute}\u0000${p.entry.key}`;
    const known = lease.entries.get(entryId);
    if (known === undefined || p.entry.since > known.since) lease.entries.set(entryId, p.entry);
    if (p.mapPresent) lease.maps.add(p.entry.attribute);
  }
  return [...leases.values()].map((l) => ({ target: l.target, leaseToken: l.leaseToken, entries: [...l.entries.values()], maps: [...l.maps] }));
}

/** The registry attributes `item` holds as maps (where an entry can be set in place). */
export function registryMaps(item: RawItem): RegistryAttribute[] {
  return REGISTRY_ATTRS.filter((attribute) => item[attribute]?.M !== undefined);
}

/** The `since` of a stored entry, when it is a well-formed one (a Map with a numeric `since`); a malformed entry counts as older than any. */
function storedSince(item: RawItem, entry: RegistryEntry): number | undefined {
  const map = item[entry.attribute]?.M;
  const stored = map !== undefined && Object.hasOwn(map, entry.key) ? map[entry.key] : undefined;
  const since = stored?.M?.since?.N;
  return since === undefined || !Number.isFinite(Number(since)) ? undefined : Number(since);
}

/** Whether a stored entry says what `value` says, `since` aside (the same state, seen earlier or later). */
function sameApartFromSince(stored: RawAttributeValue | undefined, value: RawAttributeValue): boolean {
  const a = stored?.M;
  const b = value.M;
  if (a === undefined || b === undefined) return false;
  const keys = (m: Readonly<Record<string, RawAttributeValue>>) => Object.keys(m).filter((k) => k !== 'since').sort();
  const ka = keys(a);
  const kb = keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && JSON.stringify(a[k]) === JSON.stringify(b[k]));
}

/**
 * Of `entries`, those `item` (the lease as DynamoDB returned it with a failed condition) does not
 * already hold at least as new, or holding the same content: what a retry still writes. An entry
 * the item already holds with the same content and an older `since` (another writer saw the same
 * state first: a rotation poll and a reconcile pass reading one registration) is not written
 * again: the registry writes on change only, and the earlier `since` is the truer one. A retry
 * never fails on an entry it kept. A removal of an entry the item does not hold is done.
 */
export function entriesNewerThan(item: RawItem, entries: readonly RegistryEntry[]): { newer: RegistryEntry[]; superseded: RegistryEntry[] } {
  const newer: RegistryEntry[] = [];
  const superseded: RegistryEntry[] = [];
  for (const entry of entries) {
    const map = item[entry.attribute]?.M;
    const present = map !== undefined && Object.hasOwn(map, entry.key);
    const since = storedSince(item, entry);
    const stale =
      entry.value === undefined
        ? !present || (since !== undefined && since >= entry.since)
        : (since !== undefined && since >= entry.since) || (present && sameApartFromSince(map?.[entry.key], entry.value));
    (stale ? superseded : newer).push(entry);
  }
  return { newer, superseded };
}

/** Whether `item` is the lease `leaseToken` holds (the item a failed condition returned; `undefined`: no item). */
export function heldBy(item: RawItem | undefined, leaseToken: string): item is RawItem {
  return item !== undefined && item[LEASE_ATTR.leaseToken]?.S === leaseToken;
}

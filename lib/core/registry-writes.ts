import { CLOCK_SKEW_ALLOWANCE_SECONDS, LEASE_ATTR, RawAttributeValue, RawItem, REGISTRY_MAPS, RegistryMap } from './lease-schema';
import type { RejectionWrite } from './rejection-planner';

/**
 * The registry's own writes into lease items (docs/lease-contract.md), whatever they say: entries
 * of a map attribute only the registry writes (`rotation.<capability>`), each carrying `since`
 * (epoch ms), and the lease's `rejection`, written whole (lib/core/rejection-planner.ts). Pure:
 * planners of each attribute produce {@link PlannedEntry}s and `RejectionWrite`s; {@link byLease}
 * turns them into one write per lease, which the lease store sends as one UpdateItem conditional
 * on the lease token (never into a released or re-acquired lease), on each entry being newer than
 * the stored one (`since` only moves forward) and, with a rejection, on the item being the one it
 * was judged on. What a write that lost a race still has to do is decided here too
 * ({@link entriesNewerThan}; `retryRejection`), from the item DynamoDB returns with a failed
 * condition.
 */

/**
 * The lease token a write is conditional on: a string is the S value every valid lease holds; a
 * rejection of an item without one, or with a mistyped one, conditions on exactly what it read.
 */
export type LeaseTokenCondition = string | RawAttributeValue | undefined;

/** The token as an attribute value (`undefined`: the item has none). */
export function tokenValue(leaseToken: LeaseTokenCondition): RawAttributeValue | undefined {
  return typeof leaseToken === 'string' ? { S: leaseToken } : leaseToken;
}

/** One text per token, whichever form names it. */
function tokenId(leaseToken: LeaseTokenCondition): string {
  const value = tokenValue(leaseToken);
  if (value === undefined) return '-';
  return value.S !== undefined ? `S:${value.S}` : value.N !== undefined ? `N:${value.N}` : JSON.stringify(value);
}

/** One entry of a registry-owned map attribute: `<attribute>.<key>`. */
export interface RegistryEntry {
  readonly attribute: RegistryMap;
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
  readonly leaseToken: LeaseTokenCondition;
  readonly entries: readonly RegistryEntry[];
  /** The maps to set entries in place; the others are written whole. */
  readonly maps: readonly RegistryMap[];
  /** The lease's `rejection` to write or remove, with the item it was judged on; it rides the first UpdateItem. */
  readonly rejection?: RejectionWrite;
}

/** Entries one UpdateItem carries at most: each adds about 140 characters of condition (the forged-`since` clause included), and DynamoDB takes 4 KB of expression. */
export const MAX_ENTRIES_PER_WRITE = 20;

/**
 * One write per (lease key, token), with one entry per (attribute, key): the newest `since` wins
 * (a later observation supersedes an earlier one of the same pass, so `initial` followed by
 * `healthy` is written once, as `healthy`), and the lease's rejection, if one was planned (the
 * last planned for it wins), in the same write. Order: leases as first planned, entries likewise.
 */
export function byLease(planned: readonly PlannedEntry[], rejections: readonly RejectionWrite[] = []): LeaseWrite[] {
  type Lease = { target: string; leaseToken: LeaseTokenCondition; entries: Map<string, RegistryEntry>; maps: Set<RegistryMap>; rejection?: RejectionWrite };
  const leases = new Map<string, Lease>();
  const leaseOf = (target: string, leaseToken: LeaseTokenCondition): Lease => {
    const id = `${target}\u0000${tokenId(leaseToken)}`;
    let lease = leases.get(id);
    if (lease === undefined) leases.set(id, (lease = { target, leaseToken, entries: new Map(), maps: new Set() }));
    return lease;
  };
  for (const p of planned) {
    const lease = leaseOf(p.target, p.leaseToken);
    const entryId = `${p.entry.attribute}\u0000${p.entry.key}`;
    const known = lease.entries.get(entryId);
    if (known === undefined || p.entry.since > known.since) lease.entries.set(entryId, p.entry);
    if (p.mapPresent) lease.maps.add(p.entry.attribute);
  }
  for (const r of rejections) leaseOf(r.target, r.leaseToken).rejection = r;
  return [...leases.values()].map((l) => ({
    target: l.target,
    leaseToken: l.leaseToken,
    entries: [...l.entries.values()],
    maps: [...l.maps],
    ...(l.rejection ? { rejection: l.rejection } : {}),
  }));
}

/** The registry maps `item` holds as maps (where an entry can be set in place). */
export function registryMaps(item: RawItem): RegistryMap[] {
  return REGISTRY_MAPS.filter((attribute) => item[attribute]?.M !== undefined);
}

/**
 * The `since` of a stored entry, when it is a well-formed one (a Map with a numeric `since`); a
 * malformed entry, or one dated beyond `entry`'s by more than the clock-skew allowance (no
 * registry clock wrote it: an agent forged it), counts as older than any.
 */
function storedSince(item: RawItem, entry: RegistryEntry): number | undefined {
  const map = item[entry.attribute]?.M;
  const stored = map !== undefined && Object.hasOwn(map, entry.key) ? map[entry.key] : undefined;
  const since = stored?.M?.since?.N;
  if (since === undefined || !Number.isFinite(Number(since))) return undefined;
  return forgedSince(Number(since), entry) ? undefined : Number(since);
}

/** Whether a stored `since` lies further ahead of `entry`'s than the clock-skew allowance: no registry clock wrote it. */
function forgedSince(since: number, entry: RegistryEntry): boolean {
  return since > Math.floor(entry.since) + CLOCK_SKEW_ALLOWANCE_SECONDS * 1000;
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
    const storedText = present ? map?.[entry.key]?.M?.since?.N : undefined;
    // A forged entry (dated in the future) is overwritten even when it names the same state: its `since` is the lie.
    const forged = storedText !== undefined && Number.isFinite(Number(storedText)) && forgedSince(Number(storedText), entry);
    const stale =
      entry.value === undefined
        ? !present || (since !== undefined && since >= entry.since)
        : (since !== undefined && since >= entry.since) || (present && !forged && sameApartFromSince(map?.[entry.key], entry.value));
    (stale ? superseded : newer).push(entry);
  }
  return { newer, superseded };
}

/** Whether `item` is the lease `leaseToken` holds (the item a failed condition returned; `undefined`: no item). */
export function heldBy(item: RawItem | undefined, leaseToken: LeaseTokenCondition): item is RawItem {
  if (item === undefined) return false;
  const stored = item[LEASE_ATTR.leaseToken];
  return stored === undefined ? leaseToken === undefined : leaseToken !== undefined && tokenId(stored) === tokenId(leaseToken);
}

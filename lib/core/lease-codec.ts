import { AddressPolicy, formatTarget } from './address-policy';
import { InvalidLeaseError, LeaseRejection, LeaseRejectionReason } from './errors';
import { quoteUntrusted } from './untrusted-text';
import {
  CAPABILITY_NAME,
  CLOCK_SKEW_ALLOWANCE_SECONDS,
  LEASE_ATTR,
  Lease,
  LeaseStatus,
  MAX_AGENT_ID_CHARS,
  MAX_AVAILABILITY_ZONE_CHARS,
  MAX_CAPABILITIES_PER_LEASE,
  MAX_LEASE_TOKEN_CHARS,
  MAX_METADATA_BYTES,
  MAX_PORT,
  MIN_PORT,
  RawAttributeValue,
  RawItem,
  ROTATION_STATES,
  RotationEntry,
  RotationState,
  LeaseRotation,
} from './lease-schema';

export type DecodeResult =
  | { readonly ok: true; readonly lease: Lease }
  | { readonly ok: false; readonly rejections: readonly LeaseRejection[] };

/** Largest plausible epoch-seconds value (year 5138); anything above is almost surely milliseconds. */
export const MAX_EPOCH_SECONDS = 1e11;

/**
 * A DynamoDB number as text: decimal, optional sign, fraction and exponent. `Number()` alone
 * would also read "0x50", " 80 " or "Infinity", which DynamoDB never stores, so a pure caller
 * and the table could disagree about a port.
 */
const DECIMAL_NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

const TYPE_NAMES: Record<string, string> = { S: 'String (S)', N: 'Number (N)', SS: 'String Set (SS)', M: 'Map (M)' };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeOf(value: unknown): string {
  if (!isRecord(value)) return 'not an attribute value';
  const keys = Object.keys(value).filter((k) => value[k] !== undefined);
  // Type descriptors (S, N, SS, …) print as they are; anything else is untrusted text.
  if (keys.length === 1 && /^[A-Z]{1,4}$/.test(keys[0])) return keys[0];
  return keys.length === 1 ? quoteUntrusted(keys[0]) : `{${keys.map((k) => quoteUntrusted(k, 20)).slice(0, 5).join(',')}${keys.length > 5 ? ',…' : ''}}`;
}

/**
 * Reads the contract's attributes from an untrusted item, collecting every problem rather
 * than stopping at the first, so a log line tells an agent author all that is wrong at once.
 */
class ItemReader {
  public readonly rejections: LeaseRejection[] = [];

  public constructor(
    private readonly item: Record<string, unknown>,
    private readonly target: string | undefined,
  ) {}

  public reject(reason: LeaseRejectionReason, message: string, capability?: string): void {
    this.rejections.push({ reason, message, ...(this.target === undefined ? {} : { target: this.target }), ...(capability ? { capability } : {}) });
  }

  private field(name: string, type: 'S' | 'N' | 'SS' | 'M', optional: boolean): unknown {
    const raw = this.item[name];
    if (raw === undefined || (isRecord(raw) && raw.NULL === true && optional)) {
      if (!optional) this.reject('MISSING_ATTRIBUTE', `attribute "${name}" is missing`);
      return undefined;
    }
    const value = isRecord(raw) ? raw[type] : undefined;
    const wellFormed =
      value !== undefined &&
      (type === 'S' || type === 'N' ? typeof value === 'string' : type === 'SS' ? Array.isArray(value) : isRecord(value)) &&
      typeOf(raw) === type;
    if (!wellFormed) {
      this.reject('WRONG_TYPE', `attribute "${name}" must be ${TYPE_NAMES[type]}, got ${typeOf(raw)}`);
      return undefined;
    }
    return value;
  }

  public string(name: string, optional = false): string | undefined {
    const value = this.field(name, 'S', optional) as string | undefined;
    if (value !== undefined && value.length === 0) {
      this.reject('WRONG_TYPE', `attribute "${name}" must not be empty`);
      return undefined;
    }
    return value;
  }

  public number(name: string, reason: LeaseRejectionReason = 'WRONG_TYPE'): number | undefined {
    const text = this.field(name, 'N', false) as string | undefined;
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!DECIMAL_NUMBER.test(text) || !Number.isFinite(value)) {
      this.reject(reason, `attribute "${name}" is not a finite decimal number: ${quoteUntrusted(text)}`);
      return undefined;
    }
    return value;
  }

  public stringSet(name: string): readonly string[] | undefined {
    const value = this.field(name, 'SS', false) as unknown[] | undefined;
    if (value === undefined) return undefined;
    if (!value.every((v) => typeof v === 'string')) {
      this.reject('WRONG_TYPE', `attribute "${name}" must hold only strings`);
      return undefined;
    }
    return value as string[];
  }

  public map(name: string): Record<string, RawAttributeValue> | undefined {
    return this.field(name, 'M', true) as Record<string, RawAttributeValue> | undefined;
  }
}

/** Size as JSON; undefined when it cannot be serialized (never from DynamoDB, but callers may pass anything). */
function jsonBytes(value: unknown): number | undefined {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Decodes and validates an untrusted lease item (from a stream image, a scan, or an SDK
 * before it writes). Never throws: every problem becomes a rejection with a specific reason.
 * Routing checks that need the capability table (unknown names, target types) live in
 * `routeLease`, so a lease can be validated where no routing config exists (the agent SDK).
 */
export function decodeLease(item: unknown, policy: AddressPolicy): DecodeResult {
  if (!isRecord(item)) {
    return { ok: false, rejections: [{ reason: 'WRONG_TYPE', message: 'lease item is not a map of attributes' }] };
  }
  const rawTarget = item[LEASE_ATTR.target];
  const targetKey = isRecord(rawTarget) && typeof rawTarget.S === 'string' ? rawTarget.S : undefined;
  const r = new ItemReader(item, targetKey);

  const target = r.string(LEASE_ATTR.target);
  const address = r.string(LEASE_ATTR.address);
  const port = r.number(LEASE_ATTR.port, 'BAD_PORT');
  const capabilities = r.stringSet(LEASE_ATTR.capabilities);
  const expiresAt = r.number(LEASE_ATTR.expiresAt, 'BAD_EXPIRY');
  const leaseToken = r.string(LEASE_ATTR.leaseToken);
  const agentId = r.string(LEASE_ATTR.agentId);
  const status = r.string(LEASE_ATTR.status);
  const renewedAt = r.number(LEASE_ATTR.renewedAt);
  const registeredAt = r.number(LEASE_ATTR.registeredAt);
  const availabilityZone = r.string(LEASE_ATTR.availabilityZone, true);
  const metadata = r.map(LEASE_ATTR.metadata);
  // Registry feedback: a malformed entry is dropped, never a reason to refuse the lease.
  const { rotation } = decodeRotation(item[LEASE_ATTR.rotation]);

  if (port !== undefined && (!Number.isInteger(port) || port < MIN_PORT || port > MAX_PORT)) {
    r.reject('BAD_PORT', `port ${port} is outside ${MIN_PORT}–${MAX_PORT}`);
  }
  if (address !== undefined) {
    const check = policy.check(address);
    if (!check.ok) r.reject(check.malformed ? 'BAD_ADDRESS' : 'ADDRESS_NOT_ALLOWED', check.message);
    else if (check.kind !== 'instance') {
      const zone = policy.zoneProblem(address, availabilityZone);
      if (zone !== undefined) r.reject('ZONE_NOT_ALLOWED', zone);
    }
  }
  for (const [name, value, max] of [
    [LEASE_ATTR.agentId, agentId, MAX_AGENT_ID_CHARS],
    [LEASE_ATTR.leaseToken, leaseToken, MAX_LEASE_TOKEN_CHARS],
    [LEASE_ATTR.availabilityZone, availabilityZone, MAX_AVAILABILITY_ZONE_CHARS],
  ] as const) {
    if (value !== undefined && value.length > max) r.reject('TOO_LONG', `attribute "${name}" is ${value.length} characters, limit ${max}`);
  }
  if (capabilities !== undefined && capabilities.length > MAX_CAPABILITIES_PER_LEASE) {
    r.reject('TOO_LONG', `capabilities lists ${capabilities.length} names, limit ${MAX_CAPABILITIES_PER_LEASE}`);
  }
  if (target !== undefined && address !== undefined && port !== undefined && target !== formatTarget(address, port)) {
    r.reject('TARGET_MISMATCH', `target ${quoteUntrusted(target)} does not match address and port (expected ${quoteUntrusted(formatTarget(address, port))})`);
  }
  if (capabilities !== undefined) {
    if (capabilities.length === 0) r.reject('BAD_CAPABILITIES', 'capabilities must not be empty');
    const bad = capabilities.filter((c) => !CAPABILITY_NAME.test(c));
    if (bad.length > 0) {
      const shown = bad.slice(0, 5).map((c) => quoteUntrusted(c, 70)).join(', ') + (bad.length > 5 ? ` and ${bad.length - 5} more` : '');
      r.reject('BAD_CAPABILITIES', `capability names ${shown} do not match ${CAPABILITY_NAME.source}`);
    }
  }
  if (expiresAt !== undefined && (!Number.isInteger(expiresAt) || expiresAt <= 0 || expiresAt > MAX_EPOCH_SECONDS)) {
    const hint = expiresAt > MAX_EPOCH_SECONDS ? ' (looks like milliseconds; the TTL attribute takes epoch seconds)' : '';
    r.reject('BAD_EXPIRY', `expiresAt ${expiresAt} is not a positive integer of epoch seconds${hint}`);
  }
  if (status !== undefined && status !== 'active' && status !== 'draining') {
    r.reject('BAD_STATUS', `status ${quoteUntrusted(status)} must be "active" or "draining"`);
  }
  const metadataBytes = metadata === undefined ? 0 : jsonBytes(metadata);
  if (metadataBytes === undefined) r.reject('WRONG_TYPE', 'attribute "metadata" cannot be serialized as JSON');
  else if (metadataBytes > MAX_METADATA_BYTES) r.reject('METADATA_TOO_LARGE', `metadata is ${metadataBytes} bytes, limit ${MAX_METADATA_BYTES}`);

  if (r.rejections.length > 0) return { ok: false, rejections: r.rejections };
  return {
    ok: true,
    lease: {
      target: target!,
      address: address!,
      port: port!,
      capabilities: [...capabilities!].sort(),
      expiresAt: expiresAt!,
      leaseToken: leaseToken!,
      agentId: agentId!,
      status: status as LeaseStatus,
      renewedAt: renewedAt!,
      registeredAt: registeredAt!,
      ...(availabilityZone === undefined ? {} : { availabilityZone }),
      ...(metadata === undefined ? {} : { metadata }),
      ...(rotation === undefined ? {} : { rotation }),
    },
  };
}

/** Smallest plausible `since` (epoch ms, March 1973): below it the writer almost surely used seconds. */
const MIN_EPOCH_MS = 1e11;
/** Largest plausible `since` (epoch ms, year 5138, as MAX_EPOCH_SECONDS): beyond it no date can even be printed. */
const MAX_EPOCH_MS = MAX_EPOCH_SECONDS * 1000;
const MAX_ROTATION_PROBLEMS = 5;

export interface DecodedRotation {
  /** Well-formed entries by capability; undefined when the attribute is absent or has none. */
  readonly rotation?: LeaseRotation;
  /** One line per malformed part (for the writer's logs); those parts are left out of `rotation`. */
  readonly problems: readonly string[];
}

/**
 * Reads the registry's `rotation` attribute from an untrusted attribute value: a Map of
 * capability name → Map `{ state: S, since: N }` (extra keys in an entry are ignored, so the
 * registry may add some later). Never throws; keeps every well-formed entry.
 */
export function decodeRotation(raw: unknown): DecodedRotation {
  if (raw === undefined || (isRecord(raw) && raw.NULL === true)) return { problems: [] };
  if (!isRecord(raw) || !isRecord(raw.M) || typeOf(raw) !== 'M') {
    return { problems: [`attribute "${LEASE_ATTR.rotation}" must be Map (M), got ${typeOf(raw)}`] };
  }
  const problems: string[] = [];
  const entries: [string, RotationEntry][] = [];
  for (const [capability, value] of Object.entries(raw.M)) {
    const where = `rotation entry ${quoteUntrusted(capability, 70)}`;
    if (!CAPABILITY_NAME.test(capability)) {
      problems.push(`${where}: not a capability name (${CAPABILITY_NAME.source})`);
      continue;
    }
    const entry = isRecord(value) && typeOf(value) === 'M' && isRecord(value.M) ? value.M : undefined;
    const state = isRecord(entry?.state) && typeOf(entry.state) === 'S' ? entry.state.S : undefined;
    const sinceText = isRecord(entry?.since) && typeOf(entry.since) === 'N' ? entry.since.N : undefined;
    if (entry === undefined) problems.push(`${where}: must be Map (M), got ${typeOf(value)}`);
    else if (typeof state !== 'string' || !(ROTATION_STATES as readonly string[]).includes(state)) {
      problems.push(`${where}: state must be one of ${ROTATION_STATES.join(', ')} (S), got ${quoteUntrusted(state ?? entry.state)}`);
    } else if (typeof sinceText !== 'string' || !DECIMAL_NUMBER.test(sinceText) || !Number.isSafeInteger(Number(sinceText)) || Number(sinceText) < 0) {
      problems.push(`${where}: since must be a whole number of epoch milliseconds (N), got ${quoteUntrusted(sinceText ?? entry.since)}`);
    } else if (Number(sinceText) < MIN_EPOCH_MS) {
      problems.push(`${where}: since ${sinceText} looks like epoch seconds; it takes epoch milliseconds`);
    } else if (Number(sinceText) > MAX_EPOCH_MS) {
      problems.push(`${where}: since ${sinceText} is beyond any plausible date (more than ${MAX_EPOCH_MS} epoch ms)`);
    } else {
      entries.push([capability, { state: state as RotationState, since: Number(sinceText) }]);
    }
  }
  // A broken writer may fill a 400 KB item with bad entries; a log line stays short.
  const shown = problems.length > MAX_ROTATION_PROBLEMS ? [...problems.slice(0, MAX_ROTATION_PROBLEMS), `and ${problems.length - MAX_ROTATION_PROBLEMS} more`] : problems;
  return { ...(entries.length === 0 ? {} : { rotation: Object.fromEntries(entries) }), problems: shown };
}

/**
 * The entries of `rotation` that can be true at `nowMs`: one whose `since` lies further in the
 * future than the clock-skew allowance was not written by the registry's clock (a forged or
 * broken entry) and is treated as unknown, so it can pin nothing; the registry overwrites it.
 */
export function plausibleRotation(rotation: LeaseRotation | undefined, nowMs: number): LeaseRotation | undefined {
  if (rotation === undefined) return undefined;
  const limit = nowMs + CLOCK_SKEW_ALLOWANCE_SECONDS * 1000;
  const kept = Object.entries(rotation).filter(([, entry]) => entry.since <= limit);
  if (kept.length === Object.keys(rotation).length) return rotation;
  return kept.length === 0 ? undefined : Object.fromEntries(kept);
}

/** The entry of one capability (own entries only: "constructor" is a valid capability name). */
export function rotationEntry(rotation: LeaseRotation | undefined, capability: string): RotationEntry | undefined {
  return rotation !== undefined && Object.hasOwn(rotation, capability) ? rotation[capability] : undefined;
}

/** One `rotation` entry as the registry writes it: `SET #rotation.#capability = :entry`. */
export function encodeRotationEntry(entry: RotationEntry): RawAttributeValue {
  return { M: { state: { S: entry.state }, since: { N: String(Math.floor(entry.since)) } } };
}

/** The item an agent writes for a lease. Never `rotation`: only the registry writes that. */
export function encodeLease(lease: Lease): Record<string, RawAttributeValue> {
  return {
    [LEASE_ATTR.target]: { S: lease.target },
    [LEASE_ATTR.address]: { S: lease.address },
    [LEASE_ATTR.port]: { N: String(lease.port) },
    [LEASE_ATTR.capabilities]: { SS: [...lease.capabilities] },
    [LEASE_ATTR.expiresAt]: { N: String(lease.expiresAt) },
    [LEASE_ATTR.leaseToken]: { S: lease.leaseToken },
    [LEASE_ATTR.agentId]: { S: lease.agentId },
    [LEASE_ATTR.status]: { S: lease.status },
    [LEASE_ATTR.renewedAt]: { N: String(lease.renewedAt) },
    [LEASE_ATTR.registeredAt]: { N: String(lease.registeredAt) },
    ...(lease.availabilityZone === undefined ? {} : { [LEASE_ATTR.availabilityZone]: { S: lease.availabilityZone } }),
    ...(lease.metadata === undefined ? {} : { [LEASE_ATTR.metadata]: { M: lease.metadata } }),
  };
}

/** Encodes and re-validates through the same rules the server applies; throws `InvalidLeaseError`. */
export function encodeValidLease(lease: Lease, policy: AddressPolicy): RawItem {
  const item = encodeLease(lease);
  const decoded = decodeLease(item, policy);
  if (!decoded.ok) throw new InvalidLeaseError(decoded.rejections, { context: { target: lease.target } });
  return item;
}

/** A heartbeat attribute's number, read as {@link decodeLease} reads it; `undefined` when it would make the lease invalid. */
function heartbeatNumber(raw: unknown): number | undefined {
  if (!isRecord(raw) || typeof raw.N !== 'string') return undefined;
  // Only the N type descriptor (what typeOf(raw) === 'N' asks, without its allocations).
  for (const k in raw) if (k !== 'N' && raw[k] !== undefined) return undefined;
  if (!DECIMAL_NUMBER.test(raw.N)) return undefined;
  const value = Number(raw.N);
  return Number.isFinite(value) ? value : undefined;
}

/**
 * `expiresAt` of an untrusted item, when both heartbeat attributes (`expiresAt`, `renewedAt`) are
 * ones {@link decodeLease} accepts; `undefined` otherwise. Lets the stream planner judge a record
 * that changed only them without decoding the images: two images that differ only there are
 * valid or invalid together, and route alike while both are live (or both not).
 */
export function heartbeatExpiry(item: RawItem): number | undefined {
  const expiresAt = heartbeatNumber(item[LEASE_ATTR.expiresAt]);
  if (expiresAt === undefined || !Number.isInteger(expiresAt) || expiresAt <= 0 || expiresAt > MAX_EPOCH_SECONDS) return undefined;
  return heartbeatNumber(item[LEASE_ATTR.renewedAt]) === undefined ? undefined : expiresAt;
}

/** The key of an untrusted item, when it has a readable one. */
export function leaseKeyOf(item: RawItem | undefined): string | undefined {
  const raw = item?.[LEASE_ATTR.target];
  return raw && typeof raw.S === 'string' ? raw.S : undefined;
}

/** A lease is live when it is active and its expiry is in the future. The one rule everything is measured against. */
export function isLive(lease: Pick<Lease, 'status' | 'expiresAt'>, nowSeconds: number): boolean {
  return lease.status === 'active' && lease.expiresAt > nowSeconds;
}

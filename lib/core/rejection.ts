import type { LeaseRejection, LeaseRejectionReason } from './errors';
import { CAPABILITY_NAME, RawAttributeValue } from './lease-schema';

/**
 * The registry's `rejection` attribute (docs/lease-contract.md): why the registry does not route
 * a lease, or some of its capabilities, written into the lease so that its writer, in any
 * language, learns it. Registry-owned like `rotation`: agents read it and never write it.
 *
 * The reason codes are declared here, once; every writer and reader imports them. A reader must
 * accept codes it does not know (a newer registry may add some): `decodeRejection` does.
 */
export const REJECTION_REASONS = [
  /** The item breaks the lease contract (a missing or mistyped attribute, a refused address, …): the whole lease is refused. */
  'invalid',
  /** The lease lists a capability this deployment does not route: that capability is refused, the others route. */
  'unknown-capability',
  /** An instance id for an `ip` target group, or an IP for an `instance` one: that capability is refused. */
  'target-type-mismatch',
  /** The lease's port is not among the ports its capability declares: that capability is refused. */
  'port-not-allowed',
  /** `expiresAt` lies further ahead than the deployment's maximum lease TTL: the whole lease is refused. */
  'expiry-too-far',
  /** EC2 does not show the address on an interface (or instance) of the deployment's VPC in a security group admitted for the capability: that capability is refused. */
  'not-admitted',
  /** The load balancer already holds its quota of registered targets (first come, first served): that capability is refused. */
  'over-quota',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

/**
 * Reasons the registry finds from AWS facts (EC2, the load balancer's target count), not from the
 * item: only a pass that decided them again replaces or removes them (lib/core/rejection-planner.ts).
 */
export const FACT_REASONS: readonly string[] = ['not-admitted', 'over-quota'] satisfies readonly RejectionReason[];

/** The stable code of each validation or routing finding (the detailed `LeaseRejectionReason`s stay in logs and metrics). */
export const REJECTION_REASON_OF: Readonly<Record<LeaseRejectionReason, RejectionReason>> = {
  MISSING_ATTRIBUTE: 'invalid',
  WRONG_TYPE: 'invalid',
  TARGET_MISMATCH: 'invalid',
  BAD_PORT: 'invalid',
  BAD_ADDRESS: 'invalid',
  ADDRESS_NOT_ALLOWED: 'invalid',
  BAD_CAPABILITIES: 'invalid',
  BAD_STATUS: 'invalid',
  BAD_EXPIRY: 'invalid',
  METADATA_TOO_LARGE: 'invalid',
  TOO_LONG: 'invalid',
  ZONE_NOT_ALLOWED: 'invalid',
  EXPIRY_TOO_FAR: 'expiry-too-far',
  UNKNOWN_CAPABILITY: 'unknown-capability',
  TARGET_TYPE_MISMATCH: 'target-type-mismatch',
  PORT_NOT_ALLOWED: 'port-not-allowed',
  NOT_ADMITTED: 'not-admitted',
  OVER_QUOTA: 'over-quota',
};

/** Longest `message` the registry writes: one line for a log, far below DynamoDB's item limit. */
export const MAX_REJECTION_MESSAGE_CHARS = 1000;

/** A reason code as readers accept it: the known ones and any a newer registry may add. */
const REASON_CODE = /^[a-z][a-z0-9-]{0,62}$/;
/** Smallest plausible `since` (epoch ms, March 1973), as for `rotation`. */
const MIN_EPOCH_MS = 1e11;

/** What the registry decided about a lease: the attribute without its `since`. */
export interface RejectionVerdict {
  /** A stable code: one of `REJECTION_REASONS` when this registry wrote it; readers accept others. */
  readonly reason: RejectionReason | (string & {});
  /** One line for people: every problem found, each quoting what was wrong. */
  readonly message: string;
  /** The capabilities refused (sorted); absent when the whole lease is refused. */
  readonly capabilities?: readonly string[];
}

/** The `rejection` attribute as stored. */
export interface StoredRejection extends RejectionVerdict {
  /** Epoch milliseconds (the registry's clock) since when the lease has been refused for this reason. */
  readonly since: number;
}

function oneLine(messages: readonly string[]): string {
  const text = [...new Set(messages)].join('; ').replace(/[\r\n]+/g, ' ');
  return text.length <= MAX_REJECTION_MESSAGE_CHARS ? text : `${text.slice(0, MAX_REJECTION_MESSAGE_CHARS - 1)}…`;
}

/**
 * The verdict for a lease from what validation (`decodeLease`) and routing (`routeLease`) found;
 * undefined when nothing was refused. A problem with the item refuses the whole lease; otherwise
 * the capabilities refused are listed and the reason is the first of theirs in `REJECTION_REASONS`
 * order (the message names them all).
 */
export function rejectionVerdict(found: readonly LeaseRejection[]): RejectionVerdict | undefined {
  if (found.length === 0) return undefined;
  const whole = found.filter((r) => r.capability === undefined);
  if (whole.length > 0) return { reason: REJECTION_REASON_OF[whole[0].reason], message: oneLine(whole.map((r) => r.message)) };
  const reasons = found.map((r) => REJECTION_REASON_OF[r.reason]);
  const reason = REJECTION_REASONS.find((code) => reasons.includes(code))!;
  const capabilities = [...new Set(found.map((r) => r.capability!))].sort();
  return { reason, message: oneLine(found.map((r) => r.message)), capabilities };
}

/** Whether two verdicts say the same (`since` aside): the registry writes only when they do not. */
export function sameVerdict(a: RejectionVerdict | undefined, b: RejectionVerdict | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const ca = a.capabilities ?? [];
  const cb = b.capabilities ?? [];
  return a.reason === b.reason && a.message === b.message && (a.capabilities === undefined) === (b.capabilities === undefined) && ca.length === cb.length && ca.every((c, i) => c === cb[i]);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The S or N text of a one-key attribute value, else undefined. */
function scalar(value: unknown, type: 'S' | 'N'): string | undefined {
  if (!isRecord(value) || Object.keys(value).length !== 1) return undefined;
  const text = value[type];
  return typeof text === 'string' ? text : undefined;
}

/**
 * Reads the `rejection` attribute of an untrusted item: undefined when it is absent or malformed
 * (a reader never fails on registry feedback). `reason` must look like a code (known or not),
 * `message` a string, `since` a whole number of epoch milliseconds, `capabilities` (optional) a
 * String Set of capability names; other keys are ignored (room for later additions).
 */
export function decodeRejection(raw: unknown): StoredRejection | undefined {
  if (!isRecord(raw) || Object.keys(raw).length !== 1 || !isRecord(raw.M)) return undefined;
  const m = raw.M;
  const reason = scalar(m.reason, 'S');
  const message = scalar(m.message, 'S');
  const sinceText = scalar(m.since, 'N');
  if (reason === undefined || !REASON_CODE.test(reason) || message === undefined || sinceText === undefined || !/^\d{1,16}$/.test(sinceText)) return undefined;
  const since = Number(sinceText);
  if (!Number.isSafeInteger(since) || since < MIN_EPOCH_MS) return undefined;
  let capabilities: string[] | undefined;
  if (m.capabilities !== undefined) {
    const set = isRecord(m.capabilities) && Object.keys(m.capabilities).length === 1 ? m.capabilities.SS : undefined;
    if (!Array.isArray(set) || set.length === 0 || !set.every((c) => typeof c === 'string' && CAPABILITY_NAME.test(c))) return undefined;
    capabilities = [...new Set(set as string[])].sort();
  }
  return { reason, message, since, ...(capabilities === undefined ? {} : { capabilities }) };
}

/** The attribute value the registry writes: `SET rejection = :value`. */
export function encodeRejection(rejection: StoredRejection): RawAttributeValue {
  return {
    M: {
      reason: { S: rejection.reason },
      message: { S: rejection.message },
      since: { N: String(Math.floor(rejection.since)) },
      ...(rejection.capabilities === undefined || rejection.capabilities.length === 0 ? {} : { capabilities: { SS: [...rejection.capabilities] } }),
    },
  };
}

/** The capabilities of `capabilities` a rejection refuses: all of them for a whole-lease rejection. */
export function refusedCapabilities(rejection: RejectionVerdict | undefined, capabilities: readonly string[]): readonly string[] {
  if (rejection === undefined) return [];
  if (rejection.capabilities === undefined) return capabilities;
  return capabilities.filter((c) => rejection.capabilities!.includes(c));
}

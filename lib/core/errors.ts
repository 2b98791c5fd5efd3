/**
 * Every error agent-lb throws on purpose. Each carries a stable `code` that the CLI maps
 * to exit codes and the Lambdas to metric names, plus the context needed to act on it.
 */

export type AgentLbErrorCode =
  | 'INVALID_LEASE'
  | 'INVALID_CONFIG'
  | 'LEASE_HELD'
  | 'LEASE_LOST'
  | 'LEASE_STORE'
  | 'ELB_TRANSIENT'
  | 'ELB_PERMANENT'
  | 'USAGE'
  | 'NOT_SERVING'
  | 'ADDRESS_NOT_FOUND';

export interface AgentLbErrorOptions {
  readonly cause?: unknown;
  readonly context?: Record<string, unknown>;
}

export class AgentLbError extends Error {
  public readonly code: AgentLbErrorCode;
  public readonly context: Record<string, unknown>;

  public constructor(code: AgentLbErrorCode, message: string, options: AgentLbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentLbError';
    this.code = code;
    this.context = options.context ?? {};
  }
}

/** Stable reasons a lease item is refused; used in logs, metrics and CLI output. */
export type LeaseRejectionReason =
  | 'MISSING_ATTRIBUTE'
  | 'WRONG_TYPE'
  | 'TARGET_MISMATCH'
  | 'BAD_PORT'
  | 'BAD_ADDRESS'
  | 'ADDRESS_NOT_ALLOWED'
  | 'BAD_CAPABILITIES'
  | 'BAD_STATUS'
  | 'BAD_EXPIRY'
  | 'METADATA_TOO_LARGE'
  | 'UNKNOWN_CAPABILITY'
  | 'TARGET_TYPE_MISMATCH';

/** Longest rendering of an untrusted value in a message: an item may hold 400 KB, a log line should not. */
export const MAX_QUOTED_CHARS = 120;

/**
 * Renders an untrusted value (an attribute of a lease item) for a message: JSON quoting turns
 * control characters into visible escapes, so a value can neither forge a log line nor drive
 * the terminal of someone running `agent-lb leases`, and long values are cut with their length.
 */
export function quoteUntrusted(value: unknown, max = MAX_QUOTED_CHARS): string {
  const text = JSON.stringify(value) ?? String(value);
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…(${text.length} characters)`;
}

export interface LeaseRejection {
  readonly reason: LeaseRejectionReason;
  readonly message: string;
  /** The lease key when it could be read; raw items may not even have one. */
  readonly target?: string;
  /** Set when the rejection concerns one capability only; the lease's other capabilities still route. */
  readonly capability?: string;
}

export class InvalidLeaseError extends AgentLbError {
  public readonly rejections: readonly LeaseRejection[];

  public constructor(rejections: readonly LeaseRejection[], options: AgentLbErrorOptions = {}) {
    super('INVALID_LEASE', `invalid lease: ${rejections.map((r) => r.message).join('; ')}`, {
      ...options,
      context: { ...options.context, reasons: rejections.map((r) => r.reason) },
    });
    this.name = 'InvalidLeaseError';
    this.rejections = rejections;
  }
}

export class ConfigError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('INVALID_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}

/** Another holder owns a live lease on this address:port. */
export class LeaseHeldError extends AgentLbError {
  public constructor(target: string, options: AgentLbErrorOptions = {}) {
    super('LEASE_HELD', `lease for ${target} is held by another live holder (use takeover to replace it)`, {
      ...options,
      context: { ...options.context, target },
    });
    this.name = 'LeaseHeldError';
  }
}

/** Our lease was taken over, swept after expiry, or could not be renewed in time. */
export class LeaseLostError extends AgentLbError {
  public constructor(target: string, why: string, options: AgentLbErrorOptions = {}) {
    super('LEASE_LOST', `lease for ${target} lost: ${why}`, { ...options, context: { ...options.context, target } });
    this.name = 'LeaseLostError';
  }
}

export class LeaseStoreError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('LEASE_STORE', message, options);
    this.name = 'LeaseStoreError';
  }
}

/** An ELB call failed; `transient` says whether retrying the same call later can succeed. */
export class ElbTargetsError extends AgentLbError {
  public readonly transient: boolean;
  public readonly targetGroupArn: string;

  public constructor(targetGroupArn: string, transient: boolean, message: string, options: AgentLbErrorOptions = {}) {
    super(transient ? 'ELB_TRANSIENT' : 'ELB_PERMANENT', message, {
      ...options,
      context: { ...options.context, targetGroupArn },
    });
    this.name = 'ElbTargetsError';
    this.transient = transient;
    this.targetGroupArn = targetGroupArn;
  }
}

/** Bad command-line usage: the CLI prints the message on one line and exits 2. */
export class UsageError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('USAGE', message, options);
    this.name = 'UsageError';
  }
}

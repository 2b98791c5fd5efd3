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
  | 'REGISTRY_STATE'
  | 'ELB_BUDGET_STATE'
  | 'ELB_TRANSIENT'
  | 'ELB_PERMANENT'
  | 'EC2_LOOKUP'
  | 'USAGE'
  | 'PORT_UNAVAILABLE'
  | 'NO_CREDENTIALS'
  | 'ACCESS_DENIED'
  | 'LOCAL_MODE_STOPPED'
  | 'MISSING_DEPENDENCY'
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
  /** `agentId`, `leaseToken` or `availabilityZone` longer than the contract allows, or too many capabilities. */
  | 'TOO_LONG'
  /** `expiresAt` further ahead than the deployment's maximum lease TTL. */
  | 'EXPIRY_TOO_FAR'
  /** `availabilityZone` does not fit where the address is (`all` outside the VPC, never inside it). */
  | 'ZONE_NOT_ALLOWED'
  | 'UNKNOWN_CAPABILITY'
  | 'TARGET_TYPE_MISMATCH'
  /** The lease's port is not among the ports its capability declares. */
  | 'PORT_NOT_ALLOWED'
  /** EC2 does not show the address on a network interface of the deployment's VPC in an admitted security group. */
  | 'NOT_ADMITTED'
  /** The load balancer already holds its quota of registered targets. */
  | 'OVER_QUOTA';

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

/** The registry state table (catalog document, member index) could not be read or written. */
export class RegistryStateError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('REGISTRY_STATE', message, options);
    this.name = 'RegistryStateError';
  }
}

/** The ELB call budget's shared bucket (an item of the registry state table) could not be read or written. */
export class ElbBudgetStateError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('ELB_BUDGET_STATE', message, options);
    this.name = 'ElbBudgetStateError';
  }
}

/** ELB error names that refuse a target for good: sending the same target again cannot succeed. */
const REFUSED_FOR_GOOD = new Set(['ValidationError', 'ValidationException', 'InvalidTarget', 'InvalidTargetException']);

/** An ELB call failed; `transient` says whether retrying the same call later can succeed. */
export class ElbTargetsError extends AgentLbError {
  public readonly transient: boolean;
  public readonly targetGroupArn: string;
  /** The error name ELB (or the SDK) gave, e.g. `ValidationError`, `ThrottlingException`; `Error` when none. */
  public readonly awsErrorName: string;

  public constructor(targetGroupArn: string, transient: boolean, message: string, options: AgentLbErrorOptions & { readonly awsErrorName?: string } = {}) {
    super(transient ? 'ELB_TRANSIENT' : 'ELB_PERMANENT', message, {
      ...options,
      context: { ...options.context, targetGroupArn, ...(options.awsErrorName ? { awsErrorName: options.awsErrorName } : {}) },
    });
    this.name = 'ElbTargetsError';
    this.transient = transient;
    this.targetGroupArn = targetGroupArn;
    this.awsErrorName = options.awsErrorName ?? 'Error';
  }

  /**
   * ELB refused the target itself (ValidationError, InvalidTarget): the same target description
   * will be refused again, so it is not worth a call until its lease changes. Quota errors
   * (TooManyTargets) and the like are not: they clear when something else changes.
   */
  public get refusedForGood(): boolean {
    return !this.transient && REFUSED_FOR_GOOD.has(this.awsErrorName);
  }
}

/**
 * Asking EC2 who holds an address failed (throttled, an outage, a missing permission). Admission
 * then decides nothing: registrations of the addresses asked about wait, and no registered
 * target is removed for it.
 */
export class Ec2LookupError extends AgentLbError {
  public readonly transient: boolean;
  /** The error name EC2 (or the SDK) gave, e.g. `RequestLimitExceeded`, `UnauthorizedOperation`; `Error` when none. */
  public readonly awsErrorName: string;

  public constructor(transient: boolean, message: string, options: AgentLbErrorOptions & { readonly awsErrorName?: string } = {}) {
    super('EC2_LOOKUP', message, { ...options, context: { ...options.context, ...(options.awsErrorName ? { awsErrorName: options.awsErrorName } : {}) } });
    this.name = 'Ec2LookupError';
    this.transient = transient;
    this.awsErrorName = options.awsErrorName ?? 'Error';
  }
}

/** A server of agent-lb's cannot listen where it was asked to (the port is in use, or not allowed): the CLI exits 2. */
export class PortUnavailableError extends AgentLbError {
  public readonly host: string;
  public readonly port: number;

  public constructor(what: string, host: string, port: number, options: AgentLbErrorOptions = {}) {
    const cause = options.cause as { code?: unknown; message?: unknown } | undefined;
    const why = cause?.code === 'EADDRINUSE' ? 'the port is in use' : cause?.code === 'EACCES' ? 'not allowed to listen on that port' : String(cause?.message ?? 'unknown error');
    super('PORT_UNAVAILABLE', `${what} cannot listen on ${host}:${port}: ${why}`, { ...options, context: { ...options.context, host, port } });
    this.name = 'PortUnavailableError';
    this.host = host;
    this.port = port;
  }
}

/** AWS credentials are missing, or were refused: the CLI says so and exits 2. */
export class CredentialsError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('NO_CREDENTIALS', message, options);
    this.name = 'CredentialsError';
  }
}

/** The credentials lack a permission the command needs (the message names the action when AWS does). */
export class AccessDeniedError extends AgentLbError {
  public constructor(message: string, options: AgentLbErrorOptions = {}) {
    super('ACCESS_DENIED', message, options);
    this.name = 'AccessDeniedError';
  }
}

/** A local-mode state file whose `agent-lb local` is no longer running (its endpoints refuse connections). */
export class LocalModeStoppedError extends AgentLbError {
  public constructor(stateFile: string, endpoint: string, options: AgentLbErrorOptions = {}) {
    super(
      'LOCAL_MODE_STOPPED',
      `local mode is not running: state file ${stateFile} points at ${endpoint}, which refuses connections (the file is left from a run that ended; start \`agent-lb local --state-file ${stateFile}\` again)`,
      { ...options, context: { ...options.context, stateFile, endpoint } },
    );
    this.name = 'LocalModeStoppedError';
  }
}

/** A package an optional feature needs is not installed (an SDK-only install leaves local mode's out). */
export class MissingDependencyError extends AgentLbError {
  public readonly packages: readonly string[];

  /** `runtime`: the packages are needed when the program runs (an agent's dependency), not only to develop. */
  public constructor(feature: string, packages: readonly string[], options: AgentLbErrorOptions & { readonly runtime?: boolean } = {}) {
    const { runtime, ...rest } = options;
    super('MISSING_DEPENDENCY', `${feature} needs packages that are not installed: npm install ${runtime ? '' : '--save-dev '}${packages.join(' ')}`, {
      ...rest,
      context: { ...rest.context, packages },
    });
    this.name = 'MissingDependencyError';
    this.packages = packages;
  }
}


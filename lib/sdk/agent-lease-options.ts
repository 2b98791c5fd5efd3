import { hostname } from 'node:os';
import type { DynamoDBClient, DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { AddressPolicy, canonicalAddress, DEFAULT_ALLOWED_CIDRS, formatTarget } from '../core/address-policy';
import { ConfigError } from '../core/errors';
import type { AddressDiscoveryOptions } from './address-discovery';
import { encodeValidLease } from '../core/lease-codec';
import type { Lease, LeaseStatus, RawAttributeValue } from '../core/lease-schema';

/** Default lease time-to-live; the stack's `leaseTtlSeconds` context uses the same default. */
export const DEFAULT_TTL_SECONDS = 30;
/** Shortest TTL: renewals every ttl/3 must still leave room for a retry before expiry. */
export const MIN_TTL_SECONDS = 3;
/** Longest TTL: a crashed agent stays routable until its lease expires, so an hour is the ceiling. */
export const MAX_TTL_SECONDS = 3600;

/** Default interval of the consistent reads that watch `rotation` while `serving()` or `leave()` waits. */
export const DEFAULT_ROTATION_POLL_INTERVAL_MS = 1000;
const MIN_ROTATION_POLL_INTERVAL_MS = 50;
const MAX_ROTATION_POLL_INTERVAL_MS = 60_000;

/** Options of an `AgentLease`. */
export interface AgentLeaseOptions {
  /** Name of the lease table (the stack's `LeaseTableName` output). */
  readonly tableName: string;
  /**
   * Private IPv4/IPv6 address the load balancer should send requests to, or an EC2 instance id
   * `i-…`. An IPv6 address is written in its canonical form (RFC 5952: `FD00:0::5` → `fd00::5`).
   */
  readonly address: string;
  /** Port the agent serves on, 1–65535. */
  readonly port: number;
  /** Capabilities this agent serves; non-empty, each `^[a-z0-9][a-z0-9_-]{0,62}$`. Duplicates are dropped. */
  readonly capabilities: readonly string[];
  /**
   * Human-readable id written with the lease (task id, pod name, hostname).
   * @default - `<hostname>:<pid>`
   */
  readonly agentId?: string;
  /**
   * Lease time-to-live in whole seconds, 3–3600. The lease is renewed every ttl/3 (±10 % jitter);
   * a crashed agent leaves rotation at most ttl seconds (plus the reconcile interval) later.
   * @default 30
   */
  readonly ttl?: number;
  /**
   * Acquire even if another live holder owns this address:port (same address:port means same
   * endpoint: use it when a restarted agent replaces its predecessor). Applies to `acquire()`
   * only; automatic re-acquire after a lost lease never takes over.
   * @default false
   */
  readonly takeover?: boolean;
  /**
   * After `lost`, keep trying to acquire the lease again (conditionally, with backoff) until it
   * succeeds (`reacquired`) or `release()` is called.
   * @default true
   */
  readonly reacquire?: boolean;
  /**
   * CIDRs the address may be in. This is only the client-side check that fails fast; the
   * stream-sync Lambda applies the stack's own list again.
   * @default DEFAULT_ALLOWED_CIDRS (RFC 1918 and 100.64.0.0/10)
   */
  readonly allowedCidrs?: readonly string[];
  /**
   * Accept loopback addresses. Local mode only: a deployed stack always refuses them.
   * @default false
   */
  readonly allowLoopback?: boolean;
  /**
   * `all` for IP targets outside the load balancer's VPC (ELBv2 requires it); otherwise leave unset.
   * @default - none
   */
  readonly availabilityZone?: string;
  /**
   * Small free-form information written with the lease (≤ 2 KiB once encoded); never used for routing.
   * Plain JSON-like values; converted with `@aws-sdk/util-dynamodb`'s `marshall`.
   * @default - none
   */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /**
   * A DynamoDB client to use. Give either `client` or `clientConfig`, not both.
   * @default - a client created from `clientConfig`
   */
  readonly client?: DynamoDBClient;
  /**
   * Configuration of the client the lease creates (region, credentials, `endpoint` for DynamoDB Local).
   * A client the lease creates is destroyed by `release()` and re-created by a later `acquire()`.
   * @default {}
   */
  readonly clientConfig?: DynamoDBClientConfig;
  /**
   * Let the renewal timers keep the Node.js process alive. By default they do not: a process
   * with nothing else to do serves nobody, and its lease should lapse rather than keep a dead
   * endpoint in rotation. Set it in a process whose only job is holding the lease.
   * @default false
   */
  readonly keepProcessAlive?: boolean;
  /**
   * While `serving()` or `leave()` waits on `rotation` (and only then), the lease item is read
   * this often, in milliseconds, 50–60 000. Each read is one strongly consistent GetItem: 1 read
   * request unit for an item ≤ 4 KB (on-demand about $0.125 per million in us-east-1), so a
   * 20 s wait at the default costs 20 units. Heartbeats bring `rotation` at no read cost at all.
   * @default 1000
   */
  readonly rotationPollIntervalMs?: number;
  /** Wall clock in epoch milliseconds (tests). @default Date.now */
  readonly clock?: () => number;
  /** Uniform random number in [0, 1) for jitter (tests). @default Math.random */
  readonly random?: () => number;
}

/** Options of `AgentLease.create()`: the address may be left out, to be found by `discoverAddress`. */
export type AgentLeaseCreateOptions = Omit<AgentLeaseOptions, 'address'> & {
  /**
   * Private address to register. An explicit address always wins: nothing is looked up.
   * @default - found by `discoverAddress` (ECS task metadata v4, then EC2 instance metadata)
   */
  readonly address?: string;
  /** How to look for the address when it is omitted. @default {} */
  readonly addressDiscovery?: AddressDiscoveryOptions;
};

/** Options after defaults and validation. */
export interface ResolvedAgentLeaseOptions {
  readonly tableName: string;
  readonly address: string;
  readonly port: number;
  readonly target: string;
  readonly capabilities: readonly string[];
  readonly agentId: string;
  readonly ttl: number;
  readonly takeover: boolean;
  readonly reacquire: boolean;
  readonly policy: AddressPolicy;
  readonly availabilityZone?: string;
  readonly metadata?: Readonly<Record<string, RawAttributeValue>>;
  readonly client?: DynamoDBClient;
  readonly clientConfig: DynamoDBClientConfig;
  readonly keepProcessAlive: boolean;
  readonly rotationPollIntervalMs: number;
  readonly clock: () => number;
  readonly random: () => number;
}

function fail(message: string): never {
  throw new ConfigError(`AgentLease: ${message}`);
}

function optionalBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(`${name} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function optionalFunction<T>(name: string, value: unknown, fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') fail(`${name} must be a function, got ${typeof value}`);
  return value as T;
}

function nonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') fail(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function encodeMetadata(metadata: unknown): Record<string, RawAttributeValue> | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    fail(`metadata must be a plain object, got ${Array.isArray(metadata) ? 'an array' : JSON.stringify(metadata)}`);
  }
  try {
    return marshall(metadata as Record<string, unknown>, { removeUndefinedValues: true }) as Record<string, RawAttributeValue>;
  } catch (cause) {
    throw new ConfigError(`AgentLease: metadata cannot be stored in DynamoDB: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Validates the options, one bad value at a time with the value and the allowed range, then
 * runs a probe lease through the same core validation the server applies, so a bad address,
 * port or capability name fails here (`InvalidLeaseError`) rather than at the first write.
 */
export function resolveAgentLeaseOptions(options: AgentLeaseOptions): ResolvedAgentLeaseOptions {
  if (typeof options !== 'object' || options === null) fail('options must be an object');
  const tableName = nonEmptyString('tableName', options.tableName);
  if (options.address === undefined) {
    fail('address is missing: pass the private address to register, or create the lease with `await AgentLease.create(options)`, which finds it in ECS task or EC2 instance metadata');
  }
  // One endpoint, one key: `FD00:0::5` is written as `fd00::5`; what is no address at all is left for validation to name.
  const given = nonEmptyString('address', options.address);
  const address = canonicalAddress(given) ?? given;
  if (typeof options.port !== 'number') fail(`port must be a number, got ${JSON.stringify(options.port)}`);
  const port = options.port;

  if (!Array.isArray(options.capabilities) || options.capabilities.length === 0) {
    fail(`capabilities must be a non-empty array of capability names, got ${JSON.stringify(options.capabilities)}`);
  }
  if (!options.capabilities.every((c) => typeof c === 'string')) fail(`capabilities must hold only strings, got ${JSON.stringify(options.capabilities)}`);
  const capabilities = [...new Set(options.capabilities)].sort();

  const ttl = options.ttl ?? DEFAULT_TTL_SECONDS;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < MIN_TTL_SECONDS || ttl > MAX_TTL_SECONDS) {
    fail(`ttl must be a whole number of seconds in ${MIN_TTL_SECONDS}–${MAX_TTL_SECONDS}, got ${JSON.stringify(ttl)}`);
  }

  const agentId = options.agentId === undefined ? `${hostname()}:${process.pid}` : nonEmptyString('agentId', options.agentId);
  const availabilityZone = options.availabilityZone === undefined ? undefined : nonEmptyString('availabilityZone', options.availabilityZone);

  if (options.client !== undefined && options.clientConfig !== undefined) fail('give either client or clientConfig, not both');
  if (options.client !== undefined && (typeof options.client !== 'object' || typeof options.client.send !== 'function')) {
    fail('client must be a DynamoDBClient');
  }

  const pollMs = options.rotationPollIntervalMs ?? DEFAULT_ROTATION_POLL_INTERVAL_MS;
  if (typeof pollMs !== 'number' || !Number.isFinite(pollMs) || pollMs < MIN_ROTATION_POLL_INTERVAL_MS || pollMs > MAX_ROTATION_POLL_INTERVAL_MS) {
    fail(`rotationPollIntervalMs must be ${MIN_ROTATION_POLL_INTERVAL_MS}–${MAX_ROTATION_POLL_INTERVAL_MS} milliseconds, got ${JSON.stringify(pollMs)}`);
  }

  const allowedCidrs = options.allowedCidrs ?? DEFAULT_ALLOWED_CIDRS;
  if (!Array.isArray(allowedCidrs) || !allowedCidrs.every((c) => typeof c === 'string')) {
    fail(`allowedCidrs must be an array of CIDR strings, got ${JSON.stringify(allowedCidrs)}`);
  }
  const allowLoopback = optionalBoolean('allowLoopback', options.allowLoopback, false);
  const policy = new AddressPolicy(allowedCidrs, { allowLoopback }); // ConfigError on a malformed CIDR

  const resolved: ResolvedAgentLeaseOptions = {
    tableName,
    address,
    port,
    target: formatTarget(address, port),
    capabilities,
    agentId,
    ttl,
    takeover: optionalBoolean('takeover', options.takeover, false),
    reacquire: optionalBoolean('reacquire', options.reacquire, true),
    policy,
    ...(availabilityZone === undefined ? {} : { availabilityZone }),
    ...(options.metadata === undefined ? {} : { metadata: encodeMetadata(options.metadata) }),
    ...(options.client === undefined ? {} : { client: options.client }),
    clientConfig: options.clientConfig ?? {},
    keepProcessAlive: optionalBoolean('keepProcessAlive', options.keepProcessAlive, false),
    rotationPollIntervalMs: pollMs,
    clock: optionalFunction('clock', options.clock, () => Date.now()),
    random: optionalFunction('random', options.random, Math.random),
  };

  // Probe with fixed, plausible times: what is checked here depends only on the options.
  encodeValidLease(buildLease(resolved, 'probe-token', 'active', 1_700_000_000_000), policy);
  return resolved;
}

/** The lease this agent writes at `nowMs` (epoch milliseconds); `expiresAt` is in epoch seconds. */
export function buildLease(options: ResolvedAgentLeaseOptions, leaseToken: string, status: LeaseStatus, nowMs: number): Lease {
  const ms = Math.floor(nowMs);
  return {
    target: options.target,
    address: options.address,
    port: options.port,
    capabilities: options.capabilities,
    expiresAt: Math.floor(ms / 1000) + options.ttl,
    leaseToken,
    agentId: options.agentId,
    status,
    renewedAt: ms,
    registeredAt: ms,
    ...(options.availabilityZone === undefined ? {} : { availabilityZone: options.availabilityZone }),
    ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
  };
}

/**
 * The lease contract (docs/lease-contract.md) in types. Agents in other languages write the same item,
 * so the attribute names and types here are a public, versioned interface.
 */

export const LEASE_ATTR = {
  target: 'target',
  address: 'address',
  port: 'port',
  capabilities: 'capabilities',
  expiresAt: 'expiresAt',
  leaseToken: 'leaseToken',
  agentId: 'agentId',
  status: 'status',
  renewedAt: 'renewedAt',
  registeredAt: 'registeredAt',
  availabilityZone: 'availabilityZone',
  metadata: 'metadata',
  rotation: 'rotation',
  rejection: 'rejection',
} as const;

/**
 * The attributes an agent writes: the lease contract minus what only the registry writes. The
 * agent grant allows PutItem and UpdateItem only on these (IAM condition `dynamodb:Attributes`),
 * so no agent can write `rotation` or `rejection`, or pad an item with attributes of its own.
 */
export const AGENT_ATTRIBUTES: readonly string[] = [
  LEASE_ATTR.target,
  LEASE_ATTR.address,
  LEASE_ATTR.port,
  LEASE_ATTR.capabilities,
  LEASE_ATTR.expiresAt,
  LEASE_ATTR.leaseToken,
  LEASE_ATTR.agentId,
  LEASE_ATTR.status,
  LEASE_ATTR.renewedAt,
  LEASE_ATTR.registeredAt,
  LEASE_ATTR.availabilityZone,
  LEASE_ATTR.metadata,
];

/** Attributes a renewal may change without affecting routing: a heartbeat. */
export const HEARTBEAT_ATTRS: readonly string[] = [LEASE_ATTR.expiresAt, LEASE_ATTR.renewedAt];

/**
 * Attributes only the registry writes into a lease (docs/lease-contract.md), its feedback to the
 * lease's writer: `rotation` (a map of entries, each carrying `since`) and `rejection` (written
 * whole). All of one lease's go in one UpdateItem conditional on the lease token
 * (lib/core/registry-writes.ts). None is ever a reason to refuse a lease or a routing input, so a
 * change of them alone costs no ELB call, no read and no write (a record of it is classified
 * without decoding the images), and a lease's version ignores them. An agent's acquire (a PutItem)
 * drops them; the registry writes them again. A new registry-owned attribute is added here and in
 * `LEASE_ATTR`.
 */
export const REGISTRY_ATTRS = [LEASE_ATTR.rotation, LEASE_ATTR.rejection] as const;
export type RegistryAttribute = (typeof REGISTRY_ATTRS)[number];

/** Of {@link REGISTRY_ATTRS}, the maps of entries keyed by capability (`rotation.<capability>`), written entry by entry. */
export const REGISTRY_MAPS = [LEASE_ATTR.rotation] as const;
export type RegistryMap = (typeof REGISTRY_MAPS)[number];

/** Tag on every capability target group naming its capability; how tools find a stack's groups. */
export const CAPABILITY_TAG = 'agent-lb:capability';

/**
 * Tags on the target group of a capability's weighted variant (its `agent-lb:capability` is
 * `<capability>-<variant>`): the capability whose rules forward to it, and the weight (percent
 * of the capability's requests) it was configured with. The reconcile Lambda and `status` read them.
 */
export const VARIANT_OF_TAG = 'agent-lb:variant-of';
export const VARIANT_WEIGHT_TAG = 'agent-lb:variant-weight';

/**
 * Tag on every capability target group: the longest request of the capability, whole seconds
 * (`maxRequestDuration`). The sidecar reads it (through the state file or the stack) to size its
 * leave deadline; the group's deregistration delay is derived from it.
 */
export const MAX_REQUEST_SECONDS_TAG = 'agent-lb:max-request-seconds';

export const CAPABILITY_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const MAX_METADATA_BYTES = 2048;
/**
 * Caps on the free-text attributes (characters): whoever prints a lease (`agent-lb leases`, logs)
 * never has to carry a 400 KB `agentId`. A task ARN or hostname fits `agentId`; a UUID `leaseToken`.
 */
export const MAX_AGENT_ID_CHARS = 256;
export const MAX_LEASE_TOKEN_CHARS = 128;
export const MAX_AVAILABILITY_ZONE_CHARS = 32;
/** Capabilities one lease may list: one ALB routes to at most 100 target groups. */
export const MAX_CAPABILITIES_PER_LEASE = 100;
/**
 * Clock skew the registry allows between a writer's clock and its own: an `expiresAt` up to this
 * much past now + the maximum TTL, or a `rotation` entry's `since` up to this much in the future
 * (milliseconds there), still counts as plausible.
 */
export const CLOCK_SKEW_ALLOWANCE_SECONDS = 30;
/** The deployment's longest lease TTL unless configured: the SDK's own ceiling. */
export const DEFAULT_MAX_LEASE_TTL_SECONDS = 3600;
export const MIN_PORT = 1;
export const MAX_PORT = 65535;

export type LeaseStatus = 'active' | 'draining';

/**
 * A target's state in one capability's target group, as the registry last saw it: ELB's own
 * states (DescribeTargetHealth) plus `absent` once the target left the group.
 */
export const ROTATION_STATES = ['initial', 'healthy', 'unhealthy', 'draining', 'unused', 'unavailable', 'absent'] as const;
export type RotationState = (typeof ROTATION_STATES)[number];

/** One capability's entry of the `rotation` attribute. */
export interface RotationEntry {
  readonly state: RotationState;
  /** Epoch milliseconds (the registry's clock) since when the target has been in `state`. */
  readonly since: number;
}

/**
 * The `rotation` attribute, per capability name. Written only by the registry (conditional on
 * the lease token); agents read it. Never used for routing: a change of it alone costs no ELB call.
 */
export type LeaseRotation = Readonly<Record<string, RotationEntry>>;
export type TargetType = 'ip' | 'instance';

/** A DynamoDB attribute value as found in items and stream images (SDK and Lambda shapes alike). */
export interface RawAttributeValue {
  readonly S?: string;
  readonly N?: string;
  readonly SS?: readonly string[];
  readonly NS?: readonly string[];
  readonly M?: Readonly<Record<string, RawAttributeValue>>;
  readonly L?: readonly RawAttributeValue[];
  readonly BOOL?: boolean;
  readonly NULL?: boolean;
  readonly B?: unknown;
  readonly BS?: readonly unknown[];
}

export type RawItem = Readonly<Record<string, RawAttributeValue>>;

/** A decoded, structurally valid lease. */
export interface Lease {
  readonly target: string;
  readonly address: string;
  readonly port: number;
  readonly capabilities: readonly string[];
  /** Epoch seconds. */
  readonly expiresAt: number;
  readonly leaseToken: string;
  readonly agentId: string;
  readonly status: LeaseStatus;
  /** Epoch milliseconds. */
  readonly renewedAt: number;
  /** Epoch milliseconds. */
  readonly registeredAt: number;
  readonly availabilityZone?: string;
  readonly metadata?: Readonly<Record<string, RawAttributeValue>>;
  /**
   * The registry's feedback, well-formed entries only (a malformed entry is dropped, never a
   * reason to refuse the lease). Read-only for agents: `encodeLease` never writes it.
   */
  readonly rotation?: LeaseRotation;
}

/** One target as ELBv2 knows it. `key` is `formatTarget(id, port)`, the lease key. */
export interface TargetRef {
  readonly key: string;
  readonly id: string;
  readonly port: number;
  readonly availabilityZone?: string;
}

/** A range of TCP ports, both ends included. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** How one capability routes: its target group, the kind of target it takes, and the ports its agents may use. */
export interface CapabilityRoute {
  readonly targetGroupArn: string;
  readonly targetType: TargetType;
  /**
   * Ports a lease may name for this capability (the load balancer's security group opens exactly
   * these to the agents). A deployed stack always says; `undefined` (a hand-written routing) allows any.
   */
  readonly ports?: readonly PortRange[];
}

/** Everything the server side needs to turn leases into targets. */
export interface RoutingConfig {
  readonly capabilities: Readonly<Record<string, CapabilityRoute>>;
  /**
   * CIDRs IP targets may live in (with `vpcCidrs`: the ranges named explicitly besides the VPC's);
   * always-refused ranges (loopback, link-local, …) win regardless.
   */
  readonly allowedCidrs: readonly string[];
  /**
   * The VPC's CIDR blocks, always allowed. With them known, an address outside them must carry
   * `availabilityZone: all` (ELB's rule) and one inside them must not.
   * @default - unknown: only `allowedCidrs`, and no zone rule
   */
  readonly vpcCidrs?: readonly string[];
  /** Local mode only: demo agents listen on loopback. Never set by a deployed stack. */
  readonly allowLoopback?: boolean;
  /**
   * Local mode only: loopback targets are local processes, admitted on any port without an EC2
   * check (everything else goes through the same checks as on AWS). Needs `allowLoopback`.
   * @default false
   */
  readonly admitLoopback?: boolean;
  /**
   * Longest lease TTL: a lease whose `expiresAt` lies further ahead than now + this (+ the clock-skew
   * allowance) is rejected (`EXPIRY_TOO_FAR`) and swept by reconcile.
   * @default - no limit (a hand-written routing); deployed stacks set DEFAULT_MAX_LEASE_TTL_SECONDS or their own
   */
  readonly maxLeaseTtlSeconds?: number;
}

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
} as const;

/** Attributes a renewal may change without affecting routing: a heartbeat. */
export const HEARTBEAT_ATTRS: readonly string[] = [LEASE_ATTR.expiresAt, LEASE_ATTR.renewedAt];

/** Tag on every capability target group naming its capability; how tools find a stack's groups. */
export const CAPABILITY_TAG = 'agent-lb:capability';

/**
 * Tags on the target group of a capability's weighted variant (its `agent-lb:capability` is
 * `<capability>-<variant>`): the capability whose rules forward to it, and the weight (percent
 * of the capability's requests) it was configured with. The reconcile Lambda and `status` read them.
 */
export const VARIANT_OF_TAG = 'agent-lb:variant-of';
export const VARIANT_WEIGHT_TAG = 'agent-lb:variant-weight';

export const CAPABILITY_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const MAX_METADATA_BYTES = 2048;
export const MIN_PORT = 1;
export const MAX_PORT = 65535;

export type LeaseStatus = 'active' | 'draining';
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
}

/** One target as ELBv2 knows it. `key` is `formatTarget(id, port)`, the lease key. */
export interface TargetRef {
  readonly key: string;
  readonly id: string;
  readonly port: number;
  readonly availabilityZone?: string;
}

/** How one capability routes: its target group and the kind of target it takes. */
export interface CapabilityRoute {
  readonly targetGroupArn: string;
  readonly targetType: TargetType;
}

/** Everything the server side needs to turn leases into targets. */
export interface RoutingConfig {
  readonly capabilities: Readonly<Record<string, CapabilityRoute>>;
  /** CIDRs IP targets may live in; always-refused ranges (loopback, link-local, …) win regardless. */
  readonly allowedCidrs: readonly string[];
  /** Local mode only: demo agents listen on loopback. Never set by a deployed stack. */
  readonly allowLoopback?: boolean;
}

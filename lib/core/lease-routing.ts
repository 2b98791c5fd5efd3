import { AddressPolicy } from './address-policy';
import { LeaseRejection } from './errors';
import { decodeLease } from './lease-codec';
import { Lease, RawItem, RoutingConfig, TargetRef } from './lease-schema';

/** One (target group, target) pair a lease asks for. */
export interface Membership {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly target: TargetRef;
}

export interface RoutedLease {
  /** Undefined when the item is not a valid lease at all. */
  readonly lease?: Lease;
  /** The groups this lease's target belongs in if the lease is routable (known, type-compatible capabilities). */
  readonly memberships: readonly Membership[];
  readonly rejections: readonly LeaseRejection[];
}

export function targetRefOf(lease: Pick<Lease, 'target' | 'address' | 'port' | 'availabilityZone'>): TargetRef {
  return {
    key: lease.target,
    id: lease.address,
    port: lease.port,
    ...(lease.availabilityZone === undefined ? {} : { availabilityZone: lease.availabilityZone }),
  };
}

/**
 * The routing view of a lease: which target groups it names that this deployment knows and
 * whose target type fits its address. Unknown capabilities are reported, never fatal: the
 * lease's other capabilities still route.
 */
export function routeLease(lease: Lease, routing: RoutingConfig): RoutedLease {
  const memberships: Membership[] = [];
  const rejections: LeaseRejection[] = [];
  const isInstance = lease.address.startsWith('i-');
  for (const capability of lease.capabilities) {
    // Own properties only: "constructor" is a valid capability name and every object has one.
    const route = Object.hasOwn(routing.capabilities, capability) ? routing.capabilities[capability] : undefined;
    if (!route) {
      rejections.push({
        reason: 'UNKNOWN_CAPABILITY',
        target: lease.target,
        capability,
        message: `capability "${capability}" is not routed by this deployment (known: ${Object.keys(routing.capabilities).sort().join(', ')})`,
      });
    } else if (isInstance !== (route.targetType === 'instance')) {
      rejections.push({
        reason: 'TARGET_TYPE_MISMATCH',
        target: lease.target,
        capability,
        message: `capability "${capability}" takes ${route.targetType} targets but address "${lease.address}" is ${isInstance ? 'an instance id' : 'an IP address'}`,
      });
    } else {
      memberships.push({ capability, targetGroupArn: route.targetGroupArn, target: targetRefOf(lease) });
    }
  }
  return { lease, memberships, rejections };
}

/** Decode + route in one step, for untrusted items. */
export function routeItem(item: RawItem | undefined, policy: AddressPolicy, routing: RoutingConfig): RoutedLease {
  if (item === undefined) return { memberships: [], rejections: [] };
  const decoded = decodeLease(item, policy);
  if (!decoded.ok) return { memberships: [], rejections: decoded.rejections };
  return routeLease(decoded.lease, routing);
}

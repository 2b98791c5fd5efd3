import { AddressPolicy, isLoopbackAddress } from './address-policy';
import { LeaseRejection } from './errors';
import { decodeLease } from './lease-codec';
import { CapabilityRoute, CLOCK_SKEW_ALLOWANCE_SECONDS, Lease, RawItem, RoutingConfig, TargetRef } from './lease-schema';
import { formatPortRange, portAllowed } from './port-ranges';

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
 * The latest `expiresAt` (epoch seconds) a lease may carry at `nowSeconds` under `routing`:
 * now + the maximum TTL + the clock-skew allowance; undefined when the routing sets no maximum.
 */
export function latestExpiry(routing: Pick<RoutingConfig, 'maxLeaseTtlSeconds'>, nowSeconds: number): number | undefined {
  return routing.maxLeaseTtlSeconds === undefined ? undefined : nowSeconds + routing.maxLeaseTtlSeconds + CLOCK_SKEW_ALLOWANCE_SECONDS;
}

/** Whether `address` is exempt from the port and admission checks: a loopback agent of local mode. */
export function admittedAsLoopback(address: string, routing: RoutingConfig): boolean {
  return routing.allowLoopback === true && routing.admitLoopback === true && isLoopbackAddress(address);
}

/**
 * The routing view of a lease: which target groups it names that this deployment knows, whose
 * target type fits its address and whose ports include its port. Those problems concern one
 * capability each and are reported, never fatal: the lease's other capabilities still route.
 * Given `nowSeconds`, a lease whose `expiresAt` lies beyond the deployment's maximum TTL routes
 * nowhere (a lease cannot hold a target for a year).
 */
export function routeLease(lease: Lease, routing: RoutingConfig, nowSeconds?: number): RoutedLease {
  const memberships: Membership[] = [];
  const rejections: LeaseRejection[] = [];
  const latest = nowSeconds === undefined ? undefined : latestExpiry(routing, nowSeconds);
  if (latest !== undefined && lease.expiresAt > latest) {
    rejections.push({
      reason: 'EXPIRY_TOO_FAR',
      target: lease.target,
      // No clock in the message: the registry writes it into the lease and compares it with what the
      // lease holds, and its own write coming back (or a later pass) must find the same verdict.
      message: `expiresAt ${lease.expiresAt} is more than the maximum lease TTL (${routing.maxLeaseTtlSeconds} s) ahead of the registry's clock`,
    });
    return { lease, memberships, rejections };
  }
  const isInstance = lease.address.startsWith('i-');
  const anyPort = admittedAsLoopback(lease.address, routing);
  for (const capability of lease.capabilities) {
    // Own properties only: "constructor" is a valid capability name and every object has one.
    const route: CapabilityRoute | undefined = Object.hasOwn(routing.capabilities, capability) ? routing.capabilities[capability] : undefined;
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
    } else if (route.ports !== undefined && !anyPort && !portAllowed(lease.port, route.ports)) {
      rejections.push({
        reason: 'PORT_NOT_ALLOWED',
        target: lease.target,
        capability,
        message: `port ${lease.port} is not among the ports of capability "${capability}" (${route.ports.map(formatPortRange).join(', ')})`,
      });
    } else {
      memberships.push({ capability, targetGroupArn: route.targetGroupArn, target: targetRefOf(lease) });
    }
  }
  return { lease, memberships, rejections };
}

/** Decode + route in one step, for untrusted items; `nowSeconds` as in {@link routeLease}. */
export function routeItem(item: RawItem | undefined, policy: AddressPolicy, routing: RoutingConfig, nowSeconds?: number): RoutedLease {
  if (item === undefined) return { memberships: [], rejections: [] };
  const decoded = decodeLease(item, policy);
  if (!decoded.ok) return { memberships: [], rejections: decoded.rejections };
  return routeLease(decoded.lease, routing, nowSeconds);
}

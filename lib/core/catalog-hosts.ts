/**
 * Which load balancer the capability catalog names for each capability (`route.host`), so that a
 * client of a deployment with several load balancers can reach a capability that lives on another
 * one than the load balancer it asked. Pure: the registry finds where each capability's target
 * group is and the load balancers' DNS names once per function container at configuration
 * resolution (lib/handlers/runtime-config-loader.ts, adapter lib/aws/load-balancers.ts); the DNS
 * names never go into `AGENT_LB_CONFIG`, which must stay within Lambda's 4 KB for 200 capabilities.
 */

/**
 * Capability → the ARNs of the load balancers that route to its target group: the one it was
 * discovered on, or what DescribeTargetGroups says of a group named by ARN (`LoadBalancerArns`).
 */
export type CapabilityPlacement = Readonly<Record<string, readonly string[]>>;

/** The load balancers whose DNS names a placement needs, each once, in code-unit order (the DescribeLoadBalancers input). */
export function placementLoadBalancers(placement: CapabilityPlacement): string[] {
  return [...new Set(Object.values(placement).flat())].filter((arn) => arn !== '').sort();
}

/**
 * Capability → the DNS name of the one load balancer that serves it. A capability gets none when
 * its group is on no load balancer, on more than one (which of them a client should use cannot be
 * told; ALB lets a target group serve one load balancer, so only a hand-made configuration sees
 * this), or on one whose DNS name is not in `dnsNames`.
 */
export function catalogHosts(placement: CapabilityPlacement, dnsNames: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [capability, arns] of Object.entries(placement)) {
    const distinct = [...new Set(arns)];
    const host = distinct.length === 1 ? dnsNames.get(distinct[0]) : undefined;
    if (host) out[capability] = host;
  }
  return out;
}

/**
 * The host a catalog entry shows. `hosts` is what this container resolved, authoritative when
 * set: a capability not in it has no host. `undefined` means the container could not look its
 * load balancers up (DescribeLoadBalancers failed, or a configuration given in code says
 * nothing): the entry keeps the host the previous document showed, so one container that could
 * not ask ELB does not take every host out of the catalog until the next one that could.
 */
export function hostOf(hosts: Readonly<Record<string, string>> | undefined, capability: string, previousHost: string | undefined): string | undefined {
  if (hosts === undefined) return previousHost;
  return Object.hasOwn(hosts, capability) ? hosts[capability] : undefined;
}

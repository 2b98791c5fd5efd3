import { DescribeLoadBalancersCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * The load balancers themselves, as the capability catalog needs them: their DNS names, which
 * the catalog shows as each capability's `route.host` (lib/core/catalog-hosts.ts). Read once per
 * function container at configuration resolution, never per request.
 */

/** DescribeLoadBalancers takes at most 20 load balancer ARNs per call. */
export const LOAD_BALANCERS_PER_CALL = 20;

/**
 * Load balancer ARN → its DNS name, for the given ARNs: one DescribeLoadBalancers call per 20
 * (each followed through its pages). A load balancer ELB does not return, or returns without a
 * DNS name, is left out.
 * @throws what the SDK throws (LoadBalancerNotFoundException for an ARN that names none, AccessDenied):
 * the caller decides whether the catalog can do without
 */
export async function loadBalancerDnsNames(client: ElasticLoadBalancingV2Client, arns: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const distinct = [...new Set(arns)];
  for (let i = 0; i < distinct.length; i += LOAD_BALANCERS_PER_CALL) {
    let marker: string | undefined;
    do {
      const page = await client.send(new DescribeLoadBalancersCommand({ LoadBalancerArns: distinct.slice(i, i + LOAD_BALANCERS_PER_CALL), ...(marker ? { Marker: marker } : {}) }));
      for (const lb of page.LoadBalancers ?? []) if (lb.LoadBalancerArn && lb.DNSName) out.set(lb.LoadBalancerArn, lb.DNSName);
      marker = page.NextMarker;
    } while (marker);
  }
  return out;
}

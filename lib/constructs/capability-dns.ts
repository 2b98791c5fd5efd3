import { Token } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import { Construct, IConstruct } from 'constructs';
import { AgentLbValidationError } from './validation-error';

/**
 * A DNS name per capability: `<capability>.<dnsSubdomain>.<zone>` (or `<capability>.<zone>`), a
 * Route 53 alias A record (and AAAA on a dual-stack load balancer) to the load balancer whose
 * listener carries the capability's rules. The name only picks the load balancer: its rules
 * still match the capability's header or path, never the Host header, so a request to the name
 * needs `X-Agent-Capability: <capability>` or `/<pathPrefix>/<capability>/…` like any other.
 */

/** One DNS label as a host name takes it (RFC 1123): 1–63 lowercase letters, digits and `-`, not starting or ending with `-`. */
export const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Longest domain name, without the trailing dot. */
export const MAX_DNS_NAME = 253;

/** Why `name` cannot be a capability's DNS label (one line), or undefined. */
export function dnsLabelProblem(name: string): string | undefined {
  if (DNS_LABEL.test(name)) return undefined;
  return `capability ${JSON.stringify(name)} is not a DNS label (1–63 lowercase letters, digits and "-", not starting or ending with "-"; no "_"), so it cannot have a DNS name: rename it or leave dnsZone unset`;
}

/** Why `subdomain` cannot be `dnsSubdomain`, or undefined. */
export function dnsSubdomainProblem(subdomain: string): string | undefined {
  if (subdomain.split('.').every((label) => DNS_LABEL.test(label))) return undefined;
  return `dnsSubdomain ${JSON.stringify(subdomain)} must be DNS labels separated by "." (each 1–63 lowercase letters, digits and "-", not starting or ending with "-")`;
}

/** The domain capability names go under: `<dnsSubdomain>.<zone>`, or the zone's name. No trailing dot. */
export function capabilityDomain(zone: route53.IHostedZone, subdomain?: string): string {
  const zoneName = Token.isUnresolved(zone.zoneName) ? zone.zoneName : zone.zoneName.replace(/\.$/, '');
  return subdomain === undefined ? zoneName : `${subdomain}.${zoneName}`;
}

/** Where capability names go and which capabilities, with their load balancer. */
export interface CapabilityDnsInput {
  readonly zone: route53.IHostedZone;
  readonly subdomain?: string;
  readonly loadBalancer: elbv2.IApplicationLoadBalancer;
  readonly capabilities: readonly string[];
}

/** Checks the names a zone would get: each capability a DNS label, each full name at most 253 characters. */
export function checkCapabilityNames(scope: IConstruct, zone: route53.IHostedZone, subdomain: string | undefined, capabilities: readonly string[]): void {
  if (subdomain !== undefined && !Token.isUnresolved(subdomain)) {
    const problem = dnsSubdomainProblem(subdomain);
    if (problem) throw new AgentLbValidationError(scope, problem);
  }
  let domain: string;
  try {
    domain = capabilityDomain(zone, subdomain);
  } catch {
    // HostedZone.fromHostedZoneId has no name to give.
    throw new AgentLbValidationError(scope, 'dnsZone has no zone name: import it with HostedZone.fromHostedZoneAttributes({ hostedZoneId, zoneName }) or fromLookup');
  }
  for (const name of capabilities) {
    const problem = dnsLabelProblem(name);
    if (problem) throw new AgentLbValidationError(scope, problem);
    const full = `${name}.${domain}`;
    if (!Token.isUnresolved(domain) && full.length > MAX_DNS_NAME) {
      throw new AgentLbValidationError(scope, `capability ${JSON.stringify(name)}: DNS name ${full} is ${full.length} characters, at most ${MAX_DNS_NAME}`);
    }
  }
}

/** Whether ELB answers this load balancer's name over IPv6 too (then the name gets an AAAA record). */
export function isDualStack(loadBalancer: elbv2.IApplicationLoadBalancer): boolean {
  const type = loadBalancer.ipAddressType;
  return type === elbv2.IpAddressType.DUAL_STACK || type === elbv2.IpAddressType.DUAL_STACK_WITHOUT_PUBLIC_IPV4;
}

/**
 * The alias records of one load balancer's capabilities, under `scope` (construct ids
 * `<capability>A` and `<capability>Aaaa`). Names must have been checked ({@link checkCapabilityNames}).
 */
export function addCapabilityRecords(scope: Construct, input: CapabilityDnsInput): void {
  const target = route53.RecordTarget.fromAlias(new targets.LoadBalancerTarget(input.loadBalancer));
  const domain = capabilityDomain(input.zone, input.subdomain);
  for (const name of input.capabilities) {
    const recordName = `${name}.${domain}`;
    const comment = `agent-lb: capability ${name}`;
    new route53.ARecord(scope, `${name}A`, { zone: input.zone, recordName, target, comment });
    if (isDualStack(input.loadBalancer)) new route53.AaaaRecord(scope, `${name}Aaaa`, { zone: input.zone, recordName, target, comment });
  }
}

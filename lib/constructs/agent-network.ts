import { Annotations, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type { Construct } from 'constructs';
import type { PortRange } from '../core/lease-schema';
import { parseCidr } from '../core/address-policy';
import { formatPortRange, mergePortRanges } from '../core/port-ranges';
import { AgentLbValidationError } from './validation-error';

/**
 * Who the load balancer may reach: its security group(s) get egress only to the security groups
 * admitted to serve (the agents' group, or a capability's own), only on the capabilities' ports
 * and health-check ports, and those groups get the matching ingress from the load balancer's
 * group; ranges named explicitly (`allowedCidrs`, for agents outside the VPC) get egress on the
 * same ports. So a wrong registration still cannot reach a service that is not an agent.
 */

/** Security groups hold 60 rules each way by default (an adjustable quota). */
export const SECURITY_GROUP_RULE_QUOTA = 60;

/** What one capability needs opened. */
export interface CapabilityReach {
  readonly name: string;
  /** Ports its agents serve on. */
  readonly ports: readonly PortRange[];
  /** A fixed health-check port, when it is not the traffic port. */
  readonly healthCheckPort?: number;
  /** Groups whose interfaces may serve it. */
  readonly admitted: readonly ec2.ISecurityGroup[];
}

export interface AgentReachProps {
  readonly listener: elbv2.IApplicationListener;
  readonly capabilities: readonly CapabilityReach[];
  /** Ranges named explicitly for agents outside the VPC (peered networks, on premises). */
  readonly explicitCidrs: readonly string[];
  /** The VPC's CIDR, when known at synth: a named range overlapping it is warned about. */
  readonly vpcCidr?: string;
}

/** A group created in this app (its rules are ours to add); imported ones get explicit rule resources. */
function owned(group: ec2.ISecurityGroup): group is ec2.SecurityGroup {
  return group instanceof ec2.SecurityGroup;
}

const portOf = (r: PortRange): ec2.Port => (r.from === r.to ? ec2.Port.tcp(r.from) : ec2.Port.tcpRange(r.from, r.to));

/**
 * Adds the rules. On a listener that carries no security group (imported without one) there is
 * nothing to add egress to: synth fails in one line naming what to pass.
 */
export function connectLoadBalancerToAgents(scope: Construct, props: AgentReachProps): void {
  // A listener imported without `securityGroup` carries `[undefined]`.
  const lbGroups = props.listener.connections.securityGroups.filter((g): g is ec2.ISecurityGroup => g !== undefined);
  if (lbGroups.length === 0) {
    throw new AgentLbValidationError(
      scope,
      'The listener carries no security group to open towards the agents: import it with ' +
        'ApplicationListener.fromApplicationListenerAttributes(scope, id, { listenerArn, securityGroup: ec2.SecurityGroup.fromSecurityGroupId(scope, id, "<the load balancer\'s security group id>") })',
    );
  }

  // Ports per destination group, merged into as few ranges as possible (one rule each).
  const byGroup = new Map<ec2.ISecurityGroup, PortRange[]>();
  const allPorts: PortRange[] = [];
  for (const c of props.capabilities) {
    const ports = [...c.ports, ...(c.healthCheckPort === undefined ? [] : [{ from: c.healthCheckPort, to: c.healthCheckPort }])];
    allPorts.push(...ports);
    for (const g of c.admitted) byGroup.set(g, [...(byGroup.get(g) ?? []), ...ports]);
  }
  const toGroups = [...byGroup].map(([group, ports]) => ({ group, ports: mergePortRanges(ports) }));
  const cidrPorts = mergePortRanges(allPorts);

  const rules = toGroups.reduce((n, g) => n + g.ports.length, 0) + props.explicitCidrs.length * cidrPorts.length;
  scope.node.addValidation({
    validate: () =>
      rules > SECURITY_GROUP_RULE_QUOTA
        ? [
            `the load balancer's security group would need ${rules} egress rules to reach the agents; a security group holds ${SECURITY_GROUP_RULE_QUOTA} ` +
              '(adjustable in Service Quotas): declare fewer ports (ranges count once), fewer admitted security groups or fewer allowedCidrs',
          ]
        : [],
  });

  const overlapping = props.vpcCidr === undefined || Token.isUnresolved(props.vpcCidr) ? [] : props.explicitCidrs.filter((c) => !Token.isUnresolved(c) && cidrsOverlap(c, props.vpcCidr!));
  if (overlapping.length > 0) {
    Annotations.of(scope).addWarningV2(
      'agent-lb:allowed-cidrs-overlap-vpc',
      `allowedCidrs ${overlapping.join(', ')} overlap the VPC (${props.vpcCidr}): the load balancer's security group then reaches every address there on the capabilities' ports, ` +
        'not only the agents\' security group; name only ranges outside the VPC (agents inside it are admitted by their security group)',
    );
  }

  lbGroups.forEach((lb, i) => {
    if (owned(lb) && lb.allowAllOutbound) {
      Annotations.of(scope).addWarningV2(
        'agent-lb:load-balancer-egress-open',
        `The load balancer's security group ${lb.node.path} allows all outbound traffic, so the load balancer can reach more than the agents: create it with allowAllOutbound: false (agent-lb adds the egress the agents need)`,
      );
    }
    toGroups.forEach(({ group, ports }, j) => {
      for (const range of ports) {
        const description = `agent-lb: load balancer to agents on ${formatPortRange(range)} (traffic and health checks)`;
        const id = `Lb${i}ToAgents${j}Port${range.from}${range.to === range.from ? '' : `To${range.to}`}`;
        egressToGroup(scope, id, lb, group, range, description);
        ingressFromGroup(scope, id, group, lb, range, description);
      }
    });
    props.explicitCidrs.forEach((cidr, j) => {
      for (const range of cidrPorts) {
        const description = `agent-lb: load balancer to agents in ${Token.isUnresolved(cidr) ? 'a named range' : cidr} on ${formatPortRange(range)}`;
        egressToCidr(scope, `Lb${i}ToRange${j}Port${range.from}${range.to === range.from ? '' : `To${range.to}`}`, lb, cidr, range, description);
      }
    });
  });
}

function egressToGroup(scope: Construct, id: string, from: ec2.ISecurityGroup, to: ec2.ISecurityGroup, range: PortRange, description: string): void {
  if (owned(from)) {
    from.addEgressRule(to, portOf(range), description);
    return;
  }
  // An imported group: CDK would skip the rule when it believes the group allows all outbound
  // (its default for imports), and we cannot know. The rule is added either way; a duplicate of
  // an existing rule is harmless, a missing one leaves the agents unreachable.
  new ec2.CfnSecurityGroupEgress(scope, `${id}Egress`, {
    groupId: from.securityGroupId,
    ipProtocol: 'tcp',
    fromPort: range.from,
    toPort: range.to,
    destinationSecurityGroupId: to.securityGroupId,
    description,
  });
}

function ingressFromGroup(scope: Construct, id: string, to: ec2.ISecurityGroup, from: ec2.ISecurityGroup, range: PortRange, description: string): void {
  if (owned(to)) {
    to.addIngressRule(from, portOf(range), description);
    return;
  }
  new ec2.CfnSecurityGroupIngress(scope, `${id}Ingress`, {
    groupId: to.securityGroupId,
    ipProtocol: 'tcp',
    fromPort: range.from,
    toPort: range.to,
    sourceSecurityGroupId: from.securityGroupId,
    description,
  });
}

function egressToCidr(scope: Construct, id: string, from: ec2.ISecurityGroup, cidr: string, range: PortRange, description: string): void {
  const v6 = !Token.isUnresolved(cidr) && cidr.includes(':');
  if (owned(from)) {
    from.addEgressRule(v6 ? ec2.Peer.ipv6(cidr) : ec2.Peer.ipv4(cidr), portOf(range), description);
    return;
  }
  new ec2.CfnSecurityGroupEgress(scope, `${id}Egress`, {
    groupId: from.securityGroupId,
    ipProtocol: 'tcp',
    fromPort: range.from,
    toPort: range.to,
    ...(v6 ? { cidrIpv6: cidr } : { cidrIp: cidr }),
    description,
  });
}

/** Whether two IPv4 CIDRs share an address (IPv6 ones are not judged). */
export function cidrsOverlap(a: string, b: string): boolean {
  let pa, pb;
  try {
    pa = parseCidr(a);
    pb = parseCidr(b);
  } catch {
    return false;
  }
  if (pa.type !== 'ipv4' || pb.type !== 'ipv4') return false;
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const span = (p: { network: string; prefix: number }) => {
    const size = 2 ** (32 - p.prefix);
    const first = Math.floor(toInt(p.network) / size) * size;
    return [first, first + size - 1];
  };
  const [a1, a2] = span(pa);
  const [b1, b2] = span(pb);
  return a1 <= b2 && b1 <= a2;
}

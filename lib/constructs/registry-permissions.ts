import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * The ELB permissions of the registry Lambdas beyond Register/DeregisterTargets. ELBv2 Describe*
 * actions take no resource-level permissions, so "*" is their only valid resource.
 */

/** Finding target groups by tag (and, from a listener, its load balancer). */
export function findTargetGroups(viaListener: boolean): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'FindCapabilityTargetGroups',
    actions: [
      ...(viaListener ? ['elasticloadbalancing:DescribeListeners'] : []),
      'elasticloadbalancing:DescribeTargetGroups',
      'elasticloadbalancing:DescribeTags',
    ],
    resources: ['*'],
  });
}

/** Reading the named groups' own ports (a configuration that declares none). */
export function readTargetGroupPorts(): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid: 'ReadCapabilityTargetGroupPorts', actions: ['elasticloadbalancing:DescribeTargetGroups'], resources: ['*'] });
}

/**
 * Naming, in the capability catalog, the load balancer that serves each capability: its DNS name
 * (DescribeLoadBalancers, once per function container) and, for groups named by ARN whose ports
 * the configuration declares, which load balancer each group is on (`readGroups`). Only the roles
 * that build the catalog document get it.
 */
export function nameCatalogLoadBalancers(readGroups: boolean): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'NameCatalogLoadBalancers',
    actions: ['elasticloadbalancing:DescribeLoadBalancers', ...(readGroups ? ['elasticloadbalancing:DescribeTargetGroups'] : [])],
    resources: ['*'],
  });
}

/** Reading the targets of the groups, for a reconcile pass. */
export function readTargetHealth(): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid: 'ReadTargetHealth', actions: ['elasticloadbalancing:DescribeTargetHealth'], resources: ['*'] });
}

/**
 * Admission: which network interface holds an address, and which security groups it (or an
 * instance) carries. EC2 Describe* actions take no resource-level permissions either, and read
 * nothing but metadata.
 */
export function describeAgentInterfaces(): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid: 'AdmitAgentsByTheirInterfaces', actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeInstances'], resources: ['*'] });
}

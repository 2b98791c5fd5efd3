import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, StackProps, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { DEFAULT_ALLOWED_CIDRS, parseCidr } from '../core/address-policy';
import { DEFAULT_MAX_LEASE_TTL_SECONDS } from '../core/lease-schema';
import { isTargetQuota, MAX_TARGET_QUOTA } from '../core/runtime-config';
import { DEFAULT_LOAD_BALANCER_QUOTAS, LoadBalancerQuotas, packCapabilities, PackedLoadBalancer, quotasProblem, rulesOf, targetGroupsOf } from '../core/load-balancer-packing';
import { AgentLb, RegistrySyncOptions } from './agent-lb';
import { capabilityDomain } from './capability-dns';
import { CATALOG_COST } from './load-balancer-budget';
import { cidrsOverlap } from './agent-network';
import type { CapabilityProps } from './capability-props';
import type { CapabilityRouter } from './capability-router';
import { maxRequestSecondsOf } from './capability-target-group';
import { idleTimeoutFor } from '../core/request-duration';
import { LeaseTable } from './lease-table';
import { acknowledgeNagFindings } from './nag-suppressions';
import type { RegistrySync } from './registry-sync';
import { addTargetGroupOutputs } from './target-group-outputs';
import { AgentLbValidationError } from './validation-error';
import type { IConstruct } from 'constructs';

/** Properties of an {@link AgentLbStack}. */
export interface AgentLbStackProps extends StackProps {
  /**
   * The capabilities to route; see {@link CapabilityProps}. They are placed on as many load
   * balancers as ALB's quotas need (`loadBalancerQuotas`): capabilities in list order, each on the
   * first load balancer it fits, so adding capabilities at the end never moves one. Capabilities
   * with weighted variants go on the first.
   */
  readonly capabilities: readonly CapabilityProps[];

  /**
   * Targets each capability expects at the fleet's size, in all its groups (an agent serving two
   * capabilities is a target in each), by capability name. Counted against the targets-per-load-
   * balancer and targets-per-target-group quotas when placing capabilities.
   *
   * @default - 0 for every capability (only target groups and rules decide the placement)
   */
  readonly expectedTargets?: Readonly<Record<string, number>>;

  /**
   * ALB quotas of the account the capabilities are placed within. AWS's defaults unless your
   * account has them raised (target groups per load balancer cannot be). `targetsPerLoadBalancer`
   * is also the registry's target quota on each load balancer (`registrySync.targetQuota`, the
   * same quota): set either; both set to different values is refused.
   *
   * @default DEFAULT_LOAD_BALANCER_QUOTAS (100 target groups, 100 rules, 1 000 targets per load
   * balancer; 1 000 targets per target group; 50 load balancers per Region)
   */
  readonly loadBalancerQuotas?: Partial<LoadBalancerQuotas>;

  /**
   * Deploy into this existing VPC (looked up at synth time: the stack needs an explicit
   * account and region).
   *
   * @default - a new VPC
   */
  readonly vpcId?: string;

  /**
   * CIDR of the new VPC.
   *
   * @default '10.0.0.0/16'
   */
  readonly vpcCidr?: string;

  /**
   * Availability zones of the new VPC, 2–6.
   *
   * @default 2
   */
  readonly maxAzs?: number;

  /**
   * NAT gateways of the new VPC, 0 to `maxAzs`. With 0 the private subnets are isolated
   * (agents there still reach DynamoDB through the VPC's gateway endpoint).
   *
   * @default 1
   */
  readonly natGateways?: number;

  /**
   * Put the load balancer in public subnets with a public DNS name.
   *
   * @default false - an internal load balancer in the private subnets
   */
  readonly internetFacing?: boolean;

  /**
   * ACM certificate for an HTTPS listener on 443; port 80 then redirects to HTTPS.
   *
   * @default - plain HTTP on port 80
   */
  readonly certificateArn?: string;

  /**
   * Bucket the load balancer writes access logs to (needs an explicit region). Its bucket
   * policy must allow ELB log delivery when the bucket is not defined in this stack.
   *
   * @default - no access logs
   */
  readonly accessLogsBucket?: s3.IBucket;

  /**
   * Name of an existing bucket for access logs, for configurations that cannot hold an
   * `IBucket` (the app's context). Its policy must allow ELB log delivery.
   *
   * @default - no access logs
   */
  readonly accessLogsBucketName?: string;

  /**
   * Key prefix of the access logs in `accessLogsBucket`.
   *
   * @default - no prefix
   */
  readonly accessLogsPrefix?: string;

  /**
   * Address ranges outside the VPC agents may register IP targets from (peered VPCs, on
   * premises; their leases need `availabilityZone: all`); the load balancer's security group gets
   * egress to each on the capabilities' ports. Name only ranges that hold agents alone: no
   * network interface of the VPC vouches for an address there.
   *
   * @default - none: agents live in the VPC, in the agents' security group
   */
  readonly allowedCidrs?: readonly string[];

  /**
   * Ranges allowed to reach the load balancer's listener ports.
   *
   * @default - the VPC CIDR
   */
  readonly ingressCidrs?: readonly string[];

  /**
   * An existing security group for the agents (with `vpcId`): see {@link AgentLbProps.agentSecurityGroup}.
   *
   * @default - a new one, output as `AgentSecurityGroupId`
   */
  readonly agentSecurityGroupId?: string;

  /**
   * Capabilities that admit only these security groups' interfaces instead of the agents'
   * group (capability name → security group ids, with `vpcId`): see
   * {@link CapabilityProps.admittedSecurityGroups}.
   *
   * @default - none
   */
  readonly admittedSecurityGroupIds?: Readonly<Record<string, readonly string[]>>;

  /**
   * Lease time to live agents should use (published as the `LeaseTtlSeconds` output for the
   * SDK and the sidecar), 5–3600 whole seconds.
   *
   * @default Duration.seconds(30)
   */
  readonly leaseTtl?: Duration;

  /**
   * Request header that selects a capability.
   *
   * @default 'X-Agent-Capability'
   */
  readonly headerName?: string;

  /**
   * Request header that pins a request to one variant of its capability (`X-Agent-Variant: canary`).
   *
   * @default 'X-Agent-Variant'
   */
  readonly variantHeaderName?: string;

  /**
   * First path segment(s) of capability paths (`/<pathPrefix>/<name>/*`).
   *
   * @default 'agents'
   */
  readonly pathPrefix?: string;

  /**
   * What happens to the lease table when it leaves the stack.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly tableRemovalPolicy?: RemovalPolicy;

  /**
   * Options of the sync and reconcile Lambdas.
   *
   * @default - the defaults of {@link RegistrySyncProps}
   */
  readonly registrySync?: RegistrySyncOptions;

  /**
   * Serve the capability catalog (`GET /agents`); see {@link AgentLbProps.catalog}.
   *
   * @default true
   */
  readonly catalog?: boolean;

  /**
   * Lease metadata keys the catalog may show; see {@link AgentLbProps.catalogAttributes}.
   *
   * @default - none
   */
  readonly catalogAttributes?: readonly string[];

  /**
   * A hosted zone giving each capability a DNS name, `<capability>.<zone>` (or under
   * `dnsSubdomain`): an alias to the load balancer that routes it. See {@link AgentLbProps.dnsZone}.
   *
   * @default - no DNS names
   */
  readonly dnsZone?: route53.IHostedZone;

  /**
   * The id of an existing public or private hosted zone (`Z…`), with `zoneName`, for
   * configurations that cannot hold an `IHostedZone` (the app's context): imported with
   * `HostedZone.fromHostedZoneAttributes`. Not with `dnsZone`.
   *
   * @default - no DNS names
   */
  readonly hostedZoneId?: string;

  /**
   * The name of the zone `hostedZoneId` names (`example.com`). Only with `hostedZoneId`.
   *
   * @default - no DNS names
   */
  readonly zoneName?: string;

  /**
   * Label(s) between the capability and the zone: `agents` gives `vision.agents.example.com`.
   * See {@link AgentLbProps.dnsSubdomain}.
   *
   * @default - none: `<capability>.<zone>`
   */
  readonly dnsSubdomain?: string;
}

export { targetGroupOutputId } from './target-group-outputs';

/**
 * agent-lb in one stack: an {@link AgentLb} (lease table, target groups and listener rules, the
 * sync and reconcile Lambdas, alarms, a dashboard, a managed policy for agents) on a VPC, an ALB
 * and a listener of its own, whose default action answers unknown capabilities with a 404 JSON.
 * The ALB's idle timeout is the longest capability's `maxRequestDuration` + 10 s (at least 60 s).
 * What `bin/app.ts` deploys from cdk.json; to put agent-lb on a load balancer you already have,
 * use {@link AgentLb} in your own stack instead.
 *
 * Environment-agnostic unless `vpcId` or an access-logs bucket is given.
 */
export class AgentLbStack extends Stack {
  /** The VPC of the load balancer and target groups (new, or looked up by `vpcId`). */
  public readonly vpc: ec2.IVpc;
  /** The lease table and the agents' managed policy. */
  public readonly leaseTable: LeaseTable;
  /** The single endpoint clients call. */
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** Security group of the load balancer: its egress reaches the agents' security group only, on the capabilities' ports. */
  public readonly loadBalancerSecurityGroup: ec2.SecurityGroup;
  /** The agents' security group: put agents' tasks and instances in it. */
  public readonly agentSecurityGroup: ec2.ISecurityGroup;
  /** The first load balancer's listener carrying the capability rules (HTTPS when a certificate is configured). */
  public readonly listener: elbv2.ApplicationListener;
  /** Every load balancer, `loadBalancer` first: as many as the capabilities need. */
  public readonly loadBalancers: readonly elbv2.ApplicationLoadBalancer[];
  /** Their security groups, in the same order: each reaches the agents' group on its capabilities' ports. */
  public readonly loadBalancerSecurityGroups: readonly ec2.SecurityGroup[];
  /** Their listeners carrying capability rules, in the same order. */
  public readonly listeners: readonly elbv2.ApplicationListener[];
  /** Which capabilities each load balancer routes, in the same order, and what they take of its quotas. */
  public readonly layout: readonly PackedLoadBalancer[];
  /** Target groups and listener rules, one group per capability. */
  public readonly router: CapabilityRouter;
  /** The sync and reconcile Lambdas, their alarms and dashboard. */
  public readonly registrySync: RegistrySync;
  /** The construct holding the table, the router and the Lambdas. */
  public readonly agentLb: AgentLb;
  /**
   * Whether every target group has an output of its own (`TargetGroupArn<Name>`); false when they
   * would take the stack past CloudFormation's 200 outputs, and each load balancer's groups are
   * listed in one output (`TargetGroupArns`, `TargetGroupArns2`, …) instead.
   */
  public readonly targetGroupOutputsPerCapability: boolean;

  constructor(scope: Construct, id: string, props: AgentLbStackProps) {
    super(scope, id, props);

    const leaseTtl = props.leaseTtl ?? Duration.seconds(30);
    const ttlSeconds = leaseTtl.toSeconds({ integral: false });
    if (!Token.isUnresolved(ttlSeconds) && !(Number.isInteger(ttlSeconds) && ttlSeconds >= 5 && ttlSeconds <= 3600)) {
      throw new AgentLbValidationError(this, `leaseTtl ${ttlSeconds} seconds is out of range 5–3600 seconds`);
    }
    const maxTtl = props.registrySync?.maxLeaseTtl?.toSeconds({ integral: false }) ?? DEFAULT_MAX_LEASE_TTL_SECONDS;
    if (!Token.isUnresolved(ttlSeconds) && !Token.isUnresolved(maxTtl) && ttlSeconds > maxTtl) {
      throw new AgentLbValidationError(this, `leaseTtl ${ttlSeconds} seconds exceeds maxLeaseTtl ${maxTtl} seconds: agents using it would be rejected`);
    }
    if ((props.agentSecurityGroupId !== undefined || props.admittedSecurityGroupIds !== undefined) && props.vpcId === undefined) {
      throw new AgentLbValidationError(this, 'agentSecurityGroupId and admittedSecurityGroupIds name groups of an existing VPC: set vpcId too');
    }
    const maxAzs = props.maxAzs ?? 2;
    const natGateways = props.natGateways ?? 1;
    if (!(Number.isInteger(maxAzs) && maxAzs >= 2 && maxAzs <= 6)) throw new AgentLbValidationError(this, `maxAzs ${maxAzs} is out of range 2–6`);
    if (!(Number.isInteger(natGateways) && natGateways >= 0 && natGateways <= maxAzs)) {
      throw new AgentLbValidationError(this, `natGateways ${natGateways} is out of range 0–${maxAzs} (maxAzs)`);
    }
    const envIsConcrete = !Token.isUnresolved(this.account) && !Token.isUnresolved(this.region);
    if (props.vpcId !== undefined && !envIsConcrete) {
      throw new AgentLbValidationError(this, `vpcId "${props.vpcId}" is looked up at synth time, which needs the stack's account and region: set env (e.g. from CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION)`);
    }
    if (props.accessLogsBucket !== undefined && props.accessLogsBucketName !== undefined) {
      throw new AgentLbValidationError(this, 'Set accessLogsBucket or accessLogsBucketName, not both');
    }
    const accessLogsBucket = props.accessLogsBucketName !== undefined ? s3.Bucket.fromBucketName(this, 'AccessLogsBucket', props.accessLogsBucketName) : props.accessLogsBucket;
    if (accessLogsBucket !== undefined && Token.isUnresolved(this.region)) {
      throw new AgentLbValidationError(this, 'accessLogsBucket needs the stack\'s region (env.region): the log-delivery principal differs per region');
    }
    checkDeployTimeValues(this, props, maxAzs);
    const openHttp = (props.ingressCidrs ?? []).filter((c) => c === '0.0.0.0/0' || c === '::/0');
    if (props.internetFacing && props.certificateArn === undefined && openHttp.length > 0) {
      Annotations.of(this).addWarningV2(
        'agent-lb:internet-facing-http',
        `internetFacing with ingressCidrs ${openHttp.join(', ')} over plain HTTP: anyone on the internet can call every agent, in clear text; ` +
          'set certificateArn (HTTPS) and narrow ingressCidrs, or keep the load balancer internal',
      );
    }
    // A new VPC's CIDR is a token in the template; its literal is known here.
    const newVpcCidr = props.vpcId === undefined ? (props.vpcCidr ?? '10.0.0.0/16') : undefined;
    const overlapping = newVpcCidr === undefined || Token.isUnresolved(newVpcCidr) ? [] : (props.allowedCidrs ?? []).filter((c) => !Token.isUnresolved(c) && cidrsOverlap(c, newVpcCidr));
    if (overlapping.length > 0) {
      Annotations.of(this).addWarningV2(
        'agent-lb:allowed-cidrs-overlap-vpc',
        `allowedCidrs ${overlapping.join(', ')} overlap the VPC (${newVpcCidr}): the load balancer's security group then reaches every address there on the capabilities' ports, ` +
          'not only the agents\' security group; name only ranges outside the VPC (agents inside it are admitted by their security group)',
      );
    }
    const publicCidrs = (props.allowedCidrs ?? []).filter((c) => !Token.isUnresolved(c) && isPublicIpv4Cidr(c));
    if (publicCidrs.length > 0) {
      Annotations.of(this).addWarningV2(
        'agent-lb:public-allowed-cidrs',
        `allowedCidrs ${publicCidrs.join(', ')} reach beyond the private ranges (${DEFAULT_ALLOWED_CIDRS.join(', ')}): ` +
          'a lease may then point the load balancer at such addresses, and ELB refuses public IPv4 targets anyway',
      );
    }

    // ---- network
    if (props.vpcId !== undefined) {
      this.vpc = ec2.Vpc.fromLookup(this, 'Vpc', { vpcId: props.vpcId });
    } else {
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(props.vpcCidr ?? '10.0.0.0/16'),
        maxAzs,
        natGateways,
        subnetConfiguration: [
          { name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: 'Private', subnetType: natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 },
        ],
      });
      // Free, and agents' heartbeats then never pay for NAT.
      vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
      this.vpc = vpc;
    }

    // ---- load balancers: as many as the capabilities need within ALB's quotas. Each: clients in
    // on the listener ports; out only to the agents' security group on its capabilities' ports,
    // which AgentLb adds (no CIDR-wide egress: a lease naming any other address in the VPC still
    // cannot reach it).
    const targetQuota = targetQuotaOf(this, props);
    this.layout = placeCapabilities(this, props, targetQuota);
    const ingressCidrs = props.ingressCidrs ?? [this.vpc.vpcCidrBlock];
    const byName = new Map(props.capabilities.map((c) => [c.name, c]));
    const made = this.layout.map((packed, i) => {
      // The first keeps the ids a one-load-balancer stack always had: nothing of it is replaced when a second appears.
      const suffix = i === 0 ? '' : String(i + 1);
      const securityGroup = new ec2.SecurityGroup(this, `LoadBalancerSecurityGroup${suffix}`, {
        vpc: this.vpc,
        description: 'agent-lb load balancer: clients in, agents out',
        allowAllOutbound: false,
      });
      const ports = props.certificateArn ? [80, 443] : [80];
      for (const cidr of ingressCidrs) {
        for (const port of ports) securityGroup.addIngressRule(peerOf(cidr), ec2.Port.tcp(port), `clients on ${port}`);
      }
      const own = packed.capabilities.map((name) => byName.get(name)!);
      const loadBalancer = new elbv2.ApplicationLoadBalancer(this, `LoadBalancer${suffix}`, {
        vpc: this.vpc,
        internetFacing: props.internetFacing ?? false,
        // A response may stay silent as long as the longest request lasts (ALB's 60 s cut agents' answers).
        idleTimeout: Duration.seconds(idleTimeoutFor((i === 0 && own.length === 0 ? props.capabilities : own).map(maxRequestSecondsOf).filter((s): s is number => s !== undefined))),
        securityGroup,
        dropInvalidHeaderFields: true,
        ...(props.internetFacing ? { vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC } } : {}),
      });
      if (accessLogsBucket) loadBalancer.logAccessLogs(accessLogsBucket, props.accessLogsPrefix);
      let listener: elbv2.ApplicationListener;
      if (props.certificateArn) {
        listener = loadBalancer.addListener('Https', {
          port: 443,
          protocol: elbv2.ApplicationProtocol.HTTPS,
          certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
          sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
          open: false,
        });
        loadBalancer.addRedirect({ sourcePort: 80, sourceProtocol: elbv2.ApplicationProtocol.HTTP, targetPort: 443, targetProtocol: elbv2.ApplicationProtocol.HTTPS, open: false });
      } else {
        listener = loadBalancer.addListener('Http', { port: 80, protocol: elbv2.ApplicationProtocol.HTTP, open: false });
      }
      return { securityGroup, loadBalancer, listener };
    });
    this.loadBalancers = made.map((m) => m.loadBalancer);
    this.loadBalancerSecurityGroups = made.map((m) => m.securityGroup);
    this.listeners = made.map((m) => m.listener);
    this.loadBalancer = this.loadBalancers[0];
    this.loadBalancerSecurityGroup = this.loadBalancerSecurityGroups[0];
    this.listener = this.listeners[0];

    // ---- lease table, routing and sync. The id "Default" is left out of logical ids, so every
    // resource keeps the id it had before AgentLb existed: a replaced lease table would lose every lease.
    const groupOf = (id: string) => ec2.SecurityGroup.fromSecurityGroupId(this, `SecurityGroup${id}`, id);
    const dnsZone = dnsZoneOf(this, props);
    this.agentLb = new AgentLb(this, 'Default', {
      vpc: this.vpc,
      listener: this.listener,
      loadBalancer: this.loadBalancer,
      moreListeners: made.slice(1).map((m, i) => ({ listener: m.listener, loadBalancer: m.loadBalancer, capabilities: this.layout[i + 1].capabilities })),
      ...(props.agentSecurityGroupId !== undefined ? { agentSecurityGroup: groupOf(props.agentSecurityGroupId) } : {}),
      capabilities: props.capabilities.map((c) =>
        props.admittedSecurityGroupIds?.[c.name] === undefined ? c : { ...c, admittedSecurityGroups: props.admittedSecurityGroupIds[c.name].map(groupOf) },
      ),
      headerName: props.headerName,
      variantHeaderName: props.variantHeaderName,
      pathPrefix: props.pathPrefix,
      unknownCapabilityResponse: true,
      tableRemovalPolicy: props.tableRemovalPolicy,
      allowedCidrs: props.allowedCidrs,
      registrySync: { ...props.registrySync, targetQuota },
      catalog: props.catalog,
      catalogAttributes: props.catalogAttributes,
      ...(dnsZone ? { dnsZone } : {}),
      ...(props.dnsSubdomain !== undefined ? { dnsSubdomain: props.dnsSubdomain } : {}),
    });
    this.leaseTable = this.agentLb.leaseTable!;
    this.agentSecurityGroup = this.agentLb.agentSecurityGroup;
    this.router = this.agentLb.router;
    this.registrySync = this.agentLb.registrySync;

    // ---- outputs
    new CfnOutput(this, 'TableName', { description: 'Lease table', value: this.leaseTable.tableName });
    new CfnOutput(this, 'TableStreamArn', { description: 'Stream of the lease table', value: this.leaseTable.tableStreamArn });
    this.loadBalancers.forEach((lb, i) => {
      const suffix = i === 0 ? '' : String(i + 1);
      const which = this.loadBalancers.length === 1 ? 'the agent load balancer' : `agent load balancer ${i + 1} of ${this.loadBalancers.length}`;
      new CfnOutput(this, `LoadBalancerDnsName${suffix}`, { description: `DNS name of ${which}`, value: lb.loadBalancerDnsName });
      new CfnOutput(this, `ListenerArn${suffix}`, { description: `Listener carrying the capability rules of ${which}`, value: this.listeners[i].listenerArn });
    });
    new CfnOutput(this, 'AgentPolicyArn', { description: 'Managed policy to attach to agent roles', value: this.leaseTable.agentPolicy.managedPolicyArn });
    new CfnOutput(this, 'AgentSecurityGroupId', { description: 'Security group to put agents in (the load balancer reaches only it)', value: this.agentSecurityGroup.securityGroupId });
    new CfnOutput(this, 'LeaseTtlSeconds', { description: 'Lease time to live agents should use', value: String(ttlSeconds) });
    if (this.agentLb.catalog) {
      new CfnOutput(this, 'RegistryStateTableName', { description: 'Registry state table: the capability catalog and the member index trusted discovery reads', value: this.agentLb.registryState.tableName });
      const scheme = props.certificateArn ? 'https' : 'http';
      new CfnOutput(this, 'CatalogUrl', { description: 'The capability catalog', value: `${scheme}://${this.loadBalancer.loadBalancerDnsName}/${this.router.pathPrefix}` });
    }
    if (dnsZone) {
      new CfnOutput(this, 'CapabilityDomain', { description: 'Each capability answers at <capability>.<this domain> (with its header or path)', value: capabilityDomain(dnsZone, props.dnsSubdomain) });
    }
    // Last: whether one output per group fits depends on how many the stack has besides.
    this.targetGroupOutputsPerCapability = addTargetGroupOutputs(this, this.agentLb.routers.map((r) => r.targetGroups));

    acknowledgeNagFindings(this, { accessLogs: accessLogsBucket !== undefined, tokenIngress: ingressCidrs.some((c) => Token.isUnresolved(c)) });
  }
}

/**
 * The one "Targets per Application Load Balancer" quota: the packing places expected targets
 * within it (`loadBalancerQuotas.targetsPerLoadBalancer`) and the registry refuses registrations
 * beyond it on each load balancer (`registrySync.targetQuota`). Either setting gives it; both
 * must then agree.
 */
function targetQuotaOf(scope: IConstruct, props: AgentLbStackProps): number {
  const packing = props.loadBalancerQuotas?.targetsPerLoadBalancer;
  const registry = props.registrySync?.targetQuota;
  if (packing !== undefined && registry !== undefined && packing !== registry) {
    throw new AgentLbValidationError(scope,
      `registrySync.targetQuota ${registry} and loadBalancerQuotas.targetsPerLoadBalancer ${packing} disagree: both are ALB's "Targets per Application Load Balancer" quota, per load balancer; set one`,
    );
  }
  for (const [name, value] of [
    ['registrySync.targetQuota', registry],
    ['loadBalancerQuotas.targetsPerLoadBalancer', packing],
  ] as const) {
    if (value !== undefined && !Token.isUnresolved(value) && !isTargetQuota(value)) throw new AgentLbValidationError(scope, `${name} ${JSON.stringify(value)} is out of range 1–${MAX_TARGET_QUOTA} (a whole number)`);
  }
  return packing ?? registry ?? DEFAULT_LOAD_BALANCER_QUOTAS.targetsPerLoadBalancer;
}

/**
 * The capabilities placed on load balancers by the pure packing (lib/core/load-balancer-packing.ts)
 * within the quotas: the capability catalog's group and rule on each; capabilities with weighted
 * variants on the first (the reconcile pass guards one load balancer's weighted rules). A layout
 * that breaks a quota is refused at synth, naming the capability and the quota.
 */
function placeCapabilities(scope: IConstruct, props: AgentLbStackProps, targetsPerLoadBalancer: number): PackedLoadBalancer[] {
  const quotas: LoadBalancerQuotas = { ...DEFAULT_LOAD_BALANCER_QUOTAS, ...props.loadBalancerQuotas, targetsPerLoadBalancer };
  const problem = quotasProblem(quotas);
  if (problem) throw new AgentLbValidationError(scope, `loadBalancerQuotas: ${problem}`);
  const names = new Set(props.capabilities.map((c) => c.name));
  for (const [name, count] of Object.entries(props.expectedTargets ?? {})) {
    if (!names.has(name)) throw new AgentLbValidationError(scope, `expectedTargets names ${JSON.stringify(name)}, which is not among capabilities`);
    if (!(Number.isInteger(count) && count >= 0)) throw new AgentLbValidationError(scope, `expectedTargets ${JSON.stringify(name)}: ${JSON.stringify(count)} must be a whole number, at least 0`);
  }
  const catalog = props.catalog !== false;
  const packed = packCapabilities(
    props.capabilities.map((c) => {
      const variants = c.variants?.length ?? 0;
      return { name: c.name, variants, expectedTargets: props.expectedTargets?.[c.name] ?? 0, ...(variants > 0 ? { loadBalancer: 0 } : {}) };
    }),
    quotas,
    catalog ? { targetGroups: targetGroupsOf(CATALOG_COST), rules: rulesOf(CATALOG_COST) } : { targetGroups: 0, rules: 0 },
  );
  if (!packed.ok) throw new AgentLbValidationError(scope, packed.message);
  // No capability at all: still one load balancer (its 404 and the catalog).
  return packed.loadBalancers.length > 0 ? [...packed.loadBalancers] : [{ capabilities: [], targetGroups: 0, rules: 0, expectedTargets: 0 }];
}

const HOSTED_ZONE_ID = /^Z[A-Z0-9]{1,31}$/;
const ZONE_NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

/** The zone capabilities get DNS names in: `dnsZone`, or `hostedZoneId` and `zoneName` imported; checked. */
function dnsZoneOf(scope: Construct, props: AgentLbStackProps): route53.IHostedZone | undefined {
  const byAttributes = props.hostedZoneId !== undefined || props.zoneName !== undefined;
  if (byAttributes && props.dnsZone !== undefined) throw new AgentLbValidationError(scope, 'Set dnsZone or hostedZoneId and zoneName, not both');
  if (!byAttributes) return props.dnsZone;
  const { hostedZoneId, zoneName } = props;
  if (hostedZoneId === undefined || zoneName === undefined) throw new AgentLbValidationError(scope, 'hostedZoneId and zoneName go together: set both, or neither');
  if (!Token.isUnresolved(hostedZoneId) && !HOSTED_ZONE_ID.test(hostedZoneId)) {
    throw new AgentLbValidationError(scope, `hostedZoneId ${JSON.stringify(hostedZoneId)} must be a Route 53 hosted zone id: "Z" and 1–31 uppercase letters and digits`);
  }
  if (!Token.isUnresolved(zoneName) && !ZONE_NAME.test(zoneName)) {
    throw new AgentLbValidationError(scope, `zoneName ${JSON.stringify(zoneName)} must be a domain name of lowercase DNS labels (letters, digits, "-"), at most 253 characters`);
  }
  return route53.HostedZone.fromHostedZoneAttributes(scope, 'DnsZone', { hostedZoneId, zoneName: zoneName.replace(/\.$/, '') });
}

/** ACM certificates and IAM server certificates, the two kinds an ALB listener takes. */
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:(?:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+|iam::\d{12}:server-certificate\/\S+)$/;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Values CloudFormation would only refuse at deploy time (or CDK with a message naming neither
 * the prop nor the rule), checked at synth with both. Tokens are skipped.
 */
function checkDeployTimeValues(scope: IConstruct, props: AgentLbStackProps, maxAzs: number): void {
  for (const [name, cidrs] of [
    ['allowedCidrs', props.allowedCidrs],
    ['ingressCidrs', props.ingressCidrs],
  ] as const) {
    for (const cidr of cidrs ?? []) {
      if (Token.isUnresolved(cidr)) continue;
      try {
        parseCidr(cidr);
      } catch {
        throw new AgentLbValidationError(scope, `${name}: ${JSON.stringify(cidr)} is not a CIDR; expected <IPv4>/<0-32> or <IPv6>/<0-128>`);
      }
    }
  }
  if (props.vpcCidr !== undefined && !Token.isUnresolved(props.vpcCidr)) {
    // maxAzs public /24s and private /20s must fit: a /18 holds three AZs, a /17 six.
    const largest = maxAzs <= 3 ? 18 : 17;
    const parsed = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(props.vpcCidr);
    const prefix = parsed ? Number(parsed[2]) : NaN;
    let ipv4 = false;
    try {
      ipv4 = parsed !== null && parseCidr(props.vpcCidr).type === 'ipv4';
    } catch {
      ipv4 = false;
    }
    if (!ipv4 || prefix < 16 || prefix > largest) {
      throw new AgentLbValidationError(scope, `vpcCidr ${JSON.stringify(props.vpcCidr)} must be an IPv4 CIDR of /16 to /${largest} (one /24 public and one /20 private subnet in each of ${maxAzs} AZs)`);
    }
  }
  if (props.certificateArn !== undefined && !Token.isUnresolved(props.certificateArn) && !CERTIFICATE_ARN.test(props.certificateArn)) {
    throw new AgentLbValidationError(scope,
      `certificateArn ${JSON.stringify(props.certificateArn)} must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>) or an IAM server certificate ARN`,
    );
  }
  const bucket = props.accessLogsBucketName;
  if (bucket !== undefined && !Token.isUnresolved(bucket) && !(BUCKET_NAME.test(bucket) && !bucket.includes('..'))) {
    throw new AgentLbValidationError(scope, `accessLogsBucketName ${JSON.stringify(bucket)} must be an S3 bucket name: 3–63 lowercase letters, digits, "." and "-", starting and ending with a letter or digit`);
  }
}

/** Whether an IPv4 CIDR reaches outside every default (private) range. IPv6 VPC ranges are public by nature: not judged. */
function isPublicIpv4Cidr(cidr: string): boolean {
  const { network, prefix, type } = parseCidr(cidr);
  if (type !== 'ipv4') return false;
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const size = 2 ** (32 - prefix);
  const first = Math.floor(toInt(network) / size) * size;
  const last = first + size - 1;
  return !DEFAULT_ALLOWED_CIDRS.some((range) => {
    const r = parseCidr(range);
    const rSize = 2 ** (32 - r.prefix);
    const rFirst = toInt(r.network);
    return first >= rFirst && last < rFirst + rSize;
  });
}

function peerOf(cidr: string): ec2.IPeer {
  return !Token.isUnresolved(cidr) && cidr.includes(':') ? ec2.Peer.ipv6(cidr) : ec2.Peer.ipv4(cidr);
}

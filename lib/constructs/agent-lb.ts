import { NestedStack, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as route53 from 'aws-cdk-lib/aws-route53';
import { Construct } from 'constructs';
import type { PortRange } from '../core/lease-schema';
import { connectLoadBalancerToAgents } from './agent-network';
import type { CapabilityPort, CapabilityProps } from './capability-props';
import { CapabilityRouter } from './capability-router';
import { maxRequestSecondsOf } from './capability-target-group';
import { warnOnShortIdleTimeout } from './idle-timeout';
import { agentManagedPolicy, grantAgentLeaseAccess, LeaseTable } from './lease-table';
import { acknowledgeRegistryFindings } from './nag-suppressions';
import { CapabilityCatalog, CapabilityCatalogProps } from './capability-catalog';
import { addCapabilityRecords, capabilityDomain, checkCapabilityNames } from './capability-dns';
import { RegistryStateTable } from './registry-state-table';
import { checkCatalogAttributes } from './registry-catalog';
import { RegistrySync, RegistrySyncProps } from './registry-sync';
import { AgentLbValidationError } from './validation-error';
import type { RulePriorityRange } from './rule-priorities';

/** Options of the sync and reconcile Lambdas that {@link AgentLb} passes through unchanged. */
export type RegistrySyncOptions = Omit<RegistrySyncProps, 'table' | 'capabilities' | 'vpc' | 'allowedCidrs' | 'loadBalancer' | 'listener' | 'variants' | 'admission' | 'catalog' | 'elbBudgetTable'>;

/** A listener of another load balancer of the deployment and the capabilities it routes. */
export interface AgentLbListener {
  /** The listener the capabilities' rules go on. */
  readonly listener: elbv2.IApplicationListener;
  /** Its load balancer, where the functions find the capabilities' target groups. */
  readonly loadBalancer: elbv2.IApplicationLoadBalancer;
  /** Names of the capabilities (from `AgentLbProps.capabilities`) this listener routes. */
  readonly capabilities: readonly string[];
}

/** Options of the capability catalog's function. */
export type CatalogOptions = Omit<CapabilityCatalogProps, 'stateTable'>;

/** Properties of an {@link AgentLb}. */
export interface AgentLbProps {
  /** VPC of the target groups (the load balancer's); its CIDR is the range lease addresses may come from. */
  readonly vpc: ec2.IVpc;

  /**
   * The agents' security group: the registry admits an IP target only when EC2 shows its address
   * on a network interface of `vpc` carrying it (or, for a capability with
   * `admittedSecurityGroups`, one of those), and the load balancer may reach it only on the
   * capabilities' ports. Put your ECS services' tasks and Auto Scaling groups' instances in it
   * (see {@link AgentLb.agentSecurityGroup}). Its egress stays yours.
   *
   * @default - a new security group in `vpc`, allowing all outbound traffic
   */
  readonly agentSecurityGroup?: ec2.ISecurityGroup;

  /**
   * Listener that routes to the agents: one defined in this app, or one imported with
   * `ApplicationListener.fromApplicationListenerAttributes` or `fromLookup`. agent-lb only adds
   * its listener rules to it, within `priorityRange`, and leaves its default action alone unless
   * `unknownCapabilityResponse` is set. The load balancer's security group(s) the listener carries
   * get egress to the agents' security group on the capabilities' ports: import a listener with
   * its `securityGroup`, or synth fails saying so.
   */
  readonly listener: elbv2.IApplicationListener;

  /**
   * Listeners on the deployment's other load balancers, each with the capabilities it routes
   * (by name, from `capabilities`); the rest go on `listener`. One table, one registry and one ELB
   * call budget for all of them; each gets the capability catalog's rule too, and its load
   * balancer's security group reaches the agents' on its capabilities' ports. Needs
   * `loadBalancer` (or `listener` defined in this app); weighted variants stay on `listener`.
   * `AgentLbStack` fills this from the packing of its capabilities onto load balancers.
   *
   * @default - every capability on `listener`
   */
  readonly moreListeners?: readonly AgentLbListener[];

  /**
   * The capabilities to route, with their algorithm, stickiness and weighted variants; see
   * {@link CapabilityProps}. One ALB routes to at most 100 target groups: one per capability
   * and one per variant.
   */
  readonly capabilities: readonly CapabilityProps[];

  /**
   * The load balancer of `listener`, on which the Lambdas find the capability target groups by
   * their `agent-lb:capability` tag at cold start.
   *
   * @default - the listener's own when it is defined in this app; for an imported listener, the
   * Lambdas look its load balancer up from the listener ARN (one DescribeListeners call)
   */
  readonly loadBalancer?: elbv2.IApplicationLoadBalancer;

  /**
   * Listener-rule priorities agent-lb may use: two per capability and two per variant. Keep your own rules on the
   * listener outside it; on a listener defined in this app a clash is an error at synth, on an
   * imported one CloudFormation refuses it at deploy time (`PriorityInUse`).
   *
   * @default - the whole listener, 1–50000
   */
  readonly priorityRange?: RulePriorityRange;

  /**
   * Answer requests that ask for no known capability with a `404` JSON body naming the known
   * ones, by making it the listener's default action. That replaces the listener's own default
   * action, so only set it on a listener that serves agent-lb alone; not on an imported listener.
   *
   * @default false - the listener's default action is untouched
   */
  readonly unknownCapabilityResponse?: boolean;

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
   * An existing lease table to use instead of creating one. It must follow the lease contract
   * (partition key `target` of type String, TTL on `expiresAt`) and have a stream of new and old
   * images: import it with `Table.fromTableAttributes(this, 'Leases', { tableName, tableStreamArn })`.
   *
   * @default - a new {@link LeaseTable}
   */
  readonly table?: dynamodb.ITable;

  /**
   * What happens to the lease table agent-lb creates when it leaves the stack. Ignored with `table`.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly tableRemovalPolicy?: RemovalPolicy;

  /**
   * Address ranges outside the VPC agents may register IP targets from (peered VPCs, on
   * premises): leases there need `availabilityZone: all`, and the load balancer's security group
   * gets egress to each range on the capabilities' ports. No interface of the VPC holds such an
   * address, so these ranges are trusted as named: list only ranges that hold agents alone.
   *
   * @default - none: the VPC's CIDR only
   */
  readonly allowedCidrs?: readonly string[];

  /**
   * Options of the sync and reconcile Lambdas.
   *
   * @default - the defaults of {@link RegistrySyncProps}
   */
  readonly registrySync?: RegistrySyncOptions;

  /**
   * Serve the capability catalog: `GET /<pathPrefix>` (exactly; `GET /agents` by default) on the
   * listener answers, for every capability, whether it is routable, its targets by state, its
   * variants and their weights in effect, how to ask for it, its policy and the public metadata
   * values of its agents — never an address, port, agent id or token. It adds a registry state
   * table (the document and the member index trusted discovery queries), a small Lambda function
   * behind a Lambda target group (one of the load balancer's 100) and one listener rule in
   * `priorityRange`. Off: none of these, and `GET /<pathPrefix>` gets the listener's default action.
   *
   * @default true
   */
  readonly catalog?: boolean;

  /**
   * Lease metadata keys whose values the catalog may show (e.g. `model`): per capability, the
   * distinct values among its agents in rotation, at most 20 per key. At most 10 keys. Only
   * declare keys whose values may be public.
   *
   * @default - none
   */
  readonly catalogAttributes?: readonly string[];

  /**
   * A Route 53 hosted zone in which each capability gets a DNS name, `<capability>.<zone>` (or
   * `<capability>.<dnsSubdomain>.<zone>`): an alias A record (and AAAA when the load balancer is
   * dual-stack) to the load balancer whose listener routes the capability, so clients need not
   * know which of the deployment's load balancers that is. The catalog's `route.host` then shows
   * this name. The name picks the load balancer only: its rules match the capability's header or
   * path, not the Host header, so requests still carry `<headerName>: <capability>` or
   * `/<pathPrefix>/<capability>/…`; over HTTPS the certificate must cover the names
   * (`*.<dnsSubdomain>.<zone>`). Every capability name must then be a DNS label (no `_`, not
   * ending with `-`). Needs the zone's name: import it with `HostedZone.fromHostedZoneAttributes`
   * or `fromLookup`, not `fromHostedZoneId`; and `loadBalancer` (or `listener` defined in this app).
   *
   * @default - no DNS names; `route.host` is the load balancer's DNS name
   */
  readonly dnsZone?: route53.IHostedZone;

  /**
   * Label(s) between the capability and the zone in its DNS name (`agents` gives
   * `vision.agents.example.com`). Lowercase DNS labels separated by `.`. Only with `dnsZone`.
   *
   * @default - none: `<capability>.<zone>`
   */
  readonly dnsSubdomain?: string;

  /**
   * Options of the catalog's function (its cache and concurrency).
   *
   * @default - the defaults of {@link CapabilityCatalogProps}
   */
  readonly catalogOptions?: CatalogOptions;
}

/**
 * agent-lb in your own stack, on your own VPC and ALB listener: the lease table (or yours), one
 * target group and two listener rules per capability, and the sync and reconcile Lambdas that
 * keep each target group equal to the live leases naming its capability, with alarms and a
 * dashboard.
 *
 * ```ts
 * const listener = elbv2.ApplicationListener.fromApplicationListenerAttributes(this, 'Listener', {
 *   listenerArn, securityGroup: ec2.SecurityGroup.fromSecurityGroupId(this, 'AlbSg', albSecurityGroupId),
 * });
 * const agents = new AgentLb(this, 'Agents', { vpc, listener, capabilities: [{ name: 'vision' }], priorityRange: { min: 40001, max: 50000 } });
 * agents.grantAgentAccess(agentRole);
 * ```
 *
 * The functions (and their stream mapping and schedule) deploy after the listener rules, which
 * they find the target groups through. Agents go into {@link AgentLb.agentSecurityGroup}: the
 * load balancer reaches that group (only on the capabilities' ports), and the registry admits
 * only addresses EC2 shows in it.
 */
export class AgentLb extends Construct implements ec2.IConnectable {
  /** The lease table agents write to (created, or the one given). */
  public readonly table: dynamodb.ITable;

  /** The lease table construct, when agent-lb created the table. */
  public readonly leaseTable?: LeaseTable;

  /**
   * Managed policy for agents: GetItem and DeleteItem on the lease table, PutItem and UpdateItem of
   * the agent attributes only (never `rotation` or `rejection`).
   */
  public readonly agentPolicy: iam.IManagedPolicy;

  /**
   * The agents' security group. Put agents in it: an ECS service with
   * `securityGroups: [agents.agentSecurityGroup]`, an Auto Scaling group with
   * `securityGroup: agents.agentSecurityGroup` (or `asg.addSecurityGroup(...)`). It accepts the
   * load balancer on the capabilities' ports and health-check ports, nothing else.
   */
  public readonly agentSecurityGroup: ec2.ISecurityGroup;

  /** The agents' security group as `Connections`, the aws-cdk way (`agents.connections.allowFrom(...)`). */
  public readonly connections: ec2.Connections;

  /** Target groups and listener rules, one group per capability (those on `listener`). */
  public readonly router: CapabilityRouter;

  /** Every router: `router` first, then one per listener of `moreListeners`, in order. */
  public readonly routers: readonly CapabilityRouter[];

  /** The sync and reconcile Lambdas, their alarms and dashboard. */
  public readonly registrySync: RegistrySync;

  /**
   * The registry's own table: the ELB call budget every sync and reconcile container shares, and,
   * when the catalog is on, the catalog document and member index.
   */
  public readonly registryState: RegistryStateTable;

  /** The catalog's function and target group, when the catalog is on. */
  public readonly catalog?: CapabilityCatalog;

  constructor(scope: Construct, id: string, props: AgentLbProps) {
    super(scope, id);
    if (props.catalog === false && (props.catalogAttributes?.length ?? 0) > 0) {
      throw new AgentLbValidationError(this, 'catalogAttributes needs the catalog; remove catalogAttributes or leave catalog on');
    }
    checkCatalogAttributes(this, props.catalogAttributes ?? []);

    if (props.table) {
      this.table = props.table;
      this.agentPolicy = agentManagedPolicy(this, 'AgentPolicy', props.table.tableArn);
    } else {
      this.leaseTable = new LeaseTable(this, 'Leases', { removalPolicy: props.tableRemovalPolicy });
      this.table = this.leaseTable.table;
      this.agentPolicy = this.leaseTable.agentPolicy;
    }

    // Always: the ELB call budget must bound the whole registry, not one Lambda container.
    this.registryState = new RegistryStateTable(this, 'RegistryState');
    if (props.catalog !== false) {
      this.catalog = new CapabilityCatalog(this, 'Catalog', { ...props.catalogOptions, stateTable: this.registryState });
    }

    // Which capabilities go on which listener: `moreListeners` name theirs, `listener` takes the rest.
    const more = props.moreListeners ?? [];
    const placed = new Map<string, number>();
    const known = new Set(props.capabilities.map((c) => c.name));
    more.forEach((m, i) => {
      for (const name of m.capabilities) {
        if (!known.has(name)) throw new AgentLbValidationError(this, `moreListeners[${i}] names capability ${JSON.stringify(name)}, which is not among capabilities`);
        if (placed.has(name)) throw new AgentLbValidationError(this, `capability ${JSON.stringify(name)} is on two listeners (moreListeners[${placed.get(name)}] and moreListeners[${i}])`);
        placed.set(name, i);
      }
    });
    const routerProps = (listener: elbv2.IApplicationListener, capabilities: readonly CapabilityProps[], catalogTargetGroup?: elbv2.IApplicationTargetGroup) => ({
      vpc: props.vpc,
      listener,
      capabilities,
      headerName: props.headerName,
      variantHeaderName: props.variantHeaderName,
      pathPrefix: props.pathPrefix,
      priorityRange: props.priorityRange,
      unknownCapabilityResponse: props.unknownCapabilityResponse,
      ...(catalogTargetGroup ? { catalogTargetGroup } : {}),
    });
    const onFirst = props.capabilities.filter((c) => !placed.has(c.name));
    this.router = new CapabilityRouter(this, 'Router', routerProps(props.listener, onFirst, this.catalog?.targetGroup));
    const listenerCapabilities: { listener: elbv2.IApplicationListener; capabilities: readonly CapabilityProps[] }[] = [{ listener: props.listener, capabilities: onFirst }];
    const nestedRoutes: NestedStack[] = [];
    this.routers = [
      this.router,
      ...more.map((m, i) => {
        const names = new Set(m.capabilities);
        const caps = props.capabilities.filter((c) => names.has(c.name));
        const withVariants = caps.find((c) => (c.variants?.length ?? 0) > 0);
        if (withVariants) {
          throw new AgentLbValidationError(this, `moreListeners[${i}]: capability ${JSON.stringify(withVariants.name)} has weighted variants, which stay on \`listener\` (the reconcile pass guards one load balancer's weighted rules)`);
        }
        listenerCapabilities.push({ listener: m.listener, capabilities: caps });
        // In a nested stack of its own: a load balancer's groups and rules (up to 100 + 100) would
        // soon take a stack past CloudFormation's 500 resources (200 capabilities: ~700).
        const routes = new NestedStack(this, `Routes${i + 2}`, { description: `agent-lb: target groups and listener rules of load balancer ${i + 2}` });
        nestedRoutes.push(routes);
        return new CapabilityRouter(routes, 'Router', routerProps(m.listener, caps, this.catalog?.addTargetGroup(`TargetGroup${i + 2}`)));
      }),
    ];
    const routes = this.routers.flatMap((r) => r.routes);
    const allTargetGroups = this.targetGroups;

    this.agentSecurityGroup =
      props.agentSecurityGroup ??
      new ec2.SecurityGroup(this, 'AgentSecurityGroup', {
        vpc: props.vpc,
        description: 'agent-lb agents: the load balancer reaches them here, on the capabilities ports only',
        allowAllOutbound: true,
      });
    this.connections = new ec2.Connections({ securityGroups: [this.agentSecurityGroup] });
    const admittedFor = new Map(props.capabilities.map((c) => [c.name, c.admittedSecurityGroups ?? [this.agentSecurityGroup]]));
    const portsFor = new Map(routes.map((r) => [r.name, capabilityPorts(props.capabilities.find((c) => c.name === r.name)!.ports, r.port)]));
    // Each load balancer's security group reaches the agents on its own capabilities' ports.
    listenerCapabilities.forEach(({ listener, capabilities }, i) =>
      connectLoadBalancerToAgents(i === 0 ? this : new Construct(this, `Network${i + 1}`), {
        listener,
        capabilities: capabilities.map((c) => ({
          name: c.name,
          ports: portsFor.get(c.name)!,
          ...(c.healthCheck?.port !== undefined ? { healthCheckPort: c.healthCheck.port } : {}),
          admitted: admittedFor.get(c.name)!,
        })),
        explicitCidrs: props.allowedCidrs ?? [],
        vpcCidr: props.vpc.vpcCidrBlock,
      }),
    );

    // The functions find the target groups on the load balancer by tag: the given one, the
    // listener's own when it is defined here, or (imported listener) through the listener ARN.
    const loadBalancer = props.loadBalancer ?? (props.listener instanceof elbv2.ApplicationListener ? props.listener.loadBalancer : undefined);
    if (more.length > 0 && !loadBalancer) throw new AgentLbValidationError(this, 'moreListeners needs loadBalancer (or listener defined in this app): the first load balancer, where the functions find its groups');
    const dnsDomain = this.addDnsNames(props, loadBalancer, listenerCapabilities, nestedRoutes);
    this.registrySync = new RegistrySync(this, 'Registry', {
      ...props.registrySync,
      table: this.table,
      vpc: props.vpc,
      allowedCidrs: props.allowedCidrs,
      // Every group agents join: each capability's and each variant's (`vision-canary`), which
      // the Lambdas find by its agent-lb:capability tag like any other.
      capabilities: Object.fromEntries(
        routes.flatMap((r) =>
          [r.name, ...r.variants.map((v) => v.capability)].map((name) => [
            name,
            { targetGroup: allTargetGroups[name], targetType: r.targetType, ports: portsFor.get(r.name)!, targetGroupPort: r.port },
          ]),
        ),
      ),
      // Admission by AWS facts: the agents' group, or a capability's (and its variants') own groups.
      admission: {
        agentSecurityGroups: [this.agentSecurityGroup],
        byCapability: Object.fromEntries(
          routes
            .filter((r) => props.capabilities.find((c) => c.name === r.name)?.admittedSecurityGroups !== undefined)
            .flatMap((r) => [r.name, ...r.variants.map((v) => v.capability)].map((name) => [name, [...admittedFor.get(r.name)!]])),
        ),
      },
      // The reconcile Lambda holds a variant at weight 0 until it has a healthy target.
      variants: {
        weights: Object.fromEntries(this.router.routes.flatMap((r) => r.variants.map((v) => [v.capability, v.weight]))),
        rules: this.router.weightedRules,
      },
      ...(loadBalancer ? { loadBalancer } : { listener: props.listener }),
      ...(more.length > 0 ? { moreLoadBalancers: more.map((m) => m.loadBalancer) } : {}),
      elbBudgetTable: this.registryState,
      ...(this.catalog
        ? {
            catalog: {
              table: this.registryState,
              headerName: this.router.headerName,
              pathPrefix: this.router.pathPrefix,
              attributes: props.catalogAttributes ?? [],
              ...(dnsDomain !== undefined ? { dnsDomain } : {}),
            },
          }
        : {}),
    });
    // Nothing invokes the functions before the rules they discover their target groups through exist.
    for (const router of this.routers) this.registrySync.invokeAfter(router);
    // The load balancer is the user's (or AgentLbStack's, which sizes it): only say when it is too short.
    const durations = props.capabilities.map(maxRequestSecondsOf).filter((s): s is number => s !== undefined);
    if (durations.length > 0) warnOnShortIdleTimeout(this, loadBalancer, durations);

    acknowledgeRegistryFindings(this.registrySync, this.catalog);
  }

  /**
   * Each capability's alias records in `dnsZone`, beside its load balancer's groups and rules
   * (the first's in this construct, a later one's in its nested stack). The domain the names go
   * under, or undefined without a zone.
   */
  private addDnsNames(
    props: AgentLbProps,
    loadBalancer: elbv2.IApplicationLoadBalancer | undefined,
    listenerCapabilities: readonly { readonly capabilities: readonly CapabilityProps[] }[],
    nestedRoutes: readonly NestedStack[],
  ): string | undefined {
    if (props.dnsZone === undefined) {
      if (props.dnsSubdomain !== undefined) throw new AgentLbValidationError(this, `dnsSubdomain ${JSON.stringify(props.dnsSubdomain)} needs dnsZone: the zone the names go in`);
      return undefined;
    }
    if (!loadBalancer) throw new AgentLbValidationError(this, 'dnsZone needs loadBalancer (or listener defined in this app): the load balancer the capabilities\' names point at');
    checkCapabilityNames(this, props.dnsZone, props.dnsSubdomain, props.capabilities.map((c) => c.name));
    const loadBalancers = [loadBalancer, ...(props.moreListeners ?? []).map((m) => m.loadBalancer)];
    listenerCapabilities.forEach(({ capabilities }, i) =>
      addCapabilityRecords(new Construct(i === 0 ? this : nestedRoutes[i - 1], 'Dns'), {
        zone: props.dnsZone!,
        ...(props.dnsSubdomain !== undefined ? { subdomain: props.dnsSubdomain } : {}),
        loadBalancer: loadBalancers[i],
        capabilities: capabilities.map((c) => c.name),
      }),
    );
    return capabilityDomain(props.dnsZone, props.dnsSubdomain);
  }

  /** Target group of each capability and of each variant (`<capability>-<variant>`), by the name agents list. */
  public get targetGroups(): Readonly<Record<string, elbv2.ApplicationTargetGroup>> {
    return Object.assign({}, ...(this.routers ?? [this.router]).map((r) => r.targetGroups)) as Record<string, elbv2.ApplicationTargetGroup>;
  }

  /**
   * Grants a trusted caller discovery (`discoverAgents`, `agent-lb agents`): Query of the member
   * index (addresses, ports, rotation states, metadata) and GetItem of the catalog document in the
   * registry state table, nothing more. Needs the catalog.
   */
  public grantDiscovery(grantee: iam.IGrantable): iam.PolicyStatement {
    if (!this.catalog) throw new AgentLbValidationError(this, 'grantDiscovery needs the catalog (catalog: true), whose member index discovery reads');
    return this.registryState.grantDiscovery(grantee);
  }

  /**
   * Grants an agent principal the item actions of the lease contract on the lease table, as
   * inline statements: reads and releases, and writes of the agent attributes only (never
   * `rotation` or `rejection`). Prefer attaching {@link agentPolicy} to roles you manage outside CDK.
   */
  public grantAgentAccess(grantee: iam.IGrantable): iam.Grant {
    return grantAgentLeaseAccess(grantee, this.table.tableArn);
  }
}

/** A capability's ports as ranges: the ones it declares, else its target group's port. */
export function capabilityPorts(ports: readonly CapabilityPort[] | undefined, targetGroupPort: number): PortRange[] {
  if (ports === undefined) return [{ from: targetGroupPort, to: targetGroupPort }];
  return ports.map((p) => (typeof p === 'number' ? { from: p, to: p } : { from: p.from, to: p.to }));
}

import {
  DescribeLoadBalancerAttributesCommand,
  DescribeRulesCommand,
  DescribeTargetGroupAttributesCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  LoadBalancerAttribute,
  Rule,
  TargetGroup,
  TargetGroupAttribute,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { LoadBalancerSnapshot, LoadBalancerStateSource } from './data-plane';

/** Where the load balancer is and how its configuration is cached. */
export interface ElbStateSourceOptions {
  readonly client: ElasticLoadBalancingV2Client;
  readonly loadBalancerArn: string;
  readonly listenerArn: string;
  /** How long the configuration read is reused, in milliseconds. @default 5000 */
  readonly configMaxAgeMs?: number;
  /** @default Date.now */
  readonly clock?: () => number;
}

/** The load balancer's configuration: what changes only with a deployment. */
interface Configuration {
  readonly readAt: number;
  readonly rules: Rule[];
  readonly loadBalancerAttributes: LoadBalancerAttribute[];
  readonly groups: { readonly targetGroup: TargetGroup; readonly attributes: TargetGroupAttribute[] }[];
}

/** Describe calls sent, by API action (e.g. `DescribeTargetHealth`). */
export type DescribeCallCounts = Readonly<Record<string, number>>;

/**
 * The local data plane's view of the load balancer, read through the ELBv2 API (moto's, in local
 * mode) and nothing else: the data plane keeps no state of its own about what is registered.
 *
 * Call rate. Each snapshot reads DescribeTargetHealth once per target group of the load balancer
 * (the targets change with every registration). The configuration — DescribeRules of the listener,
 * DescribeTargetGroups of the load balancer, DescribeTargetGroupAttributes per group and
 * DescribeLoadBalancerAttributes — changes only with a deployment, so it is read again only when
 * older than `configMaxAgeMs`, or after a read failed (a group may be gone). With G groups, a
 * snapshot every second and a 5 s configuration age, that is G + (G + 3) / 5 Describe calls a
 * second: 4.2/s for the example's 3 capabilities. Snapshots are also taken at once when
 * {@link notify} is called (local mode calls it after each stream batch and reconcile pass), so
 * a registration reaches the data plane without waiting for the next poll.
 */
export class ElbStateSource implements LoadBalancerStateSource {
  private config?: Configuration;
  /** The last snapshot read, and whether it was patched since (see {@link deregistered}). */
  private last?: LoadBalancerSnapshot;
  private patched = false;
  private readonly listeners = new Set<() => void>();
  private readonly counts: Record<string, number> = {};
  private readonly clock: () => number;

  public constructor(private readonly options: ElbStateSourceOptions) {
    this.clock = options.clock ?? Date.now;
  }

  /** Describe calls sent so far, by action. */
  public get calls(): DescribeCallCounts {
    return { ...this.counts };
  }

  public async snapshot(): Promise<LoadBalancerSnapshot> {
    if (this.patched && this.last !== undefined) {
      this.patched = false;
      // Read again right after: the patch is a forecast of what moto already says.
      queueMicrotask(() => this.notify());
      return this.last;
    }
    try {
      const config = await this.configuration();
      const targets = await Promise.all(
        config.groups.map(async ({ targetGroup }) => {
          const out = await this.count('DescribeTargetHealth').send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroup.TargetGroupArn }));
          return out.TargetHealthDescriptions ?? [];
        }),
      );
      this.last = {
        rules: config.rules,
        loadBalancerAttributes: config.loadBalancerAttributes,
        targetGroups: config.groups.map((g, i) => ({ targetGroup: g.targetGroup, attributes: g.attributes, targets: targets[i] })),
      };
      return this.last;
    } catch (error) {
      // A group or rule may have gone with a deployment: read everything again next time.
      this.config = undefined;
      throw error;
    }
  }

  public subscribe(onChange: () => void): () => void {
    this.listeners.add(onChange);
    return () => this.listeners.delete(onChange);
  }

  /** Something registered or deregistered targets: subscribers take a snapshot now. */
  public notify(): void {
    for (const listener of this.listeners) listener();
  }

  /**
   * A DeregisterTargets call just succeeded: the next snapshot is the last one read without those
   * targets, served at once without a call, so the data plane stops sending them requests before
   * a client that saw `draining` in DescribeTargetHealth can send one (a read of moto takes one
   * DescribeTargetHealth per group). A real read follows it.
   */
  public deregistered(targetGroupArn: string, targets: readonly { readonly Id?: string; readonly Port?: number }[]): void {
    if (this.last === undefined) return this.notify();
    const gone = (t: { Target?: { Id?: string; Port?: number }; Id?: string; Port?: number }) => {
      const d = 'Target' in t ? t.Target : t;
      return targets.some((x) => x.Id === d?.Id && (x.Port === undefined || x.Port === d?.Port));
    };
    this.last = {
      ...this.last,
      targetGroups: this.last.targetGroups.map((g) => (g.targetGroup.TargetGroupArn === targetGroupArn ? { ...g, targets: g.targets.filter((t) => !gone(t)) } : g)),
    };
    this.patched = true;
    this.notify();
  }

  private async configuration(): Promise<Configuration> {
    const maxAge = this.options.configMaxAgeMs ?? 5000;
    if (this.config !== undefined && this.clock() - this.config.readAt < maxAge) return this.config;
    const readAt = this.clock();
    const [rules, targetGroups, lbAttributes] = await Promise.all([
      this.rules(),
      this.targetGroups(),
      this.count('DescribeLoadBalancerAttributes').send(new DescribeLoadBalancerAttributesCommand({ LoadBalancerArn: this.options.loadBalancerArn })),
    ]);
    const groups = await Promise.all(
      targetGroups.map(async (targetGroup) => {
        const out = await this.count('DescribeTargetGroupAttributes').send(new DescribeTargetGroupAttributesCommand({ TargetGroupArn: targetGroup.TargetGroupArn }));
        return { targetGroup, attributes: out.Attributes ?? [] };
      }),
    );
    this.config = { readAt, rules, loadBalancerAttributes: lbAttributes.Attributes ?? [], groups };
    return this.config;
  }

  private async rules(): Promise<Rule[]> {
    const rules: Rule[] = [];
    let marker: string | undefined;
    do {
      const out = await this.count('DescribeRules').send(new DescribeRulesCommand({ ListenerArn: this.options.listenerArn, ...(marker ? { Marker: marker } : {}) }));
      rules.push(...(out.Rules ?? []));
      marker = out.NextMarker;
    } while (marker);
    return rules;
  }

  private async targetGroups(): Promise<TargetGroup[]> {
    const groups: TargetGroup[] = [];
    let marker: string | undefined;
    do {
      const out = await this.count('DescribeTargetGroups').send(new DescribeTargetGroupsCommand({ LoadBalancerArn: this.options.loadBalancerArn, ...(marker ? { Marker: marker } : {}) }));
      groups.push(...(out.TargetGroups ?? []));
      marker = out.NextMarker;
    } while (marker);
    return groups;
  }

  /** The client, having counted one call of `action`. */
  private count(action: string): ElasticLoadBalancingV2Client {
    this.counts[action] = (this.counts[action] ?? 0) + 1;
    return this.options.client;
  }
}

import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { formatTarget } from '../core/address-policy';
import { RoutingConfig } from '../core/lease-schema';
import { addressPolicyFor } from '../core/runtime-config';
import { explainTarget, GroupView, TargetExplanation } from '../core/target-explain';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { routesByGroup } from '../aws/listener-rules';
import { healthChecksOf } from '../aws/target-groups';

export interface ExplainSources {
  readonly elb: ElbTargets;
  readonly elbClient: ElasticLoadBalancingV2Client;
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  /** Where the rules are read (the routes that reach each group); neither: the rules are not shown. */
  readonly listenerArn?: string;
  readonly loadBalancerArn?: string;
  readonly now?: () => number;
}

/**
 * What `agent-lb explain` reads about one target, then explains (lib/core/target-explain.ts): its
 * lease (one consistent GetItem), each routed group's view of it (one DescribeTargetHealth per
 * group), the groups' health checks (one DescribeTargetGroups per 20) and the listener rules.
 * Only reads: no write, no ELB change. A group that cannot be read is said so, not fatal.
 */
export async function explainTargetIn(src: ExplainSources, key: string): Promise<TargetExplanation> {
  const routes = Object.entries(src.routing.capabilities);
  const arns = routes.map(([, r]) => r.targetGroupArn);
  const on = src.listenerArn ? { listenerArn: src.listenerArn } : src.loadBalancerArn ? { loadBalancerArn: src.loadBalancerArn } : undefined;
  const [item, described, checks, rules] = await Promise.all([
    src.store.get(key),
    Promise.allSettled(routes.map(([, r]) => src.elb.describe(r.targetGroupArn))),
    healthChecksOf(src.elbClient, arns).catch(() => ({}) as Awaited<ReturnType<typeof healthChecksOf>>),
    on ? routesByGroup(src.elbClient, on).catch(() => ({}) as Record<string, string[]>) : Promise.resolve({} as Record<string, string[]>),
  ]);
  const groups: Record<string, GroupView> = {};
  routes.forEach(([capability, route], i) => {
    const read = described[i];
    const target = read.status === 'fulfilled' ? read.value.find((t) => formatTarget(t.id, t.port) === key) : undefined;
    groups[capability] = {
      ...(target ? { target } : {}),
      ...(checks[route.targetGroupArn] ? { healthCheck: checks[route.targetGroupArn] } : {}),
      ...(rules[route.targetGroupArn] ? { routes: rules[route.targetGroupArn] } : {}),
      ...(read.status === 'rejected' ? { unread: (read.reason as Error)?.message ?? String(read.reason) } : {}),
    };
  });
  return explainTarget({ key, item, nowMs: (src.now ?? Date.now)(), policy: addressPolicyFor(src.routing), routing: src.routing, groups });
}

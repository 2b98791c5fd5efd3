import { RoutingConfig } from '../core/lease-schema';
import { ObservedGroup } from '../core/reconcile-planner';
import { ElbTargets } from '../aws/elb-targets';

export interface GroupReads {
  /** Every routed group that could be read, with its targets as ELB reports them. */
  readonly groups: ObservedGroup[];
  /** Why the others could not be read, one error per group. */
  readonly unread: unknown[];
}

/**
 * Reads every routed target group's targets (DescribeTargetHealth), all in parallel: the read a
 * reconcile pass starts with and the one `agent-lb status` shows, so status reports exactly what
 * reconcile would see. A group that cannot be read does not stop the others. With `withinMs`,
 * each read is retried with backoff until that many milliseconds have passed (a pass's describe
 * deadline); without, the client's own retries apply.
 */
export async function readGroups(elb: ElbTargets, routing: RoutingConfig, withinMs?: () => number): Promise<GroupReads> {
  const described = await Promise.allSettled(
    Object.entries(routing.capabilities).map(
      async ([capability, route]): Promise<ObservedGroup> => ({
        capability,
        targetGroupArn: route.targetGroupArn,
        targets: await (withinMs ? elb.describeWithin(route.targetGroupArn, withinMs()) : elb.describe(route.targetGroupArn)),
      }),
    ),
  );
  return {
    groups: described.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    unread: described.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])),
  };
}

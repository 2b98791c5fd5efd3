import type {
  LoadBalancerAttribute,
  Rule,
  TargetDescription,
  TargetGroup,
  TargetGroupAttribute,
  TargetHealth,
  TargetHealthDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * The data plane's contract with the outside: where it reads the load balancer's configuration
 * (a {@link LoadBalancerStateSource}) and where it reports target health (a
 * {@link TargetHealthSink}). Every shape is the ELBv2 API's, as `@aws-sdk/client-elastic-load-
 * balancing-v2` returns it, so a source can pass DescribeRules, DescribeTargetGroups,
 * DescribeTargetGroupAttributes and DescribeTargetHealth output straight through.
 */

/** A registered target: a DescribeTargetHealth entry, or a bare TargetDescription. */
export type RegisteredTarget = TargetHealthDescription | TargetDescription;

/** One target group and what is registered in it. */
export interface TargetGroupSnapshot {
  /** The group as DescribeTargetGroups returns it (port, protocol, health check settings). */
  readonly targetGroup: TargetGroup;
  /** DescribeTargetGroupAttributes output (algorithm, stickiness, slow start, deregistration delay). @default ALB defaults */
  readonly attributes?: readonly TargetGroupAttribute[];
  /**
   * The targets registered now. Entries of DescribeTargetHealth whose state is `draining`, or
   * `unused` with reason `Target.NotRegistered`, count as deregistered: a source that already
   * models deregistration may pass them.
   * A target that disappears from this list starts draining here, for the group's
   * deregistration delay.
   */
  readonly targets: readonly RegisteredTarget[];
}

/** Everything the data plane routes by, read at one moment. */
export interface LoadBalancerSnapshot {
  /** The listener's rules, default rule included: DescribeRules({ ListenerArn }).Rules. */
  readonly rules: readonly Rule[];
  readonly targetGroups: readonly TargetGroupSnapshot[];
  /** The listener's port, sent to targets as `X-Forwarded-Port`. @default the data plane's own port */
  readonly listenerPort?: number;
  /** DescribeLoadBalancerAttributes output (idle timeout, X-Forwarded-For mode). @default ALB defaults */
  readonly loadBalancerAttributes?: readonly LoadBalancerAttribute[];
}

/**
 * Where the data plane reads the load balancer's state. `snapshot()` is called at start, every
 * poll interval, and at once after `subscribe`'s callback fires; a rejected snapshot keeps the
 * last good one (and is reported through `onError`).
 */
export interface LoadBalancerStateSource {
  snapshot(): Promise<LoadBalancerSnapshot>;
  /** Optional push: call `onChange` when the state changed; returns an unsubscribe function. */
  subscribe?(onChange: () => void): () => void;
}

/** A target's health changed, in DescribeTargetHealth's shape. */
export interface TargetHealthChange {
  readonly targetGroupArn: string;
  readonly target: { readonly Id: string; readonly Port: number };
  readonly health: TargetHealth;
  readonly previous?: TargetHealth;
  /** Epoch milliseconds. */
  readonly at: number;
}

/**
 * Where the data plane reports target health (e.g. into moto, so DescribeTargetHealth shows real
 * states). Called once per change, in order per target; a slow or failing sink never delays
 * routing (errors go to `onError`). A target whose draining ended is reported `unused` /
 * `Target.NotRegistered` once and then forgotten.
 */
export interface TargetHealthSink {
  onTargetHealth(change: TargetHealthChange): void | Promise<void>;
}

/** How a target id is reached: the data plane connects to `host:port`. */
export type TargetAddressResolver = (targetGroup: TargetGroup, target: { readonly Id: string; readonly Port: number }) => { host: string; port: number };

/** The default: an `ip` target's id is its address (IPv6 given bare or in brackets). */
export const targetIdIsAddress: TargetAddressResolver = (_group, target) => ({
  host: target.Id.startsWith('[') && target.Id.endsWith(']') ? target.Id.slice(1, -1) : target.Id,
  port: target.Port,
});

/** The description and, for a DescribeTargetHealth entry, whether ELB already counts it as gone. */
export function readRegisteredTarget(entry: RegisteredTarget): { description?: TargetDescription; deregistered: boolean } {
  if ('Target' in entry || 'TargetHealth' in entry) {
    const e = entry as TargetHealthDescription;
    const state = e.TargetHealth?.State;
    // `unused` for another reason (group not in use, instance stopped) is still registered; only
    // a sink that echoes our own states back would otherwise turn them into deregistrations.
    const deregistered = state === 'draining' || (state === 'unused' && e.TargetHealth?.Reason === 'Target.NotRegistered');
    return { ...(e.Target ? { description: e.Target } : {}), deregistered };
  }
  return { description: entry as TargetDescription, deregistered: false };
}

/** `id:port`, the key of a target in a group (a target is keyed by id and port). */
export function targetKey(id: string, port: number): string {
  return `${id}:${port}`;
}

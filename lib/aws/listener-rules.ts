import { Action, DescribeListenersCommand, DescribeRulesCommand, ElasticLoadBalancingV2Client, ModifyRuleCommand, Rule } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { WeightChange, WeightedRule } from '../core/variant-weights';

/**
 * The listener rules agent-lb reads and changes for weighted variants: those whose forward
 * action spreads requests over several target groups. Reads are Describe* calls (their own
 * throttle bucket: burst 40, 10/s); a change is one ModifyRule, which replaces the rule's
 * actions, so the forward action is sent back whole (its group stickiness included) with only
 * the weights changed.
 */

/** A weighted rule as read, with the actions a ModifyRule has to send back. */
export interface ReadRule extends WeightedRule {
  readonly actions: readonly Action[];
}

/** DescribeRules and DescribeListeners take a page size of at most 400. */
const PAGE_SIZE = 400;

function weightedOf(rule: Rule): ReadRule | undefined {
  const forward = rule.Actions?.find((a) => a.Type === 'forward');
  const groups = forward?.ForwardConfig?.TargetGroups ?? [];
  if (!rule.RuleArn || groups.length < 2 || rule.IsDefault) return undefined;
  return {
    ruleArn: rule.RuleArn,
    groups: groups.map((g) => ({ targetGroupArn: g.TargetGroupArn ?? '', weight: g.Weight ?? 1 })),
    actions: rule.Actions ?? [],
  };
}

/** The listeners whose rules count: `listenerArn` itself, or every listener of `loadBalancerArn`. */
async function listenersOf(client: ElasticLoadBalancingV2Client, on: { readonly loadBalancerArn?: string; readonly listenerArn?: string }): Promise<string[]> {
  if (on.listenerArn) return [on.listenerArn];
  const arns: string[] = [];
  let marker: string | undefined;
  do {
    const page = await client.send(new DescribeListenersCommand({ LoadBalancerArn: on.loadBalancerArn, PageSize: PAGE_SIZE, ...(marker ? { Marker: marker } : {}) }));
    for (const l of page.Listeners ?? []) if (l.ListenerArn) arns.push(l.ListenerArn);
    marker = page.NextMarker;
  } while (marker);
  return arns;
}

/** Every rule with a weighted forward action on the listener (or on each listener of the load balancer). */
export async function readWeightedRules(
  client: ElasticLoadBalancingV2Client,
  on: { readonly loadBalancerArn?: string; readonly listenerArn?: string },
  abortSignal?: AbortSignal,
): Promise<ReadRule[]> {
  const rules: ReadRule[] = [];
  for (const listenerArn of await listenersOf(client, on)) {
    let marker: string | undefined;
    do {
      const page = await client.send(new DescribeRulesCommand({ ListenerArn: listenerArn, PageSize: PAGE_SIZE, ...(marker ? { Marker: marker } : {}) }), { abortSignal });
      for (const r of page.Rules ?? []) {
        const weighted = weightedOf(r);
        if (weighted) rules.push(weighted);
      }
      marker = page.NextMarker;
    } while (marker);
  }
  return rules;
}

/** Sends `change` (one ModifyRule): the rule's actions as read, with the forward action's weights replaced. */
export async function applyWeights(client: ElasticLoadBalancingV2Client, rule: ReadRule, change: WeightChange, abortSignal?: AbortSignal): Promise<void> {
  const weights = new Map(change.groups.map((g) => [g.targetGroupArn, g.weight]));
  const Actions = rule.actions.map((a): Action => {
    if (a.Type !== 'forward' || !a.ForwardConfig) return a;
    const { TargetGroupArn: _single, ...rest } = a;
    return {
      ...rest,
      ForwardConfig: {
        ...a.ForwardConfig,
        TargetGroups: (a.ForwardConfig.TargetGroups ?? []).map((g) => ({ ...g, Weight: weights.get(g.TargetGroupArn ?? '') ?? g.Weight })),
      },
    };
  });
  await client.send(new ModifyRuleCommand({ RuleArn: rule.ruleArn, Actions }), { abortSignal });
}

/** One condition of a rule, as a person reads it: `X-Agent-Capability: vision`, `path /agents/vision/*`. */
function conditionText(rule: Rule): string {
  return (rule.Conditions ?? [])
    .map((c) => {
      if (c.Field === 'http-header' && c.HttpHeaderConfig) return `${c.HttpHeaderConfig.HttpHeaderName}: ${(c.HttpHeaderConfig.Values ?? []).join(' or ')}`;
      if (c.Field === 'path-pattern') return `path ${(c.PathPatternConfig?.Values ?? c.Values ?? []).join(' or ')}`;
      if (c.Field === 'host-header') return `host ${(c.HostHeaderConfig?.Values ?? c.Values ?? []).join(' or ')}`;
      return c.Field ?? '?';
    })
    .join(' and ');
}

/**
 * Target group ARN → how requests reach it: the conditions of every rule whose forward action
 * includes the group (with a weight above 0), in priority order. Describe* calls only.
 */
export async function routesByGroup(client: ElasticLoadBalancingV2Client, on: { readonly loadBalancerArn?: string; readonly listenerArn?: string }): Promise<Record<string, string[]>> {
  const rules: Rule[] = [];
  for (const listenerArn of await listenersOf(client, on)) {
    let marker: string | undefined;
    do {
      const page = await client.send(new DescribeRulesCommand({ ListenerArn: listenerArn, PageSize: PAGE_SIZE, ...(marker ? { Marker: marker } : {}) }));
      rules.push(...(page.Rules ?? []).filter((r) => !r.IsDefault));
      marker = page.NextMarker;
    } while (marker);
  }
  rules.sort((a, b) => Number(a.Priority) - Number(b.Priority));
  const out: Record<string, string[]> = {};
  for (const rule of rules) {
    const forward = rule.Actions?.find((a) => a.Type === 'forward');
    const groups = forward?.ForwardConfig?.TargetGroups?.filter((g) => (g.Weight ?? 1) > 0).map((g) => g.TargetGroupArn) ?? [forward?.TargetGroupArn];
    for (const arn of groups) if (arn) (out[arn] ??= []).push(conditionText(rule));
  }
  return out;
}

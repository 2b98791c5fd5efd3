import { evaluateRules, ListenerRequest } from './listener-rules';
import {
  appCookieSetCookies,
  appCookieTarget,
  groupCookieSetCookies,
  groupCookieTarget,
  lbCookieSetCookies,
  lbCookieTarget,
  parseCookies,
} from './stickiness';
import { pickTargetGroup, selectTarget } from './target-selection';
import type { RoutingView } from './tracked-state';

/**
 * One request's way through the listener: rule evaluation, the weighted choice of a target
 * group, stickiness, and target selection, down to the cookies the response must carry. It
 * advances the round robin of the group it picks from; nothing else changes.
 */

export interface RuleRef {
  readonly ruleArn?: string;
  /** `default`, a priority, or `none` when the listener had no default rule. */
  readonly priority: string;
}

export type RoutingDecision =
  | {
      readonly kind: 'forward';
      readonly rule: RuleRef;
      readonly targetGroupArn: string;
      readonly targetKey: string;
      readonly host: string;
      readonly port: number;
      readonly protocol: 'HTTP' | 'HTTPS';
      /** Whether a stickiness cookie chose the target. */
      readonly via: 'stickiness' | 'algorithm';
      /** The group failed open: the target may be unhealthy. */
      readonly failOpen: boolean;
      /** `Set-Cookie` lines every response to this request carries (AWSALB, AWSALBTG). */
      readonly setCookies: readonly string[];
      /**
       * Application-based stickiness: `setCookies` go out when the target's response sets the
       * cookie `name`, or `always` when the request already belonged to a sticky session.
       */
      readonly appCookie?: { readonly name: string; readonly always: boolean; readonly setCookies: readonly string[] };
    }
  | {
      readonly kind: 'fixed-response';
      readonly rule: RuleRef;
      readonly statusCode: number;
      readonly contentType?: string;
      readonly body?: string;
    }
  | {
      /** A Lambda target group: the load balancer invokes its function with the request. */
      readonly kind: 'invoke';
      readonly rule: RuleRef;
      readonly targetGroupArn: string;
      readonly functionArn: string;
      /** The group's `lambda.multi_value_headers.enabled`. */
      readonly multiValueHeaders: boolean;
    }
  | {
      /** The load balancer answers itself: 503 when there is no target to send to, 500 for an action it cannot perform. */
      readonly kind: 'load-balancer-error';
      readonly statusCode: 500 | 503;
      readonly rule: RuleRef;
      readonly targetGroupArn?: string;
      /** Why, in words, for logs. */
      readonly reason: string;
    };

export function routeRequest(engine: RoutingView, request: ListenerRequest, now: number): RoutingDecision {
  const match = evaluateRules(engine.rules, request);
  const rule: RuleRef = { ...(match.ruleArn !== undefined ? { ruleArn: match.ruleArn } : {}), priority: match.priority };
  const action = match.action;
  switch (action.type) {
    case 'no-default-rule':
      return { kind: 'load-balancer-error', statusCode: 503, rule, reason: 'no rule matched and the listener has no default rule' };
    case 'unsupported':
      return { kind: 'load-balancer-error', statusCode: 500, rule, reason: `the local data plane does not perform ${action.actionType} actions` };
    case 'fixed-response':
      return {
        kind: 'fixed-response',
        rule,
        statusCode: action.statusCode,
        ...(action.contentType !== undefined ? { contentType: action.contentType } : {}),
        ...(action.messageBody !== undefined ? { body: action.messageBody } : {}),
      };
    case 'forward':
      break;
  }

  const key = engine.stickinessKey;
  const cookies = parseCookies(request.headers.cookie);
  const groupStickyMs = action.groupStickinessSeconds !== undefined ? action.groupStickinessSeconds * 1000 : undefined;
  const pick = pickTargetGroup(action.targetGroups, engine.random, groupStickyMs !== undefined ? groupCookieTarget(cookies, key, now) : undefined);
  if (pick === undefined) return { kind: 'load-balancer-error', statusCode: 503, rule, reason: 'every target group of the forward action weighs 0' };
  const group = engine.groups.get(pick.targetGroupArn);
  if (group === undefined) {
    return { kind: 'load-balancer-error', statusCode: 503, rule, targetGroupArn: pick.targetGroupArn, reason: 'the target group is not in the snapshot' };
  }

  if (group.lambda !== undefined) {
    const functionArn = group.lambda.functions[0];
    if (functionArn === undefined) return { kind: 'load-balancer-error', statusCode: 503, rule, targetGroupArn: group.arn, reason: 'the Lambda target group has no function registered' };
    return { kind: 'invoke', rule, targetGroupArn: group.arn, functionArn, multiValueHeaders: group.lambda.multiValueHeaders };
  }

  const stickiness = group.policy.stickiness;
  // "Application-based stickiness does not work with weighted target groups."
  const appStickiness = stickiness?.type === 'app_cookie' && action.targetGroups.length === 1 ? stickiness : undefined;
  const app = appStickiness !== undefined ? appCookieTarget(cookies, key, group.arn, now) : undefined;
  const stickyTarget = stickiness?.type === 'lb_cookie' ? lbCookieTarget(cookies, key, group.arn, now) : app?.target;

  const selection = selectTarget({
    targets: engine.candidates(group),
    policy: group.policy,
    now,
    random: engine.random,
    roundRobin: group.roundRobin,
    ...(stickyTarget !== undefined ? { stickyTarget } : {}),
  });
  if (selection.kind === 'no-target') {
    const why = selection.reason === 'no-registered-targets' ? 'the target group has no registered targets' : 'the target group has no target in service (initial or draining only)';
    return { kind: 'load-balancer-error', statusCode: 503, rule, targetGroupArn: group.arn, reason: why };
  }
  group.roundRobin = selection.roundRobin;
  const target = group.targets.get(selection.key);
  if (target === undefined) throw new Error(`selected target ${selection.key} is not tracked in ${group.arn}`);

  const setCookies: string[] = [];
  if (groupStickyMs !== undefined) setCookies.push(...groupCookieSetCookies(key, group.arn, now, groupStickyMs));
  if (stickiness?.type === 'lb_cookie') setCookies.push(...lbCookieSetCookies(key, group.arn, target.key, now, stickiness.durationMs));
  return {
    kind: 'forward',
    rule,
    targetGroupArn: group.arn,
    targetKey: target.key,
    host: target.host,
    port: target.trafficPort,
    protocol: group.group.Protocol === 'HTTPS' ? 'HTTPS' : 'HTTP',
    via: selection.via,
    failOpen: selection.failOpen,
    setCookies,
    ...(appStickiness !== undefined && app !== undefined
      ? {
          appCookie: {
            name: appStickiness.cookieName,
            always: app.present,
            setCookies: appCookieSetCookies(cookies, key, group.arn, target.key, now, appStickiness.durationMs),
          },
        }
      : {}),
  };
}

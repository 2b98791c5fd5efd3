import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Action, Rule, RuleCondition } from '@aws-sdk/client-elastic-load-balancing-v2';
import { wildcardMatch } from './wildcard';

/**
 * Listener rule evaluation as the ELB user guide describes it ("Listener rules for your
 * Application Load Balancer"): "When a listener receives a request, it evaluates the request
 * against each rule in priority order, starting with the lowest numbered rule." "The default
 * rule is evaluated last." A rule applies when all of its conditions match; within one
 * condition, "if you specify multiple strings, the condition is satisfied if one of them
 * matches".
 *
 * Rules come in the shape of DescribeRules output (`Rule` of `@aws-sdk/client-elastic-load-
 * balancing-v2`), so a snapshot can be fed straight from the API. Conditions may use the
 * `*Config` members or the legacy `Values` list (`host-header`, `path-pattern`), as moto and
 * older API callers write them.
 */

/** One HTTP request as the listener sees it. */
export interface ListenerRequest {
  /** Request method, as sent (`GET`). */
  readonly method: string;
  /** Request target as sent: path and optional query string (`/agents/vision/x?a=1`). */
  readonly url: string;
  /**
   * Request headers, names in lower case, every occurrence of a header in order (Node's
   * `IncomingMessage.headersDistinct`).
   */
  readonly headers: Readonly<Record<string, readonly string[] | undefined>>;
  /** Address of the client connection, for `source-ip` conditions. */
  readonly sourceIp?: string;
}

/** A target group of a forward action with its weight (0–999; a lone group weighs 1). */
export interface WeightedTargetGroup {
  readonly targetGroupArn: string;
  readonly weight: number;
}

/** What the matched rule says to do with the request. */
export type RuleAction =
  | {
      readonly type: 'forward';
      readonly targetGroups: readonly WeightedTargetGroup[];
      /** Target group stickiness of the action (the `AWSALBTG` cookie), in seconds; absent when off. */
      readonly groupStickinessSeconds?: number;
    }
  | {
      readonly type: 'fixed-response';
      readonly statusCode: number;
      readonly contentType?: string;
      readonly messageBody?: string;
    }
  | {
      /** An action type the local data plane does not perform (redirect, authenticate-*, jwt-validation). */
      readonly type: 'unsupported';
      readonly actionType: string;
    };

/** The rule that matched and its action. */
export interface RuleMatch {
  readonly ruleArn?: string;
  /** `default` for the default rule, else the priority as DescribeRules gives it. */
  readonly priority: string;
  readonly action: RuleAction;
}

/** Why the whole listener had no answer: only when the snapshot has no default rule. */
export interface NoRuleMatch {
  readonly ruleArn?: undefined;
  readonly priority: 'none';
  readonly action: { readonly type: 'no-default-rule' };
}

/** A path (without the query string) and the decoded query pairs of a request target. */
export function splitRequestTarget(url: string): { path: string; query: [string, string][] } {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? [] : [...new URLSearchParams(url.slice(q + 1)).entries()];
  return { path: path === '' ? '/' : path, query };
}

function conditionValues(condition: RuleCondition): readonly string[] {
  switch (condition.Field) {
    case 'host-header':
      return condition.HostHeaderConfig?.Values ?? condition.Values ?? [];
    case 'path-pattern':
      return condition.PathPatternConfig?.Values ?? condition.Values ?? [];
    case 'http-header':
      return condition.HttpHeaderConfig?.Values ?? condition.Values ?? [];
    case 'http-request-method':
      return condition.HttpRequestMethodConfig?.Values ?? condition.Values ?? [];
    case 'source-ip':
      return condition.SourceIpConfig?.Values ?? condition.Values ?? [];
    default:
      return condition.Values ?? [];
  }
}

/** `Host` without a trailing `:port` (host conditions compare host names). */
function hostName(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end < 0 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

function sourceIpMatches(cidrs: readonly string[], sourceIp: string | undefined): boolean {
  if (sourceIp === undefined) return false;
  const ip = sourceIp.startsWith('::ffff:') && isIPv4(sourceIp.slice(7)) ? sourceIp.slice(7) : sourceIp;
  const family = isIPv4(ip) ? 'ipv4' : isIPv6(ip) ? 'ipv6' : undefined;
  if (family === undefined) return false;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, bits] = cidr.split('/');
    const cidrFamily = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    if (cidrFamily === undefined || bits === undefined) continue;
    list.addSubnet(address, Number(bits), cidrFamily);
  }
  return list.check(ip, family);
}

/**
 * Whether one condition holds for the request. Comparison per the ELB user guide:
 * - `http-header`: "The header name and the match evaluation are not case-sensitive"; values
 *   take `*` and `?`; "if the same header appears multiple times in the request, we search them
 *   in order until a match is found";
 * - `path-pattern`: "case-sensitive", "applied only to the path of the URL, not to its query
 *   parameters" (the path is compared as sent, without percent-decoding);
 * - `host-header`: "not case-sensitive", wildcards allowed (compared without the port);
 * - `http-request-method`: "case-sensitive", no wildcards;
 * - `query-string`: "not case-sensitive", wildcards in key and value, a pair without a key
 *   matches the value of any key (compared after URL decoding);
 * - `source-ip`: CIDR blocks, against the address of the client connection.
 * A condition with only `RegexValues`, or of an unknown field, never matches.
 */
export function conditionMatches(condition: RuleCondition, request: ListenerRequest): boolean {
  const values = conditionValues(condition);
  switch (condition.Field) {
    case 'http-header': {
      const name = (condition.HttpHeaderConfig?.HttpHeaderName ?? '').toLowerCase();
      const seen = request.headers[name] ?? [];
      return seen.some((v) => values.some((pattern) => wildcardMatch(pattern, v, { caseInsensitive: true })));
    }
    case 'path-pattern': {
      const { path } = splitRequestTarget(request.url);
      return values.some((pattern) => wildcardMatch(pattern, path));
    }
    case 'host-header': {
      const host = request.headers.host?.[0];
      return host !== undefined && values.some((pattern) => wildcardMatch(pattern, hostName(host), { caseInsensitive: true }));
    }
    case 'http-request-method':
      return values.includes(request.method);
    case 'query-string': {
      const pairs = condition.QueryStringConfig?.Values ?? [];
      const { query } = splitRequestTarget(request.url);
      return pairs.some((pair) =>
        query.some(
          ([key, value]) =>
            (pair.Key === undefined || wildcardMatch(pair.Key, key, { caseInsensitive: true })) &&
            wildcardMatch(pair.Value ?? '*', value, { caseInsensitive: true }),
        ),
      );
    }
    case 'source-ip':
      return sourceIpMatches(values, request.sourceIp);
    default:
      return false;
  }
}

const TERMINAL_ACTIONS = new Set(['forward', 'fixed-response', 'redirect']);

/** The action a rule performs: its last action by `Order` ("must be the last action to be performed"). */
export function ruleAction(actions: readonly Action[] | undefined): RuleAction {
  const ordered = [...(actions ?? [])].sort((a, b) => (a.Order ?? 0) - (b.Order ?? 0));
  const last = ordered[ordered.length - 1];
  if (last === undefined) return { type: 'unsupported', actionType: 'none' };
  const preceding = ordered.slice(0, -1).find((a) => !TERMINAL_ACTIONS.has(String(a.Type)));
  if (preceding !== undefined) return { type: 'unsupported', actionType: String(preceding.Type) };
  if (last.Type === 'forward') {
    const tuples = last.ForwardConfig?.TargetGroups ?? [];
    const targetGroups: WeightedTargetGroup[] =
      tuples.length > 0
        ? tuples.flatMap((t) => (t.TargetGroupArn ? [{ targetGroupArn: t.TargetGroupArn, weight: t.Weight ?? 1 }] : []))
        : last.TargetGroupArn
          ? [{ targetGroupArn: last.TargetGroupArn, weight: 1 }]
          : [];
    const stickiness = last.ForwardConfig?.TargetGroupStickinessConfig;
    return {
      type: 'forward',
      targetGroups,
      ...(stickiness?.Enabled ? { groupStickinessSeconds: stickiness.DurationSeconds ?? 3600 } : {}),
    };
  }
  if (last.Type === 'fixed-response') {
    const config = last.FixedResponseConfig;
    return {
      type: 'fixed-response',
      statusCode: Number(config?.StatusCode ?? 200),
      ...(config?.ContentType !== undefined ? { contentType: config.ContentType } : {}),
      ...(config?.MessageBody !== undefined ? { messageBody: config.MessageBody } : {}),
    };
  }
  return { type: 'unsupported', actionType: String(last.Type) };
}

function isDefaultRule(rule: Rule): boolean {
  return rule.IsDefault === true || rule.Priority === 'default';
}

/**
 * Rules in evaluation order: numbered rules by ascending priority, then the default rule.
 * A rule without a numeric priority that is not the default sorts after every numbered rule.
 */
export function orderRules(rules: readonly Rule[]): Rule[] {
  const priority = (r: Rule) => {
    if (isDefaultRule(r)) return Number.POSITIVE_INFINITY;
    const n = Number(r.Priority);
    return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
  };
  return [...rules].sort((a, b) => priority(a) - priority(b));
}

/**
 * The first rule, in priority order, all of whose conditions match; the default rule (which
 * has no conditions) when none does. Rules must come from one listener.
 */
export function evaluateRules(rules: readonly Rule[], request: ListenerRequest): RuleMatch | NoRuleMatch {
  for (const rule of orderRules(rules)) {
    const isDefault = isDefaultRule(rule);
    const conditions = rule.Conditions ?? [];
    if (!isDefault && conditions.length === 0) continue;
    if (conditions.every((c) => conditionMatches(c, request))) {
      return {
        ...(rule.RuleArn !== undefined ? { ruleArn: rule.RuleArn } : {}),
        priority: isDefault ? 'default' : String(rule.Priority),
        action: ruleAction(rule.Actions),
      };
    }
  }
  return { priority: 'none', action: { type: 'no-default-rule' } };
}

/** Problems the data plane cannot model faithfully in these rules, one line each, for a log. */
export function unsupportedRuleFeatures(rules: readonly Rule[]): string[] {
  const problems: string[] = [];
  for (const rule of rules) {
    const name = `rule ${rule.Priority ?? '?'}${rule.RuleArn ? ` (${rule.RuleArn})` : ''}`;
    for (const c of rule.Conditions ?? []) {
      const regex = c.HostHeaderConfig?.RegexValues ?? c.PathPatternConfig?.RegexValues ?? c.HttpHeaderConfig?.RegexValues;
      if (regex !== undefined && regex.length > 0) problems.push(`${name}: regex values in a ${c.Field} condition are not evaluated locally; the condition never matches`);
      if (!['host-header', 'path-pattern', 'http-header', 'http-request-method', 'query-string', 'source-ip'].includes(String(c.Field))) {
        problems.push(`${name}: unknown condition field ${JSON.stringify(c.Field)}; the condition never matches`);
      }
    }
    if ((rule.Transforms ?? []).length > 0) problems.push(`${name}: transforms are not applied locally`);
    const action = ruleAction(rule.Actions);
    if (action.type === 'unsupported') problems.push(`${name}: action ${JSON.stringify(action.actionType)} is not performed locally; requests get a 500`);
  }
  return problems;
}

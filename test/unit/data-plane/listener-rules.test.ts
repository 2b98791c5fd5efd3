import type { Rule } from '@aws-sdk/client-elastic-load-balancing-v2';
import { describe, expect, it } from 'vitest';
import { evaluateRules, ListenerRequest, ruleAction, splitRequestTarget, unsupportedRuleFeatures } from '../../../lib/local/data-plane/listener-rules';

const forward = (arn: string) => [{ Type: 'forward' as const, TargetGroupArn: arn, ForwardConfig: { TargetGroups: [{ TargetGroupArn: arn, Weight: 1 }] } }];
const header = (name: string, ...values: string[]) => ({ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: name, Values: values } });
const path = (...values: string[]) => ({ Field: 'path-pattern', PathPatternConfig: { Values: values } });

/** What the capability router deploys: a header rule and a path rule per capability, and the 404 default. */
const ROUTER_RULES: Rule[] = [
  { RuleArn: 'rule/default', Priority: 'default', IsDefault: true, Conditions: [], Actions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404', ContentType: 'application/json', MessageBody: '{"error":"unknown capability"}' } }] },
  { RuleArn: 'rule/speech-path', Priority: '25300', Conditions: [path('/agents/speech', '/agents/speech/*')], Actions: forward('tg/speech') },
  { RuleArn: 'rule/vision-header', Priority: '120', Conditions: [header('X-Agent-Capability', 'vision')], Actions: forward('tg/vision') },
  { RuleArn: 'rule/speech-header', Priority: '7', Conditions: [header('X-Agent-Capability', 'speech')], Actions: forward('tg/speech') },
  { RuleArn: 'rule/vision-path', Priority: '25120', Conditions: [path('/agents/vision', '/agents/vision/*')], Actions: forward('tg/vision') },
];

function req(url: string, headers: Record<string, string | string[]> = {}, method = 'GET', sourceIp = '127.0.0.1'): ListenerRequest {
  return {
    method,
    url,
    sourceIp,
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v : [v]])),
  };
}

const ruleOf = (rules: Rule[], r: ListenerRequest) => evaluateRules(rules, r).ruleArn;

describe('evaluateRules with the capability router rules', () => {
  it.each<[string, ListenerRequest, string]>([
    ['header names match in any letter case', req('/', { 'x-agent-capability': 'vision' }), 'rule/vision-header'],
    ['header values match in any letter case', req('/', { 'X-Agent-Capability': 'ViSiOn' }), 'rule/vision-header'],
    ['a header value must match whole', req('/', { 'X-Agent-Capability': 'visionary' }), 'rule/default'],
    ['the path rule takes a request without the header', req('/agents/vision/hello'), 'rule/vision-path'],
    ['the path without a trailing segment', req('/agents/vision'), 'rule/vision-path'],
    ['path patterns are case-sensitive', req('/agents/Vision/hello'), 'rule/default'],
    ['the query string is not part of the path', req('/agents/vision?x=/agents/speech/'), 'rule/vision-path'],
    ['a query string cannot make a path match', req('/other?p=/agents/vision/x'), 'rule/default'],
    ['the lowest priority wins when two rules match', req('/agents/vision/x', { 'X-Agent-Capability': 'speech' }), 'rule/speech-header'],
    ['priorities compare as numbers, not strings', req('/agents/speech/x', { 'X-Agent-Capability': 'vision' }), 'rule/vision-header'],
    ['nothing matches: the default rule', req('/'), 'rule/default'],
    ['the second occurrence of a header is searched too', req('/', { 'X-Agent-Capability': ['nope', 'speech'] }), 'rule/speech-header'],
  ])('%s', (_why, request, expected) => {
    expect(ruleOf(ROUTER_RULES, request)).toBe(expected);
  });

  it('returns the forward action of the rule and the default fixed response', () => {
    expect(evaluateRules(ROUTER_RULES, req('/', { 'X-Agent-Capability': 'vision' }))).toEqual({
      ruleArn: 'rule/vision-header',
      priority: '120',
      action: { type: 'forward', targetGroups: [{ targetGroupArn: 'tg/vision', weight: 1 }] },
    });
    expect(evaluateRules(ROUTER_RULES, req('/nowhere')).action).toEqual({
      type: 'fixed-response',
      statusCode: 404,
      contentType: 'application/json',
      messageBody: '{"error":"unknown capability"}',
    });
  });
});

describe('conditions', () => {
  const only = (conditions: Rule['Conditions']): Rule[] => [
    { RuleArn: 'hit', Priority: '1', Conditions: conditions, Actions: forward('tg/a') },
    { RuleArn: 'miss', Priority: 'default', IsDefault: true, Actions: forward('tg/default') },
  ];
  it.each<[string, Rule['Conditions'], ListenerRequest, boolean]>([
    ['header wildcard *', [header('X-Agent-Capability', 'vis*')], req('/', { 'X-Agent-Capability': 'VISION-large' }), true],
    ['header wildcard ?', [header('X-Agent-Capability', 'visio?')], req('/', { 'X-Agent-Capability': 'visioN' }), true],
    ['header wildcard ? needs one character', [header('X-Agent-Capability', 'vision?')], req('/', { 'X-Agent-Capability': 'vision' }), false],
    ['any value of a condition may match', [header('X-Agent-Capability', 'a', 'b', 'vision')], req('/', { 'X-Agent-Capability': 'vision' }), true],
    ['a missing header never matches, not even *', [header('X-Agent-Capability', '*')], req('/'), false],
    ['an empty header matches *', [header('X-Agent-Capability', '*')], req('/', { 'X-Agent-Capability': '' }), true],
    ['all conditions of a rule must match', [header('X-A', 'x'), path('/p/*')], req('/q/1', { 'X-A': 'x' }), false],
    ['all conditions of a rule match', [header('X-A', 'x'), path('/p/*')], req('/p/1', { 'X-A': 'X' }), true],
    ['legacy Values of path-pattern', [{ Field: 'path-pattern', Values: ['/legacy/*'] }], req('/legacy/x'), true],
    ['host-header ignores case and port', [{ Field: 'host-header', HostHeaderConfig: { Values: ['*.example.com'] } }], req('/', { Host: 'API.Example.com:8080' }), true],
    ['host-header *.example.com does not match example.com', [{ Field: 'host-header', Values: ['*.example.com'] }], req('/', { Host: 'example.com' }), false],
    ['method is case-sensitive', [{ Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['POST'] } }], req('/', {}, 'post'), false],
    ['method matches exactly', [{ Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['GET', 'POST'] } }], req('/', {}, 'POST'), true],
    ['query key and value, any case', [{ Field: 'query-string', QueryStringConfig: { Values: [{ Key: 'version', Value: 'v1' }] } }], req('/?a=b&Version=V1'), true],
    ['query value of any key', [{ Field: 'query-string', QueryStringConfig: { Values: [{ Value: '*example*' }] } }], req('/?q=an%20example%21'), true],
    ['query pair must match within one parameter', [{ Field: 'query-string', QueryStringConfig: { Values: [{ Key: 'a', Value: 'y' }] } }], req('/?a=x&b=y'), false],
    ['source-ip in a CIDR block', [{ Field: 'source-ip', SourceIpConfig: { Values: ['10.0.0.0/8'] } }], req('/', {}, 'GET', '10.1.2.3'), true],
    ['source-ip as IPv4-mapped IPv6', [{ Field: 'source-ip', SourceIpConfig: { Values: ['127.0.0.0/8'] } }], req('/', {}, 'GET', '::ffff:127.0.0.1'), true],
    ['source-ip outside the block', [{ Field: 'source-ip', SourceIpConfig: { Values: ['10.0.0.0/8'] } }], req('/', {}, 'GET', '192.168.0.1'), false],
    ['regex-only conditions never match locally', [{ Field: 'path-pattern', PathPatternConfig: { RegexValues: ['^/.*$'] } }], req('/x'), false],
    ['an unknown field never matches', [{ Field: 'user-agent', Values: ['*'] }], req('/x'), false],
  ])('%s', (_why, conditions, request, hit) => {
    expect(ruleOf(only(conditions), request)).toBe(hit ? 'hit' : 'miss');
  });

  it('skips a non-default rule without conditions (ALB requires at least one)', () => {
    const rules: Rule[] = [
      { RuleArn: 'empty', Priority: '1', Conditions: [], Actions: forward('tg/a') },
      { RuleArn: 'default', Priority: 'default', IsDefault: true, Actions: forward('tg/b') },
    ];
    expect(ruleOf(rules, req('/'))).toBe('default');
  });

  it('answers no-default-rule when nothing matches and there is no default rule', () => {
    expect(evaluateRules([ROUTER_RULES[1]], req('/')).action).toEqual({ type: 'no-default-rule' });
  });
});

describe('ruleAction', () => {
  it.each<[string, Rule['Actions'], ReturnType<typeof ruleAction>]>([
    ['forward by TargetGroupArn only', [{ Type: 'forward', TargetGroupArn: 'tg/a' }], { type: 'forward', targetGroups: [{ targetGroupArn: 'tg/a', weight: 1 }] }],
    [
      'weighted forward with group stickiness',
      [
        {
          Type: 'forward',
          ForwardConfig: {
            TargetGroups: [
              { TargetGroupArn: 'tg/stable', Weight: 90 },
              { TargetGroupArn: 'tg/canary', Weight: 10 },
            ],
            TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 600 },
          },
        },
      ],
      {
        type: 'forward',
        targetGroups: [
          { targetGroupArn: 'tg/stable', weight: 90 },
          { targetGroupArn: 'tg/canary', weight: 10 },
        ],
        groupStickinessSeconds: 600,
      },
    ],
    [
      'disabled group stickiness is off',
      [{ Type: 'forward', ForwardConfig: { TargetGroups: [{ TargetGroupArn: 'tg/a', Weight: 0 }], TargetGroupStickinessConfig: { Enabled: false } } }],
      { type: 'forward', targetGroups: [{ targetGroupArn: 'tg/a', weight: 0 }] },
    ],
    ['fixed response', [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '503' } }], { type: 'fixed-response', statusCode: 503 }],
    ['redirect is not performed locally', [{ Type: 'redirect', RedirectConfig: { StatusCode: 'HTTP_301' } }], { type: 'unsupported', actionType: 'redirect' }],
    [
      'an authenticate action before forward is not performed',
      [
        { Type: 'forward', TargetGroupArn: 'tg/a', Order: 2 },
        { Type: 'authenticate-oidc', Order: 1 },
      ],
      { type: 'unsupported', actionType: 'authenticate-oidc' },
    ],
    ['the last action by Order is the one performed', [{ Type: 'fixed-response', Order: 2, FixedResponseConfig: { StatusCode: '418' } }, { Type: 'forward', TargetGroupArn: 'x', Order: 1 }], { type: 'fixed-response', statusCode: 418 }],
  ])('%s', (_why, actions, expected) => {
    expect(ruleAction(actions)).toEqual(expected);
  });
});

describe('splitRequestTarget', () => {
  it.each<[string, string, [string, string][]]>([
    ['/a/b?x=1&y=%2F', '/a/b', [['x', '1'], ['y', '/']]],
    ['/a%20b', '/a%20b', []],
    ['', '/', []],
    ['?q=1', '/', [['q', '1']]],
  ])('%j', (url, expectedPath, expectedQuery) => {
    expect(splitRequestTarget(url)).toEqual({ path: expectedPath, query: expectedQuery });
  });
});

describe('unsupportedRuleFeatures', () => {
  it('names each rule feature the data plane cannot honour', () => {
    const problems = unsupportedRuleFeatures([
      { RuleArn: 'r1', Priority: '1', Conditions: [{ Field: 'path-pattern', PathPatternConfig: { RegexValues: ['^/x$'] } }], Actions: forward('tg') },
      { RuleArn: 'r2', Priority: '2', Conditions: [path('/x')], Actions: [{ Type: 'redirect' }] },
      ...ROUTER_RULES,
    ]);
    expect(problems).toEqual([
      'rule 1 (r1): regex values in a path-pattern condition are not evaluated locally; the condition never matches',
      'rule 2 (r2): action "redirect" is not performed locally; requests get a 500',
    ]);
  });
});

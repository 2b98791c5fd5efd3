import type { Rule } from '@aws-sdk/client-elastic-load-balancing-v2';
import { describe, expect, it } from 'vitest';
import { DataPlaneEngine } from '../../../lib/local/data-plane/data-plane-engine';
import { albLambdaEvent, albLambdaResponse, LAMBDA_PAYLOAD_LIMIT } from '../../../lib/local/data-plane/lambda-target';

const TG = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/catalog/1';
const FN = 'arn:aws:lambda:us-east-1:000000000000:function:Catalog';

describe('albLambdaEvent: the event ALB invokes a Lambda target with', () => {
  const request = {
    method: 'GET',
    url: '/agents?revision=3&wait=5&name=a%20b&name=c',
    headers: { 'if-none-match': ['"1-x"'], 'x-forwarded-for': ['10.0.0.9'], accept: ['text/html', 'application/json'] },
    body: Buffer.alloc(0),
  };

  it('passes the path, the query as sent (not decoded, the last of repeated values) and the last value of each header', () => {
    expect(albLambdaEvent(TG, request, false)).toEqual({
      requestContext: { elb: { targetGroupArn: TG } },
      httpMethod: 'GET',
      path: '/agents',
      queryStringParameters: { revision: '3', wait: '5', name: 'c' },
      headers: { 'if-none-match': '"1-x"', 'x-forwarded-for': '10.0.0.9', accept: 'application/json' },
      body: '',
      isBase64Encoded: false,
    });
  });

  it('passes every value with multi-value headers on', () => {
    const e = albLambdaEvent(TG, request, true);
    expect(e.multiValueQueryStringParameters).toEqual({ revision: ['3'], wait: ['5'], name: ['a%20b', 'c'] });
    expect(e.multiValueHeaders?.accept).toEqual(['text/html', 'application/json']);
    expect(e.headers).toBeUndefined();
  });

  it.each([
    ['application/json', undefined, false],
    ['text/plain; charset=utf-8', undefined, false],
    ['application/vnd.api+json', undefined, false],
    ['application/octet-stream', undefined, true],
    ['application/json', 'gzip', true],
  ])('a %s body (content-encoding %s) is base64: %s', (type, encoding, base64) => {
    const e = albLambdaEvent(TG, { method: 'POST', url: '/x', headers: { 'content-type': [type], ...(encoding ? { 'content-encoding': [encoding] } : {}) }, body: Buffer.from('{"a":1}') }, false);
    expect(e.isBase64Encoded).toBe(base64);
    expect(e.body).toBe(base64 ? Buffer.from('{"a":1}').toString('base64') : '{"a":1}');
  });
});

describe('albLambdaResponse: what the client gets for the function\'s answer', () => {
  it('takes the status, its reason phrase, the headers and the body (base64 when it says so)', () => {
    expect(albLambdaResponse({ statusCode: 304, statusDescription: '304 Not Modified', headers: { etag: '"1"' }, body: '', isBase64Encoded: false }, false)).toEqual({
      ok: true,
      statusCode: 304,
      statusMessage: 'Not Modified',
      headers: { etag: '"1"' },
      body: Buffer.alloc(0),
    });
    const r = albLambdaResponse({ statusCode: 200, multiValueHeaders: { 'set-cookie': ['a=1', 'b=2'] }, body: Buffer.from('hi').toString('base64'), isBase64Encoded: true }, true);
    expect(r).toMatchObject({ ok: true, headers: { 'set-cookie': ['a=1', 'b=2'] }, body: Buffer.from('hi') });
  });

  it.each([
    ['no status', { body: 'x' }],
    ['a status out of range', { statusCode: 42 }],
    ['not an object', 'ok'],
    ['a body over 1 MB', { statusCode: 200, body: 'x'.repeat(LAMBDA_PAYLOAD_LIMIT + 1) }],
  ])('is a 502 for %s', (_, result) => {
    expect(albLambdaResponse(result, false)).toMatchObject({ ok: false, statusCode: 502 });
  });
});

describe('DataPlaneEngine with a Lambda target group', () => {
  const rules: Rule[] = [
    { RuleArn: 'rule/catalog', Priority: '10', Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/agents'] } }, { Field: 'http-request-method', HttpRequestMethodConfig: { Values: ['GET', 'HEAD'] } }], Actions: [{ Type: 'forward', TargetGroupArn: TG }] },
    { RuleArn: 'rule/default', Priority: 'default', IsDefault: true, Actions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404' } }] },
  ];
  const lambdaGroup = (targets: { Id: string }[], multi = 'false') => ({
    targetGroup: { TargetGroupArn: TG, TargetType: 'lambda' as const, HealthCheckEnabled: false },
    attributes: [{ Key: 'lambda.multi_value_headers.enabled', Value: multi }],
    targets: targets.map((t) => ({ Target: t, TargetHealth: { State: 'unavailable' as const, Reason: 'Target.HealthCheckDisabled' as const } })),
  });
  const get = (url: string, method = 'GET') => ({ method, url, headers: {} });

  it('invokes the function the group names, with the group\'s multi-value setting; checks nothing', () => {
    const e = new DataPlaneEngine({ stickinessKey: Buffer.alloc(32) });
    e.applySnapshot({ rules, targetGroups: [lambdaGroup([{ Id: FN }], 'true')] }, 0);
    expect(e.route(get('/agents?revision=1'), 0)).toEqual({ kind: 'invoke', rule: { ruleArn: 'rule/catalog', priority: '10' }, targetGroupArn: TG, functionArn: FN, multiValueHeaders: true });
    expect(e.dueChecks(0)).toEqual([]);
    e.invoked({ kind: 'invoke', rule: { priority: '10' }, targetGroupArn: TG, functionArn: FN, multiValueHeaders: true }, { by: 'target', statusCode: 200 });
    expect(e.metrics(0).targetGroups[0]).toMatchObject({ requests: 1, targetResponses: { '2xx': 1 } });
  });

  it('matches the exact path and method only, and answers 503 while no function is registered', () => {
    const e = new DataPlaneEngine({ stickinessKey: Buffer.alloc(32) });
    e.applySnapshot({ rules, targetGroups: [lambdaGroup([])] }, 0);
    expect(e.route(get('/agents'), 0)).toMatchObject({ kind: 'load-balancer-error', statusCode: 503 });
    expect(e.route(get('/agents/vision/x'), 0).kind).toBe('fixed-response');
    expect(e.route(get('/agents/'), 0).kind).toBe('fixed-response');
    expect(e.route(get('/agents', 'POST'), 0).kind).toBe('fixed-response');
  });
});

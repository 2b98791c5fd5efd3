import type { Rule, TargetGroupAttribute } from '@aws-sdk/client-elastic-load-balancing-v2';
import { describe, expect, it, test } from 'vitest';
import { DataPlaneEngine } from '../../../lib/local/data-plane/data-plane-engine';
import type { ListenerRequest } from '../../../lib/local/data-plane/listener-rules';
import type { RoutingDecision } from '../../../lib/local/data-plane/request-routing';
import type { LoadBalancerSnapshot, RegisteredTarget } from '../../../lib/local/data-plane/snapshot';
import { parseCookies } from '../../../lib/local/data-plane/stickiness';
import { mulberry32 } from '../../support/prng';

const headerRule = (priority: number, value: string, actions: Rule['Actions']): Rule => ({
  RuleArn: `rule/${value}`,
  Priority: String(priority),
  Conditions: [{ Field: 'http-header', HttpHeaderConfig: { HttpHeaderName: 'X-Agent-Capability', Values: [value] } }],
  Actions: actions,
});
const DEFAULT_RULE: Rule = { RuleArn: 'rule/default', Priority: 'default', IsDefault: true, Actions: [{ Type: 'fixed-response', FixedResponseConfig: { StatusCode: '404', ContentType: 'application/json', MessageBody: '{}' } }] };
const fwd = (arn: string): Rule['Actions'] => [{ Type: 'forward', TargetGroupArn: arn }];

function group(arn: string, targets: RegisteredTarget[], attributes: Record<string, string> = {}) {
  return {
    targetGroup: { TargetGroupArn: arn, TargetGroupName: arn.split('/')[1], Port: 80, Protocol: 'HTTP' as const, HealthCheckIntervalSeconds: 10, HealthCheckTimeoutSeconds: 5, HealthyThresholdCount: 2, UnhealthyThresholdCount: 2, HealthCheckPath: '/health' },
    attributes: Object.entries(attributes).map(([Key, Value]): TargetGroupAttribute => ({ Key, Value })),
    targets,
  };
}

function snapshot(groups: ReturnType<typeof group>[], rules: Rule[] = [headerRule(1, 'vision', fwd('tg/vision')), DEFAULT_RULE]): LoadBalancerSnapshot {
  return { rules, targetGroups: groups };
}

const req = (capability?: string, cookie?: string): ListenerRequest => ({
  method: 'GET',
  url: '/',
  headers: { ...(capability ? { 'x-agent-capability': [capability] } : {}), ...(cookie ? { cookie: [cookie] } : {}) },
});

function engine(seed = 1): DataPlaneEngine {
  return new DataPlaneEngine({ stickinessKey: Buffer.alloc(32, 1), random: mulberry32(seed) });
}

/** Runs every due check at `now` with the given result per target key (default: pass). */
function checkAll(e: DataPlaneEngine, now: number, results: Record<string, boolean> = {}) {
  return e.dueChecks(now).flatMap((job) => e.recordCheck(job, results[job.targetKey] === false ? { passed: false, failure: { kind: 'response-code-mismatch', statusCode: 500 } } : { passed: true }, now));
}

const states = (e: DataPlaneEngine, arn = 'tg/vision') => Object.fromEntries(e.describeTargetHealth(arn).map((d) => [`${d.Target?.Id}:${d.Target?.Port}`, d.TargetHealth?.State]));
const forwardKey = (d: RoutingDecision) => (d.kind === 'forward' ? d.targetKey : d.kind);

describe('DataPlaneEngine', () => {
  it('registers new targets as initial, checks them at once, routes only once they pass', () => {
    const e = engine();
    const { changes } = e.applySnapshot(snapshot([group('tg/vision', [{ Id: '10.0.0.1', Port: 8080 }, { Id: '10.0.0.2' }])]), 0);
    expect(changes.map((c) => [c.target, c.health])).toEqual([
      [{ Id: '10.0.0.1', Port: 8080 }, { State: 'initial', Reason: 'Elb.RegistrationInProgress', Description: 'Target registration is in progress' }],
      [{ Id: '10.0.0.2', Port: 80 }, { State: 'initial', Reason: 'Elb.RegistrationInProgress', Description: 'Target registration is in progress' }],
    ]);
    expect(forwardKey(e.route(req('vision'), 0))).toBe('load-balancer-error');
    const jobs = e.dueChecks(0);
    expect(jobs.map((j) => [j.targetKey, j.host, j.port, j.path])).toEqual([
      ['10.0.0.1:8080', '10.0.0.1', 8080, '/health'],
      ['10.0.0.2:80', '10.0.0.2', 80, '/health'],
    ]);
    expect(e.dueChecks(0)).toEqual([]); // running checks are not handed out twice
    const passed = e.recordCheck(jobs[0], { passed: true }, 50);
    expect(passed.map((c) => [c.health.State, c.previous?.State])).toEqual([['healthy', 'initial']]);
    expect(forwardKey(e.route(req('vision'), 60))).toBe('10.0.0.1:8080');
  });

  it('schedules each check one interval after the previous one started', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: '10.0.0.1' }])]), 1000);
    expect(e.nextWakeAt()).toBe(1000);
    checkAll(e, 1000);
    expect(e.nextWakeAt()).toBe(11_000);
    expect(e.dueChecks(10_999)).toEqual([]);
    expect(e.dueChecks(11_000)).toHaveLength(1);
  });

  it('takes a target that fails its checks out of rotation, and back after the healthy threshold', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }, { Id: 'b' }])]), 0);
    checkAll(e, 0);
    checkAll(e, 10_000, { 'a:80': false });
    checkAll(e, 20_000, { 'a:80': false });
    expect(states(e)).toEqual({ 'a:80': 'unhealthy', 'b:80': 'healthy' });
    expect(new Set(Array.from({ length: 6 }, () => forwardKey(e.route(req('vision'), 20_000))))).toEqual(new Set(['b:80']));
    checkAll(e, 30_000);
    checkAll(e, 40_000);
    expect(states(e)).toEqual({ 'a:80': 'healthy', 'b:80': 'healthy' });
    expect(new Set(Array.from({ length: 6 }, () => forwardKey(e.route(req('vision'), 40_000))))).toEqual(new Set(['a:80', 'b:80']));
  });

  it('fails open when every target is unhealthy', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }, { Id: 'b' }])]), 0);
    checkAll(e, 0, { 'a:80': false, 'b:80': false });
    checkAll(e, 10_000, { 'a:80': false, 'b:80': false });
    const decisions = Array.from({ length: 4 }, () => e.route(req('vision'), 10_000));
    expect(decisions.map((d) => d.kind === 'forward' && [d.targetKey, d.failOpen])).toEqual([
      ['a:80', true],
      ['b:80', true],
      ['a:80', true],
      ['b:80', true],
    ]);
    expect(e.metrics(10_000).targetGroups[0]).toMatchObject({ failOpen: true, healthyHostCount: 0, unhealthyHostCount: 2 });
  });

  it('drains a deregistered target with a request in flight until the deregistration delay ends, then forgets it', () => {
    const e = engine();
    const both = [{ Id: 'a' }, { Id: 'b' }];
    e.applySnapshot(snapshot([group('tg/vision', both, { 'deregistration_delay.timeout_seconds': '30' })]), 0);
    checkAll(e, 0);
    const inFlight = e.route(req('vision'), 1);
    expect(forwardKey(inFlight)).toBe('a:80');
    const { changes } = e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'b' }], { 'deregistration_delay.timeout_seconds': '30' })]), 1000);
    expect(changes.map((c) => [c.target.Id, c.health.State, c.health.Reason])).toEqual([['a', 'draining', 'Target.DeregistrationInProgress']]);
    expect(new Set(Array.from({ length: 4 }, () => forwardKey(e.route(req('vision'), 2000))))).toEqual(new Set(['b:80']));
    expect(e.dueChecks(20_000).map((j) => j.targetKey)).toEqual(['b:80']); // a draining target is not checked
    expect(e.tick(30_999)).toEqual([]);
    expect(e.nextWakeAt()).toBe(31_000); // the end of the draining (b's check started at 20 s is still running)
    expect(e.tick(31_000).map((c) => [c.target.Id, c.health.State, c.health.Reason])).toEqual([['a', 'unused', 'Target.NotRegistered']]);
    expect(e.describeTargetHealth('tg/vision').map((d) => d.Target?.Id)).toEqual(['b']);
  });

  it('completes the deregistration of a target with nothing in flight at once, as ALB does', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }, { Id: 'b' }], { 'deregistration_delay.timeout_seconds': '300' })]), 0);
    checkAll(e, 0);
    const { changes } = e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'b' }], { 'deregistration_delay.timeout_seconds': '300' })]), 1000);
    expect(changes.map((c) => [c.target.Id, c.health.State, c.health.Reason])).toEqual([
      ['a', 'draining', 'Target.DeregistrationInProgress'],
      ['a', 'unused', 'Target.NotRegistered'],
    ]);
    expect(e.describeTargetHealth('tg/vision').map((d) => d.Target?.Id)).toEqual(['b']);
  });

  test.each([
    ['answered', (e: DataPlaneEngine, d: Extract<RoutingDecision, { kind: 'forward' }>, now: number) => e.finished(d, { by: 'target', statusCode: 200 }, now)],
    ['abandoned by its client', (e: DataPlaneEngine, d: Extract<RoutingDecision, { kind: 'forward' }>, now: number) => e.abandoned(d, now)],
  ])('completes a draining deregistration when its last request in flight is %s', (_how, end) => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }], { 'deregistration_delay.timeout_seconds': '300' })]), 0);
    checkAll(e, 0);
    const first = e.route(req('vision'), 1);
    const second = e.route(req('vision'), 1);
    if (first.kind !== 'forward' || second.kind !== 'forward') throw new Error('not forwarded');
    e.applySnapshot(snapshot([group('tg/vision', [], { 'deregistration_delay.timeout_seconds': '300' })]), 1000);
    expect(e.finished(first, { by: 'target', statusCode: 200 }, 5000)).toEqual([]); // one still in flight
    expect(states(e)).toEqual({ 'a:80': 'draining' });
    expect(end(e, second, 9000).map((c) => [c.target.Id, c.health.State, c.at])).toEqual([['a', 'unused', 9000]]);
    expect(states(e)).toEqual({});
  });

  it('counts a DescribeTargetHealth entry that reads draining as deregistered, and re-registers a draining target', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Target: { Id: 'a', Port: 80 }, TargetHealth: { State: 'healthy' } }])]), 0);
    checkAll(e, 0);
    expect(forwardKey(e.route(req('vision'), 50))).toBe('a:80'); // in flight: the draining lasts
    e.applySnapshot(snapshot([group('tg/vision', [{ Target: { Id: 'a', Port: 80 }, TargetHealth: { State: 'draining' } }])]), 100);
    expect(states(e)).toEqual({ 'a:80': 'draining' });
    const { changes } = e.applySnapshot(snapshot([group('tg/vision', [{ Target: { Id: 'a', Port: 80 } }])]), 200);
    expect(changes.map((c) => c.health.State)).toEqual(['initial']);
    expect(e.dueChecks(200).map((j) => j.targetKey)).toEqual(['a:80']);
  });

  it.each<[string, RegisteredTarget, string]>([
    ['a bare TargetDescription', { Id: 'a', Port: 80 }, 'initial'],
    ['healthy in DescribeTargetHealth', { Target: { Id: 'a', Port: 80 }, TargetHealth: { State: 'healthy' } }, 'initial'],
    ['unused because its group is not in use (our own report echoed back)', { Target: { Id: 'a', Port: 80 }, TargetHealth: { State: 'unused', Reason: 'Target.NotInUse' } }, 'initial'],
    ['unused, not registered', { Target: { Id: 'a', Port: 80 }, TargetHealth: { State: 'unused', Reason: 'Target.NotRegistered' } }, 'none'],
    ['draining', { Target: { Id: 'a', Port: 80 }, TargetHealth: { State: 'draining' } }, 'none'],
  ])('a target given as %s', (_why, entry, expected) => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [entry])]), 0);
    expect(states(e)['a:80'] ?? 'none').toBe(expected);
  });

  it('drops a late check result of an earlier registration', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }])]), 0);
    const [job] = e.dueChecks(0);
    e.applySnapshot(snapshot([group('tg/vision', [])]), 10);
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }])]), 20);
    expect(e.recordCheck(job, { passed: true }, 30)).toEqual([]);
    expect(states(e)).toEqual({ 'a:80': 'initial' });
  });

  it('marks targets of a group no rule forwards to unused and does not check them', () => {
    const e = engine();
    const { changes } = e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }]), group('tg/spare', [{ Id: 'b' }])]), 0);
    expect(changes.map((c) => [c.targetGroupArn, c.health.State, c.health.Reason])).toEqual([
      ['tg/vision', 'initial', 'Elb.RegistrationInProgress'],
      ['tg/spare', 'unused', 'Target.NotInUse'],
    ]);
    expect(e.dueChecks(0).map((j) => j.targetGroupArn)).toEqual(['tg/vision']);
  });

  it('puts a target that joins a serving group into slow start', () => {
    const e = engine();
    const attrs = { 'slow_start.duration_seconds': '100' };
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }], attrs)]), 0);
    checkAll(e, 0);
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }, { Id: 'b' }], attrs)]), 1000);
    checkAll(e, 1000);
    const weights = (now: number) => Object.fromEntries(e.metrics(now).targetGroups[0].targets.map((t) => [t.id, t.slowStartWeight]));
    expect(weights(1000)).toEqual({ a: 1, b: 0 });
    expect(weights(51_000)).toEqual({ a: 1, b: 0.5 });
    expect(weights(101_000)).toEqual({ a: 1, b: 1 });
  });

  it('answers fixed responses, 503 for an empty or unknown group, 500 for actions it cannot perform', () => {
    const e = engine();
    e.applySnapshot(
      snapshot(
        [group('tg/vision', [])],
        [headerRule(1, 'vision', fwd('tg/vision')), headerRule(2, 'ghost', fwd('tg/ghost')), headerRule(3, 'redirect', [{ Type: 'redirect' }]), DEFAULT_RULE],
      ),
      0,
    );
    expect(e.route(req(), 0)).toEqual({ kind: 'fixed-response', rule: { ruleArn: 'rule/default', priority: 'default' }, statusCode: 404, contentType: 'application/json', body: '{}' });
    expect(e.route(req('vision'), 0)).toMatchObject({ kind: 'load-balancer-error', statusCode: 503, targetGroupArn: 'tg/vision', reason: 'the target group has no registered targets' });
    expect(e.route(req('ghost'), 0)).toMatchObject({ kind: 'load-balancer-error', statusCode: 503, targetGroupArn: 'tg/ghost' });
    expect(e.route(req('redirect'), 0)).toMatchObject({ kind: 'load-balancer-error', statusCode: 500 });
    expect(e.metrics(0)).toMatchObject({ requests: 4, fixedResponses: 1, loadBalancerErrors: { '500': 1, '503': 2 } });
  });

  it('keeps a client on its target with the AWSALB cookie, and moves it when that target leaves', () => {
    const e = engine();
    const attrs = { 'stickiness.enabled': 'true', 'stickiness.type': 'lb_cookie', 'stickiness.lb_cookie.duration_seconds': '60' };
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }, { Id: 'b' }, { Id: 'c' }], attrs)]), 0);
    checkAll(e, 0);
    const first = e.route(req('vision'), 10);
    if (first.kind !== 'forward') throw new Error(first.kind);
    const cookie = first.setCookies.map((l) => l.split(';')[0]).join('; ');
    const again = Array.from({ length: 5 }, () => e.route(req('vision', cookie), 20));
    expect(again.map((d) => d.kind === 'forward' && [d.targetKey, d.via])).toEqual(Array(5).fill([first.targetKey, 'stickiness']));
    const remaining = [{ Id: 'a' }, { Id: 'b' }, { Id: 'c' }].filter((t) => `${t.Id}:80` !== first.targetKey);
    e.applySnapshot(snapshot([group('tg/vision', remaining, attrs)]), 30);
    const moved = e.route(req('vision', cookie), 40);
    expect(moved).toMatchObject({ kind: 'forward', via: 'algorithm' });
    expect(moved.kind === 'forward' && moved.targetKey).not.toBe(first.targetKey);
    expect(moved.kind === 'forward' && parseCookies([moved.setCookies[0].split(';')[0]]).has('AWSALB')).toBe(true);
  });

  it('weighted forward: splits by weight and keeps a client on its group with AWSALBTG', () => {
    const e = engine(11);
    const rules: Rule[] = [
      headerRule(1, 'vision', [
        {
          Type: 'forward',
          ForwardConfig: {
            TargetGroups: [
              { TargetGroupArn: 'tg/vision', Weight: 80 },
              { TargetGroupArn: 'tg/canary', Weight: 20 },
            ],
            TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 300 },
          },
        },
      ]),
      DEFAULT_RULE,
    ];
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }]), group('tg/canary', [{ Id: 'z' }])], rules), 0);
    checkAll(e, 0);
    const picks = Array.from({ length: 2000 }, () => e.route(req('vision'), 1));
    const canary = picks.filter((d) => d.kind === 'forward' && d.targetGroupArn === 'tg/canary').length / picks.length;
    expect(Math.abs(canary - 0.2)).toBeLessThan(0.03);
    const oneCanary = picks.find((d) => d.kind === 'forward' && d.targetGroupArn === 'tg/canary');
    if (oneCanary?.kind !== 'forward') throw new Error('no canary pick');
    const cookie = oneCanary.setCookies.map((l) => l.split(';')[0]).join('; ');
    expect(new Set(Array.from({ length: 50 }, () => e.route(req('vision', cookie), 2)).map((d) => d.kind === 'forward' && d.targetGroupArn))).toEqual(new Set(['tg/canary']));
  });

  it('counts outstanding requests until they finish and tallies who answered', () => {
    const e = engine();
    e.applySnapshot(snapshot([group('tg/vision', [{ Id: 'a' }], { 'load_balancing.algorithm.type': 'least_outstanding_requests' })]), 0);
    checkAll(e, 0);
    const d1 = e.route(req('vision'), 1);
    const d2 = e.route(req('vision'), 1);
    expect(e.metrics(1).targetGroups[0].targets[0].outstanding).toBe(2);
    if (d1.kind !== 'forward' || d2.kind !== 'forward') throw new Error('not forwarded');
    e.finished(d1, { by: 'target', statusCode: 503 }, 2);
    e.finished(d2, { by: 'load-balancer', statusCode: 502 }, 2);
    expect(e.metrics(2)).toMatchObject({
      requests: 2,
      targetResponses: { '5xx': 1 },
      loadBalancerErrors: { '502': 1 },
      targetGroups: [{ requests: 2, targetResponses: { '5xx': 1 }, loadBalancerErrors: { '502': 1 }, targets: [{ outstanding: 0, requests: 2 }] }],
    });
  });

  it('reports each problem of the snapshot once', () => {
    const e = engine();
    const bad = snapshot([group('tg/vision', [], { 'load_balancing.algorithm.type': 'fastest' })]);
    expect(e.applySnapshot(bad, 0).problems).toEqual(['target group tg/vision: load_balancing.algorithm.type = "fastest" is not round_robin, least_outstanding_requests or weighted_random; using round_robin']);
    expect(e.applySnapshot(bad, 1).problems).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import {
  HealthCheckSettings,
  healthCheckSettings,
  nextCheckAt,
  nextTargetHealth,
  parseMatcher,
  registeredTarget,
  TargetHealthEvent,
} from '../../../lib/local/data-plane/health-checks';

const settings = (patch: Partial<HealthCheckSettings> = {}): HealthCheckSettings => ({
  ...healthCheckSettings({ TargetGroupArn: 'tg', HealthyThresholdCount: 3, UnhealthyThresholdCount: 2, HealthCheckIntervalSeconds: 10 }).settings,
  ...patch,
});

type Step = 'pass' | 'fail:code' | 'fail:timeout' | 'fail:conn' | 'deregister' | 'register' | 'tick' | 'disable' | 'enable' | 'unused' | 'in-use';

/** Runs steps one second apart; returns `state reason` after each (reason `-` when none). */
function run(steps: Step[], s: HealthCheckSettings = settings(), delayMs = 5000): string[] {
  let record = registeredTarget(0, s);
  const seen: string[] = [];
  steps.forEach((step, i) => {
    const at = (i + 1) * 1000;
    const event: TargetHealthEvent =
      step === 'pass'
        ? { type: 'check-passed', at }
        : step === 'fail:code'
          ? { type: 'check-failed', at, failure: { kind: 'response-code-mismatch', statusCode: 500 } }
          : step === 'fail:timeout'
            ? { type: 'check-failed', at, failure: { kind: 'timeout' } }
            : step === 'fail:conn'
              ? { type: 'check-failed', at, failure: { kind: 'connection-error', detail: 'ECONNREFUSED' } }
              : step === 'deregister'
                ? { type: 'deregistered', at, delayMs }
                : step === 'register'
                  ? { type: 'registered', at }
                  : step === 'tick'
                    ? { type: 'tick', at }
                    : step === 'disable'
                      ? { type: 'health-checks-disabled', at }
                      : step === 'enable'
                        ? { type: 'health-checks-enabled', at }
                        : step === 'unused'
                          ? { type: 'group-unused', at }
                          : { type: 'group-in-use', at };
    record = nextTargetHealth(record, event, s);
    seen.push(`${record.state} ${record.reason ?? '-'}`);
  });
  return seen;
}

describe('target health state machine', () => {
  it('starts initial, registration in progress', () => {
    expect(registeredTarget(0, settings())).toMatchObject({ state: 'initial', reason: 'Elb.RegistrationInProgress', description: 'Target registration is in progress' });
  });

  it.each<[string, Step[], string[]]>([
    ['one passing check makes a new target healthy', ['pass'], ['healthy -']],
    [
      'a new target failing is initial until the unhealthy threshold, then unhealthy',
      ['fail:conn', 'fail:conn'],
      ['initial Elb.InitialHealthChecking', 'unhealthy Target.FailedHealthChecks'],
    ],
    ['a healthy target stays healthy below the unhealthy threshold', ['pass', 'fail:code', 'pass', 'fail:code'], ['healthy -', 'healthy -', 'healthy -', 'healthy -']],
    ['unhealthy after 2 consecutive failures (response code)', ['pass', 'fail:code', 'fail:code'], ['healthy -', 'healthy -', 'unhealthy Target.ResponseCodeMismatch']],
    ['unhealthy after 2 consecutive failures (timeout)', ['pass', 'fail:timeout', 'fail:timeout'], ['healthy -', 'healthy -', 'unhealthy Target.Timeout']],
    ['the reason follows the latest failure', ['fail:code', 'fail:code', 'fail:timeout'], ['initial Elb.InitialHealthChecking', 'unhealthy Target.ResponseCodeMismatch', 'unhealthy Target.Timeout']],
    [
      'healthy again only after 3 consecutive passes',
      ['fail:code', 'fail:code', 'pass', 'pass', 'pass'],
      ['initial Elb.InitialHealthChecking', 'unhealthy Target.ResponseCodeMismatch', 'unhealthy Target.ResponseCodeMismatch', 'unhealthy Target.ResponseCodeMismatch', 'healthy -'],
    ],
    [
      'a failure resets the passes counted towards healthy',
      ['fail:code', 'fail:code', 'pass', 'pass', 'fail:code', 'pass', 'pass', 'pass'],
      [
        'initial Elb.InitialHealthChecking',
        'unhealthy Target.ResponseCodeMismatch',
        'unhealthy Target.ResponseCodeMismatch',
        'unhealthy Target.ResponseCodeMismatch',
        'unhealthy Target.ResponseCodeMismatch',
        'unhealthy Target.ResponseCodeMismatch',
        'unhealthy Target.ResponseCodeMismatch',
        'healthy -',
      ],
    ],
    ['a pass between failures resets the failure count', ['pass', 'fail:code', 'pass', 'fail:code'], ['healthy -', 'healthy -', 'healthy -', 'healthy -']],
    [
      'deregistered: draining, checks ignored, until the delay ends',
      // deregistered at 2 s with a 5 s delay: draining until 7 s
      ['pass', 'deregister', 'fail:code', 'tick', 'tick', 'tick', 'tick'],
      [
        'healthy -',
        'draining Target.DeregistrationInProgress',
        'draining Target.DeregistrationInProgress',
        'draining Target.DeregistrationInProgress',
        'draining Target.DeregistrationInProgress',
        'draining Target.DeregistrationInProgress',
        'unused Target.NotRegistered',
      ],
    ],
    ['registered again while draining: initial again', ['pass', 'deregister', 'register', 'pass'], ['healthy -', 'draining Target.DeregistrationInProgress', 'initial Elb.RegistrationInProgress', 'healthy -']],
    ['deregistering twice keeps the first deadline', ['deregister', 'deregister', 'tick', 'tick', 'tick', 'tick'], ['draining Target.DeregistrationInProgress', 'draining Target.DeregistrationInProgress', 'draining Target.DeregistrationInProgress', 'draining Target.DeregistrationInProgress', 'draining Target.DeregistrationInProgress', 'unused Target.NotRegistered']],
    ['health checks off: unavailable; on again: initial', ['pass', 'disable', 'fail:code', 'enable'], ['healthy -', 'unavailable Target.HealthCheckDisabled', 'unavailable Target.HealthCheckDisabled', 'initial Elb.RegistrationInProgress']],
    ['a group no rule uses: unused, not in use', ['pass', 'unused', 'pass', 'in-use'], ['healthy -', 'unused Target.NotInUse', 'unused Target.NotInUse', 'initial Elb.RegistrationInProgress']],
  ])('%s', (_why, steps, expected) => {
    expect(run(steps)).toEqual(expected);
  });

  it('a deregistration delay of 0 ends draining at the next tick', () => {
    expect(run(['pass', 'deregister', 'tick'], settings(), 0)).toEqual(['healthy -', 'draining Target.DeregistrationInProgress', 'unused Target.NotRegistered']);
  });

  it('describes a response code mismatch with the code, as DescribeTargetHealth does', () => {
    let r = registeredTarget(0, settings());
    for (const at of [1, 2]) r = nextTargetHealth(r, { type: 'check-failed', at, failure: { kind: 'response-code-mismatch', statusCode: 503 } }, settings());
    expect(r).toMatchObject({ state: 'unhealthy', reason: 'Target.ResponseCodeMismatch', description: 'Health checks failed with these codes: [503]', since: 2 });
  });

  it('returns the same record when an event changes nothing', () => {
    const r = registeredTarget(0, settings());
    expect(nextTargetHealth(r, { type: 'registered', at: 5 }, settings())).toBe(r);
    expect(nextTargetHealth(r, { type: 'tick', at: 5 }, settings())).toBe(r);
  });

  it('starts unavailable when the group has health checks off', () => {
    expect(registeredTarget(0, settings({ enabled: false }))).toMatchObject({ state: 'unavailable', reason: 'Target.HealthCheckDisabled' });
  });
});

describe('parseMatcher', () => {
  it.each<[string, number[], number[]]>([
    ['200', [200], [201, 199, 302]],
    ['200,202', [200, 202], [201]],
    ['200-299', [200, 250, 299], [300, 199]],
    ['200-299,302', [200, 299, 302], [301, 303, 500]],
    [' 200 - 204 , 404 ', [204, 404], [205]],
  ])('%j', (matcher, pass, fail) => {
    const ok = parseMatcher(matcher);
    for (const c of pass) expect(ok(c)).toBe(true);
    for (const c of fail) expect(ok(c)).toBe(false);
  });

  it.each(['', '2xx', '100', '200-500', '299-200', '200,,201'])('refuses %j with the value and the allowed range', (matcher) => {
    expect(() => parseMatcher(matcher)).toThrow(`health check matcher ${JSON.stringify(matcher)} is not a list of HTTP codes or ranges between 200 and 499`);
  });
});

describe('healthCheckSettings', () => {
  it('fills ALB defaults for an ip target group', () => {
    const { settings: s, problems } = healthCheckSettings({ TargetGroupArn: 'tg' });
    expect(problems).toEqual([]);
    expect(s).toMatchObject({ enabled: true, protocol: 'HTTP', port: 'traffic-port', path: '/', intervalMs: 30_000, timeoutMs: 5000, healthyThreshold: 5, unhealthyThreshold: 2, matcher: '200' });
  });

  it('reads the group settings and scales the timings', () => {
    const { settings: s } = healthCheckSettings(
      {
        TargetGroupArn: 'tg',
        HealthCheckPath: '/healthz',
        HealthCheckPort: '9000',
        HealthCheckProtocol: 'HTTPS',
        HealthCheckIntervalSeconds: 10,
        HealthCheckTimeoutSeconds: 5,
        HealthyThresholdCount: 2,
        UnhealthyThresholdCount: 3,
        Matcher: { HttpCode: '200-399' },
      },
      0.01,
    );
    expect(s).toMatchObject({ protocol: 'HTTPS', port: 9000, path: '/healthz', intervalMs: 100, timeoutMs: 50, healthyThreshold: 2, unhealthyThreshold: 3, matcher: '200-399' });
    expect(s.isHealthyCode(302)).toBe(true);
  });

  it('falls back to 200 and says why when the matcher is bad', () => {
    const { settings: s, problems } = healthCheckSettings({ TargetGroupArn: 'tg/x', Matcher: { HttpCode: 'ok' } });
    expect(s.matcher).toBe('200');
    expect(problems).toEqual(['target group tg/x: health check matcher "ok" is not a list of HTTP codes or ranges between 200 and 499 (e.g. "200-299,302"); using "200"']);
  });
});

describe('nextCheckAt', () => {
  const s = { intervalMs: 1000 };
  it.each<[string, number | undefined, number | undefined, number]>([
    ['the first check right at registration', undefined, undefined, 500],
    ['then one interval after the previous start', 2000, 2300, 3000],
    ['a check that ran past the interval delays the next one', 2000, 3400, 3400],
    ['nothing while a check is running', 2000, 1800, Number.POSITIVE_INFINITY],
    ['nothing while the first check is running', 2000, undefined, Number.POSITIVE_INFINITY],
  ])('%s', (_why, started, ended, expected) => {
    expect(nextCheckAt(started, ended, 500, s)).toBe(expected);
  });
});

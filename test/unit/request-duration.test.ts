import { describe, expect, it, test } from 'vitest';
import { deregistrationDelayFor, idleTimeoutFor, maxRequestDurationProblem } from '../../lib/core/request-duration';
import { DEFAULT_LEAVE_DEADLINE_MS, leaveDeadlineFor } from '../../lib/sdk';
import { sidecarMaxRequest } from '../../lib/cli/index';

describe('settings derived from the longest request', () => {
  test.each([
    [1, 11],
    [300, 310],
    [3590, 3600],
    [3599, 3600], // never past ALB's 3 600 s
    [0.2, 11], // whole seconds, rounded up
  ])('a request of %s s needs a deregistration delay of %s s', (maxRequest, delay) => {
    expect(deregistrationDelayFor(maxRequest)).toBe(delay);
  });

  test.each([
    [[300], 310],
    [[5, 30], 60], // never below ALB's default
    [[90, 1200, 30], 1210], // the longest capability's
    [[3590, 3590], 3600],
    [[], 60],
  ])('capabilities of %j s need an idle timeout of %s s', (durations, idle) => {
    expect(idleTimeoutFor(durations)).toBe(idle);
  });

  test.each([
    [1, undefined],
    [3590, undefined],
    [0, '0 seconds is out of range 1–3590 whole seconds (the deregistration delay it implies, 10 s more, must fit ALB\'s 3600 s)'],
    [3591, '3591 seconds is out of range 1–3590 whole seconds (the deregistration delay it implies, 10 s more, must fit ALB\'s 3600 s)'],
    [2.5, '2.5 seconds is out of range 1–3590 whole seconds (the deregistration delay it implies, 10 s more, must fit ALB\'s 3600 s)'],
  ])('maxRequestDuration %s s: %s', (seconds, problem) => {
    expect(maxRequestDurationProblem(seconds)).toBe(problem);
  });
});

describe('the leave deadline', () => {
  it('lets a request that arrives at the end of the propagation margin finish: rotation wait + margin + request + release', () => {
    expect(leaveDeadlineFor({ maxRequestDurationMs: 60_000, propagationMarginMs: 1_000, unconfirmedRotationWaitMs: 10_000 })).toBe(73_000);
    expect(DEFAULT_LEAVE_DEADLINE_MS).toBe(10_000 + 5_000 + 300_000 + 2_000);
  });
});

describe("the sidecar's longest request", () => {
  test.each([
    ['the flag wins', 45, ['vision'], { vision: 900 }, { seconds: 45, source: '--max-request-duration' }],
    ['the longest of its capabilities in the deployment', undefined, ['vision', 'speech', 'other'], { vision: 120, speech: 600 }, { seconds: 600, source: 'maxRequestDuration of speech in the deployment' }],
    ['the default when the deployment does not say (a --table, an older stack)', undefined, ['vision'], undefined, { seconds: 300, source: 'the default' }],
  ])('%s', (_what, flag, capabilities, deployed, expected) => {
    expect(sidecarMaxRequest(flag, capabilities, deployed)).toEqual(expected);
  });
});

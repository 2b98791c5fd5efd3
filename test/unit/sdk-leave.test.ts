import { DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it, vi } from 'vitest';
import { AgentLease, AgentLeaseOptions, ConfigError, InFlightCounter, LeaveReport, LeaveStepReport, leaveRotation, untilDrained } from '../../lib/sdk';
import { ddb, newLease, NOW_MS, useSdkTable } from '../support/sdk-lease-table';

const table = useSdkTable();

/** Acquired, and healthy in vision as the registry reported a second after the acquire. */
async function servingLease(patch: Partial<AgentLeaseOptions> = {}): Promise<AgentLease> {
  const lease = newLease(patch);
  await lease.acquire();
  for (const capability of lease.capabilities) table.setRotation(capability, 'healthy', NOW_MS + 1_000, lease.target);
  return lease;
}

/** The leave's outcome per step, in order. */
const outcomes = (report: LeaveReport): string[] => report.steps.map((s) => `${s.step}:${s.outcome}`);
const step = (report: LeaveReport, name: string): LeaveStepReport => report.steps.find((s) => s.step === name)!;

/** Runs `leave()` and records when each step ended (ms since the leave began) and when the release was sent. */
function startLeave(lease: AgentLease, options: Parameters<AgentLease['leave']>[0] = {}) {
  const begun = Date.now();
  const ended: Record<string, number> = {};
  lease.on('leaveStep', (s) => (ended[s.step] = Date.now() - begun));
  let report: LeaveReport | undefined;
  const leaving = lease.leave(options).then((r) => (report = r));
  return { begun, ended, leaving, report: () => report };
}

describe('leave()', () => {
  it('drains first, waits until out of rotation and the margin, lets in-flight work finish, then releases', async () => {
    // Prepare
    const lease = await servingLease({ rotationPollIntervalMs: 500 });
    const inFlight = new InFlightCounter();
    const endRequest = inFlight.begin();
    await vi.advanceTimersByTimeAsync(2_000);
    const t0 = Date.now();

    // Act
    const run = startLeave(lease, { propagationMarginMs: 3_000, inFlight });
    await vi.advanceTimersByTimeAsync(0);
    const firstWrite = table.log.slice(1)[0];
    await vi.advanceTimersByTimeAsync(1_200);
    table.setRotation('vision', 'draining', t0 + 1_200); // the registry deregistered it
    await vi.advanceTimersByTimeAsync(5_000);
    const beforeRequestEnded = [...table.log];
    endRequest();
    await run.leaving;

    // Assess
    expect(firstWrite).toBe('draining');
    expect(beforeRequestEnded).not.toContain('delete');
    expect(table.log.at(-1)).toBe('delete');
    const report = run.report()!;
    expect(outcomes(report)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:done', 'release:done']);
    expect(run.ended).toEqual({ drain: 0, rotation: 1_500, propagation: 4_500, inFlight: 6_200, release: 6_200 });
    expect(step(report, 'rotation').detail).toBe('vision draining for 0.3 s');
    expect(report).toMatchObject({ released: true, errors: [], durationMs: 6_200, targets: ['10.0.3.17:8080'] });
    expect(lease.phase).toBe('released');
  });

  it('does not take a draining entry from before the drain as out of rotation', async () => {
    // Prepare: drained once long ago, re-activated; the registry has not written since
    const lease = await servingLease();
    table.setRotation('vision', 'draining', NOW_MS - 60_000);
    await vi.advanceTimersByTimeAsync(10_000); // a heartbeat brings the stale entry
    const t0 = Date.now();

    // Act
    const run = startLeave(lease, { propagationMarginMs: 0 });
    await vi.advanceTimersByTimeAsync(3_000);
    const releasedEarly = table.log.includes('delete');
    table.setRotation('vision', 'draining', t0 + 3_000);
    await vi.advanceTimersByTimeAsync(1_000);
    await run.leaving;

    // Assess
    expect(releasedEarly).toBe(false);
    expect(step(run.report()!, 'rotation')).toMatchObject({ outcome: 'confirmed', durationMs: 4_000 });
  });

  it('with no rotation from the registry, waits the conservative time instead and says so', async () => {
    // Prepare: an older registry never writes rotation
    const lease = newLease();
    await lease.acquire();

    // Act
    const run = startLeave(lease, { propagationMarginMs: 2_000, unconfirmedRotationWaitMs: 6_000 });
    await vi.advanceTimersByTimeAsync(8_000);
    await run.leaving;

    // Assess
    const report = run.report()!;
    expect(outcomes(report)).toEqual(['drain:done', 'rotation:fallback', 'propagation:done', 'inFlight:skipped', 'release:done']);
    expect(step(report, 'rotation').detail).toBe(
      'no fresh rotation from the registry for vision after 6.0 s (an older registry, or a capability this deployment does not route): waited the conservative 6.0 s instead; vision unreported',
    );
    expect(run.ended.release).toBe(8_000);
  });

  it('waits the conservative time only for the groups never reported; the others must be out', async () => {
    // Prepare
    const lease = await servingLease({ capabilities: ['vision', 'speech'] });
    table.items.get(lease.target)!.rotation!.M!.speech = undefined as never; // speech never reported
    delete table.items.get(lease.target)!.rotation!.M!.speech;
    const t0 = Date.now();

    // Act: vision stays healthy past the conservative wait, then drains
    const run = startLeave(lease, { propagationMarginMs: 0, unconfirmedRotationWaitMs: 2_000 });
    await vi.advanceTimersByTimeAsync(5_000);
    const releasedWhileVisionHealthy = table.log.includes('delete');
    table.setRotation('vision', 'draining', t0 + 5_000);
    await vi.advanceTimersByTimeAsync(1_000);
    await run.leaving;

    // Assess
    expect(releasedWhileVisionHealthy).toBe(false);
    expect(step(run.report()!, 'rotation')).toMatchObject({ outcome: 'fallback', durationMs: 6_000 });
  });

  it('keeps to the deadline: stuck rotation, in-flight work that never ends, a release that never answers', async () => {
    // Prepare
    const lease = await servingLease();
    const inFlight = new InFlightCounter();
    inFlight.begin();
    ddb.on(DeleteItemCommand).callsFake(() => new Promise(() => undefined));

    // Act
    const run = startLeave(lease, { deadlineMs: 8_000, inFlight });
    await vi.advanceTimersByTimeAsync(8_000);
    await run.leaving;

    // Assess: the waits stop 2 s before the deadline, leaving that to the release
    const report = run.report()!;
    expect(outcomes(report)).toEqual(['drain:done', 'rotation:deadline', 'propagation:deadline', 'inFlight:deadline', 'release:deadline']);
    expect(run.ended).toEqual({ drain: 0, rotation: 6_000, propagation: 6_000, inFlight: 6_000, release: 8_000 });
    expect(step(report, 'rotation').detail).toBe('still in rotation at the deadline: vision healthy for 5.0 s');
    expect(step(report, 'inFlight').detail).toBe('1 still in flight');
    expect(report).toMatchObject({ released: false, durationMs: 8_000 });
  });

  it('a lease lost mid-leave stops the rotation wait; the release does not delete the new holder', async () => {
    // Prepare
    const lease = await servingLease({ reacquire: false });

    // Act
    const run = startLeave(lease, { propagationMarginMs: 1_000 });
    await vi.advanceTimersByTimeAsync(1_500);
    table.takeOver();
    await vi.advanceTimersByTimeAsync(2_000);
    await run.leaving;

    // Assess
    const report = run.report()!;
    expect(outcomes(report)).toEqual(['drain:done', 'rotation:lost', 'propagation:done', 'inFlight:skipped', 'release:lost']);
    expect(run.ended.rotation).toBe(2_000); // the first poll after the takeover
    expect(table.item?.leaseToken).toEqual({ S: 'someone-else' });
    expect(report.released).toBe(false);
  });

  it('a lease lost while its drain is retried is reported lost, not drained, and no margin is waited for it', async () => {
    // Prepare: the first drain fails for a transient reason; the lease is lost before the retry
    const lease = await servingLease({ reacquire: false });
    await vi.advanceTimersByTimeAsync(2_000);
    table.failNext.update = Object.assign(new Error('the network is down'), { name: 'NetworkingError', $metadata: {} });

    // Act
    const run = startLeave(lease, { propagationMarginMs: 5_000 });
    await vi.advanceTimersByTimeAsync(10);
    lease.abandon();
    await vi.advanceTimersByTimeAsync(10_000); // past the margin, so a leave that waits it ends too
    await run.leaving;

    // Assess
    const report = run.report()!;
    expect(outcomes(report).slice(0, 3)).toEqual(['drain:lost', 'rotation:lost', 'propagation:skipped']);
    expect(step(report, 'drain').detail).toMatch(/^0 of 1 drained; lease for .* lost: not held when its drain was to be written$/);
    expect(table.log.filter((k) => k === 'draining')).toHaveLength(1);
    expect(run.ended.propagation).toBeLessThan(1_000);
  });

  it('retries a drain that failed for a transient reason', async () => {
    // Prepare
    const lease = await servingLease();
    await vi.advanceTimersByTimeAsync(2_000);
    // Not retried by the AWS SDK itself (a 5xx would be): the retry seen is leave()'s own.
    table.failNext.update = Object.assign(new Error('the network is down'), { name: 'NetworkingError', $metadata: {} });

    // Act
    const run = startLeave(lease, { propagationMarginMs: 0 });
    await vi.advanceTimersByTimeAsync(300);
    table.setRotation('vision', 'draining', Date.now());
    await vi.advanceTimersByTimeAsync(1_000);
    await run.leaving;

    // Assess
    expect(table.log.filter((k) => k === 'draining')).toHaveLength(2);
    expect(step(run.report()!, 'drain')).toMatchObject({ outcome: 'done', durationMs: 250 });
  });

  it('an in-flight hook returning a count is polled until it reaches zero', async () => {
    // Prepare
    const lease = await servingLease();
    let active = 2;
    const run = startLeave(lease, { propagationMarginMs: 0, unconfirmedRotationWaitMs: 0, inFlight: () => active });
    table.setRotation('vision', 'absent', Date.now());

    // Act
    await vi.advanceTimersByTimeAsync(1_000);
    active = 0;
    await vi.advanceTimersByTimeAsync(100);
    await run.leaving;

    // Assess
    expect(step(run.report()!, 'inFlight')).toMatchObject({ outcome: 'done', detail: 'nothing in flight' });
    expect(run.ended.release - run.ended.propagation).toBeGreaterThanOrEqual(100);
  });

  it('an aborted signal skips the remaining waits and releases at once', async () => {
    // Prepare
    const lease = await servingLease();
    const hurry = new AbortController();

    // Act
    const run = startLeave(lease, { signal: hurry.signal });
    await vi.advanceTimersByTimeAsync(1_000);
    hurry.abort();
    await vi.advanceTimersByTimeAsync(0);
    await run.leaving;

    // Assess
    expect(outcomes(run.report()!)).toEqual(['drain:done', 'rotation:hurried', 'propagation:hurried', 'inFlight:skipped', 'release:done']);
    expect(run.ended.release).toBe(1_000);
  });

  it('a lease never acquired is only marked released: no write, no wait', async () => {
    // Prepare
    const lease = newLease();

    // Act
    const report = await lease.leave();

    // Assess
    expect(outcomes(report)).toEqual(['drain:skipped', 'rotation:skipped', 'propagation:skipped', 'inFlight:skipped', 'release:skipped']);
    expect(table.log).toEqual([]);
    expect(lease.phase).toBe('released');
  });

  it('a second call returns the first call\'s leave', async () => {
    const lease = newLease();
    expect(lease.leave()).toBe(lease.leave());
  });

  it('refuses bad options before writing anything', async () => {
    const lease = await servingLease();
    await expect(lease.leave({ deadlineMs: 0 })).rejects.toThrow(new ConfigError('leave: deadlineMs must be a number of milliseconds > 0, got 0'));
    await expect(lease.leave({ propagationMarginMs: -5 })).rejects.toThrow('leave: propagationMarginMs must be a number of milliseconds ≥ 0, got -5');
    await expect(lease.leave({ inFlight: 3 as never })).rejects.toThrow('leave: inFlight must be a function or have whenIdle()');
    expect(table.log).toEqual(['put']);
    await lease.release();
  });
});

describe('leaveRotation() of several leases', () => {
  it('moves them in lockstep: connections close only once every lease is out of rotation', async () => {
    // Prepare
    const a = await servingLease({ port: 8080 });
    const b = await servingLease({ port: 8081 });
    const stopAccepting = vi.fn();
    const inFlight = { inFlight: 0, whenIdle: () => Promise.resolve(), stopAccepting };
    const t0 = Date.now();
    const leaving = leaveRotation([a, b], { propagationMarginMs: 1_000, inFlight });

    // Act
    table.setRotation('vision', 'draining', t0 + 100, a.target);
    await vi.advanceTimersByTimeAsync(4_000);
    const closedEarly = stopAccepting.mock.calls.length > 0;
    table.setRotation('vision', 'draining', t0 + 4_000, b.target);
    await vi.advanceTimersByTimeAsync(2_000);
    const report = await leaving;

    // Assess
    expect(closedEarly).toBe(false);
    expect(stopAccepting).toHaveBeenCalledOnce();
    expect(outcomes(report)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:done', 'release:done']);
    expect(step(report, 'rotation').detail).toBe('10.0.3.17:8080: vision draining for 4.9 s; 10.0.3.17:8081: vision draining for 1.0 s');
    expect(report).toMatchObject({ targets: ['10.0.3.17:8080', '10.0.3.17:8081'], released: true, durationMs: 6_000 });
  });
});

describe('long requests', () => {
  it('sizes the deadline by the longest request: a request of maxRequestDurationMs that started during the margin finishes', async () => {
    // Prepare: requests of up to 60 s; one starts at the end of the propagation margin
    const lease = await servingLease();
    const inFlight = new InFlightCounter();
    const t0 = Date.now();
    const run = startLeave(lease, { propagationMarginMs: 1_000, maxRequestDurationMs: 60_000, inFlight });
    table.setRotation('vision', 'draining', t0 + 500);
    await vi.advanceTimersByTimeAsync(1_000);
    const end = inFlight.begin();

    // Act
    await vi.advanceTimersByTimeAsync(60_000);
    end();
    await run.leaving;

    // Assess: 10 s rotation wait + 1 s margin + 60 s + 2 s release = 73 s of deadline; the request ended first
    expect(outcomes(run.report()!)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:done', 'release:done']);
    expect(run.report()!.durationMs).toBeLessThan(73_000);
  });

  it('cuts what is still in flight at the deadline before it releases, one line per request', async () => {
    // Prepare
    const lease = await servingLease();
    const cut = vi.fn(() => ['GET "/chat" (in flight 40.0 s)', 'POST "/tools" (in flight 12.5 s)']);
    const inFlight = { inFlight: 2, whenIdle: () => new Promise<void>(() => undefined), cut };
    const t0 = Date.now();

    // Act
    const run = startLeave(lease, { propagationMarginMs: 0, deadlineMs: 10_000, inFlight });
    table.setRotation('vision', 'draining', t0 + 100);
    await vi.advanceTimersByTimeAsync(10_000);
    await run.leaving;

    // Assess
    const report = run.report()!;
    expect(outcomes(report)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:deadline', 'release:done']);
    expect(step(report, 'inFlight').detail).toBe('2 still in flight, cut: GET "/chat" (in flight 40.0 s); POST "/tools" (in flight 12.5 s)');
    expect(cut).toHaveBeenCalledOnce();
    expect(run.ended.inFlight).toBe(8_000); // 2 s kept for the release
    expect(table.log.at(-1)).toBe('delete');
  });

  it('untilDrained: waits until the registry reports the target gone from every group (the load balancer ended its draining)', async () => {
    // Prepare
    const lease = await servingLease({ capabilities: ['vision', 'speech'], rotationPollIntervalMs: 500 });
    const t0 = Date.now();
    const run = startLeave(lease, { propagationMarginMs: 0, inFlight: untilDrained(lease) });
    table.setRotation('vision', 'draining', t0 + 200);
    table.setRotation('speech', 'draining', t0 + 200);
    await vi.advanceTimersByTimeAsync(5_000);
    const releasedWhileDraining = table.log.includes('delete');

    // Act: vision's draining ends, then speech's
    table.setRotation('vision', 'absent', t0 + 5_000);
    await vi.advanceTimersByTimeAsync(3_000);
    const releasedWithSpeechDraining = table.log.includes('delete');
    table.setRotation('speech', 'absent', t0 + 8_000);
    await vi.advanceTimersByTimeAsync(1_000);
    await run.leaving;

    // Assess
    expect(releasedWhileDraining).toBe(false);
    expect(releasedWithSpeechDraining).toBe(false);
    expect(outcomes(run.report()!)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:done', 'release:done']);
    expect(step(run.report()!, 'inFlight').detail).toBe('2 in flight at the start, none now');
    expect(run.ended.release).toBeGreaterThanOrEqual(8_000);
  });
});

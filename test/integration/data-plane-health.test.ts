import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer, LoadBalancerSnapshot } from '../../lib/local/data-plane';
import { capabilityRules, get, load, MemorySource, RecordingSink, startTargetServer, stateOf, tally, targetGroup, TargetServer } from './data-plane-harness';

/**
 * The data plane's health checks and deregistration as a client sees them: a target failing its
 * checks leaves rotation after the unhealthy threshold and comes back after the healthy one; a
 * group whose targets all fail fails open; a deregistered target gets no new request, finishes
 * what it has in flight, reads `draining` for the deregistration delay, and is cut at its end.
 */

const TIME_SCALE = 0.05; // 5 s health check interval → 250 ms; 10 s deregistration delay → 500 ms
const DEREGISTRATION_DELAY_MS = 10_000 * TIME_SCALE;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function servers(...names: string[]): Promise<TargetServer[]> {
  const started = await Promise.all(names.map(startTargetServer));
  cleanups.push(async () => void (await Promise.all(started.map((s) => s.close()))));
  return started;
}

async function startLb(snapshot: LoadBalancerSnapshot) {
  const source = new MemorySource(snapshot);
  const sink = new RecordingSink();
  const lb = await LoadBalancer.start({ source, sink, timeScale: TIME_SCALE, pollIntervalMs: 50 });
  cleanups.push(() => lb.stop());
  return { lb, source, sink };
}

const visionOnly = (list: TargetServer[]): LoadBalancerSnapshot => ({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', list)] });
const ask = (lb: LoadBalancer) => get(lb.endpoint, '/agents/vision/x');

describe('local data plane: health and draining', () => {
  it('takes a target out after UnhealthyThresholdCount failed checks and back after HealthyThresholdCount passes', async () => {
    const [sick, well] = await servers('sick', 'well');
    const { lb, sink } = await startLb(visionOnly([sick, well]));
    await Promise.all([sink.waitFor(stateOf(sick, 'healthy')), sink.waitFor(stateOf(well, 'healthy'))]);
    expect(tally((await load(4, 1, () => ask(lb))).map((a) => a.name))).toEqual({ sick: 2, well: 2 });

    sick.healthy = false;
    const down = await sink.waitFor(stateOf(sick, 'unhealthy'));
    expect(down.health).toEqual({ State: 'unhealthy', Reason: 'Target.ResponseCodeMismatch', Description: 'Health checks failed with these codes: [500]' });
    // Checks are one interval apart, so "after 2 failed checks" is "within interval × threshold".
    expect(sick.healthChecks.filter((c) => !c.passed && c.at <= down.at)).toHaveLength(2);
    expect(tally((await load(10, 2, () => ask(lb))).map((a) => a.name))).toEqual({ well: 10 });
    expect(lb.describeTargetHealth('tg/vision').find((d) => d.Target?.Port === sick.port)?.TargetHealth?.State).toBe('unhealthy');

    sick.healthy = true;
    const recovered = sink.changes.length;
    const up = await sink.waitFor(stateOf(sick, 'healthy'), recovered);
    expect(sick.healthChecks.filter((c) => c.passed && c.at > down.at && c.at <= up.at)).toHaveLength(2);
    expect(tally((await load(4, 1, () => ask(lb))).map((a) => a.name))).toEqual({ sick: 2, well: 2 });
  });

  it('reports a target whose port stopped answering as failing its health checks', async () => {
    const [crashing, well] = await servers('crashing', 'well');
    const { lb, sink } = await startLb(visionOnly([crashing, well]));
    await sink.waitFor(stateOf(crashing, 'healthy'));
    await crashing.close();
    const down = await sink.waitFor(stateOf(crashing, 'unhealthy'));
    expect(down.health).toMatchObject({ Reason: 'Target.FailedHealthChecks' });
    expect(tally((await load(6, 2, () => ask(lb))).map((a) => a.name))).toEqual({ well: 6 });
  });

  it('fails open when every target of the group is unhealthy', async () => {
    const [a, b] = await servers('a', 'b');
    const { lb, sink } = await startLb(visionOnly([a, b]));
    await Promise.all([sink.waitFor(stateOf(a, 'healthy')), sink.waitFor(stateOf(b, 'healthy'))]);
    a.healthy = false;
    b.healthy = false;
    await Promise.all([sink.waitFor(stateOf(a, 'unhealthy')), sink.waitFor(stateOf(b, 'unhealthy'))]);
    const answers = await load(8, 1, () => ask(lb));
    expect(answers.every((x) => x.status === 200)).toBe(true);
    expect(tally(answers.map((x) => x.name))).toEqual({ a: 4, b: 4 });
    expect(lb.metrics().targetGroups[0]).toMatchObject({ failOpen: true, healthyHostCount: 0, unhealthyHostCount: 2 });
  });

  it('a newly registered target is initial until one check passes, then takes requests', async () => {
    const [first, joining] = await servers('first', 'joining');
    const { lb, source, sink } = await startLb(visionOnly([first]));
    await sink.waitFor(stateOf(first, 'healthy'));
    const from = sink.changes.length;
    source.set(visionOnly([first, joining]));
    const initial = await sink.waitFor(stateOf(joining, 'initial'), from);
    expect(initial.health.Reason).toBe('Elb.RegistrationInProgress');
    const healthy = await sink.waitFor(stateOf(joining, 'healthy'), from);
    expect(joining.healthChecks.filter((c) => c.at <= healthy.at)).toEqual([{ at: expect.any(Number), passed: true }]);
    expect(tally((await load(4, 1, () => ask(lb))).map((a) => a.name))).toEqual({ first: 2, joining: 2 });
  });

  it('a deregistered target gets no new request at once, finishes its in-flight one, and its deregistration completes as that one ends', async () => {
    const [leaving, staying] = await servers('leaving', 'staying');
    // A delay long enough (30 s scaled) that only the early completion can end it during the test.
    const longDelay = (list: TargetServer[]): LoadBalancerSnapshot => ({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', list, { 'deregistration_delay.timeout_seconds': '600' })] });
    const { lb, source, sink } = await startLb(longDelay([leaving, staying]));
    await Promise.all([sink.waitFor(stateOf(leaving, 'healthy')), sink.waitFor(stateOf(staying, 'healthy'))]);

    leaving.hold = true;
    staying.hold = true;
    const inFlight = [ask(lb), ask(lb)]; // round robin: one each
    await Promise.all([leaving.whenHeld(1), staying.whenHeld(1)]);
    staying.release();

    source.set(longDelay([staying]));
    const draining = await sink.waitFor(stateOf(leaving, 'draining'));
    expect(draining.health).toEqual({ State: 'draining', Reason: 'Target.DeregistrationInProgress', Description: 'Target deregistration is in progress' });
    expect(tally((await load(10, 2, () => ask(lb))).map((a) => a.name))).toEqual({ staying: 10 });
    expect(lb.describeTargetHealth('tg/vision').find((d) => d.Target?.Port === leaving.port)?.TargetHealth?.State).toBe('draining');

    const releasedAt = Date.now();
    leaving.release();
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => [a.status, a.name]).sort()).toEqual([
      [200, 'leaving'],
      [200, 'staying'],
    ]);
    // Its last request ended: ALB "immediately completes the deregistration process".
    const gone = await sink.waitFor(stateOf(leaving, 'unused'));
    expect(gone.health.Reason).toBe('Target.NotRegistered');
    expect(gone.at).toBeGreaterThanOrEqual(releasedAt);
    expect(gone.at - draining.at).toBeLessThan(600_000 * TIME_SCALE);
    expect(lb.describeTargetHealth('tg/vision').map((d) => d.Target?.Port)).toEqual([staying.port]);
  });

  it('a deregistered target with nothing in flight completes its deregistration at once', async () => {
    const [idle, other] = await servers('idle', 'other');
    const snapshot = (list: TargetServer[]): LoadBalancerSnapshot => ({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', list, { 'deregistration_delay.timeout_seconds': '600' })] });
    const { lb, source, sink } = await startLb(snapshot([idle, other]));
    await Promise.all([sink.waitFor(stateOf(idle, 'healthy')), sink.waitFor(stateOf(other, 'healthy'))]);

    source.set(snapshot([other]));
    const draining = await sink.waitFor(stateOf(idle, 'draining'));
    const gone = await sink.waitFor(stateOf(idle, 'unused'));

    expect(gone.at).toBe(draining.at); // the same instant: nothing had to finish
    expect(sink.changes.indexOf(gone)).toBe(sink.changes.indexOf(draining) + 1);
    expect(lb.describeTargetHealth('tg/vision').map((d) => d.Target?.Port)).toEqual([other.port]);
  });

  it('cuts a request still in flight when the deregistration delay ends: the client gets a 502', async () => {
    const [slow] = await servers('slow');
    const { lb, source, sink } = await startLb(visionOnly([slow]));
    await sink.waitFor(stateOf(slow, 'healthy'));
    slow.hold = true;
    const pending = ask(lb);
    await slow.whenHeld(1);
    source.set(visionOnly([]));
    const draining = await sink.waitFor(stateOf(slow, 'draining'));
    expect((await ask(lb)).status).toBe(503); // no target left for new requests
    const cut = await pending;
    expect(cut.status).toBe(502);
    const gone = await sink.waitFor(stateOf(slow, 'unused'));
    expect(gone.at - draining.at).toBeGreaterThanOrEqual(DEREGISTRATION_DELAY_MS);
    expect(lb.metrics().targetGroups[0].loadBalancerErrors).toEqual({ '502': 1, '503': 1 });
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, PortUnavailableError } from '../../lib/core/errors';
import { LoadBalancer, LoadBalancerOptions, LoadBalancerSnapshot } from '../../lib/local/data-plane';
import { mulberry32 } from '../support/prng';
import { capabilityRules, cookieJar, eventually, get, load, MemorySource, RecordingSink, startTargetServer, stateOf, tally, targetGroup, TargetServer } from './data-plane-harness';

/**
 * The data plane as a client sees it: requests by header and by path reach the servers of their
 * capability, the default rule answers the rest, the group's algorithm, stickiness and weights
 * shape who answers, and the load balancer's own errors (502, 504) look like ALB's.
 */

const TIME_SCALE = 0.05; // 5 s health check interval → 250 ms

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function servers(...names: string[]): Promise<TargetServer[]> {
  const started = await Promise.all(names.map(startTargetServer));
  cleanups.push(async () => void (await Promise.all(started.map((s) => s.close()))));
  return started;
}

async function startLb(snapshot: LoadBalancerSnapshot, options: Partial<LoadBalancerOptions> = {}) {
  const source = new MemorySource(snapshot);
  const sink = new RecordingSink();
  const errors: unknown[] = [];
  const lb = await LoadBalancer.start({ source, sink, timeScale: TIME_SCALE, pollIntervalMs: 50, onError: (_w, e) => errors.push(e), ...options });
  cleanups.push(() => lb.stop());
  return { lb, source, sink, errors };
}

/** Waits until every given server was reported healthy in `group`. */
async function allHealthy(sink: RecordingSink, group: string, list: TargetServer[]): Promise<void> {
  await Promise.all(list.map((s) => sink.waitFor(stateOf(s, 'healthy', group))));
}

describe('local data plane: routing', () => {
  it('routes by header in any letter case and by path to the servers of the capability; the rest gets the default 404 JSON', async () => {
    const [v1, v2, s1] = await servers('vision-1', 'vision-2', 'speech-1');
    const { lb, sink } = await startLb({
      rules: capabilityRules({ vision: 'tg/vision', speech: 'tg/speech' }),
      targetGroups: [targetGroup('tg/vision', [v1, v2]), targetGroup('tg/speech', [s1])],
    });
    expect(lb.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await allHealthy(sink, 'tg/vision', [v1, v2]);
    await allHealthy(sink, 'tg/speech', [s1]);

    const byHeader = await Promise.all(
      ['vision', 'VISION', 'Vision', 'vIsIoN'].map((value, i) => get(lb.endpoint, '/hello', { [i % 2 ? 'x-agent-capability' : 'X-AGENT-CAPABILITY']: value })),
    );
    expect(byHeader.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(tally(byHeader.map((r) => r.name))).toEqual({ 'vision-1': 2, 'vision-2': 2 });
    expect((await get(lb.endpoint, '/agents/speech/hello?x=1')).name).toBe('speech-1');
    expect((await get(lb.endpoint, '/hello', { 'X-Agent-Capability': 'SPEECH' })).name).toBe('speech-1');
    expect(s1.requests.at(-1)?.url).toBe('/hello'); // the path is forwarded unchanged

    const unknown = await get(lb.endpoint, '/agents/painting/x', { 'X-Agent-Capability': 'painting' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toBe('application/json');
    expect(JSON.parse(unknown.body)).toEqual({ error: 'unknown capability', capabilities: ['speech', 'vision'] });
    // path patterns are case-sensitive
    expect((await get(lb.endpoint, '/agents/Speech/x')).status).toBe(404);
  });

  it("takes headers up to ALB's quotas (16 KB a header, 64 KB in all) and answers ALB's 400 past them, never reaching the target", async () => {
    const [v1] = await servers('vision-1');
    const { lb, sink } = await startLb({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [v1])] });
    await allHealthy(sink, 'tg/vision', [v1]);
    const big = (n: number, size: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-big-${i}`, 'a'.repeat(size)]));
    const seen = v1.requests.length;
    expect((await get(lb.endpoint, '/agents/vision/x', big(1, 15_000))).status).toBe(200);
    expect(v1.requests.length).toBe(seen + 1);
    for (const [headers, path] of [
      [big(1, 17_000), '/agents/vision/x'],
      [big(5, 15_000), '/agents/vision/x'],
      [big(10, 15_000), '/agents/vision/x'],
      [{}, `/agents/vision/x?q=${'a'.repeat(17_000)}`],
    ] as const) {
      const res = await get(lb.endpoint, path, headers);
      expect(res.status).toBe(400);
      expect(res.body).toContain('400 Bad Request');
      expect(res.headers.server).toBe('awselb/2.0');
    }
    expect(v1.requests.length).toBe(seen + 1);
  });

  it('adds X-Forwarded-For, -Proto, -Port and a trace id, keeping the Host the client sent', async () => {
    const [v1] = await servers('vision-1');
    const { lb, sink } = await startLb({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [v1])], listenerPort: 80 });
    await allHealthy(sink, 'tg/vision', [v1]);
    await get(lb.endpoint, '/agents/vision/x', { 'X-Forwarded-For': '203.0.113.7', Host: 'agents.example.com' });
    const seen = v1.requests.at(-1)?.headers ?? {};
    expect(seen['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-port']).toBe('80');
    expect(seen['x-amzn-trace-id']).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$/);
    expect(seen.host).toBe('agents.example.com');
  });

  it('least outstanding requests sends a slow target fewer requests than round robin does', async () => {
    const [fast, slow] = await servers('fast', 'slow');
    slow.delayMs = 150;
    const share = async (algorithm: string) => {
      const { lb, sink } = await startLb(
        { rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [fast, slow], { 'load_balancing.algorithm.type': algorithm })] },
        { random: mulberry32(3) },
      );
      await allHealthy(sink, 'tg/vision', [fast, slow]);
      const answers = await load(60, 4, () => get(lb.endpoint, '/agents/vision/work'));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      await lb.stop();
      return tally(answers.map((a) => a.name)).slow ?? 0;
    };
    const roundRobin = await share('round_robin');
    const leastOutstanding = await share('least_outstanding_requests');
    expect(roundRobin).toBe(30); // round robin alternates, whatever the speed
    expect(leastOutstanding).toBeLessThan(roundRobin);
  });

  it('ramps a target that joins a serving group up linearly over the slow start duration', async () => {
    const [old, fresh] = await servers('old', 'fresh');
    let frozenAt: number | undefined;
    const slowStart = { 'slow_start.duration_seconds': '30' }; // × 0.05 = 1.5 s
    const { lb, source, sink } = await startLb(
      { rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [old], slowStart)] },
      { clock: () => frozenAt ?? Date.now() },
    );
    await allHealthy(sink, 'tg/vision', [old]);
    source.set({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [old, fresh], slowStart)] });
    const joined = await sink.waitFor(stateOf(fresh, 'healthy'));
    const share = async (intoRampMs: number) => {
      frozenAt = joined.at + intoRampMs; // the data plane's clock stands still while the requests run
      const answers = await load(100, 1, () => get(lb.endpoint, '/agents/vision/x'));
      return tally(answers.map((a) => a.name)).fresh ?? 0;
    };
    expect(await share(0)).toBe(0);
    expect(await share(375)).toBe(20); // a quarter of the way: weight 0.25 against 1
    expect(await share(1500)).toBe(50); // ramp over: a full share
  });

  it('keeps a client on one target with the AWSALB cookie; clients without it are spread', async () => {
    const list = await servers('a', 'b', 'c');
    const { lb, sink } = await startLb({
      rules: capabilityRules({ vision: 'tg/vision' }),
      targetGroups: [targetGroup('tg/vision', list, { 'stickiness.enabled': 'true', 'stickiness.type': 'lb_cookie', 'stickiness.lb_cookie.duration_seconds': '300' })],
    });
    await allHealthy(sink, 'tg/vision', list);
    const first = await get(lb.endpoint, '/agents/vision/chat');
    expect(first.setCookie.map((c) => c.split('=')[0])).toEqual(['AWSALB', 'AWSALBCORS']);
    const cookie = cookieJar(first.setCookie);
    const sticky = await load(12, 3, () => get(lb.endpoint, '/agents/vision/chat', { Cookie: cookie }));
    expect(new Set(sticky.map((a) => a.name))).toEqual(new Set([first.name]));
    const free = await load(12, 1, () => get(lb.endpoint, '/agents/vision/chat'));
    expect(new Set(free.map((a) => a.name)).size).toBe(3);
  });

  it('application cookie stickiness: once the target sets its cookie, the client stays with it', async () => {
    const list = await servers('a', 'b');
    const { lb, sink } = await startLb({
      rules: capabilityRules({ vision: 'tg/vision' }),
      targetGroups: [targetGroup('tg/vision', list, { 'stickiness.enabled': 'true', 'stickiness.type': 'app_cookie', 'stickiness.app_cookie.cookie_name': 'session' })],
    });
    await allHealthy(sink, 'tg/vision', list);
    const plain = await get(lb.endpoint, '/agents/vision/x');
    expect(plain.setCookie).toEqual([]); // no app cookie yet, no AWSALBAPP
    const login = await get(lb.endpoint, '/agents/vision/login');
    expect(login.setCookie.map((c) => c.split('=')[0])).toEqual(['session', 'AWSALBAPP-0']);
    const jar = cookieJar(login.setCookie);
    const after = await load(8, 2, () => get(lb.endpoint, '/agents/vision/x', { Cookie: jar }));
    expect(new Set(after.map((a) => a.name))).toEqual(new Set([login.name]));
  });

  it('splits a weighted forward action by weight (within 5 points over 1000 requests) and pins a client with AWSALBTG', async () => {
    const [stable, canary] = await servers('stable', 'canary');
    const weighted = [
      {
        Type: 'forward' as const,
        ForwardConfig: {
          TargetGroups: [
            { TargetGroupArn: 'tg/vision', Weight: 80 },
            { TargetGroupArn: 'tg/vision-canary', Weight: 20 },
          ],
          TargetGroupStickinessConfig: { Enabled: true, DurationSeconds: 600 },
        },
      },
    ];
    const { lb, sink } = await startLb(
      { rules: capabilityRules({ vision: weighted }), targetGroups: [targetGroup('tg/vision', [stable]), targetGroup('tg/vision-canary', [canary])] },
      { random: mulberry32(42) },
    );
    await allHealthy(sink, 'tg/vision', [stable]);
    await allHealthy(sink, 'tg/vision-canary', [canary]);
    const answers = await load(1000, 8, () => get(lb.endpoint, '/agents/vision/x'));
    const share = (tally(answers.map((a) => a.name)).canary ?? 0) / 1000;
    expect(Math.abs(share - 0.2)).toBeLessThan(0.05);
    const first = await get(lb.endpoint, '/agents/vision/x');
    const jar = cookieJar(first.setCookie);
    expect(jar).toMatch(/^AWSALBTG=[^;]+; AWSALBTGCORS=/);
    const pinned = await load(30, 3, () => get(lb.endpoint, '/agents/vision/x', { Cookie: jar }));
    expect(new Set(pinned.map((a) => a.name))).toEqual(new Set([first.name]));
  });

  it('answers 502 when the target refuses the connection and 504 when it stays silent past the idle timeout; counts them apart from target 5xx', async () => {
    const [gone, silent, failing] = await servers('gone', 'silent', 'failing');
    const { lb, sink } = await startLb(
      {
        rules: capabilityRules({ gone: 'tg/gone', silent: 'tg/silent', failing: 'tg/failing' }),
        targetGroups: [targetGroup('tg/gone', [gone]), targetGroup('tg/silent', [silent]), targetGroup('tg/failing', [failing])],
      },
      { idleTimeoutMs: 300 },
    );
    await Promise.all([allHealthy(sink, 'tg/gone', [gone]), allHealthy(sink, 'tg/silent', [silent]), allHealthy(sink, 'tg/failing', [failing])]);
    await gone.close();
    const refused = await get(lb.endpoint, '/agents/gone/x');
    expect(refused.status).toBe(502);
    expect(refused.headers.server).toBe('awselb/2.0');
    expect(refused.body).toContain('502 Bad Gateway');
    silent.hold = true;
    const timedOut = await get(lb.endpoint, '/agents/silent/x');
    expect(timedOut.status).toBe(504);
    expect(timedOut.body).toContain('504 Gateway Time-out');
    silent.release();
    expect((await get(lb.endpoint, '/agents/failing/fail')).status).toBe(500);
    const groups = Object.fromEntries(lb.metrics().targetGroups.map((g) => [g.targetGroupName, g]));
    expect(groups.gone.loadBalancerErrors).toEqual({ '502': 1 });
    expect(groups.silent.loadBalancerErrors).toEqual({ '504': 1 });
    expect(groups.failing).toMatchObject({ loadBalancerErrors: {}, targetResponses: { '5xx': 1 } });
  });
});

describe('local data plane: failures around it', () => {
  it('refuses a port in use and options out of range with named errors', async () => {
    const [v1] = await servers('vision-1');
    const { lb } = await startLb({ rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [v1])] });
    const source = new MemorySource({ rules: [], targetGroups: [] });
    const inUse = LoadBalancer.start({ source, port: lb.port });
    await expect(inUse).rejects.toBeInstanceOf(PortUnavailableError);
    await expect(inUse).rejects.toMatchObject({ code: 'PORT_UNAVAILABLE', message: `the load balancer cannot listen on 127.0.0.1:${lb.port}: the port is in use` });
    const badScale = LoadBalancer.start({ source, timeScale: 0 });
    await expect(badScale).rejects.toBeInstanceOf(ConfigError);
    await expect(badScale).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: 'timeScale must be a positive number of milliseconds or a positive factor, got 0' });
    await expect(LoadBalancer.start({ source, port: 70_000 })).rejects.toMatchObject({ message: 'port must be 0 (any free port) or 1-65535, got 70000' });
  });

  it('keeps routing with the last good snapshot when the source fails, and when the sink fails', async () => {
    const [v1] = await servers('vision-1');
    const good = { rules: capabilityRules({ vision: 'tg/vision' }), targetGroups: [targetGroup('tg/vision', [v1])] };
    let failing = false;
    const errors: [string, unknown][] = [];
    let sawHealthy: () => void = () => undefined;
    const healthy = new Promise<void>((resolve) => (sawHealthy = resolve));
    const lb = await LoadBalancer.start({
      source: { snapshot: () => (failing ? Promise.reject(new Error('moto is down')) : Promise.resolve(good)) },
      sink: {
        onTargetHealth: (change) => {
          if (change.health.State === 'healthy') sawHealthy();
          throw new Error('sink is down');
        },
      },
      timeScale: TIME_SCALE,
      pollIntervalMs: 20,
      onError: (where, error) => errors.push([where, error]),
    });
    cleanups.push(() => lb.stop());
    await healthy;
    failing = true;
    await eventually(() => errors.some(([where]) => where === 'source'), 'a failed snapshot');
    expect((await get(lb.endpoint, '/agents/vision/x')).name).toBe('vision-1');
    expect(errors.find(([where]) => where === 'sink')?.[1]).toEqual(new Error('sink is down'));
  });
});

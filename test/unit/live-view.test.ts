import { describe, expect, it } from 'vitest';
import { askedCapability } from '../../lib/local/demo-agents';
import { diffFrames, renderFrame, renderTraffic, summaryLine, trafficRates, ViewFrame } from '../../lib/local/live-view';

const target = (port: number, state: string) => ({ id: '127.0.0.1', port, state });

function frame(at: number, visionRequests: number, errors: Record<string, number> = {}, target5xx = 0): ViewFrame {
  return {
    at,
    capabilities: [
      { capability: 'vision', liveLeases: 2, registered: [target(9001, 'healthy'), target(9002, 'unhealthy')], traffic: { requests: visionRequests, target5xx, loadBalancerErrors: errors } },
      { capability: 'speech', liveLeases: 1, registered: [target(9003, 'initial')], draining: [target(9004, 'draining')], traffic: { requests: 0, target5xx: 0, loadBalancerErrors: {} } },
    ],
    syncedRecords: 3,
    elbCalls: 2,
    agents: { up: 3, down: 1 },
    loadBalancer: { endpoint: 'http://127.0.0.1:8080', fixedResponses: 1 },
  };
}

describe('live view with the load balancer', () => {
  it('computes requests/s and the 5xx generated between two frames, per capability', () => {
    const before = frame(1_000, 10, { '502': 1 }, 2);
    const after = frame(3_000, 30, { '502': 3, '503': 1, '404': 7 }, 5);
    expect(trafficRates(before, after)).toEqual([
      { capability: 'vision', requestsPerSecond: 10, target5xx: 3, loadBalancer5xx: 3 },
      { capability: 'speech', requestsPerSecond: 0, target5xx: 0, loadBalancer5xx: 0 },
    ]);
    // Without an earlier frame there is no rate, only the totals since start.
    expect(trafficRates(undefined, after)[0]).toEqual({ capability: 'vision', requestsPerSecond: 0, target5xx: 5, loadBalancer5xx: 4 });
    expect(renderTraffic(before, after)).toMatch(/traffic over 2 s: vision 10\.0 req\/s 5xx target 3 lb 3 · speech 0\.0 req\/s 5xx target 0 lb 0$/);
  });

  it('shows health states, rates and the load balancer’s own 5xx by code in the TTY frame, and healthy/registered/live in the summary', () => {
    const text = renderFrame(frame(3_000, 30, { '502': 3, '404': 2 }, 5), [], 'header', frame(2_000, 20));
    expect(text).toContain('REQ/S');
    expect(text).toMatch(/^vision\s+2\s+2\s+10\.0\s+5\s+502:3\s+127\.0\.0\.1:9001\(healthy\) 127\.0\.0\.1:9002\(unhealthy\)$/m);
    expect(text).toMatch(/^speech\s+1\s+1\s+0\.0\s+0\s+0\s+127\.0\.0\.1:9003\(initial\) 127\.0\.0\.1:9004\(draining\)$/m);
    expect(text).toContain('unknown capability 404s 1');
    expect(summaryLine(frame(3_000, 0))).toMatch(/ healthy\/registered\/live vision=1\/2\/2 speech=0\/1\/1$/);
    const { loadBalancer: _, ...withoutLb } = frame(3_000, 0);
    expect(summaryLine(withoutLb)).toMatch(/ registered\/live vision=2\/2 speech=1\/1$/);
  });
});

describe('live view events: rejections', () => {
  const ocr = { target: '127.0.0.1:9005', reason: 'unknown-capability', message: 'capability "ocr" is not routed', capabilities: ['ocr'] };
  it('prints each refusal when it first shows (from the first frame on), again only when its reason changes, and when it ends', () => {
    const first = { ...frame(1_000, 0), rejections: [ocr] };
    const same = { ...frame(2_000, 0), rejections: [ocr] };
    const other = { ...frame(3_000, 0), rejections: [{ ...ocr, reason: 'invalid', message: 'port must be N', capabilities: undefined }] };
    const none = { ...frame(4_000, 0), rejections: [] };
    expect(diffFrames(undefined, first).map((e) => e.text)).toEqual(['! 127.0.0.1:9005 rejected: unknown-capability (ocr): capability "ocr" is not routed']);
    expect(diffFrames(first, same)).toEqual([]);
    expect(diffFrames(same, other).map((e) => e.text)).toEqual(['! 127.0.0.1:9005 rejected: invalid: port must be N']);
    expect(diffFrames(other, none).map((e) => e.text)).toEqual(['✓ 127.0.0.1:9005 no longer rejected']);
  });
});

describe('live view with the capability catalog', () => {
  it('shows the catalog\'s revision and routable capabilities in the frame, and the revision in the summary', () => {
    const withCatalog: ViewFrame = { ...frame(3_000, 0), catalog: { path: '/agents', revision: 17, routable: 1, capabilities: 2 } };
    expect(renderFrame(withCatalog, [], 'header')).toContain('catalog GET /agents revision 17 · 1 of 2 capabilities routable');
    expect(summaryLine(withCatalog)).toMatch(/ vision=1\/2\/2 speech=0\/1\/1 · catalog revision 17$/);
    expect(renderFrame(frame(3_000, 0), [], 'header')).not.toContain('catalog');
  });
});

describe('demo agents: the capability a request asked for', () => {
  it.each([
    [{ 'x-agent-capability': 'VISION' }, '/x', 'vision'],
    [{ 'x-agent-capability': ' speech ' }, '/x', 'speech'],
    [{}, '/agents/speech/hello', 'speech'],
    [{ 'x-agent-capability': 'ocr' }, '/agents/speech/hello', 'speech'],
    [{}, '/hello', 'vision'],
  ])('%j %s → %s', (headers, url, expected) => {
    expect(askedCapability({ headers, url }, ['vision', 'speech'])).toBe(expected);
  });
});

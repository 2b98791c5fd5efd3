import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadBalancer, LoadBalancerSnapshot } from '../../lib/local/data-plane';
import { capabilityRules, MemorySource, RecordingSink, TargetServer } from './data-plane-harness';
import { targetGroup } from './data-plane-harness';

/**
 * Long and streamed answers through the local data plane, as through ALB: server-sent events
 * reach the client as the target produces them; the load balancer's idle timeout (its attribute,
 * scaled by the time scale like the deregistration delay) answers 504 for a target silent before
 * its response and cuts a stream that goes silent that long, while a stream that keeps sending
 * lives as long as it likes.
 */

const TIME_SCALE = 0.05; // idle timeout 10 s → 500 ms
const IDLE_SECONDS = 10;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A target whose `/sse?events=N&every=MS&pauseAfter=K&pauseMs=P` sends N events, one every MS ms
 * (a pause of P ms after the K-th), then `event: done`; `/silent?ms=M` answers after M ms. Each
 * event of the stream is announced on `sent` as the target writes it.
 */
async function streamingTarget(): Promise<{ server: TargetServer; sent: string[] }> {
  const sent: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://target');
    const n = (name: string, fallback: number) => Number(url.searchParams.get(name) ?? fallback);
    if (url.pathname === '/health') return void res.writeHead(200).end('ok');
    if (url.pathname.endsWith('/silent')) return void setTimeout(() => res.writeHead(200).end('late'), n('ms', 0));
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i === n('events', 3)) {
        sent.push('done');
        return void res.end('event: done\ndata: end\n\n');
      }
      if (i === n('dieAfter', -1)) return void res.socket?.destroy(); // the target process goes away mid-answer
      i++;
      sent.push(`tick ${i}`);
      res.write(`data: tick ${i}\n\n`);
      setTimeout(next, i === n('pauseAfter', -1) ? n('pauseMs', 0) : n('every', 50));
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))));
  const port = (server.address() as AddressInfo).port;
  return { server: { name: 'stream', port } as TargetServer, sent };
}

async function startLb(target: TargetServer): Promise<{ lb: LoadBalancer; sink: RecordingSink }> {
  const snapshot: LoadBalancerSnapshot = {
    rules: capabilityRules({ vision: 'tg/vision' }),
    targetGroups: [targetGroup('tg/vision', [target])],
    loadBalancerAttributes: [{ Key: 'idle_timeout.timeout_seconds', Value: String(IDLE_SECONDS) }],
  };
  const sink = new RecordingSink();
  const lb = await LoadBalancer.start({ source: new MemorySource(snapshot), sink, timeScale: TIME_SCALE, pollIntervalMs: 50 });
  cleanups.push(() => lb.stop());
  await sink.waitFor((c) => c.health.State === 'healthy');
  return { lb, sink };
}

/** Reads a response as it arrives: the chunks with when each came, the status, and whether it ended whole. */
function stream(endpoint: string, path: string): Promise<{ status: number; chunks: { at: number; text: string }[]; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: { at: number; text: string }[] = [];
    const req = http.request(`${endpoint}${path}`, { headers: { 'X-Agent-Capability': 'vision' }, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (text: string) => chunks.push({ at: Date.now(), text }));
      const done = () => resolve({ status: res.statusCode ?? 0, chunks, complete: res.complete });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', () => resolve({ status: 0, chunks, complete: false }));
    req.end();
  });
}

describe('local data plane: streamed and long answers', () => {
  it('passes server-sent events through as they are produced: the first reaches the client while the target is still sending', async () => {
    const { server, sent } = await streamingTarget();
    const { lb } = await startLb(server);

    const answer = await stream(lb.endpoint, '/sse?events=5&every=100');

    expect(answer).toMatchObject({ status: 200, complete: true });
    expect(answer.chunks.map((c) => c.text).join('')).toBe('data: tick 1\n\ndata: tick 2\n\ndata: tick 3\n\ndata: tick 4\n\ndata: tick 5\n\nevent: done\ndata: end\n\n');
    // Not buffered: the first event arrived in a chunk of its own, before the last was sent.
    expect(answer.chunks[0].text).toBe('data: tick 1\n\n');
    expect(answer.chunks.length).toBeGreaterThanOrEqual(5);
    expect(sent).toHaveLength(6);
  });

  it('a stream that keeps sending outlives the idle timeout many times over', async () => {
    const { server } = await streamingTarget();
    const { lb } = await startLb(server);
    expect(lb.idleTimeoutMs).toBe(IDLE_SECONDS * 1000 * TIME_SCALE);

    const started = Date.now();
    const answer = await stream(lb.endpoint, '/sse?events=15&every=200'); // 3 s, an event every 200 ms; idle timeout 500 ms

    expect(answer).toMatchObject({ status: 200, complete: true });
    expect(Date.now() - started).toBeGreaterThan(lb.idleTimeoutMs * 4);
    expect(answer.chunks.map((c) => c.text).join('')).toContain('event: done');
  });

  it('answers 504 for a target silent past the idle timeout (scaled) before it answers', async () => {
    const { server } = await streamingTarget();
    const { lb } = await startLb(server);

    const answer = await stream(lb.endpoint, '/agents/vision/silent?ms=3000');

    expect(answer.status).toBe(504);
    expect(lb.metrics().targetGroups[0].loadBalancerErrors).toEqual({ '504': 1 });
  });

  it('ends the client\'s stream when the target goes away mid-answer', async () => {
    const { server } = await streamingTarget();
    const { lb } = await startLb(server);

    const answer = await stream(lb.endpoint, '/sse?events=10&every=50&dieAfter=2');

    expect(answer).toMatchObject({ status: 200, complete: false });
    expect(answer.chunks.map((c) => c.text).join('')).toBe('data: tick 1\n\ndata: tick 2\n\n');
  });

  it('cuts a stream that goes silent for the idle timeout: the client sees it end early', async () => {
    const { server, sent } = await streamingTarget();
    const { lb } = await startLb(server);

    const answer = await stream(lb.endpoint, '/sse?events=4&every=50&pauseAfter=2&pauseMs=3000');

    expect(answer.status).toBe(200);
    expect(answer.complete).toBe(false);
    expect(answer.chunks.map((c) => c.text).join('')).toBe('data: tick 1\n\ndata: tick 2\n\n');
    expect(sent.slice(0, 2)).toEqual(['tick 1', 'tick 2']);
  });
});

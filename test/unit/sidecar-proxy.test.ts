/**
 * The sidecar's proxy in front of an app, in process on 127.0.0.1: it counts what is in flight
 * through it, passes a streamed answer through chunk by chunk (the first byte reaches the client
 * before the app has finished), keeps the client's headers, and answers 502 itself when the app
 * does not.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SidecarProxy } from '../../lib/cli/sidecar-proxy';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The app: `/stream` writes 'first ' and ends with 'last' once released; `/echo` answers with the headers it got. */
async function app() {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const server = http.createServer((req, res) => {
    if (req.url === '/echo') return void res.end(JSON.stringify(req.headers));
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('first ');
    void released.then(() => res.end('last'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))));
  return { port: (server.address() as AddressInfo).port, release, server };
}

async function proxyTo(port: number, lines: string[] = []) {
  const proxy = await SidecarProxy.start({ port: 0, host: '127.0.0.1', upstream: new URL(`http://127.0.0.1:${port}`), keepAliveTimeoutMs: 65_000, onError: (l) => lines.push(l) });
  cleanups.push(() => proxy.close());
  return proxy;
}

function get(port: number, path: string, headers: http.OutgoingHttpHeaders = {}) {
  let first!: (chunk: string) => void;
  const firstChunk = new Promise<string>((r) => (first = r));
  const done = new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body === '') first(c);
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
  return { firstChunk, done };
}

describe('SidecarProxy', () => {
  it('counts a streamed answer in flight and passes its first bytes through before the app has finished', async () => {
    const { port, release } = await app();
    const proxy = await proxyTo(port);

    const answer = get(proxy.port, '/stream');
    const first = await answer.firstChunk;
    const inFlight = proxy.inFlight;
    release();
    const { status, body } = await answer.done;
    await proxy.tracker.whenIdle();

    expect(first).toBe('first ');
    expect(inFlight).toBe(1);
    expect({ status, body }).toEqual({ status: 200, body: 'first last' });
    expect(proxy.inFlight).toBe(0);
  });

  it('forwards the headers the load balancer added, Host included', async () => {
    const { port } = await app();
    const proxy = await proxyTo(port);
    const { body } = await get(proxy.port, '/echo', { 'X-Forwarded-For': '10.0.0.9', 'X-Amzn-Trace-Id': 'Root=1-abc', Host: 'agents.example' }).done;
    expect(JSON.parse(body)).toMatchObject({ 'x-forwarded-for': '10.0.0.9', 'x-amzn-trace-id': 'Root=1-abc', host: 'agents.example' });
  });

  it('answers 502 with one line when the app does not answer, and says so', async () => {
    const { port, server } = await app();
    server.close();
    const lines: string[] = [];
    const proxy = await proxyTo(port, lines);
    const { status, body } = await get(proxy.port, '/anything').done;
    expect(status).toBe(502);
    expect(body).toBe(`agent-lb sidecar: the app at http://127.0.0.1:${port} did not answer (ECONNREFUSED)\n`);
    expect(lines).toEqual([`the app at http://127.0.0.1:${port} did not answer GET request: ECONNREFUSED`]);
  });

  it('refuses a port in use with a named error', async () => {
    const { port } = await app();
    await expect(SidecarProxy.start({ port, host: '127.0.0.1', upstream: new URL('http://127.0.0.1:1'), keepAliveTimeoutMs: 1000 })).rejects.toMatchObject({ code: 'PORT_UNAVAILABLE' });
  });
});

/**
 * In-flight wiring out of the box for Node's http server and the popular frameworks on it
 * (Express, Fastify, Koa): `trackInFlight` takes what each one hands out, `inFlightMiddleware`
 * counts inside an app whose server is not its own, and a leave waits for a streamed answer in
 * flight, then cuts what is left at its deadline with a line. Real servers on 127.0.0.1.
 */
import { createServer, request, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { afterEach, describe, expect, it, test } from 'vitest';
import { ConfigError, InFlightCounter, inFlightMiddleware, InFlightSource, trackInFlight } from '../../lib/sdk';

/** A route that sends `first`, waits until `release()` is called, then sends `last` and ends: a streamed answer. */
class Gate {
  public release!: () => void;
  public readonly open = new Promise<void>((r) => (this.release = r));
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close().catch(() => undefined);
});

/** GET `path` on `port`; resolves with the status, the body as it came and when the first byte arrived. */
function get(port: number, path: string): { firstByte: Promise<string>; done: Promise<{ status: number; body: string; complete: boolean }> } {
  let firstByte!: (chunk: string) => void;
  const first = new Promise<string>((r) => (firstByte = r));
  const done = new Promise<{ status: number; body: string; complete: boolean }>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body === '') firstByte(c);
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, complete: false }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body, complete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: '', complete: false }));
    req.end();
  });
  return { firstByte: first, done };
}

/** Each framework with a streamed route at /stream, started on a free port; returns what trackInFlight takes. */
const frameworks: Record<string, (gate: Gate) => Promise<{ port: number; trackable: Parameters<typeof trackInFlight>[0] }>> = {
  'node:http': async (gate) => {
    const server = createServer((_req, res) => {
      res.write('first ');
      void gate.open.then(() => res.end('last'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => closeServer(server));
    return { port: (server.address() as AddressInfo).port, trackable: server };
  },
  express: async (gate) => {
    const app = express();
    app.get('/stream', (_req, res) => {
      res.write('first ');
      void gate.open.then(() => res.end('last'));
    });
    const server = await new Promise<Server>((r) => {
      const s = app.listen(0, '127.0.0.1', () => r(s));
    });
    closers.push(() => closeServer(server));
    return { port: (server.address() as AddressInfo).port, trackable: server };
  },
  fastify: async (gate) => {
    const app = Fastify();
    app.get('/stream', (_req, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/plain' });
      reply.raw.write('first ');
      void gate.open.then(() => reply.raw.end('last'));
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    return { port: (app.server.address() as AddressInfo).port, trackable: app };
  },
  koa: async (gate) => {
    const app = new Koa();
    app.use(async (ctx) => {
      ctx.respond = false;
      ctx.res.writeHead(200, { 'content-type': 'text/plain' });
      ctx.res.write('first ');
      void gate.open.then(() => ctx.res.end('last'));
    });
    const server = await new Promise<Server>((r) => {
      const s = app.listen(0, '127.0.0.1', () => r(s));
    });
    closers.push(() => closeServer(server));
    return { port: (server.address() as AddressInfo).port, trackable: server };
  },
};

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return server.listening ? new Promise((r) => server.close(() => r())) : Promise.resolve();
}

describe('trackInFlight on each framework', () => {
  test.each(Object.keys(frameworks))('%s: counts a streamed answer until its last byte, stops accepting on leave, lets it finish', async (name) => {
    // Prepare
    const gate = new Gate();
    const { port, trackable } = await frameworks[name](gate);
    const tracker = trackInFlight(trackable);
    const answer = get(port, '/stream');
    expect(await answer.firstByte).toBe('first ');

    // Act: the leave's in-flight step
    const counted = tracker.inFlight;
    tracker.stopAccepting();
    let idle = false;
    const idleNow = tracker.whenIdle().then(() => (idle = true));
    await new Promise((r) => setImmediate(r));
    const idleBeforeEnd = idle;
    gate.release();
    await idleNow;

    // Assess
    expect(counted).toBe(1);
    expect(idleBeforeEnd).toBe(false);
    expect(await answer.done).toEqual({ status: 200, body: 'first last', complete: true });
    expect(tracker.inFlight).toBe(0);
  });

  test.each(Object.keys(frameworks))('%s: cut() ends an answer still in flight and names it', async (name) => {
    const gate = new Gate();
    const { port, trackable } = await frameworks[name](gate);
    const tracker = trackInFlight(trackable);
    const answer = get(port, '/stream?id=1');
    await answer.firstByte;

    const lines = tracker.cut();

    expect(lines).toEqual([expect.stringMatching(/^GET "\/stream\?id=1" \(in flight \d+\.\d s\)$/)]);
    expect(await answer.done).toMatchObject({ body: 'first ', complete: false });
    await tracker.whenIdle();
    gate.release();
  });

  it('refuses what is not a server, in one line', () => {
    expect(() => trackInFlight(express() as never)).toThrow(new ConfigError('trackInFlight needs a Node HTTP server (http.createServer(), app.listen() of Express or Koa) or a Fastify instance'));
  });
});

describe('inFlightMiddleware', () => {
  it('counts each request of an Express app until its response is done, streamed bodies included', async () => {
    const counter = new InFlightCounter();
    const gate = new Gate();
    const app = express();
    app.use(inFlightMiddleware(counter));
    app.get('/stream', (_req, res) => {
      res.write('first ');
      void gate.open.then(() => res.end('last'));
    });
    const server = await new Promise<Server>((r) => {
      const s = app.listen(0, '127.0.0.1', () => r(s));
    });
    closers.push(() => closeServer(server));
    const answer = get((server.address() as AddressInfo).port, '/stream');
    await answer.firstByte;
    expect(counter.inFlight).toBe(1);
    const idle = counter.whenIdle();
    gate.release();
    await idle;
    expect((await answer.done).body).toBe('first last');
    expect(counter.inFlight).toBe(0);
  });
});

// Keeps the type of what the sidecar wraps honest: a tracker is an InFlightSource that can cut.
const _source: InFlightSource = trackInFlight(createServer());
void _source;

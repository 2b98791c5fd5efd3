import { createServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoadRequest } from './steady-load';

/**
 * B6's agent: a plain HTTP server whose requests last as long as they ask. `/work?ms=N` answers
 * `done` after N ms; with `&sse=1` it streams a server-sent event every 500 ms for the whole N
 * ms, then `event: done`. `/health` answers 200. It knows every request it is serving and when
 * each will end, so the bench can say how long the longest one in flight still had to run when
 * its agent was told to leave.
 */
export class LongRequestApp {
  public port = 0;
  private readonly active = new Map<ServerResponse, number>();
  private readonly server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    if (url.pathname === '/health') return void res.end('ok');
    const ms = Math.max(0, Number(url.searchParams.get('ms') ?? 0));
    this.active.set(res, Date.now() + ms);
    res.once('close', () => this.active.delete(res));
    if (url.searchParams.get('sse') !== '1') return void setTimeout(() => res.end('done\n'), ms);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    const until = Date.now() + ms;
    let n = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (Date.now() >= until) return void res.end(SSE_END);
      res.write(`data: ${++n}\n\n`);
      setTimeout(tick, Math.min(SSE_EVERY_MS, Math.max(0, until - Date.now())));
    };
    tick();
  });

  public async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Requests being answered now. */
  public get inFlight(): number {
    return this.active.size;
  }

  /** How long the longest request in flight still has to run, ms (0 when none is). */
  public longestRemainingMs(): number {
    const now = Date.now();
    return Math.max(0, ...[...this.active.values()].map((end) => end - now));
  }

  /** As a killed process: every connection cut, requests in flight included. */
  public stop(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

const SSE_EVERY_MS = 500;
const SSE_END = 'event: done\ndata: end\n\n';

/**
 * The requests of B6's load: durations uniform in [minSeconds, maxSeconds] of ALB time, run
 * `timeScale` times as long (1–60 s at 0.2: 0.2–12 s), every `sseEvery`-th one streamed for its
 * whole length; `random` makes the mix repeatable.
 */
export function longRequestMix(options: { readonly capability: string; readonly minSeconds: number; readonly maxSeconds: number; readonly timeScale: number; readonly sseEvery: number; readonly random: () => number }) {
  return (i: number): LoadRequest => {
    const seconds = options.minSeconds + (options.maxSeconds - options.minSeconds) * options.random();
    const ms = Math.round(seconds * 1000 * options.timeScale);
    const sse = i % options.sseEvery === 0;
    return {
      path: `/work?ms=${ms}${sse ? '&sse=1' : ''}`,
      headers: { 'X-Agent-Capability': options.capability },
      bodyEndsWith: sse ? SSE_END : 'done\n',
      tag: `${sse ? 'sse' : 'plain'} ${ms}`,
    };
  };
}

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ConfigError } from '../core/errors';
import { quoteUntrusted } from '../core/untrusted-text';

/**
 * What `leave()` waits on before it releases the lease: work the process is still doing for
 * requests it accepted.
 */
export interface InFlightSource {
  /** Requests (or units of work) in progress now. */
  readonly inFlight: number;
  /** Resolves when nothing is in progress (at once when idle already). */
  whenIdle(): Promise<void>;
  /**
   * Called once, when the target is out of rotation everywhere and the propagation margin has
   * passed: no new request should come any more, so stop accepting and close what is idle.
   */
  stopAccepting?(): void;
  /**
   * Called when the leave's deadline (or a second signal) ends the wait with work still in
   * flight, right before the release: end that work now. Returns one short line per unit of
   * work cut (`GET /chat (in flight 312.0 s)`), which the leave logs.
   */
  cut?(): readonly string[];
}

/**
 * A hook `leave()` calls instead: return the number of requests in flight (it is called again
 * every 100 ms until it returns 0) or a promise that resolves when they are done.
 */
export type InFlightHook = () => number | Promise<void>;

/**
 * A counter the application feeds: `begin()` when work starts, call what it returns when the
 * work ends (or wrap it in `track`). Pass it to `leave({ inFlight })`.
 */
export class InFlightCounter implements InFlightSource {
  private count = 0;
  private waiters: (() => void)[] = [];

  public get inFlight(): number {
    return this.count;
  }

  /** Counts one unit of work; returns its end, which counts once however often it is called. */
  public begin(): () => void {
    this.count++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.count--;
      if (this.count === 0) for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** Counts `work` while it runs (a promise, or a function returning one) and passes its result on. */
  public async track<T>(work: Promise<T> | (() => Promise<T>)): Promise<T> {
    const end = this.begin();
    try {
      return await (typeof work === 'function' ? work() : work);
    } finally {
      end();
    }
  }

  public whenIdle(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Counts one HTTP response until it is done (sent, or its connection closed): the building
   * block of {@link inFlightMiddleware}, for any framework that hands out Node's response
   * (Express `res`, Koa `ctx.res`, Fastify `reply.raw`).
   */
  public trackResponse(res: ServerResponse): void {
    const end = this.begin();
    res.once('close', end);
  }
}

/** `(req, res, next)` middleware, the shape Express and Connect take. */
export type NodeMiddleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

/**
 * Middleware counting every request until its response is done (streamed bodies included), for
 * apps that do not own their HTTP server: `app.use(inFlightMiddleware(counter))` first in line
 * (Express, Connect), then `leave({ inFlight: counter })`. Prefer `trackInFlight(server)` when
 * you have the server: it also closes keep-alive connections at the right moment.
 */
export function inFlightMiddleware(counter: InFlightCounter): NodeMiddleware {
  return (_req, res, next) => {
    counter.trackResponse(res);
    next();
  };
}

/**
 * Counts the requests an HTTP server is answering and closes its connections at the right
 * moment of a graceful exit: while the target is still in rotation, keep-alive connections
 * stay open (closing one just as the load balancer reuses it is a 502); once `leave()` calls
 * `stopAccepting()`, the server stops listening, idle keep-alive connections are closed, and
 * each response still in progress is sent with `Connection: close` (or its connection closed
 * as soon as it is idle). Upgraded connections (WebSocket) are not counted.
 */
export class HttpInFlightTracker extends InFlightCounter {
  private closing = false;
  /** Each response in progress, with what it answers and since when (for the lines of a cut). */
  private readonly active = new Map<ServerResponse, { readonly what: string; readonly since: number }>();

  public constructor(private readonly server: Server) {
    super();
    // First in line, so the header is set before the application's handler writes its response.
    server.prependListener('request', this.onRequest);
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const end = this.begin();
    this.active.set(res, { what: `${req.method ?? 'GET'} ${quoteUntrusted(req.url ?? '/')}`, since: Date.now() });
    if (this.closing) res.shouldKeepAlive = false;
    res.once('close', () => {
      this.active.delete(res);
      end();
      if (this.closing) this.server.closeIdleConnections();
    });
  };

  /** Ends every response still in progress (its connection destroyed: the client sees it cut); one line each. */
  public cut(): readonly string[] {
    const now = Date.now();
    const lines = [...this.active].map(([res, { what, since }]) => {
      res.destroy();
      return `${what} (in flight ${((now - since) / 1000).toFixed(1)} s)`;
    });
    return lines;
  }

  public stopAccepting(): void {
    if (this.closing) return;
    this.closing = true;
    for (const res of this.active.keys()) if (!res.headersSent) res.shouldKeepAlive = false;
    // close() also closes idle connections (Node ≥ 19); called again to be explicit.
    if (this.server.listening) this.server.close();
    this.server.closeIdleConnections();
  }

  /** Stops counting (the listener is removed); the server is left as it is. */
  public dispose(): void {
    this.server.removeListener('request', this.onRequest);
  }
}

/** What `trackInFlight` takes: Node's HTTP or HTTPS server, or an object holding one as `server` (a Fastify instance). */
export type TrackableServer = Server | { readonly server: Server };

/**
 * Starts counting `server`'s requests; pass the result to `leave({ inFlight })` or
 * `installShutdownHandlers`. Call it before the first request. Takes Node's `http`/`https`
 * server, what `app.listen()` returns in Express and Koa, or a Fastify instance (its `.server`).
 * @throws ConfigError when given something that is not one of those
 */
export function trackInFlight(server: TrackableServer): HttpInFlightTracker {
  const found = isServer(server) ? server : isServer((server as { server?: unknown })?.server) ? (server as { server: Server }).server : undefined;
  if (found === undefined) throw new ConfigError('trackInFlight needs a Node HTTP server (http.createServer(), app.listen() of Express or Koa) or a Fastify instance');
  return new HttpInFlightTracker(found);
}

function isServer(value: unknown): value is Server {
  const v = value as Partial<Server> | undefined;
  return typeof v?.prependListener === 'function' && typeof v?.closeIdleConnections === 'function' && typeof v?.close === 'function';
}

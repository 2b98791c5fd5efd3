import type { IncomingMessage, Server, ServerResponse } from 'node:http';

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
  private readonly active = new Set<ServerResponse>();

  public constructor(private readonly server: Server) {
    super();
    // First in line, so the header is set before the application's handler writes its response.
    server.prependListener('request', this.onRequest);
  }

  private readonly onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    const end = this.begin();
    this.active.add(res);
    if (this.closing) res.shouldKeepAlive = false;
    res.once('close', () => {
      this.active.delete(res);
      end();
      if (this.closing) this.server.closeIdleConnections();
    });
  };

  public stopAccepting(): void {
    if (this.closing) return;
    this.closing = true;
    for (const res of this.active) if (!res.headersSent) res.shouldKeepAlive = false;
    // close() also closes idle connections (Node ≥ 19); called again to be explicit.
    if (this.server.listening) this.server.close();
    this.server.closeIdleConnections();
  }

  /** Stops counting (the listener is removed); the server is left as it is. */
  public dispose(): void {
    this.server.removeListener('request', this.onRequest);
  }
}

/** Starts counting `server`'s requests; pass the result to `leave({ inFlight })` or `installShutdownHandlers`. */
export function trackInFlight(server: Server): HttpInFlightTracker {
  return new HttpInFlightTracker(server);
}

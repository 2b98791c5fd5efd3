import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyServer } from 'http-proxy-3';
import { MissingDependencyError, PortUnavailableError } from '../core/errors';
import { HttpInFlightTracker, trackInFlight } from '../sdk/in-flight';
import { peerRanges } from './local-command';

/** The HTTP proxy library the local data plane forwards with; an optional peer dependency (an SDK-only install leaves it out). */
export const PROXY_PACKAGE = 'http-proxy-3';

export interface SidecarProxyOptions {
  /** Port to listen on: the port the lease registers, so the load balancer (and its health checks) reach the proxy. */
  readonly port: number;
  /** Interface to listen on. @default '0.0.0.0' */
  readonly host?: string;
  /** The app: where every request goes (`http://127.0.0.1:8081`). */
  readonly upstream: URL;
  /**
   * How long an idle keep-alive connection from the load balancer is kept: longer than the load
   * balancer's idle timeout, so the proxy never closes a connection the load balancer is about to
   * reuse (ALB's advice for its targets).
   */
  readonly keepAliveTimeoutMs: number;
  /** A request the app could not answer (refused, reset): one line. */
  readonly onError?: (line: string) => void;
}

/** `http-proxy-3@^1.23.3`, from this package's peerDependencies, for the install hint. */
function proxyPackageSpec(): string {
  const range = peerRanges()[PROXY_PACKAGE];
  return range ? `${PROXY_PACKAGE}@${range}` : PROXY_PACKAGE;
}

/**
 * http-proxy-3, loaded only when the sidecar fronts an app: an agent that uses the sidecar
 * without `--forward-to` (or the SDK alone) does not need it installed.
 * @throws MissingDependencyError naming the package to install
 */
function loadProxyLibrary(): typeof import('http-proxy-3') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(PROXY_PACKAGE) as typeof import('http-proxy-3');
  } catch (cause) {
    if ((cause as { code?: string }).code !== 'MODULE_NOT_FOUND') throw cause;
    throw new MissingDependencyError('agent-lb sidecar --forward-to', [proxyPackageSpec()], { cause, runtime: true });
  }
}

/** Throws MissingDependencyError now when the proxy library is not installed (before anything is started). */
export function assertProxyAvailable(): void {
  loadProxyLibrary();
}

/**
 * The sidecar in front of the app: an HTTP server on the lease's port that forwards every
 * request to the app with http-proxy-3 and streams each response back as it is produced (no
 * buffering: server-sent events, chunked answers and long polls pass through byte by byte), and
 * counts the requests in flight with the SDK's {@link HttpInFlightTracker}, which is what the
 * sidecar's leave waits on: once the target is out of rotation, the proxy stops accepting, closes
 * idle connections, lets every request in flight finish, and cuts what is left at the leave
 * deadline (one line each).
 *
 * Requests go to the app on a fresh connection each (a loopback connect costs little, and a
 * pooled connection the app closes just as it is reused would fail a request); headers pass
 * unchanged, the load balancer's `X-Forwarded-*` included; no timeout of its own cuts a slow
 * answer (the load balancer's idle timeout and the leave deadline do). When the app refuses or
 * resets the connection before answering, the client gets a 502 from the proxy.
 */
export class SidecarProxy {
  public readonly tracker: HttpInFlightTracker;
  private readonly server: http.Server;
  private readonly proxy: ProxyServer;

  private constructor(private readonly options: SidecarProxyOptions) {
    const { createProxyServer } = loadProxyLibrary();
    this.proxy = createProxyServer({ target: options.upstream.toString(), xfwd: false, secure: true, agent: false });
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.keepAliveTimeout = options.keepAliveTimeoutMs;
    // Node's default cuts a request whose body takes 5 minutes to arrive; uploads to agents are
    // small, but the answer may take longer than that: only the request itself is bounded.
    this.server.requestTimeout = 0;
    this.tracker = trackInFlight(this.server);
  }

  /**
   * Listens on `port`; resolves once it accepts connections.
   * @throws MissingDependencyError when http-proxy-3 is not installed
   * @throws PortUnavailableError when the port cannot be bound
   */
  public static async start(options: SidecarProxyOptions): Promise<SidecarProxy> {
    const proxy = new SidecarProxy(options);
    const host = options.host ?? '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      const fail = (error: NodeJS.ErrnoException) => reject(new PortUnavailableError('the sidecar proxy', host, options.port, { cause: error }));
      proxy.server.once('error', fail);
      proxy.server.listen({ host, port: options.port }, () => {
        proxy.server.off('error', fail);
        resolve();
      });
    });
    return proxy;
  }

  /** The port it listens on (the one given, or the one picked for 0). */
  public get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Requests being answered now. */
  public get inFlight(): number {
    return this.tracker.inFlight;
  }

  /** Stops listening and closes every connection (a request still in flight is cut). */
  public async close(): Promise<void> {
    const closed = this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    this.server.closeAllConnections();
    await closed;
    this.proxy.close();
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.proxy.web(req, res, {}, (error: Error) => {
      const code = (error as NodeJS.ErrnoException).code ?? error.message;
      if (res.headersSent || res.destroyed) {
        // The app went away mid-answer: the client sees the response end early, as it would without the proxy.
        res.destroy();
        return;
      }
      if (req.socket.destroyed) return; // the client left
      this.options.onError?.(`the app at ${this.options.upstream.origin} did not answer ${req.method ?? 'GET'} request: ${code}`);
      const body = `agent-lb sidecar: the app at ${this.options.upstream.origin} did not answer (${code})\n`;
      res.writeHead(502, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(body);
    });
  }
}

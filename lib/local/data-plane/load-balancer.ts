import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TargetHealthDescription } from '@aws-sdk/client-elastic-load-balancing-v2';
import { createProxyServer } from 'http-proxy-3';
import { ConfigError, PortUnavailableError } from '../../core/errors';
import { LOOPBACK } from '../emulators/free-port';
import { DataPlaneEngine, ForwardOutcome, HealthCheckJob } from './data-plane-engine';
import { DataPlaneMetrics } from './data-plane-metrics';
import { ALB_HEADER_LIMITS, clientAddress, forwardedHeaders, headerLimitExceeded, LOAD_BALANCER_SERVER, loadBalancerErrorPage, traceId } from './forwarded-headers';
import { CheckQueue, DEFAULT_MAX_CHECKS_IN_FLIGHT } from './check-queue';
import { probeTarget, RunningCheck } from './health-prober';
import { serveLambda } from './lambda-invocation';
import type { LambdaInvoker } from './lambda-target';
import type { RoutingDecision } from './request-routing';
import { LoadBalancerStateSource, TargetAddressResolver, TargetHealthChange, TargetHealthSink } from './snapshot';
import { loadBalancerPolicy, LoadBalancerPolicy } from './target-group-attributes';

/**
 * The local data plane's HTTP runtime: an HTTP listener on 127.0.0.1 that behaves as an ALB
 * would from the state a {@link LoadBalancerStateSource} gives it. Per request it evaluates the
 * listener rules, picks a target group and a target ({@link DataPlaneEngine}) and forwards with
 * http-proxy-3, counting outstanding requests per target; it adds X-Forwarded-For/-Proto/-Port
 * and a trace id; it answers 502 when the target refuses or resets the connection, 504 when the
 * target stays silent for the idle timeout, 503 when no target can take the request, and fixed
 * responses as configured. It runs each group's health checks on their interval and reports
 * every target health change to a {@link TargetHealthSink}. A deregistered target gets no new
 * request at once; its in-flight requests go on until the deregistration delay ends, when they
 * are cut (the client gets a 502, as on ALB: "The deregistration delay period elapsed for a
 * request being handled by a target that was deregistered").
 *
 * Not modelled: WebSocket upgrades (ALB proxies them; here they travel as plain requests), HTTP/2
 * and gRPC to targets, TLS listeners, and the seconds a real ALB takes to start checking a newly
 * registered target (the first check here starts as soon as the snapshot shows the target).
 */

export interface LoadBalancerOptions {
  readonly source: LoadBalancerStateSource;
  readonly sink?: TargetHealthSink;
  /** Interface to listen on. @default 127.0.0.1 */
  readonly host?: string;
  /** Port to listen on; 0 picks a free one. @default 0 */
  readonly port?: number;
  /** How often the source is read. @default 1000 */
  readonly pollIntervalMs?: number;
  /**
   * Multiplies every duration the data plane models for requests and targets: health check
   * interval and timeout, deregistration delay, slow start (and the anomaly window), and the
   * load balancer's idle timeout (the deregistration delay and the idle timeout both derive
   * from how long requests last, so they scale together). ALB's minimum interval is 5 s; a test
   * may run the same settings 100 times faster with 0.01. Stickiness durations concern clients
   * and are not scaled.
   * @default 1
   */
  readonly timeScale?: number;
  /** @default Date.now */
  readonly clock?: () => number;
  /** Uniform in [0, 1); weighted choices and ties. @default Math.random */
  readonly random?: () => number;
  /** Health checks in flight at once, taken round-robin across target groups. @default DEFAULT_MAX_CHECKS_IN_FLIGHT (64) */
  readonly maxChecksInFlight?: number;
  /** How a target id is reached. @default the id is the address (ip targets) */
  readonly resolveTarget?: TargetAddressResolver;
  /** Replaces the load balancer's `idle_timeout.timeout_seconds`, in milliseconds (not scaled). */
  readonly idleTimeoutMs?: number;
  /**
   * Runs the function a Lambda target group names (by its ARN) with ALB's event. A request routed
   * to a Lambda target group gets a 502 without one, as from a function that failed.
   */
  readonly invokeLambda?: LambdaInvoker;
  /** A failure that does not stop the data plane: a snapshot, a health report, a proxied request. */
  readonly onError?: (where: 'source' | 'sink' | 'proxy', error: unknown) => void;
  /** Something in the snapshot the data plane cannot model faithfully; once per distinct problem. */
  readonly onProblem?: (message: string) => void;
  /** One line per request, like an ALB access log entry. */
  readonly onAccessLog?: (entry: AccessLogEntry) => void;
}

/** What happened to one request (after ALB access log fields). */
export interface AccessLogEntry {
  readonly time: number;
  readonly method: string;
  readonly url: string;
  readonly clientIp: string;
  readonly rule: { readonly ruleArn?: string; readonly priority: string };
  readonly targetGroupArn?: string;
  /** `id:port` of the target the request was forwarded to. */
  readonly target?: string;
  /** Status the client got. */
  readonly elbStatusCode: number;
  /** Status the target answered, when it did. */
  readonly targetStatusCode?: number;
  readonly durationMs: number;
}

interface Flight {
  readonly decision: Extract<RoutingDecision, { kind: 'forward' }>;
  readonly res: http.ServerResponse;
  proxyReq?: http.ClientRequest;
  targetStatus?: number;
  lbStatus?: 502 | 504;
  cutByDeregistration?: boolean;
  /** The response had started and went silent for the idle timeout. */
  cutByIdleTimeout?: boolean;
  done?: boolean;
}

export class LoadBalancer {
  public readonly engine: DataPlaneEngine;
  private readonly server: http.Server;
  private readonly proxy = createProxyServer({ xfwd: false, toProxy: true, secure: false });
  // Connections to targets are kept alive, as ALB keeps them, but an idle one is dropped after
  // 2 s (or before the target's announced Keep-Alive timeout): reusing a connection the target
  // is closing at that moment fails the request with a 502, on ALB as here.
  private readonly agents = { http: new http.Agent({ keepAlive: true, timeout: 2000 }), https: new https.Agent({ keepAlive: true, timeout: 2000 }) };
  private readonly flights = new Map<http.IncomingMessage, Flight>();
  private readonly checks = new Set<RunningCheck>();
  private readonly waitingChecks = new CheckQueue<HealthCheckJob>();
  private readonly clock: () => number;
  private lbPolicy: LoadBalancerPolicy = loadBalancerPolicy();
  private pollTimer?: NodeJS.Timeout;
  private wakeTimer?: NodeJS.Timeout;
  private wakeAt?: number;
  private unsubscribe?: () => void;
  private reading?: Promise<void>;
  private readAgain = false;
  private sinkChain: Promise<void> = Promise.resolve();
  private stopped = false;
  private boundPort = 0;

  private constructor(private readonly options: LoadBalancerOptions) {
    this.clock = options.clock ?? Date.now;
    this.engine = new DataPlaneEngine({
      stickinessKey: randomBytes(32),
      ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
      ...(options.random !== undefined ? { random: options.random } : {}),
      ...(options.resolveTarget !== undefined ? { resolveTarget: options.resolveTarget } : {}),
    });
    // Node's parser stops at 16 KB of header by default and answers 431 itself; ALB takes 64 KB
    // (16 KB a line) and answers what is over with its own 400. Node's limit is set above ALB's,
    // so serve() judges by ALB's quotas; what is over even that gets the same 400.
    this.server = http.createServer({ maxHeaderSize: ALB_HEADER_LIMITS.requestHeader + ALB_HEADER_LIMITS.requestLine + 1024 }, (req, res) => this.handle(req, res));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      const page = loadBalancerErrorPage(400);
      socket.end(`HTTP/1.1 400 Bad Request\r\nServer: ${LOAD_BALANCER_SERVER}\r\nContent-Type: ${page.contentType}\r\nContent-Length: ${Buffer.byteLength(page.body)}\r\nConnection: close\r\n\r\n${page.body}`);
    });
    this.proxy.on('proxyReq', (proxyReq, req) => this.onProxyReq(proxyReq, req));
    this.proxy.on('error', (error) => options.onError?.('proxy', error));
    this.proxy.on('proxyRes', (proxyRes, req) => this.onProxyRes(proxyRes, req));
  }

  /**
   * Starts listening and reads the source once; resolves when requests can be served (a source
   * that fails at start is reported through `onError` and read again at the next poll).
   *
   * @throws ConfigError when an option is out of range, quoting it.
   * @throws PortUnavailableError (code `PORT_UNAVAILABLE`) when the port cannot be bound (in use, or not allowed).
   */
  public static async start(options: LoadBalancerOptions): Promise<LoadBalancer> {
    validateOptions(options);
    const lb = new LoadBalancer(options);
    const host = options.host ?? LOOPBACK;
    const port = options.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: NodeJS.ErrnoException) => reject(new PortUnavailableError('the load balancer', host, port, { cause: error }));
      lb.server.once('error', fail);
      lb.server.listen({ host, port }, () => {
        lb.server.off('error', fail);
        resolve();
      });
    });
    lb.boundPort = (lb.server.address() as AddressInfo).port;
    await lb.refresh();
    const poll = options.pollIntervalMs ?? 1000;
    const loop = () => {
      lb.pollTimer = setTimeout(() => void lb.refresh().finally(() => !lb.stopped && loop()), poll);
      lb.pollTimer.unref();
    };
    loop();
    lb.unsubscribe = options.source.subscribe?.(() => void lb.refresh());
    return lb;
  }

  /** `http://127.0.0.1:<port>`. */
  public get endpoint(): string {
    const host = this.options.host ?? LOOPBACK;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.boundPort}`;
  }

  public get port(): number {
    return this.boundPort;
  }

  /** The idle timeout in force (the load balancer's attribute × time scale, or the option), ms. */
  public get idleTimeoutMs(): number {
    return this.options.idleTimeoutMs ?? this.lbPolicy.idleTimeoutMs;
  }

  /** Reads the source now (coalesced with a read already running). */
  public refresh(): Promise<void> {
    if (this.reading !== undefined) {
      this.readAgain = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.readAgain = false;
        try {
          const snapshot = await this.options.source.snapshot();
          if (this.stopped) return;
          this.lbPolicy = loadBalancerPolicy(snapshot.loadBalancerAttributes, this.engine.timeScale);
          const { changes, problems } = this.engine.applySnapshot(snapshot, this.clock());
          for (const p of problems) this.options.onProblem?.(p);
          this.report(changes);
        } catch (error) {
          this.options.onError?.('source', error);
        }
      } while (this.readAgain && !this.stopped);
    })().finally(() => {
      this.reading = undefined;
      this.schedule();
    });
    return this.reading;
  }

  public metrics(): DataPlaneMetrics {
    return this.engine.metrics(this.clock());
  }

  /** DescribeTargetHealth of one group, as the data plane sees it. */
  public describeTargetHealth(targetGroupArn: string): TargetHealthDescription[] {
    return this.engine.describeTargetHealth(targetGroupArn);
  }

  /** Stops listening, checking and polling; cuts requests still in flight; waits for the sink. */
  public async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.wakeTimer);
    this.unsubscribe?.();
    this.waitingChecks.clear();
    for (const check of this.checks) check.cancel();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const flight of this.flights.values()) flight.proxyReq?.destroy();
    this.agents.http.destroy();
    this.agents.https.destroy();
    await closed;
    await this.reading;
    await this.sinkChain;
  }

  private report(changes: readonly TargetHealthChange[]): void {
    for (const change of changes) {
      if (change.health.State === 'unused' && change.health.Reason === 'Target.NotRegistered') this.cutFlights(change.targetGroupArn, `${change.target.Id}:${change.target.Port}`);
      const sink = this.options.sink;
      if (sink === undefined) continue;
      this.sinkChain = this.sinkChain.then(async () => {
        try {
          await sink.onTargetHealth(change);
        } catch (error) {
          this.options.onError?.('sink', error);
        }
      });
    }
  }

  /** The deregistration delay is over: requests still in flight on the target end with a 502. */
  private cutFlights(targetGroupArn: string, key: string): void {
    for (const flight of this.flights.values()) {
      if (flight.decision.targetGroupArn !== targetGroupArn || flight.decision.targetKey !== key) continue;
      flight.cutByDeregistration = true;
      if (flight.proxyReq !== undefined) flight.proxyReq.destroy();
      // A response under way: the target's stream ends without an error to the proxy, so end the client's here.
      if (flight.proxyReq === undefined || flight.res.headersSent) this.failFlight(flight, 502);
    }
  }

  /** Arms one timer for the next thing due (a check, the end of a draining, an anomaly window). */
  private schedule(): void {
    if (this.stopped) return;
    const next = this.engine.nextWakeAt();
    if (next === undefined || (this.wakeAt !== undefined && this.wakeAt <= next)) return;
    clearTimeout(this.wakeTimer);
    this.wakeAt = next;
    this.wakeTimer = setTimeout(() => this.wake(), Math.max(0, next - this.clock()));
    this.wakeTimer.unref();
  }

  private wake(): void {
    this.wakeAt = undefined;
    if (this.stopped) return;
    const now = this.clock();
    this.report(this.engine.tick(now));
    for (const job of this.engine.dueChecks(now)) this.runCheck(job);
    this.schedule();
  }

  /** Queues a due check; it starts (and its timeout runs) once a slot is free, groups taking turns. */
  private runCheck(job: HealthCheckJob): void {
    this.waitingChecks.push(job.targetGroupArn, job);
    this.startWaitingChecks();
  }

  private startWaitingChecks(): void {
    const max = this.options.maxChecksInFlight ?? DEFAULT_MAX_CHECKS_IN_FLIGHT;
    while (!this.stopped && this.checks.size < max && this.waitingChecks.length > 0) {
      const job = this.waitingChecks.shift()!;
      const check = probeTarget(job);
      this.checks.add(check);
      void check.outcome.then((outcome) => {
        this.checks.delete(check);
        if (outcome !== undefined && !this.stopped) {
          this.report(this.engine.recordCheck(job, outcome, this.clock()));
          this.schedule();
        }
        this.startWaitingChecks();
      });
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    try {
      this.serve(req, res);
    } catch (error) {
      this.options.onError?.('proxy', error);
      if (!res.headersSent) this.sendLoadBalancerError(res, 500);
      else res.destroy();
    }
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = this.clock();
    const clientIp = clientAddress(req.socket.remoteAddress);
    if (headerLimitExceeded(req.method ?? 'GET', req.url ?? '/', req.rawHeaders) !== undefined) {
      this.sendLoadBalancerError(res, 400);
      this.options.onAccessLog?.({ time: started, method: req.method ?? 'GET', url: (req.url ?? '/').slice(0, 256), clientIp, rule: { priority: '-' }, elbStatusCode: 400, durationMs: this.clock() - started });
      return;
    }
    const decision = this.engine.route({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headersDistinct, sourceIp: clientIp }, started);
    const log = (elbStatusCode: number, targetStatusCode?: number) =>
      this.options.onAccessLog?.({
        time: started,
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        clientIp,
        rule: decision.rule,
        ...(decision.kind !== 'fixed-response' && decision.targetGroupArn !== undefined ? { targetGroupArn: decision.targetGroupArn } : {}),
        ...(decision.kind === 'invoke' ? { target: decision.functionArn } : {}),
        ...(decision.kind === 'forward' ? { target: decision.targetKey } : {}),
        elbStatusCode,
        ...(targetStatusCode !== undefined ? { targetStatusCode } : {}),
        durationMs: this.clock() - started,
      });
    switch (decision.kind) {
      case 'fixed-response': {
        const headers: http.OutgoingHttpHeaders = { Server: LOAD_BALANCER_SERVER };
        if (decision.contentType !== undefined) headers['Content-Type'] = decision.contentType;
        res.writeHead(decision.statusCode, headers).end(decision.body ?? '');
        log(decision.statusCode);
        return;
      }
      case 'load-balancer-error':
        this.sendLoadBalancerError(res, decision.statusCode);
        log(decision.statusCode);
        return;
      case 'invoke': {
        const next = forwardedHeaders(req.headersDistinct, { address: clientIp, listenerPort: this.engine.listenerPort ?? this.boundPort, protocol: 'http' }, this.lbPolicy, () => traceId(this.clock()));
        const headers = Object.fromEntries(Object.entries(next).map(([k, v]) => [k, v === undefined ? undefined : Array.isArray(v) ? v : [v]]));
        void serveLambda(req, res, decision, {
          headers,
          ...(this.options.invokeLambda ? { invoke: this.options.invokeLambda } : {}),
          fail: (r, statusCode) => this.sendLoadBalancerError(r, statusCode),
          onError: (error) => this.options.onError?.('proxy', error),
        })
          .then((outcome) => {
            this.engine.invoked(decision, outcome);
            if (outcome.by === 'target') log(outcome.statusCode, outcome.statusCode);
            else log(outcome.statusCode);
          })
          .catch((error: unknown) => {
            this.options.onError?.('proxy', error);
            if (!res.headersSent) this.sendLoadBalancerError(res, 502);
            else res.destroy();
          });
        return;
      }
      case 'forward':
        this.forward(req, res, decision, clientIp, (outcome) =>
          outcome.by === 'target' ? log(outcome.statusCode, outcome.statusCode) : log(outcome.statusCode),
        );
    }
  }

  private forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    decision: Extract<RoutingDecision, { kind: 'forward' }>,
    clientIp: string,
    log: (outcome: ForwardOutcome | { by: 'client'; statusCode: 460 }) => void,
  ): void {
    const flight: Flight = { decision, res };
    this.flights.set(req, flight);
    res.on('close', () => {
      this.flights.delete(req);
      if (flight.done) return;
      flight.done = true;
      // A response that ended normally is the target's; a 502/504 of ours is ours; anything
      // else is the client leaving early (ALB logs 460), which says nothing of the target.
      const outcome: ForwardOutcome | undefined =
        flight.lbStatus !== undefined
          ? { by: 'load-balancer', statusCode: flight.lbStatus }
          : flight.targetStatus !== undefined && res.writableFinished
            ? { by: 'target', statusCode: flight.targetStatus }
            : undefined;
      const now = this.clock();
      this.report(outcome !== undefined ? this.engine.finished(decision, outcome, now) : this.engine.abandoned(decision, now));
      log(outcome ?? { by: 'client', statusCode: 460 });
    });
    const next = forwardedHeaders(req.headers, { address: clientIp, listenerPort: this.engine.listenerPort ?? this.boundPort, protocol: 'http' }, this.lbPolicy, () => traceId(this.clock()));
    for (const name of Object.keys(req.headers)) if (!(name in next)) delete req.headers[name];
    Object.assign(req.headers, next);
    const secure = decision.protocol === 'HTTPS';
    this.proxy.web(
      req,
      res,
      { target: { host: decision.host, port: decision.port, protocol: secure ? 'https:' : 'http:' }, agent: secure ? this.agents.https : this.agents.http },
      (error) => {
        if (flight.done) return;
        const timedOut = flight.lbStatus === 504 || flight.cutByIdleTimeout === true;
        if (!timedOut && !flight.cutByDeregistration && req.socket.destroyed) return; // the client left; 'close' counts it
        if (!timedOut && !flight.cutByDeregistration) this.options.onError?.('proxy', error);
        this.failFlight(flight, timedOut ? 504 : 502);
      },
    );
  }

  /** Ends a flight the load balancer gave up on; the first reason given is the one logged and counted. */
  private failFlight(flight: Flight, statusCode: 502 | 504): void {
    flight.lbStatus ??= statusCode;
    if (flight.res.headersSent) flight.res.destroy();
    else this.sendLoadBalancerError(flight.res, flight.lbStatus);
  }

  private sendLoadBalancerError(res: http.ServerResponse, statusCode: number): void {
    const page = loadBalancerErrorPage(statusCode);
    res.writeHead(page.statusCode, { Server: LOAD_BALANCER_SERVER, 'Content-Type': page.contentType, 'Content-Length': Buffer.byteLength(page.body) }).end(page.body);
  }

  private onProxyReq(proxyReq: http.ClientRequest, req: http.IncomingMessage): void {
    const flight = this.flights.get(req);
    if (flight === undefined) return;
    flight.proxyReq = proxyReq;
    // ALB's idle timeout: nothing sent or received on the target's connection for that long.
    // Before the response starts the client gets a 504; a response that goes silent mid-stream
    // is cut (its connection closed: the client sees it end early).
    proxyReq.setTimeout(this.idleTimeoutMs, () => {
      if (flight.targetStatus === undefined) flight.lbStatus = 504;
      else flight.cutByIdleTimeout = true;
      proxyReq.destroy();
      if (flight.res.headersSent) this.failFlight(flight, 504);
    });
  }

  private onProxyRes(proxyRes: http.IncomingMessage, req: http.IncomingMessage): void {
    const flight = this.flights.get(req);
    if (flight === undefined) return;
    flight.targetStatus = proxyRes.statusCode ?? 0;
    // The target closed its connection mid-answer (stopped, crashed): the client's answer ends there too, as through ALB.
    proxyRes.once('close', () => {
      if (!proxyRes.complete && !flight.done) this.failFlight(flight, 502);
    });
    const decision = flight.decision;
    const existing = proxyRes.headers['set-cookie'] ?? [];
    const added = [...decision.setCookies];
    const app = decision.appCookie;
    if (app !== undefined && (app.always || existing.some((line) => line.split('=')[0].trim() === app.name))) added.push(...app.setCookies);
    if (added.length > 0) proxyRes.headers['set-cookie'] = [...existing, ...added];
  }
}

function validateOptions(options: LoadBalancerOptions): void {
  const positive = (name: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) throw new ConfigError(`${name} must be a positive number of milliseconds or a positive factor, got ${JSON.stringify(value)}`);
  };
  positive('timeScale', options.timeScale);
  positive('pollIntervalMs', options.pollIntervalMs);
  positive('idleTimeoutMs', options.idleTimeoutMs);
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)) {
    throw new ConfigError(`port must be 0 (any free port) or 1-65535, got ${JSON.stringify(options.port)}`);
  }
}

import { randomUUID } from 'node:crypto';
import { Agent, createServer, IncomingMessage, request, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { between, chance, Random } from '../support/prng';

/**
 * A fault-injecting HTTP proxy in front of moto's ELBv2 endpoint, on loopback only. The
 * handlers' ELB clients point at it, so every fault goes through the SDK's real retry path
 * (standard mode, 6 attempts) and, when the retries run out, through the handlers' own error
 * handling (batchItemFailures, a failed reconcile pass). Nothing in the handlers is changed.
 *
 * It also keeps a log of every ELB request with the times it was received, forwarded and
 * answered: forwarded mutations that moto answered 200 are exactly the target-group changes
 * the handlers made, which the checker compares with the agents' own log.
 */

export type FaultKind =
  /** 400 `<ErrorResponse>` with a throttling code, not forwarded. */
  | 'throttle'
  /** 500 InternalFailure or 503 ServiceUnavailable, not forwarded. */
  | 'server-error'
  /** Request held, then the connection destroyed; never forwarded. */
  | 'timeout-request'
  /** Forwarded (moto applies it), the answer held, then the connection destroyed: the caller cannot tell it worked. */
  | 'timeout-response'
  /** Connection destroyed at once, not forwarded. */
  | 'reset'
  /** Register/Deregister over AWS's shared bucket (burst 20, 4/s): 400 Throttling as AWS answers. */
  | 'bucket-throttle';

export const FAULT_KINDS: readonly FaultKind[] = ['throttle', 'server-error', 'timeout-request', 'timeout-response', 'reset', 'bucket-throttle'];

export interface FaultRates {
  /** Share of requests answered with a throttling error. */
  readonly throttle: number;
  /** Share answered 500/503. */
  readonly serverError: number;
  /** Share that time out (half lose the request, half lose the answer). */
  readonly timeout: number;
  /** Share whose connection is reset. */
  readonly reset: number;
}

export const NO_FAULTS: FaultRates = { throttle: 0, serverError: 0, timeout: 0, reset: 0 };

export interface ProxyLogEntry {
  readonly action: string;
  /** `x-chaos-origin` header set by the harness: `sync` or `reconcile`. */
  readonly origin: string;
  readonly targetGroupArn?: string;
  /** `<id>:<port>` of every target in a Register/DeregisterTargets request. */
  readonly targets: readonly string[];
  /** The SDK's `amz-sdk-invocation-id`: the same for every retry of one call. */
  readonly invocationId: string;
  /** The SDK's attempt number (1 for the first try). */
  readonly attempt: number;
  readonly receivedAt: number;
  forwardedAt?: number;
  /** When moto's answer came back to the proxy: the change landed between `forwardedAt` and this. */
  answeredAt?: number;
  respondedAt?: number;
  /** moto's HTTP status, when forwarded and answered. */
  status?: number;
  fault?: FaultKind;
}

export interface FaultProxyOptions {
  /** moto's port on 127.0.0.1. */
  readonly upstreamPort: number;
  readonly rates: FaultRates;
  readonly random: Random;
  /** How long a timeout holds the connection before destroying it, [min, max] ms. @default [1000, 3000] */
  readonly hangMs?: readonly [number, number];
  /** Error code of injected throttling. @default 'ThrottlingException' */
  readonly throttleCode?: string;
  /** Emulate AWS's Register/Deregister bucket. @default none */
  readonly bucket?: { readonly burst: number; readonly perSecond: number };
}

const MUTATING = new Set(['RegisterTargets', 'DeregisterTargets']);

function errorXml(code: string, message: string, type: 'Sender' | 'Receiver'): string {
  return (
    '<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">' +
    `<Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error>` +
    `<RequestId>${randomUUID()}</RequestId></ErrorResponse>`
  );
}

function targetsOf(params: URLSearchParams): string[] {
  const out: string[] = [];
  for (let i = 1; params.has(`Targets.member.${i}.Id`); i++) {
    out.push(`${params.get(`Targets.member.${i}.Id`)}:${params.get(`Targets.member.${i}.Port`) ?? ''}`);
  }
  return out;
}

export class FaultProxy {
  /** Every ELB request seen, in arrival order. */
  public readonly log: ProxyLogEntry[] = [];
  public readonly faults: Record<FaultKind, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  /** Random faults on or off (the bucket is separate). */
  public enabled = true;
  /** While true every request fails (throttling or 5xx): an ELB brown-out long enough to exhaust the SDK's retries. */
  public outage = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly upstreamAgent = new Agent({ keepAlive: true, maxSockets: 32 });
  private tokens: number;
  private refilledAt = Date.now();

  private constructor(
    private readonly server: Server,
    private readonly options: FaultProxyOptions,
  ) {
    this.tokens = options.bucket?.burst ?? 0;
  }

  public static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = createServer((req, res) => proxy?.handle(req, res));
    proxy = new FaultProxy(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  public get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Mutations moto accepted (answered 200), in the order they were forwarded. */
  public landedMutations(): ProxyLogEntry[] {
    return this.log.filter((e) => MUTATING.has(e.action) && e.forwardedAt !== undefined && e.status === 200).sort((a, b) => a.forwardedAt! - b.forwardedAt!);
  }

  public async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.upstreamAgent.destroy();
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const params = new URLSearchParams(body.toString('utf8'));
      const attempt = /attempt=(\d+)/.exec(String(req.headers['amz-sdk-request'] ?? ''));
      const entry: ProxyLogEntry = {
        action: params.get('Action') ?? '?',
        origin: String(req.headers['x-chaos-origin'] ?? 'unknown'),
        ...(params.has('TargetGroupArn') ? { targetGroupArn: params.get('TargetGroupArn')! } : {}),
        targets: targetsOf(params),
        invocationId: String(req.headers['amz-sdk-invocation-id'] ?? randomUUID()),
        attempt: attempt ? Number(attempt[1]) : 1,
        receivedAt: Date.now(),
      };
      this.log.push(entry);
      const fault = this.drawFault(entry.action);
      if (fault !== undefined) {
        entry.fault = fault;
        this.faults[fault]++;
      }
      this.respond(req, res, body, entry);
    });
  }

  private drawFault(action: string): FaultKind | undefined {
    const r = this.options.random;
    if (this.outage) return chance(r, 0.5) ? 'throttle' : 'server-error';
    if (this.enabled) {
      const { throttle, serverError, timeout, reset } = this.options.rates;
      const x = r();
      if (x < throttle) return 'throttle';
      if (x < throttle + serverError) return 'server-error';
      if (x < throttle + serverError + timeout) return chance(r, 0.5) ? 'timeout-request' : 'timeout-response';
      if (x < throttle + serverError + timeout + reset) return 'reset';
    }
    if (MUTATING.has(action) && this.options.bucket && !this.takeToken()) return 'bucket-throttle';
    return undefined;
  }

  private takeToken(): boolean {
    const bucket = this.options.bucket!;
    const now = Date.now();
    this.tokens = Math.min(bucket.burst, this.tokens + ((now - this.refilledAt) / 1000) * bucket.perSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private hang(): number {
    const [min, max] = this.options.hangMs ?? [1000, 3000];
    return between(this.options.random, min, max);
  }

  private respond(req: IncomingMessage, res: ServerResponse, body: Buffer, entry: ProxyLogEntry): void {
    const sendError = (status: number, code: string, message: string, type: 'Sender' | 'Receiver') => {
      entry.respondedAt = Date.now();
      res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() });
      res.end(errorXml(code, message, type));
    };
    switch (entry.fault) {
      case 'throttle':
        return sendError(400, this.options.throttleCode ?? 'ThrottlingException', 'Rate exceeded', 'Sender');
      case 'bucket-throttle':
        return sendError(400, 'Throttling', 'Rate exceeded', 'Sender');
      case 'server-error':
        return chance(this.options.random, 0.5)
          ? sendError(500, 'InternalFailure', 'The request processing has failed because of an unknown error.', 'Receiver')
          : sendError(503, 'ServiceUnavailable', 'The service is unavailable. Try again later.', 'Receiver');
      case 'reset':
        req.socket.destroy();
        return;
      case 'timeout-request':
        this.later(this.hang(), () => req.socket.destroy());
        return;
      default:
        this.forward(req, res, body, entry);
    }
  }

  private forward(req: IncomingMessage, res: ServerResponse, body: Buffer, entry: ProxyLogEntry): void {
    entry.forwardedAt = Date.now();
    const upstream = request(
      {
        host: '127.0.0.1',
        port: this.options.upstreamPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: `localhost:${this.options.upstreamPort}`, 'content-length': String(body.length) },
        agent: this.upstreamAgent,
      },
      (up) => {
        const parts: Buffer[] = [];
        up.on('data', (c: Buffer) => parts.push(c));
        up.on('end', () => {
          entry.status = up.statusCode;
          entry.answeredAt = Date.now();
          if (entry.fault === 'timeout-response') {
            // moto has applied the change; the caller never hears about it.
            this.later(this.hang(), () => req.socket.destroy());
            return;
          }
          entry.respondedAt = Date.now();
          const headers = { ...up.headers };
          delete headers['transfer-encoding'];
          res.writeHead(up.statusCode ?? 502, headers);
          res.end(Buffer.concat(parts));
        });
      },
    );
    upstream.on('error', () => {
      // moto unreachable: behave like a reset.
      req.socket.destroy();
    });
    upstream.end(body);
  }
}

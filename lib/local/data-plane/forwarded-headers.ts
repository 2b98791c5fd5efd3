import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import type { LoadBalancerPolicy } from './target-group-attributes';

/**
 * Headers an ALB adds to a request it forwards, and the responses it makes up itself (ELB user
 * guide, "HTTP headers and Application Load Balancers", "Troubleshoot your Application Load
 * Balancers").
 *
 * - `X-Forwarded-For`, mode `append` (default): "If the X-Forwarded-For request header is not
 *   included in the original request, the load balancer creates one with the client IP address
 *   as the request value. Otherwise, the load balancer adds the client IP address to the
 *   existing header"; `preserve` leaves it, `remove` drops it.
 * - `X-Forwarded-Proto`: the protocol the client used with the listener; `X-Forwarded-Port`: the
 *   listener's port. Both replace what the client sent.
 * - `X-Amzn-Trace-Id`: `Root=1-<epoch seconds, hex>-<96 random bits, hex>` when the request has
 *   none.
 * - Hop-by-hop headers (RFC 9110 §7.6.1: `Connection`, the headers it names, `Keep-Alive`,
 *   `Proxy-Connection`, `TE`, `Trailer`) belong to the client's connection, not the target's:
 *   ALB keeps its own connections to targets alive whatever the client asked. Forwarding a
 *   client's `Connection: close` would make a target close a pooled connection without saying
 *   so, and the next request reusing it would fail with a 502.
 */

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer'];

/** The client address as ALB writes it: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as plain IPv4. */
export function clientAddress(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return '';
  return remoteAddress.startsWith('::ffff:') && isIPv4(remoteAddress.slice(7)) ? remoteAddress.slice(7) : remoteAddress;
}

export function traceId(nowMs: number, random: Buffer = randomBytes(12)): string {
  return `Root=1-${Math.floor(nowMs / 1000).toString(16).padStart(8, '0')}-${random.toString('hex')}`;
}

/**
 * The headers a request is forwarded with: `headers` (lower-case names, as Node gives them)
 * with the X-Forwarded-* and trace headers set and the hop-by-hop headers dropped. Returns a new
 * object.
 */
export function forwardedHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  client: { readonly address: string; readonly listenerPort: number; readonly protocol: 'http' | 'https' },
  policy: Pick<LoadBalancerPolicy, 'xffMode'>,
  trace: () => string,
): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = { ...headers };
  const connection = headers.connection;
  const named = (Array.isArray(connection) ? connection.join(',') : (connection ?? '')).split(',').map((h) => h.trim().toLowerCase());
  // An Upgrade (WebSocket) handshake keeps its Connection: upgrade, which the proxy needs.
  if (!named.includes('upgrade')) for (const name of [...HOP_BY_HOP, ...named]) if (name !== '' && !name.startsWith('x-forwarded-')) delete out[name];
  const existing = headers['x-forwarded-for'];
  const prior = Array.isArray(existing) ? existing.join(', ') : existing;
  if (policy.xffMode === 'remove') delete out['x-forwarded-for'];
  else if (policy.xffMode === 'append') out['x-forwarded-for'] = prior !== undefined && prior.trim() !== '' ? `${prior}, ${client.address}` : client.address;
  out['x-forwarded-proto'] = client.protocol;
  out['x-forwarded-port'] = String(client.listenerPort);
  if (headers['x-amzn-trace-id'] === undefined) out['x-amzn-trace-id'] = trace();
  return out;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  413: 'Request Entity Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
};

/** `Server` header of responses the load balancer generates. */
export const LOAD_BALANCER_SERVER = 'awselb/2.0';

/**
 * ALB's quotas on a request's header ("Quotas for your Application Load Balancers", HTTP headers):
 * the request line, any one header, and the whole request header. A request over one of them gets
 * ALB's own 400 ("Troubleshoot your Application Load Balancers", HTTP 400) and reaches no target.
 */
export const ALB_HEADER_LIMITS = { requestLine: 16 * 1024, singleHeader: 16 * 1024, requestHeader: 64 * 1024 } as const;

/**
 * Which of ALB's header quotas a request exceeds, if any. `rawHeaders` as Node gives them: names
 * and values in turn, as sent. Sizes count bytes of `name: value` (and the request line's
 * `METHOD target HTTP/1.1`), as they go over the wire.
 */
export function headerLimitExceeded(method: string, url: string, rawHeaders: readonly string[]): 'request line' | 'a header' | 'the request header' | undefined {
  const line = Buffer.byteLength(`${method} ${url} HTTP/1.1`);
  if (line > ALB_HEADER_LIMITS.requestLine) return 'request line';
  let total = line;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const size = Buffer.byteLength(rawHeaders[i]) + 2 + Buffer.byteLength(rawHeaders[i + 1]);
    if (size > ALB_HEADER_LIMITS.singleHeader) return 'a header';
    total += size + 2;
  }
  return total > ALB_HEADER_LIMITS.requestHeader ? 'the request header' : undefined;
}

/** The small HTML page ALB answers its own 4xx and 5xx with. */
export function loadBalancerErrorPage(statusCode: number): { statusCode: number; contentType: string; body: string } {
  const title = `${statusCode} ${REASONS[statusCode] ?? 'Error'}`;
  return {
    statusCode,
    contentType: 'text/html',
    body: `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n</body>\r\n</html>\r\n`,
  };
}

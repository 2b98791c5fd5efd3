import { describe, expect, it } from 'vitest';
import { ALB_HEADER_LIMITS, clientAddress, forwardedHeaders, headerLimitExceeded, loadBalancerErrorPage, traceId } from '../../../lib/local/data-plane/forwarded-headers';

const client = { address: '127.0.0.1', listenerPort: 80, protocol: 'http' as const };
const trace = () => 'Root=1-00000000-000000000000000000000000';

describe('forwardedHeaders', () => {
  // The examples of the ELB user guide's X-Forwarded-For table, last hop 127.0.0.1.
  it.each<[string, Record<string, string>, 'append' | 'preserve' | 'remove', string | undefined]>([
    ['append, no XFF', {}, 'append', '127.0.0.1'],
    ['append, one address', { 'x-forwarded-for': '127.0.0.4' }, 'append', '127.0.0.4, 127.0.0.1'],
    ['append, two addresses', { 'x-forwarded-for': '127.0.0.4, 127.0.0.8' }, 'append', '127.0.0.4, 127.0.0.8, 127.0.0.1'],
    ['preserve, no XFF', {}, 'preserve', undefined],
    ['preserve', { 'x-forwarded-for': '127.0.0.4' }, 'preserve', '127.0.0.4'],
    ['remove', { 'x-forwarded-for': '127.0.0.4' }, 'remove', undefined],
  ])('X-Forwarded-For: %s', (_why, headers, xffMode, expected) => {
    expect(forwardedHeaders(headers, client, { xffMode }, trace)['x-forwarded-for']).toBe(expected);
  });

  it('sets X-Forwarded-Proto and -Port to the listener’s, replacing what the client sent, and adds a trace id', () => {
    const out = forwardedHeaders({ host: 'lb', 'x-forwarded-proto': 'https', 'x-forwarded-port': '443' }, { ...client, listenerPort: 8080 }, { xffMode: 'append' }, trace);
    expect(out).toEqual({
      host: 'lb',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-port': '8080',
      'x-amzn-trace-id': 'Root=1-00000000-000000000000000000000000',
    });
  });

  it.each<[string, Record<string, string>, Record<string, string>]>([
    ['Connection: close (urllib, curl -H)', { connection: 'close', accept: '*/*' }, { accept: '*/*' }],
    ['HTTP/1.0 keep-alive', { connection: 'keep-alive', 'keep-alive': 'timeout=5' }, {}],
    ['headers the Connection header names', { connection: 'close, x-session-hint', 'x-session-hint': 'a', te: 'trailers', trailer: 'x-sum' }, {}],
    ['a proxy’s own header', { 'proxy-connection': 'keep-alive', accept: 'text/plain' }, { accept: 'text/plain' }],
    ['a WebSocket handshake keeps Connection and Upgrade', { connection: 'Upgrade', upgrade: 'websocket' }, { connection: 'Upgrade', upgrade: 'websocket' }],
  ])('drops hop-by-hop headers, as ALB does: %s', (_why, headers, kept) => {
    const out = forwardedHeaders(headers, client, { xffMode: 'remove' }, trace);
    expect(out).toEqual({ ...kept, 'x-forwarded-proto': 'http', 'x-forwarded-port': '80', 'x-amzn-trace-id': 'Root=1-00000000-000000000000000000000000' });
  });

  it('keeps a trace id the client sent', () => {
    expect(forwardedHeaders({ 'x-amzn-trace-id': 'Root=1-abc' }, client, { xffMode: 'append' }, trace)['x-amzn-trace-id']).toBe('Root=1-abc');
  });
});

describe('helpers', () => {
  it.each([
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['::1', '::1'],
    ['10.0.0.1', '10.0.0.1'],
    [undefined, ''],
  ])('clientAddress(%j) = %j', (raw, expected) => {
    expect(clientAddress(raw)).toBe(expected);
  });

  it('formats trace ids like X-Amzn-Trace-Id roots', () => {
    expect(traceId(Date.UTC(2030, 0, 1), Buffer.alloc(12, 0xab))).toBe(`Root=1-${(Date.UTC(2030, 0, 1) / 1000).toString(16)}-${'ab'.repeat(12)}`);
  });

  it('answers its own 5xx with a small HTML page', () => {
    expect(loadBalancerErrorPage(504)).toEqual({
      statusCode: 504,
      contentType: 'text/html',
      body: '<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n',
    });
  });
});

describe("headerLimitExceeded: ALB's quotas on a request's header", () => {
  const K = 1024;
  const header = (name: string, size: number) => [name, 'a'.repeat(size - name.length - 2)];
  it.each<[string, string, string[], ReturnType<typeof headerLimitExceeded>]>([
    ['a plain request', '/agents', ['host', 'lb', 'accept', '*/*'], undefined],
    ['one header of exactly 16 KB', '/agents', header('x-big', 16 * K), undefined],
    ['one header a byte over 16 KB', '/agents', header('x-big', 16 * K + 1), 'a header'],
    ['four headers of 15 KB (60 KB in all)', '/agents', [0, 1, 2, 3].flatMap((i) => header(`x-big-${i}`, 15 * K)), undefined],
    ['five headers of 15 KB (75 KB in all)', '/agents', [0, 1, 2, 3, 4].flatMap((i) => header(`x-big-${i}`, 15 * K)), 'the request header'],
    ['a request line over 16 KB', `/agents?revision=${'1'.repeat(16 * K)}`, [], 'request line'],
  ])('%s', (_why, url, raw, expected) => {
    expect(headerLimitExceeded('GET', url, raw)).toBe(expected);
  });

  it('counts bytes, not characters', () => {
    expect(headerLimitExceeded('GET', '/', ['x-big', 'é'.repeat(ALB_HEADER_LIMITS.singleHeader / 2)])).toBe('a header');
  });

  it("answers with ALB's own 400 page", () => {
    expect(loadBalancerErrorPage(400).body).toContain('<title>400 Bad Request</title>');
  });
});

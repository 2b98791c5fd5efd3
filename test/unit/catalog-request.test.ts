import { describe, expect, it } from 'vitest';
import { CatalogDocument, catalogEtag } from '../../lib/core/catalog-document';
import { catalogResponse, CatalogRequest, etagMatches, parseCatalogRequest, parseCatalogServeConfig, stillWaiting } from '../../lib/core/catalog-request';

const doc: CatalogDocument = { revision: 7, generatedAt: 1_800_000_000_000, capabilities: [] };
const get = (query: Record<string, string> = {}, ifNoneMatch?: string): CatalogRequest => ({ method: 'GET', query, ...(ifNoneMatch ? { ifNoneMatch } : {}) });

describe('parseCatalogRequest', () => {
  it.each<[string, CatalogRequest, unknown]>([
    ['a plain GET', get(), { kind: 'now' }],
    ['HEAD, in any case', { method: 'head', query: {} }, { kind: 'now' }],
    ['a blocking query', get({ revision: '3', wait: '5' }), { kind: 'wait', revision: 3, waitMs: 5000 }],
    ['seconds with a unit and a fraction', get({ revision: '0', wait: '2.5s' }), { kind: 'wait', revision: 0, waitMs: 2500 }],
    ['revision alone: the longest wait', get({ revision: '12' }), { kind: 'wait', revision: 12, waitMs: 20_000 }],
    ['a wait over 20 s: cut to 20 s', get({ revision: '1', wait: '300' }), { kind: 'wait', revision: 1, waitMs: 20_000 }],
    ['URL-encoded parameters (ALB passes them as sent)', get({ revision: '%34', wait: '1%73' }), { kind: 'wait', revision: 4, waitMs: 1000 }],
  ])('accepts %s', (_, request, query) => {
    expect(parseCatalogRequest(request)).toEqual({ ok: true, query });
  });

  it.each<[string, CatalogRequest, number, string]>([
    ['POST', { method: 'POST', query: {} }, 405, 'method "POST" is not allowed; use GET or HEAD'],
    ['a negative revision', get({ revision: '-1' }), 400, 'revision must be a whole number of at least 0, got "-1"'],
    ['a word for a revision', get({ revision: 'latest' }), 400, 'revision must be a whole number of at least 0, got "latest"'],
    ['a bad wait', get({ revision: '1', wait: '1m' }), 400, 'wait must be seconds (0–20, e.g. 10 or 2.5s), got "1m"'],
    ['wait without revision', get({ wait: '5' }), 400, 'wait needs revision: ?revision=<the revision you have>&wait=<seconds>'],
  ])('refuses %s with %i and one line naming the value', (_, request, status, error) => {
    const parsed = parseCatalogRequest(request);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.response.statusCode).toBe(status);
    expect(JSON.parse(parsed.response.body)).toEqual({ error });
    if (status === 405) expect(parsed.response.headers.allow).toBe('GET, HEAD');
  });
});

describe('stillWaiting: a blocking query waits while the revision has not moved past the one it has', () => {
  it.each([
    [{ kind: 'now' } as const, doc, false],
    [{ kind: 'wait', revision: 7, waitMs: 1 } as const, doc, true],
    [{ kind: 'wait', revision: 8, waitMs: 1 } as const, doc, true],
    [{ kind: 'wait', revision: 6, waitMs: 1 } as const, doc, false],
    [{ kind: 'wait', revision: 0, waitMs: 1 } as const, undefined, true],
  ])('%j at revision 7: %j', (query, d, waiting) => {
    expect(stillWaiting(query, d)).toBe(waiting);
  });
});

describe('catalogResponse', () => {
  const etag = catalogEtag(doc);

  it('answers 200 with the document, its ETag and no-cache', () => {
    const r = catalogResponse(get(), doc);
    expect(r.statusCode).toBe(200);
    expect(r.headers).toEqual({ 'content-type': 'application/json', etag, 'cache-control': 'no-cache' });
    expect(JSON.parse(r.body)).toEqual(doc);
  });

  it.each([etag, `W/${etag}`, `"other", ${etag}`, '*'])('answers If-None-Match %s with 304 and no body', (tag) => {
    const r = catalogResponse(get({}, tag), doc);
    expect([r.statusCode, r.body, r.headers.etag]).toEqual([304, '', etag]);
  });

  it('answers another ETag with the document, HEAD with the headers only', () => {
    expect(catalogResponse(get({}, '"6-x"'), doc).statusCode).toBe(200);
    expect(etagMatches(undefined, etag)).toBe(false);
    const head = catalogResponse({ method: 'HEAD', query: {} }, doc);
    expect([head.statusCode, head.body, head.headers.etag]).toEqual([200, '', etag]);
  });

  it('answers 503 with Retry-After until the registry built the catalog', () => {
    const r = catalogResponse(get(), undefined);
    expect(r.statusCode).toBe(503);
    expect(r.headers['retry-after']).toBe('5');
  });
});

describe('parseCatalogServeConfig', () => {
  it('reads the table and the cache, 1 s by default', () => {
    expect(parseCatalogServeConfig('{"tableName":"state"}')).toEqual({ tableName: 'state', cacheMs: 1000 });
    expect(parseCatalogServeConfig('{"tableName":"state","cacheMs":0}')).toEqual({ tableName: 'state', cacheMs: 0 });
  });

  it.each([
    [undefined, 'AGENT_LB_CATALOG: is not set'],
    ['{', 'AGENT_LB_CATALOG: is not valid JSON'],
    ['{}', 'AGENT_LB_CATALOG: tableName must be a non-empty string, got undefined'],
    ['{"tableName":"t","cacheMs":-1}', 'AGENT_LB_CATALOG: cacheMs -1 must be a whole number of milliseconds, 0–60000'],
  ])('refuses %j', (text, message) => {
    expect(() => parseCatalogServeConfig(text)).toThrow(message);
  });
});

import { CATALOG_MAX_WAIT_SECONDS, catalogEtag, CatalogDocument, formatCatalog } from './catalog-document';
import { ConfigError } from './errors';

/**
 * `GET /agents` as HTTP, without I/O: what a request asks (now, or a blocking query that waits
 * for the revision to move), and the response for a document. The catalog Lambda parses the
 * ALB event into a {@link CatalogRequest}, waits as {@link CatalogQuery} says and answers
 * {@link catalogResponse}; local mode runs the same handler behind its load balancer.
 *
 * Semantics (after Consul's blocking queries and HTTP's conditional requests):
 * - `?revision=N&wait=S`: answer as soon as the revision moves past N, or after S seconds with
 *   the document as it is then (a catalog rebuilt from scratch restarts its revisions: a client
 *   whose N is ahead gets the new document once S is over). S is seconds (`10`, `2.5`, `10s`),
 *   at most 20 (more is cut to 20); `revision` alone waits 20 s; `wait` without `revision` is
 *   refused.
 * - `If-None-Match` with the document's ETag → `304 Not Modified`, no body.
 * - `HEAD` → the headers of `GET`.
 */

export interface CatalogRequest {
  readonly method: string;
  /** Query parameters as the request sent them (ALB passes them URL-encoded; they are decoded here). */
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly ifNoneMatch?: string;
}

export type CatalogQuery =
  | { readonly kind: 'now' }
  /** Answer once the revision is not `revision`, or after `waitMs`. */
  | { readonly kind: 'wait'; readonly revision: number; readonly waitMs: number };

export interface CatalogHttpResponse {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const JSON_TYPE = 'application/json';
const ALLOWED_METHODS = 'GET, HEAD';

/** Reason phrases of the statuses the catalog answers with (ALB's Lambda response carries one). */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  304: 'Not Modified',
  400: 'Bad Request',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

function decode(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

function errorResponse(statusCode: number, message: string, headers: Record<string, string> = {}): CatalogHttpResponse {
  return { statusCode, headers: { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...headers }, body: JSON.stringify({ error: message }) };
}

/** What the request asks for, or the response that refuses it (one line naming the bad value). */
export function parseCatalogRequest(request: CatalogRequest): { readonly ok: true; readonly query: CatalogQuery } | { readonly ok: false; readonly response: CatalogHttpResponse } {
  const method = request.method.toUpperCase();
  if (method !== 'GET' && method !== 'HEAD') {
    return { ok: false, response: errorResponse(405, `method ${JSON.stringify(request.method)} is not allowed; use GET or HEAD`, { allow: ALLOWED_METHODS }) };
  }
  const revisionText = decode(request.query.revision);
  const waitText = decode(request.query.wait);
  if (revisionText === undefined) {
    if (waitText !== undefined) return { ok: false, response: errorResponse(400, 'wait needs revision: ?revision=<the revision you have>&wait=<seconds>') };
    return { ok: true, query: { kind: 'now' } };
  }
  if (!/^\d{1,15}$/.test(revisionText)) return { ok: false, response: errorResponse(400, `revision must be a whole number of at least 0, got ${JSON.stringify(revisionText.slice(0, 40))}`) };
  let waitSeconds = CATALOG_MAX_WAIT_SECONDS;
  if (waitText !== undefined) {
    const m = /^(\d{1,6}(?:\.\d{1,3})?)s?$/.exec(waitText);
    if (!m) return { ok: false, response: errorResponse(400, `wait must be seconds (0–${CATALOG_MAX_WAIT_SECONDS}, e.g. 10 or 2.5s), got ${JSON.stringify(waitText.slice(0, 40))}`) };
    waitSeconds = Math.min(Number(m[1]), CATALOG_MAX_WAIT_SECONDS);
  }
  return { ok: true, query: { kind: 'wait', revision: Number(revisionText), waitMs: Math.round(waitSeconds * 1000) } };
}

/** Whether a blocking query for `query` is still waiting on `doc` (a catalog not built yet is waited for too). */
export function stillWaiting(query: CatalogQuery, doc: CatalogDocument | undefined): boolean {
  return query.kind === 'wait' && (doc === undefined || doc.revision <= query.revision);
}

/** Environment variable of the catalog Lambda: a {@link CatalogServeConfig} as JSON. */
export const CATALOG_ENV = 'AGENT_LB_CATALOG';
/** How long a container serves the document it read before reading it again, unless configured. */
export const DEFAULT_CATALOG_CACHE_MS = 1000;

/** What the catalog Lambda is told: where the document is and how long it may serve one it read. */
export interface CatalogServeConfig {
  /** The registry state table. */
  readonly tableName: string;
  /** Milliseconds a read document is served before the next read, 0–60000. @default DEFAULT_CATALOG_CACHE_MS */
  readonly cacheMs?: number;
}

/** Parses the catalog Lambda's configuration; every error names the bad value. */
export function parseCatalogServeConfig(text: string | undefined): Required<CatalogServeConfig> {
  const fail = (why: string): never => {
    throw new ConfigError(`${CATALOG_ENV}: ${why}`);
  };
  if (text === undefined || text.trim() === '') fail('is not set');
  let raw: unknown;
  try {
    raw = JSON.parse(text!);
  } catch (cause) {
    throw new ConfigError(`${CATALOG_ENV}: is not valid JSON`, { cause });
  }
  const c = (typeof raw === 'object' && raw !== null ? raw : fail('must be a JSON object')) as Record<string, unknown>;
  if (typeof c.tableName !== 'string' || c.tableName === '') fail(`tableName must be a non-empty string, got ${JSON.stringify(c.tableName)}`);
  const cacheMs = c.cacheMs ?? DEFAULT_CATALOG_CACHE_MS;
  if (typeof cacheMs !== 'number' || !Number.isInteger(cacheMs) || cacheMs < 0 || cacheMs > 60_000) fail(`cacheMs ${JSON.stringify(cacheMs)} must be a whole number of milliseconds, 0–60000`);
  return { tableName: c.tableName as string, cacheMs: cacheMs as number };
}

/** Whether an `If-None-Match` value names `etag` (a list, `*`, or a weak form of it). */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

/** The response to `request` with `doc` as the catalog is now (`undefined`: the registry has not built it yet). */
export function catalogResponse(request: CatalogRequest, doc: CatalogDocument | undefined): CatalogHttpResponse {
  if (doc === undefined) {
    return errorResponse(503, 'the capability catalog is not built yet: the registry builds it at its next pass', { 'retry-after': '5' });
  }
  const etag = catalogEtag(doc);
  const headers = { 'content-type': JSON_TYPE, etag, 'cache-control': 'no-cache' };
  if (etagMatches(request.ifNoneMatch, etag)) return { statusCode: 304, headers, body: '' };
  const body = formatCatalog(doc);
  return { statusCode: 200, headers, body: request.method.toUpperCase() === 'HEAD' ? '' : body };
}

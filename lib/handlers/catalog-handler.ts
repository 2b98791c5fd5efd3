import { Logger } from '@aws-lambda-powertools/logger';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ALBEvent, ALBResult } from 'aws-lambda';
import type { CatalogDocument } from '../core/catalog-document';
import {
  CATALOG_ENV,
  catalogResponse,
  CatalogHttpResponse,
  CatalogRequest,
  CatalogServeConfig,
  parseCatalogRequest,
  parseCatalogServeConfig,
  STATUS_TEXT,
  stillWaiting,
} from '../core/catalog-request';
import { sleep as defaultSleep } from '../core/concurrency';
import { createDynamoClient } from '../aws/dynamo-client';
import { RegistryStateStore } from '../aws/registry-state-store';

/** How often a blocking query looks at the document again, at most. */
export const BLOCKING_POLL_MS = 1000;

export interface CatalogHandlerOptions {
  /** @default parsed from `AGENT_LB_CATALOG` */
  readonly config?: CatalogServeConfig;
  /** @default a client from the environment */
  readonly dynamoClient?: DynamoDBClient;
  readonly logger?: Logger;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Ends every blocking query at once, with the document as it is (local mode, stopping). */
  readonly signal?: AbortSignal;
}

/** The request as the catalog reads it from ALB's Lambda event (multi-value headers on or off). */
export function catalogRequestOf(event: ALBEvent): CatalogRequest {
  const last = (values: readonly string[] | undefined) => (values === undefined ? undefined : values[values.length - 1]);
  const query: Record<string, string | undefined> = event.multiValueQueryStringParameters
    ? Object.fromEntries(Object.entries(event.multiValueQueryStringParameters).map(([k, v]) => [k, last(v)]))
    : { ...(event.queryStringParameters ?? {}) };
  const header = (name: string) => {
    const single = Object.entries(event.headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
    const multi = Object.entries(event.multiValueHeaders ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
    return single ?? multi?.join(', ');
  };
  const ifNoneMatch = header('if-none-match');
  return { method: event.httpMethod ?? 'GET', query, ...(ifNoneMatch !== undefined ? { ifNoneMatch } : {}) };
}

/** The response in ALB's Lambda shape: status description, headers as the event had them (multi-value or not), text body. */
export function albResult(response: CatalogHttpResponse, multiValue: boolean): ALBResult {
  const statusDescription = `${response.statusCode} ${STATUS_TEXT[response.statusCode] ?? ''}`.trim();
  return {
    statusCode: response.statusCode,
    statusDescription,
    ...(multiValue
      ? { multiValueHeaders: Object.fromEntries(Object.entries(response.headers).map(([k, v]) => [k, [v]])) }
      : { headers: { ...response.headers } }),
    body: response.body,
    isBase64Encoded: false,
  };
}

/**
 * The catalog Lambda (`GET /agents` behind the load balancer's listener rule): it serves the
 * document the registry keeps in the registry state table, from a copy at most `cacheMs` old
 * (one eventually consistent GetItem per container and interval, whatever the request rate),
 * answers `If-None-Match` with 304, and holds a blocking query (`?revision=N&wait=S`) until the
 * revision moves past N, looking again every second, or until S is over. It makes no ELB call
 * and reads no lease: its role may read the catalog item and nothing else.
 */
export function createCatalogHandler(options: CatalogHandlerOptions = {}) {
  const logger = options.logger ?? new Logger();
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  let made: { store: RegistryStateStore; cacheMs: number } | undefined;
  const ready = () => {
    if (made) return made;
    const config = parseCatalogServeConfig(options.config ? JSON.stringify(options.config) : process.env[CATALOG_ENV]);
    made = { store: new RegistryStateStore(options.dynamoClient ?? createDynamoClient(), config.tableName), cacheMs: config.cacheMs };
    return made;
  };
  // Lives as long as the container: the last document read and when.
  let cached: { doc: CatalogDocument | undefined; at: number } | undefined;
  const current = async (maxAgeMs: number): Promise<CatalogDocument | undefined> => {
    if (cached !== undefined && now() - cached.at < maxAgeMs) return cached.doc;
    const at = now();
    const read = (await ready().store.readCatalog())?.document;
    const had = cached?.doc;
    // An eventually consistent read may lag a write this container already served: never step back
    // to it. A catalog rebuilt from scratch restarts its revisions, but later: that one is taken.
    const older = had !== undefined && (read === undefined || (read.revision < had.revision && read.generatedAt <= had.generatedAt));
    cached = { doc: older ? had : read, at };
    return cached?.doc;
  };

  return async (event: ALBEvent): Promise<ALBResult> => {
    const multiValue = event.multiValueHeaders !== undefined;
    const request = catalogRequestOf(event);
    const parsed = parseCatalogRequest(request);
    if (!parsed.ok) return albResult(parsed.response, multiValue);
    try {
      const { cacheMs } = ready();
      let doc = await current(cacheMs);
      if (parsed.query.kind === 'wait') {
        const deadline = now() + parsed.query.waitMs;
        while (stillWaiting(parsed.query, doc) && now() < deadline && options.signal?.aborted !== true) {
          await sleep(Math.max(1, Math.min(BLOCKING_POLL_MS, deadline - now())));
          doc = await current(Math.min(cacheMs, BLOCKING_POLL_MS));
        }
      }
      return albResult(catalogResponse(request, doc), multiValue);
    } catch (error) {
      logger.error('capability catalog read failed', { error: error instanceof Error ? error.message : String(error) });
      return albResult(
        { statusCode: 503, headers: { 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': '1' }, body: JSON.stringify({ error: 'the capability catalog cannot be read now; try again' }) },
        multiValue,
      );
    }
  };
}

import type { ALBEvent, ALBResult } from 'aws-lambda';
import { splitRequestTarget } from './listener-rules';

/**
 * A Lambda function as an ALB target, after the ELB user guide ("Lambda functions as targets"),
 * without I/O: the event ALB invokes the function with and what it makes of the function's
 * answer. The load balancer does the invoking; local mode maps the function's ARN to a handler
 * that runs in-process.
 *
 * - Event: `requestContext.elb.targetGroupArn`, `httpMethod`, `path`, the query string's
 *   parameters as sent ("If the query parameters are URL-encoded, the load balancer does not
 *   decode them"), the headers with lower-case names, the body and `isBase64Encoded`. Without
 *   multi-value headers (the group's `lambda.multi_value_headers.enabled`, off by default) a
 *   header or parameter sent several times carries its last value; with them, every value, in
 *   `multiValueHeaders` / `multiValueQueryStringParameters`.
 * - A body is passed as text when its content type is text (`text/*`, JSON, XML, JavaScript, a
 *   form) and it has no content encoding; any other body base64-encoded, with `isBase64Encoded`.
 * - The answer must carry a `statusCode` (100–599); its `statusDescription` (`200 OK`) gives the
 *   reason phrase, `isBase64Encoded` says how to read the body, and headers come from `headers`
 *   or, with multi-value headers, `multiValueHeaders`. An answer without a status, a function
 *   that fails, or a response over 1 MB get the client a 502; a request body over 1 MB a 413.
 */

/** ALB's limit on a Lambda request body and on the response, bytes. */
export const LAMBDA_PAYLOAD_LIMIT = 1024 * 1024;

/** Invokes a function (by ARN) with an ALB event; resolves to what it returned. */
export type LambdaInvoker = (functionArn: string, event: ALBEvent) => Promise<unknown>;

/** One request as the load balancer passes it to a Lambda target. */
export interface LambdaRequest {
  readonly method: string;
  /** Path and query string as sent. */
  readonly url: string;
  /** Header names in lower case, every value in order (after the load balancer added its own). */
  readonly headers: Readonly<Record<string, readonly string[] | undefined>>;
  readonly body: Buffer;
}

const TEXT_TYPE = /^(?:text\/|application\/(?:json|javascript|xml|x-www-form-urlencoded)|application\/[a-z0-9.+-]+\+(?:json|xml))/i;

/** The event ALB invokes the function of `targetGroupArn` with. */
export function albLambdaEvent(targetGroupArn: string, request: LambdaRequest, multiValue: boolean): ALBEvent {
  const q = request.url.indexOf('?');
  const { path } = splitRequestTarget(request.url);
  // As sent: ALB does not decode the parameters.
  const pairs = q < 0 ? [] : request.url.slice(q + 1).split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)];
  });
  const headers = Object.entries(request.headers).filter((e): e is [string, readonly string[]] => e[1] !== undefined && e[1].length > 0);
  const contentType = request.headers['content-type']?.at(-1) ?? '';
  const text = request.body.length === 0 || (TEXT_TYPE.test(contentType) && request.headers['content-encoding'] === undefined);
  const base = {
    requestContext: { elb: { targetGroupArn } },
    httpMethod: request.method,
    path,
    body: text ? request.body.toString('utf8') : request.body.toString('base64'),
    isBase64Encoded: !text,
  };
  if (multiValue) {
    const multi: Record<string, string[]> = {};
    for (const [k, v] of pairs) (multi[k] ??= []).push(v);
    return { ...base, multiValueQueryStringParameters: multi, multiValueHeaders: Object.fromEntries(headers.map(([k, v]) => [k.toLowerCase(), [...v]])) };
  }
  return {
    ...base,
    queryStringParameters: Object.fromEntries(pairs),
    headers: Object.fromEntries(headers.map(([k, v]) => [k.toLowerCase(), v[v.length - 1]])),
  };
}

/** What the client gets for a function's answer. */
export type LambdaOutcome =
  | { readonly ok: true; readonly statusCode: number; readonly statusMessage?: string; readonly headers: Readonly<Record<string, string | string[]>>; readonly body: Buffer }
  | { readonly ok: false; readonly statusCode: 502; readonly reason: string };

/** The response ALB sends for `result` (the function's return value). */
export function albLambdaResponse(result: unknown, multiValue: boolean): LambdaOutcome {
  const r = (typeof result === 'object' && result !== null ? result : {}) as ALBResult;
  const status = r.statusCode;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    return { ok: false, statusCode: 502, reason: `the function's response has no valid statusCode (${JSON.stringify(status)})` };
  }
  const body = typeof r.body === 'string' ? Buffer.from(r.body, r.isBase64Encoded === true ? 'base64' : 'utf8') : Buffer.alloc(0);
  if (body.length > LAMBDA_PAYLOAD_LIMIT) return { ok: false, statusCode: 502, reason: `the function's response body is ${body.length} bytes, over ALB's 1 MB` };
  const headers: Record<string, string | string[]> = {};
  if (multiValue) {
    for (const [k, v] of Object.entries(r.multiValueHeaders ?? {})) headers[k] = (v ?? []).map(String);
  } else {
    for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = String(v);
  }
  const description = typeof r.statusDescription === 'string' ? /^\d{3} (.+)$/.exec(r.statusDescription)?.[1] : undefined;
  return { ok: true, statusCode: status, ...(description !== undefined ? { statusMessage: description } : {}), headers, body };
}

import type * as http from 'node:http';
import { albLambdaEvent, albLambdaResponse, LAMBDA_PAYLOAD_LIMIT, LambdaInvoker } from './lambda-target';
import type { RoutingDecision } from './request-routing';

/** How an invoked request ended, for the engine's counts and the access log. */
export type InvocationOutcome = { readonly by: 'target'; readonly statusCode: number } | { readonly by: 'load-balancer'; readonly statusCode: 502 | 413 };

/** What serving one Lambda request needs from the load balancer. */
export interface InvocationContext {
  /** The load balancer's headers for the request (X-Forwarded-*, trace id), lower-case names, every value. */
  readonly headers: Readonly<Record<string, readonly string[] | undefined>>;
  /** Undefined when no function can be invoked here: every request gets a 502, as from a function that failed. */
  readonly invoke?: LambdaInvoker;
  /** Sends the load balancer's own error page. */
  readonly fail: (res: http.ServerResponse, statusCode: 502 | 413) => void;
  readonly onError: (error: unknown) => void;
}

/**
 * Serves one request routed to a Lambda target group: reads the body (at most 1 MB, else 413),
 * invokes the function with ALB's event, writes its answer (or a 502 when it failed, answered
 * without a status, or answered more than 1 MB). Resolves to how the request ended.
 */
export async function serveLambda(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  decision: Extract<RoutingDecision, { kind: 'invoke' }>,
  context: InvocationContext,
): Promise<InvocationOutcome> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > LAMBDA_PAYLOAD_LIMIT) {
      context.fail(res, 413);
      return { by: 'load-balancer', statusCode: 413 };
    }
    chunks.push(chunk as Buffer);
  }
  const event = albLambdaEvent(decision.targetGroupArn, { method: req.method ?? 'GET', url: req.url ?? '/', headers: context.headers, body: Buffer.concat(chunks) }, decision.multiValueHeaders);
  let result: unknown;
  try {
    if (context.invoke === undefined) throw new Error(`no function ${decision.functionArn} runs locally`);
    result = await context.invoke(decision.functionArn, event);
  } catch (error) {
    context.onError(error);
    context.fail(res, 502);
    return { by: 'load-balancer', statusCode: 502 };
  }
  const outcome = albLambdaResponse(result, decision.multiValueHeaders);
  if (!outcome.ok) {
    context.onError(new Error(`Lambda target ${decision.functionArn}: ${outcome.reason}`));
    context.fail(res, 502);
    return { by: 'load-balancer', statusCode: 502 };
  }
  const headers: http.OutgoingHttpHeaders = { ...outcome.headers, 'content-length': String(outcome.body.length) };
  if (outcome.statusMessage !== undefined) res.writeHead(outcome.statusCode, outcome.statusMessage, headers);
  else res.writeHead(outcome.statusCode, headers);
  // A HEAD request gets the headers only.
  res.end(req.method === 'HEAD' ? undefined : outcome.body);
  return { by: 'target', statusCode: outcome.statusCode };
}

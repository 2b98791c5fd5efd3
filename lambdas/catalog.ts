import type { ALBEvent, ALBResult } from 'aws-lambda';
import { createCatalogHandler } from '../lib/handlers/catalog-handler';

/**
 * The Lambda entry point behind the load balancer's `GET /agents` rule, bundled by `npm run build`
 * (lib/constructs/handler-code.ts): the handler built once per container from the environment.
 * Everything else is in lib/handlers/catalog-handler.ts, which local mode runs in-process.
 */
let cached: ReturnType<typeof createCatalogHandler> | undefined;

export const handler = (event: ALBEvent): Promise<ALBResult> => (cached ??= createCatalogHandler())(event);

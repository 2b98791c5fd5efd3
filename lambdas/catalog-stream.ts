import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createCatalogStreamHandler } from '../lib/handlers/catalog-stream-handler';

/**
 * The Lambda entry point, bundled by `npm run build` (lib/constructs/handler-code.ts): the
 * catalog's reader of the lease stream, built once per container from the environment.
 * Everything else is in lib/handlers/catalog-stream-handler.ts.
 */
let cached: ReturnType<typeof createCatalogStreamHandler> | undefined;

export const handler = (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => (cached ??= createCatalogStreamHandler())(event);

import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createSyncHandler } from '../lib/handlers/stream-sync-handler';

/**
 * The Lambda entry point, bundled by `npm run build` (lib/constructs/handler-code.ts): the
 * handler built once per container from the environment. Everything else is in
 * lib/handlers/stream-sync-handler.ts, which local mode and the tests build with their own clients.
 */
let cached: ReturnType<typeof createSyncHandler> | undefined;

export const handler = (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => (cached ??= createSyncHandler())(event);

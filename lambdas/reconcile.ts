import { createReconcileHandler, ReconcileReport } from '../lib/handlers/reconcile-handler';

/**
 * The Lambda entry point, bundled by `npm run build` (lib/constructs/handler-code.ts): the
 * handler built once per container from the environment. Everything else is in
 * lib/handlers/reconcile-handler.ts, which local mode and the tests build with their own clients.
 */
let cached: ReturnType<typeof createReconcileHandler> | undefined;

export const handler = (event: unknown, context?: { getRemainingTimeInMillis?: () => number }): Promise<ReconcileReport[]> =>
  (cached ??= createReconcileHandler())(event, context);

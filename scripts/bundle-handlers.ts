/**
 * Part of `npm run build`: bundles the Lambda handlers (stream-sync, catalog-stream, reconcile, catalog) into dist/handler-bundles/<name>/, the
 * code the published package's constructs deploy (so a consumer synthesizes without esbuild).
 */
import * as path from 'node:path';
import { bundleHandler, HANDLERS } from '../lib/constructs/handler-code';

const out = path.resolve(__dirname, '..', 'dist', 'handler-bundles');
for (const name of HANDLERS) bundleHandler(name, path.join(out, name));
process.stdout.write(`bundled ${HANDLERS.join(', ')} into ${path.relative(process.cwd(), out)}\n`);

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DockerImage } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AgentLbValidationError } from './validation-error';
import type { IConstruct } from 'constructs';

/** The Lambda handlers agent-lb deploys, by the name of their source in `lambdas/`. */
export const HANDLERS = ['stream-sync', 'catalog-stream', 'reconcile', 'catalog'] as const;
export type HandlerName = (typeof HANDLERS)[number];

/** Node.js version the bundles target: the functions' runtime (`nodejs22.x`). */
export const HANDLER_NODE_TARGET = 'node22';

/** Repository root when this file runs from its TypeScript source (lib/constructs/). */
const SOURCE_ROOT = path.resolve(__dirname, '..', '..');
/** Where `npm run build` puts the bundles, seen from the compiled file (dist/lib/constructs/ → dist/handler-bundles/). */
const BUNDLED_DIR = path.resolve(__dirname, '..', '..', 'handler-bundles');

/**
 * Bundles one handler with everything it imports (Powertools, the AWS SDK clients it was tested
 * with) into `outdir/index.js` plus its source map: what `npm run build` ships in the package and
 * what a synth from this repository's sources stages. One definition, so both are the same.
 * Needs `esbuild`, a development dependency: the published package never calls this.
 */
export function bundleHandler(name: HandlerName, outdir: string, root = SOURCE_ROOT): void {
  // Loaded here, not at the top: a consumer of the package synthesizes without esbuild.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as { buildSync(options: Record<string, unknown>): unknown };
  esbuild.buildSync({
    absWorkingDir: root,
    entryPoints: [path.join(root, 'lambdas', `${name}.ts`)],
    outfile: path.join(outdir, 'index.js'),
    bundle: true,
    platform: 'node',
    target: HANDLER_NODE_TARGET,
    format: 'cjs',
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'error',
  });
}

/**
 * The deployment package of a handler. From the published package: the bundle `npm run build`
 * made (no bundler, no TypeScript at synth). From this repository's TypeScript sources: bundled
 * at synth through CDK's local bundling, so `cdk synth` always ships the sources as they are
 * (and skips the work when the stack is excluded from bundling, as tests and local mode do).
 */
export function handlerCode(scope: IConstruct, name: HandlerName): lambda.Code {
  if (!__filename.endsWith('.ts')) {
    const dir = path.join(BUNDLED_DIR, name);
    if (!existsSync(path.join(dir, 'index.js'))) {
      throw new AgentLbValidationError(scope, `agent-lb: the bundled ${name} handler is missing from ${dir}; reinstall agent-lb (or run \`npm run build\` in its repository)`);
    }
    return lambda.Code.fromAsset(dir);
  }
  return lambda.Code.fromAsset(path.join(SOURCE_ROOT, 'lambdas'), {
    bundling: {
      // Never used: local bundling always succeeds or throws.
      image: DockerImage.fromRegistry('agent-lb-bundles-locally'),
      // Part of the asset hash, so the two handlers never share one while bundling is skipped.
      environment: { AGENT_LB_HANDLER: name },
      local: {
        tryBundle(outputDir: string): boolean {
          bundleHandler(name, outputDir);
          return true;
        },
      },
    },
  });
}

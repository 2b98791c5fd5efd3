/**
 * Setup file: an App created without `outdir` synthesizes into CDK_OUTDIR when it is set, and into
 * a new temporary directory of its own (never removed) when it is not. One directory per test
 * file, removed when the file is done, keeps a test run from leaving hundreds behind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const outdir = mkdtempSync(join(tmpdir(), 'agent-lb-cdk-out-'));
process.env.CDK_OUTDIR = outdir;
afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
  delete process.env.CDK_OUTDIR;
});

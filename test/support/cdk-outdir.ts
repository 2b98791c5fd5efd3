/**
 * Setup file: one temporary directory per test file, removed when the file is done.
 *
 * An App created without `outdir` synthesizes into a new directory under the temp dir, never
 * removed. Pointing TMPDIR at a directory of this file's own (each test file runs in its own
 * process, so aws-cdk-lib reads it fresh) keeps a run from leaving hundreds behind. Setting
 * CDK_OUTDIR instead would turn on the App's auto-synth: one `beforeExit` listener per App,
 * synthesizing again at exit into the directory already removed here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const previous = process.env.TMPDIR;
const dir = mkdtempSync(join(tmpdir(), 'agent-lb-test-'));
process.env.TMPDIR = dir;
afterAll(() => {
  if (previous === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = previous;
  rmSync(dir, { recursive: true, force: true });
});

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The layers of the source tree and what each may import (docs/architecture.md). Imports point
 * down: core is pure and imports nothing of ours; aws adapts AWS calls for core; registry holds
 * the sync and reconcile use-cases over both; handlers are the Lambda edge (Powertools, the
 * configuration loader); constructs are the CDK side and need only core; local mode composes
 * everything below the CLI; the CLI is the top. `lambdas/` are entry files over lib/handlers.
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  'lib/core': ['lib/core'],
  'lib/aws': ['lib/core', 'lib/aws'],
  'lib/registry': ['lib/core', 'lib/aws', 'lib/registry'],
  'lib/handlers': ['lib/core', 'lib/aws', 'lib/registry', 'lib/handlers'],
  'lib/sdk': ['lib/core', 'lib/aws', 'lib/sdk'],
  'lib/constructs': ['lib/core', 'lib/constructs'],
  'lib/local': ['lib/core', 'lib/aws', 'lib/registry', 'lib/handlers', 'lib/sdk', 'lib/constructs', 'lib/local'],
  'lib/cli': ['lib/core', 'lib/aws', 'lib/registry', 'lib/handlers', 'lib/sdk', 'lib/constructs', 'lib/local', 'lib/cli'],
  'lib/index.ts': ['lib/core', 'lib/constructs'],
  lambdas: ['lib/handlers'],
};

/**
 * Single files a layer may import besides its layers. The package's main entry exports
 * `UsageError`, which only the CLI throws and therefore declares; that file imports nothing but
 * core's errors (checked below), so the main entry still loads no CLI code.
 */
const SINGLE_FILES: Readonly<Record<string, readonly string[]>> = {
  'lib/index.ts': ['lib/cli/usage-error.ts'],
};

const ROOT = resolve(__dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** The layer a repository path belongs to, or undefined outside lib/ and lambdas/. */
function layerOf(path: string): string | undefined {
  const rel = relative(ROOT, path).split('\\').join('/');
  if (rel === 'lib/index.ts') return rel;
  const [top, second] = rel.split('/');
  if (top === 'lambdas') return 'lambdas';
  if (top === 'lib' && second !== undefined) return `lib/${second.replace(/\.ts$/, '')}`;
  return undefined;
}

/** Every relative module a file imports, exports from, requires or imports dynamically (type-only imports included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]);
  return specifiers.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s));
}

/** The source file an import resolves to (`./x` → `x.ts` or `x/index.ts`). */
function sourceOf(target: string): string {
  return existsSync(`${target}.ts`) ? `${target}.ts` : join(target, 'index.ts');
}

/** Each import cycle among `sources` (type-only imports count: they tie the files' shapes together), as the files in it. */
function importCycles(sources: readonly string[]): string[][] {
  const graph = new Map(sources.map((f) => [f, importsOf(f).map(sourceOf).filter((t) => sources.includes(t))]));
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push(path.slice(path.indexOf(next)).map((f) => relative(ROOT, f)));
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of sources) if (!state.has(file)) visit(file);
  return cycles;
}

const files = [...sourceFiles(join(ROOT, 'lib')), ...sourceFiles(join(ROOT, 'lambdas'))];

describe('layers: imports point down', () => {
  it('finds the layers it checks', () => {
    const layers = new Set(files.map(layerOf));
    for (const layer of Object.keys(ALLOWED)) expect(layers, layer).toContain(layer);
    expect(files.length).toBeGreaterThan(80);
  });

  it.each(Object.keys(ALLOWED))('%s imports only from the layers below it', (layer) => {
    const violations = files
      .filter((f) => layerOf(f) === layer)
      .flatMap((f) =>
        importsOf(f)
          .filter((target) => {
            const to = layerOf(target);
            if ((SINGLE_FILES[layer] ?? []).some((file) => resolve(ROOT, file) === `${target}.ts`)) return false;
            return to === undefined ? target.startsWith(ROOT) : !ALLOWED[layer].includes(to);
          })
          .map((target) => `${relative(ROOT, f)} → ${relative(ROOT, target)}`),
      );
    expect(violations).toEqual([]);
  });

  it('the single files allowed across layers import only lib/core', () => {
    const reach = Object.values(SINGLE_FILES)
      .flat()
      .flatMap((file) => importsOf(resolve(ROOT, file)).filter((t) => layerOf(t) !== 'lib/core').map((t) => `${file} → ${relative(ROOT, t)}`));
    expect(reach).toEqual([]);
  });

  // The layers every other one builds on, and the SDK (whose shape the Python package mirrors).
  it.each(['lib/core', 'lib/aws', 'lib/registry', 'lib/handlers', 'lib/sdk'])('%s has no import cycle', (layer) => {
    expect(importCycles(files.filter((f) => layerOf(f) === layer))).toEqual([]);
  });

  it('no file under lib/ imports lambdas/ (local mode and tests build handlers from lib/handlers)', () => {
    const intoLambdas = files
      .filter((f) => layerOf(f)?.startsWith('lib'))
      .flatMap((f) => importsOf(f).filter((t) => layerOf(t) === 'lambdas').map((t) => `${relative(ROOT, f)} → ${relative(ROOT, t)}`));
    expect(intoLambdas).toEqual([]);
  });

  it('lib/core and lib/aws load no aws-cdk-lib and no Powertools (they ship in the SDK-only install and the Lambda bundles)', () => {
    const heavy = files
      .filter((f) => ['lib/core', 'lib/aws'].includes(layerOf(f) ?? ''))
      .filter((f) => /from\s+['"](aws-cdk-lib|constructs|@aws-lambda-powertools\/[^'"]+)['"]/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(ROOT, f));
    expect(heavy).toEqual([]);
  });

  it('has no import cycle in the layers it checks (type-only imports count: a circle of files is one module in disguise)', () => {
    const checked = new Set(['lib/core', 'lib/aws', 'lib/registry', 'lib/handlers', 'lib/local', 'lib/cli', 'lambdas']);
    const graph = new Map(
      files
        .filter((f) => checked.has(layerOf(f) ?? ''))
        .map((f) => [f, importsOf(f).map((t) => (existsSync(`${t}.ts`) ? `${t}.ts` : join(t, 'index.ts'))).filter((t) => existsSync(t))]),
    );
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (file: string): void => {
      state.set(file, 'open');
      path.push(file);
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), next].map((p) => relative(ROOT, p)).join(' → '));
        else if (!state.has(next) && graph.has(next)) visit(next);
      }
      path.pop();
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });
});

describe('no import cycles', () => {
  // lib/core, lib/aws, lib/registry, lib/handlers and lib/sdk are checked above; the constructs' circle (registry-sync ↔ registry-monitoring) is untangled too.
  it.each(['lib/constructs'])('%s: no two files import each other, directly or around a circle', (layer) => {
    expect(importCycles(files.filter((f) => layerOf(f) === layer))).toEqual([]);
  });
});

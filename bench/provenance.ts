import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Which code a figure describes. Every scenario in bench/results.json records the commit it was
 * measured on and whether the files it measures differed from that commit; when BENCHMARKS.md is
 * written, a scenario whose code changed in a later commit (or that was measured on uncommitted
 * code, or before results carried a commit) is marked, so a table never passes off figures of
 * code that no longer exists as figures of main.
 */

/** The code each scenario measures (git pathspecs from the repository root): the lease core, the registry and its adapters, plus what the scenario runs. */
const REGISTRY = ['lib/core', 'lib/aws', 'lib/registry', 'lib/handlers'];
const LOCAL = [...REGISTRY, 'lib/local', 'lib/constructs', 'cdk.json'];
const IN_PROCESS = [...REGISTRY, 'bench/stream-workload.ts', 'bench/naive-registrar.ts', 'test/support/counting-elb.ts', 'test/support/in-memory-lease-table.ts', 'test/support/dynamo-expressions.ts'];

export const MEASURED_PATHS: Readonly<Record<string, readonly string[]>> = {
  B1: [...IN_PROCESS, 'bench/b1-handler-economy.ts'],
  projection: [...IN_PROCESS, 'bench/b1-handler-economy.ts', 'bench/b1-cold-start.ts', 'bench/throttle-projection.ts'],
  B2: [...LOCAL, 'lib/sdk', 'bench/b2-end-to-end.ts', 'bench/b2-fleet.ts', 'bench/naive-registrar.ts', 'bench/target-observer.ts', 'bench/command-counter.ts'],
  B3: [...LOCAL, 'bench/b3-reconcile-cost.ts', 'bench/command-counter.ts'],
  B4: [...LOCAL, 'lib/sdk', 'bench/b4-data-plane.ts'],
  'B5-rolling-restart': [...LOCAL, 'lib/sdk', 'lib/cli', 'bin', 'bench/b5-rolling-restart.ts'],
  'B6-long-requests': [...LOCAL, 'lib/sdk', 'lib/cli', 'bin', 'bench/b6-long-requests.ts'],
  catalog: [...LOCAL, 'lib/sdk', 'bench/catalog.ts'],
  B7: [...IN_PROCESS, 'bench/b7-budget.ts', 'bench/percentiles.ts'],
};

/** Where a scenario's figures come from. */
export interface MeasuredOn {
  /** The commit checked out when it ran (`unknown` outside a git checkout). */
  readonly commit: string;
  /** The scenario's code differed from that commit (uncommitted changes): the figures describe no commit. */
  readonly dirty: boolean;
}

const ROOT = join(__dirname, '..');

function git(args: readonly string[]): string | undefined {
  try {
    return execFileSync('git', [...args], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** The commit and state of the code `scenario` measures, now. */
export function measuredOn(scenario: string): MeasuredOn {
  const commit = git(['rev-parse', 'HEAD']) ?? 'unknown';
  const changes = git(['status', '--porcelain', '--untracked-files=no', '--', ...(MEASURED_PATHS[scenario] ?? ['.'])]);
  return { commit, dirty: changes === undefined || changes !== '' };
}

/** Why a scenario's figures do not describe the code at HEAD, or `undefined` when they do. */
export function staleness(scenario: string, measured: MeasuredOn | undefined): string | undefined {
  if (measured === undefined || measured.commit === 'unknown') return 'measured before results recorded their commit';
  const short = measured.commit.slice(0, 7);
  if (measured.dirty) return `measured on uncommitted changes to ${short}`;
  const last = git(['log', '-1', '--format=%H', 'HEAD', '--', ...(MEASURED_PATHS[scenario] ?? ['.'])]);
  if (last === undefined || last === '') return undefined;
  // Fresh when the last change to the scenario's code is the measured commit or one of its ancestors.
  if (git(['merge-base', '--is-ancestor', last, measured.commit]) !== undefined) return undefined;
  const subject = git(['log', '-1', '--format=%s', last]) ?? '';
  return `measured on ${short}; its code changed since in ${last.slice(0, 7)} (${subject.length > 60 ? `${subject.slice(0, 57)}…` : subject})`;
}

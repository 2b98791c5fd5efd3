/**
 * The Python SDK (python/) as the Node test tier runs it: installed with pip from the repository,
 * offline, into a directory of the test's own (the machine's Python is left as it was), and its
 * pytest suite run against endpoints this tier started. Nothing is hidden: the commands are the
 * README's, and a missing prerequisite fails with one line saying what to install.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './local-harness';

export const PYTHON = process.env.AGENT_LB_PYTHON ?? 'python3';

/** Throws one line naming what is missing: Python ≥ 3.9 with boto3, pytest, Flask and moto (`.ci/run` installs them). */
export function checkPython(): string {
  const probe = spawnSync(PYTHON, ['-c', 'import sys, boto3, pytest, flask, moto; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(`the Python tests need ${PYTHON} (≥ 3.9) with boto3, pytest, flask and moto: ${probe.error?.message ?? probe.stderr.trim().split('\n').at(-1)} (.ci/run installs them)`);
  }
  const version = probe.stdout.trim();
  const [major, minor] = version.split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 9)) throw new Error(`the Python SDK needs Python ≥ 3.9, ${PYTHON} is ${version}`);
  return version;
}

interface Run {
  readonly code: number | null;
  readonly output: string;
}

function run(args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/**
 * `pip install` of ./python into `target`, offline. First with the setuptools already installed
 * (`--no-build-isolation`: needs setuptools ≥ 70.1, or `wheel`, beside it); where that cannot build
 * a wheel, with pip's own build isolation, which takes setuptools from whatever pip is configured
 * with (a local index or wheel directory on an offline machine). Resolves to the command that worked.
 */
export async function installPythonPackage(target: string): Promise<string> {
  // From a copy: setuptools builds in the source tree and would leave build/ and *.egg-info behind.
  const source = `${target}-src`;
  cpSync(join(REPO, 'python'), source, { recursive: true, filter: (path) => !/(__pycache__|\.egg-info|[\\/]build)$/.test(path) });
  const common = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-deps', '--target', target];
  const attempts = [
    [...common, '--no-build-isolation', '--no-index', source],
    [...common, source],
  ];
  const failures: string[] = [];
  for (const args of attempts) {
    // No retries against an index that cannot be reached: offline, the local configuration answers.
    const result = await run(args, { PIP_RETRIES: '0', PIP_TIMEOUT: '5' });
    if (result.code === 0) return `${PYTHON} ${args.join(' ').replace(source, './python')}`;
    failures.push(`${args.join(' ')}: ${result.output.trim().split('\n').slice(-3).join(' | ')}`);
  }
  throw new Error(`cannot install ./python with pip: ${failures.join(' ; ')}`);
}

export interface PytestOutcome {
  readonly code: number | null;
  readonly output: string;
  readonly tests: number;
  readonly failures: number;
  readonly errors: number;
  readonly skipped: number;
}

/** Runs pytest on python/tests with `site` first on the path (the installed package, not the sources), writing a JUnit report. */
export async function runPytest(site: string, reportDir: string, env: NodeJS.ProcessEnv, extra: readonly string[] = []): Promise<PytestOutcome> {
  const junit = join(reportDir, `pytest-${Date.now()}.xml`);
  const result = await run(['-m', 'pytest', 'python/tests', '-p', 'no:cacheprovider', '-q', '-rfEs', `--junitxml=${junit}`, ...extra], {
    ...env,
    PYTHONPATH: site,
    PYTHONDONTWRITEBYTECODE: '1',
  });
  let counts = { tests: 0, failures: 0, errors: 0, skipped: 0 };
  try {
    const xml = readFileSync(junit, 'utf8');
    const attr = (name: string) => Number(new RegExp(`<testsuite[^>]* ${name}="(\\d+)"`).exec(xml)?.[1] ?? NaN);
    counts = { tests: attr('tests'), failures: attr('failures'), errors: attr('errors'), skipped: attr('skipped') };
  } catch {
    // no report: pytest did not get as far as collecting; the output says why
  }
  return { code: result.code, output: result.output, ...counts };
}

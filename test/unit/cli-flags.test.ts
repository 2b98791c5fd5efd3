/**
 * Bad command-line flags and configuration: every one ends in exactly one line on stderr that
 * names the flag (and the allowed range where there is one), nothing on stdout, no stack trace,
 * and exit code 2 for usage errors or 1 for failures at run time (lib/cli/program.ts).
 *
 * The CLI runs in-process (nothing here gets as far as starting a server or calling AWS); one
 * test runs the real binary to check what a shell sees.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../lib/cli';

const REPO = resolve(__dirname, '../..');

interface Outcome {
  readonly code: number;
  readonly stderr: string;
  readonly stdout: string;
}

/** Runs the CLI in this process with AWS_REGION unset, capturing its output and exit code. */
async function cli(...args: string[]): Promise<Outcome> {
  const stderr: string[] = [];
  const stdout: string[] = [];
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => stderr.push(String(chunk)) > 0);
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => stdout.push(String(chunk)) > 0);
  const region = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
  delete process.env.AWS_REGION;
  delete process.env.AWS_DEFAULT_REGION;
  process.exitCode = undefined;
  try {
    await main(args);
  } finally {
    errSpy.mockRestore();
    outSpy.mockRestore();
    for (const [k, v] of Object.entries(region)) if (v !== undefined) process.env[k] = v;
  }
  const code = Number(process.exitCode ?? 0);
  // The test process must not inherit the CLI's exit code.
  process.exitCode = undefined;
  return { code, stderr: stderr.join(''), stdout: stdout.join('') };
}

/** One line, starting "error: ", matching `names`, no stack trace; nothing on stdout. */
function expectOneLineError(out: Outcome, code: 1 | 2, names: RegExp): void {
  expect(out.stdout).toBe('');
  expect(out.stderr.endsWith('\n')).toBe(true);
  const lines = out.stderr.slice(0, -1).split('\n');
  expect(lines, out.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(names);
  expect(lines[0]).not.toMatch(/\bat .+:\d+:\d+|node:internal|\.ts:\d+/);
  expect(out.code, out.stderr).toBe(code);
}

const SIDECAR = ['sidecar', '--table', 'leases', '--region', 'eu-west-1', '--address', '10.0.0.5', '--port', '8080', '--capability', 'vision', '--health-url', 'http://127.0.0.1:9/health'];
/** The sidecar flags with `flag` replaced by `value` (or removed when `value` is undefined). */
function sidecar(flag: string, value?: string): string[] {
  const args = [...SIDECAR];
  const i = args.indexOf(flag);
  if (i >= 0) args.splice(i, 2, ...(value === undefined ? [] : [flag, value]));
  else if (value !== undefined) args.push(flag, value);
  return args;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-cli-flags-'));
  writeFileSync(join(dir, 'garbage.json'), 'not json\nat all\n');
  writeFileSync(join(dir, 'incomplete.json'), JSON.stringify({ region: 'us-east-1' }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  process.exitCode = undefined;
});

describe('usage errors: exit 2 and one line naming the flag and what it accepts', () => {
  it.each<[string, string[], RegExp]>([
    ['an unknown flag', ['status', '--bogus'], /unknown option '--bogus'/],
    ['an unknown top-level flag', ['--bogus'], /unknown option '--bogus'/],
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['sidecar --port 0', sidecar('--port', '0'), /--port must be an integer in 1–65535, got "0"/],
    ['sidecar --port abc', sidecar('--port', 'abc'), /--port must be an integer in 1–65535, got "abc"/],
    ['sidecar --port 65536', sidecar('--port', '65536'), /--port must be an integer in 1–65535, got "65536"/],
    ['sidecar --port 80.5', sidecar('--port', '80.5'), /--port must be an integer in 1–65535, got "80.5"/],
    ['sidecar --ttl 1', sidecar('--ttl', '1'), /--ttl must be an integer in 3–3600, got "1"/],
    ['sidecar --ttl 3601', sidecar('--ttl', '3601'), /--ttl must be an integer in 3–3600, got "3601"/],
    ['sidecar --interval 5', sidecar('--interval', '5'), /--interval must be an integer in 100–600000, got "5"/],
    ['sidecar --unhealthy-threshold 0', sidecar('--unhealthy-threshold', '0'), /--unhealthy-threshold must be an integer in 1–100, got "0"/],
    ['sidecar without --capability', sidecar('--capability'), /^error: sidecar needs --capability <name>$/],
    ['sidecar with nothing (--address may be left out: it is then found)', ['sidecar'], /^error: sidecar needs --port <port>, --capability <name>, --health-url <url>, one of --table <name>, --stack <name> or --state-file <path>$/],
    ['sidecar --health-url not-a-url', sidecar('--health-url', 'not-a-url'), /--health-url must be an absolute URL, got "not-a-url"/],
    ['sidecar without --table, --stack or --state-file', sidecar('--table'), /sidecar needs one of --table <name>, --stack <name> or --state-file <path>$/],
    ['sidecar --table without a region', sidecar('--region'), /--region \(or AWS_REGION\) is required with --table/],
    ['sidecar --drain-seconds 5 (replaced by the rotation wait)', sidecar('--drain-seconds', '5'), /^error: --drain-seconds is gone: on SIGTERM the sidecar waits until the registry reports the target out of rotation, then --propagation-margin <ms>, all within --leave-deadline <s>$/],
    ['sidecar --propagation-margin -1', sidecar('--propagation-margin', '-1'), /--propagation-margin must be an integer in 0–120000, got "-1"/],
    ['sidecar --leave-deadline 0', sidecar('--leave-deadline', '0'), /--leave-deadline must be an integer in 1–3800, got "0"/],
    ['sidecar --max-request-duration 3591', sidecar('--max-request-duration', '3591'), /--max-request-duration must be an integer in 1–3590, got "3591"/],
    ['sidecar --forward-to without a scheme', sidecar('--forward-to', '127.0.0.1:8081'), /^error: --forward-to must be an absolute URL of the app, like http:\/\/127\.0\.0\.1:8081, got "127\.0\.0\.1:8081"$/],
    ['sidecar --forward-to another scheme', sidecar('--forward-to', 'ftp://127.0.0.1:8081'), /^error: --forward-to must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/127\.0\.0\.1:8081"$/],
    ['sidecar --forward-to its own port', sidecar('--forward-to', 'http://127.0.0.1:8080'), /^error: --forward-to http:\/\/127\.0\.0\.1:8080 is the sidecar's own port 8080 /],
    ['sidecar --listen-host without --forward-to', sidecar('--listen-host', '127.0.0.1'), /^error: --listen-host is for the proxy: give --forward-to <url> too$/],
    ['sidecar with --table and --state-file', sidecar('--state-file', '/tmp/x.json'), /option '--table <name>' cannot be used with option '--state-file <path>'/],
    ['status without --stack or --state-file', ['status'], /one of --stack <name> or --state-file <path> is required/],
    ['status --stack without a region', ['status', '--stack', 'AgentLb'], /--region \(or AWS_REGION\) is required with --stack/],
    ['leases --stack without a region', ['leases', '--stack', 'AgentLb'], /--region \(or AWS_REGION\) is required with --stack/],
    ['leases --capability "Bad Name"', ['leases', '--state-file', '/tmp/x.json', '--capability', 'Bad Name'], /--capability "Bad Name" must match \^\[a-z0-9\]\[a-z0-9_-\]\{0,62\}\$/],
    ['status with --stack and --state-file', ['status', '--stack', 'AgentLb', '--state-file', '/tmp/x.json'], /option '--stack <name>' cannot be used with option '--state-file <path>'/],
    ['status --state-file of a missing file', ['status', '--state-file', '/nonexistent/agent-lb.json'], /cannot read state file \/nonexistent\/agent-lb\.json: ENOENT/],
    ['local --agents -1', ['local', '--agents', '-1'], /--agents must be an integer in 0–1000, got "-1"/],
    ['local --agents 1001', ['local', '--agents', '1001'], /--agents must be an integer in 0–1000, got "1001"/],
    ['local --capabilities A,b', ['local', '--capabilities', 'A,b'], /--capabilities: "A" must match \^\[a-z0-9\]\[a-z0-9_-\]\{0,62\}\$/],
    ['local --capabilities ","', ['local', '--capabilities', ','], /--capabilities needs at least one name, got ","/],
    ['local --capabilities a,a', ['local', '--capabilities', 'a,a'], /--capabilities: duplicate names in "a,a"/],
    ['local --reconcile-interval 0', ['local', '--reconcile-interval', '0'], /--reconcile-interval must be an integer in 1–600, got "0"/],
    ['local --ttl 2', ['local', '--ttl', '2'], /--ttl must be an integer in 3–3600, got "2"/],
    ['local --poll-interval 5', ['local', '--poll-interval', '5'], /--poll-interval must be an integer in 10–10000, got "5"/],
    ['local --crash-every -1', ['local', '--crash-every', '-1'], /--crash-every must be an integer in 0–1000, got "-1"/],
    ['local --duration 0', ['local', '--duration', '0'], /--duration must be an integer in 1–86400, got "0"/],
  ])('%s', async (_title, args, names) => {
    expectOneLineError(await cli(...args), 2, names);
  });

  it('a state file that is not JSON: one line, even though the parser error spans lines', async () => {
    expectOneLineError(await cli('status', '--state-file', join(dir, 'garbage.json')), 2, /cannot read state file .*garbage\.json: .*not valid JSON/);
  });

  it('any --port that is not an integer in 1–65535 is refused the same way', async () => {
    const notAPort = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.integer({ min: -1_000_000, max: 0 }).map(String),
      fc.integer({ min: 65_536, max: 10_000_000 }).map(String),
      fc.double({ noNaN: false }).map(String),
    );
    await fc.assert(
      fc.asyncProperty(
        notAPort.filter((v) => !/^\s*\d+\s*$/.test(v) || Number(v) < 1 || Number(v) > 65_535),
        // commander reads a value starting with "-" as a flag; those are covered by the unknown-option case.
        async (value) => {
          fc.pre(!value.startsWith('-') || /^-\d+$/.test(value));
          const out = await cli(...sidecar('--port', value));
          expect(out.code).toBe(2);
          expect(out.stderr.split('\n').filter(Boolean)).toHaveLength(1);
          expect(out.stderr).toMatch(/^error: (option '--port <port>' argument .* is invalid\. --port must be an integer in 1–65535|unknown option|too many arguments)/);
        },
      ),
      { seed: 4242, numRuns: 60 },
    );
  });
});

describe('configuration refused at run time: exit 1 and one line', () => {
  it('a state file without region, tableName or targetGroups', async () => {
    expectOneLineError(await cli('status', '--state-file', join(dir, 'incomplete.json')), 2, /state file .*incomplete\.json lacks region, tableName or targetGroups/);
  });
});

describe('sidecar flags the lease contract refuses: exit 2 (a usage error), before anything is written', () => {
  it('a public --address', async () => {
    expectOneLineError(await cli(...sidecar('--address', '8.8.8.8')), 2, /address "8\.8\.8\.8" is outside the allowed ranges \(10\.0\.0\.0\/8, 172\.16\.0\.0\/12, 192\.168\.0\.0\/16, 100\.64\.0\.0\/10\)/);
  });

  it('a --capability outside the naming rule', async () => {
    expectOneLineError(await cli(...sidecar('--capability', 'Vision')), 2, /capability names "Vision" do not match \^\[a-z0-9\]\[a-z0-9_-\]\{0,62\}\$/);
  });
});

describe('the real binary', () => {
  it('exits 2 with one line on stderr and no stack trace, as a shell sees it', () => {
    const env = { ...process.env, AWS_REGION: '', AWS_DEFAULT_REGION: '' };
    for (const args of [
      ['status', '--bogus'],
      ['sidecar', '--table', 't', '--region', 'eu-west-1', '--address', '10.0.0.5', '--port', '0', '--capability', 'vision', '--health-url', 'http://127.0.0.1:9/'],
    ]) {
      // What `npx agent-lb` runs here: the launcher, on the TypeScript sources.
      const run = spawnSync(process.execPath, ['bin/agent-lb.cjs', ...args], { cwd: REPO, env, encoding: 'utf8', timeout: 30_000 });
      expectOneLineError({ code: run.status ?? -1, stderr: run.stderr, stdout: run.stdout }, 2, /^error: (unknown option '--bogus'|option '--port <port>' argument '0' is invalid)/);
    }
  });
});

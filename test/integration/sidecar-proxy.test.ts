/**
 * `agent-lb sidecar --forward-to`: the sidecar in front of an app, as a user runs it (the CLI in
 * a subprocess, a state file, requests through local mode's load balancer). Requests that last
 * far longer than a leave used to (and than the old 30 s deregistration delay, scaled), some of
 * them streamed: on SIGTERM the sidecar drains, waits until the registry reports it out of
 * rotation, then until nothing is in flight through it, releases and exits 0, so the app can be
 * stopped without cutting anything; a request still running at the leave deadline is cut, with a
 * line saying which. Without `--forward-to` (the sidecar beside the app) it waits instead until the
 * load balancer has ended its draining of the target, which the local data plane completes as
 * soon as nothing is in flight, as ALB does.
 */
import { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../lib/local/emulators/free-port';
import { LocalStack } from '../../lib/local/local-stack';
import { spawnCli, waitFor } from '../support/local-harness';

/** Health checks every 1 s; deregistration delay and idle timeout 31 s (the default 5-minute requests + 10 s, × 0.1). */
const TIME_SCALE = 0.1;
const WAIT_MS = 60_000;

let stack: LocalStack;
let dir: string;
const children: ChildProcess[] = [];
const apps: http.Server[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-sidecar-proxy-'));
  stack = await LocalStack.start({ reconcileIntervalMs: 1000, stateFile: join(dir, 'state.json'), dataPlane: { timeScale: TIME_SCALE } });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const app of apps) app.closeAllConnections();
  await Promise.all(apps.map((a) => new Promise((r) => a.close(r))));
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * The app: `/slow?ms=N` answers after N ms; `/sse?events=N&every=MS` streams N events, one every
 * MS ms, then `event: done`; `/health` 200. `active` counts the requests it is answering.
 */
async function startApp(): Promise<{ port: number; active: () => number; sent: string[] }> {
  let active = 0;
  const sent: string[] = [];
  const app = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://app');
    if (url.pathname === '/health') return void res.end('ok');
    active++;
    res.once('close', () => active--);
    const n = (k: string) => Number(url.searchParams.get(k));
    if (url.pathname.endsWith('/slow')) return void setTimeout(() => res.end('slow done'), n('ms'));
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    let i = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (i === n('events')) return void res.end('event: done\ndata: end\n\n');
      sent.push(`tick ${++i}`);
      res.write(`data: tick ${i}\n\n`);
      setTimeout(tick, n('every'));
    };
    tick();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  apps.push(app);
  return { port: (app.address() as AddressInfo).port, active: () => active, sent };
}

/**
 * The sidecar CLI in front of `appPort`, listening on a free port (or, with `beside`, the sidecar
 * without its proxy, registering the app's own port); resolves once it is serving (its ready file).
 */
async function startSidecar(appPort: number, extra: string[] = [], beside = false) {
  const port = beside ? appPort : (await freePorts(1))[0];
  const readyFile = join(dir, `ready-${port}`);
  const args = ['sidecar', '--state-file', join(dir, 'state.json'), '--address', '127.0.0.1', '--port', String(port)];
  if (!beside) args.push('--listen-host', '127.0.0.1', '--forward-to', `http://127.0.0.1:${appPort}`);
  args.push('--capability', 'vision', '--health-url', `http://127.0.0.1:${appPort}/health`);
  args.push('--ttl', '6', '--interval', '250', '--ready-file', readyFile, '--propagation-margin', '500', ...extra);
  const child = spawnCli(args, { detached: true });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (c: Buffer) => (out.stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out.stderr += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  await waitFor(() => existsSync(readyFile) || child.exitCode !== null, WAIT_MS, () => `the sidecar to serve (stdout: ${out.stdout} stderr: ${out.stderr})`);
  expect(child.exitCode, out.stderr).toBeNull();
  return { port, child, out, exited, key: `127.0.0.1:${port}` };
}

/** A request through the load balancer, read as it arrives. */
function through(path: string): { firstChunkAt: Promise<number>; done: Promise<{ status: number; body: string; complete: boolean; endedAt: number }> } {
  let first!: (at: number) => void;
  const firstChunkAt = new Promise<number>((r) => (first = r));
  const done = new Promise<{ status: number; body: string; complete: boolean; endedAt: number }>((resolve) => {
    const req = http.request(`${stack.state.loadBalancerEndpoint}${path}`, { headers: { 'X-Agent-Capability': 'vision' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body === '') first(Date.now());
        body += c;
      });
      const end = () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete, endedAt: Date.now() });
      res.on('end', end);
      res.on('aborted', end);
      res.on('error', end);
    });
    req.on('error', () => resolve({ status: 0, body: '', complete: false, endedAt: Date.now() }));
    req.end();
  });
  return { firstChunkAt, done };
}

const leaseOf = async (key: string) =>
  (await stack.dynamodb.send(new GetItemCommand({ TableName: stack.state.tableName, Key: { target: { S: key } }, ConsistentRead: true }))).Item;

describe('agent-lb sidecar --forward-to (CLI subprocess, through local mode)', () => {
  it('streams answers through as they are produced, counts them, and on SIGTERM lets a long and a streamed request finish before it releases and exits 0', async () => {
    const app = await startApp();
    const sidecar = await startSidecar(app.port);
    expect(sidecar.out.stdout).toMatch(/ on SIGTERM: waits for the requests in flight through the proxy, leave deadline 312.5 s \(longest request 300 s: maxRequestDuration of vision in the deployment\)\n/);

    // Longer than the old 6 s (scaled 30 s) deregistration delay, which used to cut them.
    const slow = through('/agents/vision/slow?ms=9000');
    const sse = through('/sse?events=30&every=250'); // 7.5 s, an event every 250 ms
    const firstEventAt = await sse.firstChunkAt;
    const sentWhenFirstArrived = app.sent.length;
    await waitFor(() => app.active() === 2, WAIT_MS, 'both requests at the app');

    const signalled = Date.now();
    process.kill(-sidecar.child.pid!, 'SIGTERM');
    const code = await Promise.race([sidecar.exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), WAIT_MS))]);
    const exitedAt = Date.now();
    const [slowAnswer, sseAnswer] = await Promise.all([slow.done, sse.done]);

    expect(code, sidecar.out.stdout + sidecar.out.stderr).toBe(0);
    expect(slowAnswer).toMatchObject({ status: 200, body: 'slow done', complete: true });
    expect(sseAnswer).toMatchObject({ status: 200, complete: true });
    expect(sseAnswer.body.match(/data: tick/g)).toHaveLength(30);
    expect(sseAnswer.body.endsWith('event: done\ndata: end\n\n')).toBe(true);
    // Not buffered: the first event came through while the app had most still to send.
    expect(sentWhenFirstArrived).toBeLessThan(30);
    expect(firstEventAt).toBeLessThan(sseAnswer.endedAt - 3000);
    // It waited for both, then released: the app may now be stopped with nothing in flight.
    expect(exitedAt).toBeGreaterThanOrEqual(Math.max(slowAnswer.endedAt, sseAnswer.endedAt));
    expect(app.active()).toBe(0);
    expect(await leaseOf(sidecar.key)).toBeUndefined();
    const lines = sidecar.out.stdout.split('\n').map((l) => l.split(' ').slice(1).join(' '));
    expect(lines.find((l) => / inFlight \w+ in /.test(l))).toMatch(/: inFlight done in \d+\.\d s \(2 in flight at the start, none now\)$/);
    expect(lines.some((l) => l.startsWith('cut '))).toBe(false);
    console.log(`sidecar exited ${exitedAt - signalled} ms after SIGTERM; the 9 s request ended ${slowAnswer.endedAt - signalled} ms after it`);
  });

  it('cuts a request still in flight at the leave deadline, saying which, then releases and exits 0', async () => {
    const app = await startApp();
    const sidecar = await startSidecar(app.port, ['--leave-deadline', '5']);
    const stuck = through('/agents/vision/slow?ms=120000');
    await waitFor(() => app.active() === 1, WAIT_MS, 'the request at the app');

    process.kill(-sidecar.child.pid!, 'SIGTERM');
    const code = await Promise.race([sidecar.exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), WAIT_MS))]);
    const answer = await stuck.done;

    expect(code, sidecar.out.stdout + sidecar.out.stderr).toBe(0);
    expect(answer.status).toBe(502); // the load balancer lost its target mid-request, as ALB answers
    const lines = sidecar.out.stdout.split('\n').map((l) => l.split(' ').slice(1).join(' '));
    expect(lines).toContainEqual(expect.stringMatching(/^cut GET "\/agents\/vision\/slow\?ms=120000" \(in flight \d+\.\d s\): still in flight when the leave had to end/));
    expect(lines.find((l) => / inFlight \w+ in /.test(l))).toMatch(/: inFlight deadline in \d+\.\d s \(1 still in flight, cut: GET "\/agents\/vision\/slow\?ms=120000" \(in flight \d+\.\d s\)\)$/);
    expect(await leaseOf(sidecar.key)).toBeUndefined();
  });

  it('without --forward-to waits until the load balancer has ended its draining of the target (its last request answered), then releases and exits 0', async () => {
    const app = await startApp();
    const sidecar = await startSidecar(app.port, [], true);
    expect(sidecar.out.stdout).toMatch(/ on SIGTERM: waits for the load balancer's draining of the target /);
    // Longer than the old 6 s (scaled 30 s) deregistration delay; the sidecar cannot see it.
    const slow = through('/agents/vision/slow?ms=9000');
    await waitFor(() => app.active() === 1, WAIT_MS, 'the request at the app');

    process.kill(-sidecar.child.pid!, 'SIGTERM');
    const code = await Promise.race([sidecar.exited, new Promise<'hang'>((r) => setTimeout(() => r('hang'), WAIT_MS))]);
    const exitedAt = Date.now();
    const answer = await slow.done;

    expect(code, sidecar.out.stdout + sidecar.out.stderr).toBe(0);
    expect(answer).toMatchObject({ status: 200, body: 'slow done', complete: true });
    // The data plane completed the deregistration once nothing was in flight (not at the 31 s delay), and only then did the sidecar leave.
    expect(exitedAt).toBeGreaterThanOrEqual(answer.endedAt);
    expect(app.active()).toBe(0);
    expect(await leaseOf(sidecar.key)).toBeUndefined();
    const lines = sidecar.out.stdout.split('\n').map((l) => l.split(' ').slice(1).join(' '));
    expect(lines.find((l) => / inFlight \w+ in /.test(l))).toMatch(/: inFlight done in \d+\.\d s/);
  });
});

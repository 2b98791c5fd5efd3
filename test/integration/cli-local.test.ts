/**
 * `agent-lb local` as a user runs it, checked from outside: a subprocess in its own process
 * group writes the state file; a client that shares no code with this project reads that file,
 * writes a lease in the contract's format with the raw AWS SDK for an HTTP server of its own,
 * watches the target groups and listener rules through the ELBv2 API and sends requests to the
 * file's `loadBalancerEndpoint`; `status` and `leases` run against the same file;
 * SIGTERM shuts everything down with nothing left behind.
 */
import { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeRulesCommand, DescribeTargetHealthCommand, ElasticLoadBalancingV2Client, Rule } from '@aws-sdk/client-elastic-load-balancing-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLine, connectResult, contractItem, processAlive, processTree, runCli, spawnCli, targetKeys, waitFor } from '../support/local-harness';
import { get, startTargetServer, TargetServer } from './data-plane-harness';

interface StateFile {
  region: string;
  dynamodbEndpoint: string;
  elbv2Endpoint: string;
  loadBalancerEndpoint: string;
  tableName: string;
  loadBalancerArn: string;
  listenerArn: string;
  loadBalancers: { loadBalancerArn: string; listenerArn: string; capabilities: string[]; endpoint: string }[];
  targetGroups: Record<string, string>;
}

const portOf = (url: string): number => Number(new URL(url).port);

describe('agent-lb local --agents 0 --state-file (subprocess)', () => {
  let dir: string;
  let stateFile: string;
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let output = '';
  let state: StateFile;
  let ddb: DynamoDBClient;
  let elbv2: ElasticLoadBalancingV2Client;
  /** Every process of the local command (tsx, node, the servers and their watchdogs), taken while it runs. */
  let tree: { pid: number; cmd: string }[] = [];
  /** The outside client's own HTTP server, answering `/health` (the example's health check path). */
  let server: TargetServer;
  let leaseKey: string;

  beforeAll(async () => {
    server = await startTargetServer('outside-server');
    leaseKey = `127.0.0.1:${server.port}`;
    dir = mkdtempSync(join(tmpdir(), 'agent-lb-cli-local-'));
    stateFile = join(dir, 'state.json');
    // As a user starts it, in its own process group (a terminal's job, a supervisor's unit), as
    // one Node process like the installed bin: npm in between would die of the SIGTERM at once,
    // without waiting for its child, and tsx's CLI wrapper SIGKILLs a child slow to acknowledge a
    // signal (see spawnCli); either would hide the command's own exit code.
    child = spawnCli(['local', '--agents', '0', '--state-file', stateFile, '--reconcile-interval', '2'], { detached: true });
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    exited = new Promise((r) => child.once('exit', (code) => r(code)));
    const started = Date.now();
    await waitFor(() => existsSync(stateFile) || child.exitCode !== null, 90_000, () => `the state file (output so far: ${output})`, 200);
    if (!existsSync(stateFile)) throw new Error(`agent-lb local exited early: ${output}`);
    console.log(`agent-lb local ready (state file written) ${Date.now() - started} ms after spawn`);
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as StateFile;
    // The outside client: its own credentials (letters and digits, as DynamoDB Local wants), nothing of ours.
    const credentials = { accessKeyId: 'outsideclient', secretAccessKey: 'outside' };
    ddb = new DynamoDBClient({ region: state.region, endpoint: state.dynamodbEndpoint, credentials });
    elbv2 = new ElasticLoadBalancingV2Client({ region: state.region, endpoint: state.elbv2Endpoint, credentials });
  });

  afterAll(async () => {
    ddb?.destroy();
    elbv2?.destroy();
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Servers die with their parent (watchdog); make sure, by pid, before leaving.
    for (const { pid } of tree) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    await server?.close();
  });

  it('writes a state file with exactly the documented keys', () => {
    expect(Object.keys(state).sort()).toEqual(['dynamodbEndpoint', 'elbv2Endpoint', 'listenerArn', 'loadBalancerArn', 'loadBalancerEndpoint', 'loadBalancers', 'maxRequestSeconds', 'region', 'registryTableName', 'tableName', 'targetGroups']);
    expect(state.loadBalancerEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The example's capabilities fit one load balancer: the first, on loadBalancerEndpoint.
    expect(state.loadBalancers).toEqual([{ loadBalancerArn: state.loadBalancerArn, listenerArn: state.listenerArn, capabilities: ['vision', 'speech', 'search'], endpoint: state.loadBalancerEndpoint }]);
    expect(output).toContain(`load balancer ${state.loadBalancerEndpoint}`);
    expect(Object.keys(state.targetGroups).sort()).toEqual(['search', 'speech', 'vision']);
    expect(state.dynamodbEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(state.elbv2Endpoint).toMatch(/^http:\/\/localhost:\d+$/);
    for (const arn of Object.values(state.targetGroups)) expect(arn).toMatch(/^arn:aws:elasticloadbalancing:[^:]+:\d{12}:targetgroup\//);
    expect(state.loadBalancerArn).toMatch(/:loadbalancer\/app\//);
    expect(state.listenerArn).toMatch(/:listener\/app\//);
  });

  it('serves an outside client: a raw PutItem in the contract format lands in the target group', async () => {
    const item = contractItem({ address: '127.0.0.1', port: server.port, capabilities: ['vision'], agentId: 'outside-client', ttlSeconds: 120 });
    const written = Date.now();
    await ddb.send(new PutItemCommand({ TableName: state.tableName, Item: item }));
    await waitFor(async () => (await targetKeys(elbv2, state.targetGroups.vision)).includes(leaseKey), 5000, 'the raw lease in the vision group', 50);
    console.log(`raw PutItem → registered in ${Date.now() - written} ms`);
    expect(await targetKeys(elbv2, state.targetGroups.speech)).not.toContain(leaseKey);
  });

  it('routes requests sent to loadBalancerEndpoint to the server once its health check passed; DescribeTargetHealth says healthy', async () => {
    const health = async () => (await elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: state.targetGroups.vision }))).TargetHealthDescriptions?.find((d) => d.Target?.Port === server.port)?.TargetHealth?.State;
    await waitFor(async () => (await health()) === 'healthy', 30_000, () => `the server healthy (DescribeTargetHealth: ${server.healthChecks.length} checks so far)`, 100);
    expect(server.healthChecks.length).toBeGreaterThanOrEqual(1);
    for (const headers of [{ 'X-Agent-Capability': 'vision' }, { 'x-agent-capability': 'VISION' }] as Record<string, string>[]) {
      const answer = await get(state.loadBalancerEndpoint, '/hello', headers);
      expect(answer).toMatchObject({ status: 200, name: 'outside-server' });
    }
    expect(await get(state.loadBalancerEndpoint, '/agents/vision/hello')).toMatchObject({ status: 200, name: 'outside-server' });
    expect(server.requests.map((r) => r.url)).toEqual(['/hello', '/hello', '/agents/vision/hello']);
    const unknown = await get(state.loadBalancerEndpoint, '/agents/ocr/hello');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: 'unknown capability', capabilities: ['search', 'speech', 'vision'] });
    // speech has no target.
    expect((await get(state.loadBalancerEndpoint, '/agents/speech/hello')).status).toBe(503);
  });

  it('has a header rule and a path rule per capability on the listener, forwarding to its group', async () => {
    const rules: Rule[] = [];
    let marker: string | undefined;
    do {
      const out = await elbv2.send(new DescribeRulesCommand({ ListenerArn: state.listenerArn, ...(marker ? { Marker: marker } : {}) }));
      rules.push(...(out.Rules ?? []));
      marker = out.NextMarker;
    } while (marker);

    const forwardsTo = (r: Rule) => r.Actions?.find((a) => a.Type === 'forward')?.TargetGroupArn ?? r.Actions?.[0]?.ForwardConfig?.TargetGroups?.[0]?.TargetGroupArn;
    const values = (r: Rule, field: string) =>
      (r.Conditions ?? []).filter((c) => c.Field === field).flatMap((c) => [...(c.Values ?? []), ...(c.HttpHeaderConfig?.Values ?? []), ...(c.PathPatternConfig?.Values ?? [])]);
    for (const [capability, arn] of Object.entries(state.targetGroups)) {
      const mine = rules.filter((r) => forwardsTo(r) === arn);
      const header = mine.filter((r) => values(r, 'http-header').includes(capability));
      const path = mine.filter((r) => values(r, 'path-pattern').some((p) => p.startsWith(`/agents/${capability}`)));
      expect(header, `header rule of ${capability}`).toHaveLength(1);
      expect(header[0].Conditions?.find((c) => c.Field === 'http-header')?.HttpHeaderConfig?.HttpHeaderName).toBe('X-Agent-Capability');
      expect(path, `path rule of ${capability}`).toHaveLength(1);
      expect(values(path[0], 'path-pattern')).toContain(`/agents/${capability}/*`);
      // An explicit header wins over a path.
      expect(Number(header[0].Priority)).toBeLessThan(Number(path[0].Priority));
    }
    // And the default: the 404 JSON for unknown capabilities.
    const fallback = rules.find((r) => r.IsDefault);
    expect(fallback?.Actions?.[0]?.Type).toBe('fixed-response');
    expect(fallback?.Actions?.[0]?.FixedResponseConfig?.StatusCode).toBe('404');
  });

  it('`status --state-file --json` reports the lease, its target and no drift', async () => {
    const result = await runCli(['status', '--state-file', stateFile, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as {
      capabilities: { capability: string; liveLeases: number; registered: number; targets: { id: string; port: number; state: string }[]; missing: string[]; stale: string[] }[];
      leases: { total: number; live: number; invalid: number };
      drift: boolean;
    };
    expect(status.capabilities.map((c) => c.capability).sort()).toEqual(['search', 'speech', 'vision']);
    const vision = status.capabilities.find((c) => c.capability === 'vision')!;
    expect(vision).toMatchObject({ liveLeases: 1, registered: 1, missing: [], stale: [] });
    expect(vision.targets.map((t) => `${t.id}:${t.port}`)).toEqual([leaseKey]);
    // The state the load balancer's health checks found, read back through DescribeTargetHealth.
    expect(vision.targets[0].state).toBe('healthy');
    expect(status.leases).toEqual({ total: 1, live: 1, invalid: 0 });
    expect(status.drift).toBe(false);

    const text = await runCli(['status', '--state-file', stateFile]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^vision\s+1\s+1\s+healthy=1\s+none$/m);
    expect(text.stdout).toContain('drift: none');
  });

  it('`GET /agents` on loadBalancerEndpoint: the catalog counts the server healthy, without its address', async () => {
    await waitFor(async () => {
      const answer = await get(state.loadBalancerEndpoint, '/agents');
      const vision = (JSON.parse(answer.body) as { capabilities: { name: string; targets: { healthy: number } }[] }).capabilities.find((c) => c.name === 'vision');
      return answer.status === 200 && vision?.targets.healthy === 1;
    }, 30_000, 'vision healthy in the catalog', 200);
    const answer = await get(state.loadBalancerEndpoint, '/agents');
    expect(answer.body).not.toContain(String(server.port));
    // The one host it names is the load balancer's (locally the agents' loopback address too).
    expect(answer.body.replaceAll('"host":"127.0.0.1"', '')).not.toContain('127.0.0.1');
    expect(output).toContain(`curl -s ${state.loadBalancerEndpoint}/agents`);
  });

  it('`agents vision --state-file` lists the server with its address, port and rotation state', async () => {
    const result = await runCli(['agents', 'vision', '--state-file', stateFile, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const agents = JSON.parse(result.stdout) as { address: string; port: number; state: string; agentId: string }[];
    expect(agents).toEqual([expect.objectContaining({ address: '127.0.0.1', port: server.port, state: 'healthy', agentId: 'outside-client' })]);
    const text = await runCli(['agents', 'vision', '--state-file', stateFile, '--health', 'all']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1\\s+${server.port}\\s+healthy\\s`, 'm'));
    expect((await runCli(['agents', 'speech', '--state-file', stateFile, '--json'])).stdout.trim()).toBe('[]');
    const bad = await runCli(['agents', 'vision', '--state-file', stateFile, '--health', 'sick']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('`leases --state-file --json` lists the lease as live and active', async () => {
    const result = await runCli(['leases', '--state-file', stateFile, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const rows = JSON.parse(result.stdout) as { target: string; agentId: string; capabilities: string[]; status: string; live: boolean; expiresInSeconds: number }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ target: leaseKey, agentId: 'outside-client', capabilities: ['vision'], status: 'active', live: true });
    expect(rows[0].expiresInSeconds).toBeGreaterThan(60);

    const other = await runCli(['leases', '--state-file', stateFile, '--json', '--capability', 'speech']);
    expect(JSON.parse(other.stdout)).toEqual([]);
    expect(other.stderr).toBe('');
    const unrouted = await runCli(['leases', '--state-file', stateFile, '--json', '--capability', 'ocr']);
    expect(unrouted.code).toBe(0);
    expect(unrouted.stderr).toMatch(/^warning: capability "ocr" is not routed by this deployment \(it routes search, speech, vision\)/);
  });

  it('tells why it refuses a malformed lease and an unrouted capability: in its events, the leases, `status` and `explain`', async () => {
    // Prepare: the outside client adds a capability the deployment does not route; someone writes a malformed lease
    const unrouted = contractItem({ address: '127.0.0.1', port: server.port, capabilities: ['ocr', 'vision'], agentId: 'outside-client', ttlSeconds: 120 });
    const malformed = { ...contractItem({ address: '127.0.0.1', port: 9, capabilities: ['vision'], ttlSeconds: 120 }), port: { S: '9' } };
    await ddb.send(new PutItemCommand({ TableName: state.tableName, Item: unrouted }));
    await ddb.send(new PutItemCommand({ TableName: state.tableName, Item: malformed }));

    // Act: the registry writes both reasons into the leases
    const rejectionOf = async (key: string) => (await ddb.send(new GetItemCommand({ TableName: state.tableName, Key: { target: { S: key } }, ConsistentRead: true }))).Item?.rejection?.M;
    await waitFor(async () => (await rejectionOf(leaseKey))?.reason?.S === 'unknown-capability' && (await rejectionOf('127.0.0.1:9'))?.reason?.S === 'invalid', 30_000, 'both rejections written');
    await waitFor(() => output.includes('127.0.0.1:9 rejected: invalid:') && output.includes(`${leaseKey} rejected: unknown-capability (ocr):`), 30_000, () => `the events (output: ${output.slice(-2000)})`);
    const status = await runCli(['status', '--state-file', stateFile]);
    const explainOk = await runCli(['explain', leaseKey, '--state-file', stateFile]);
    const explainBad = await runCli(['explain', '127.0.0.1:9', '--state-file', stateFile]);

    // Assess
    expect((await rejectionOf(leaseKey))?.capabilities?.SS).toEqual(['ocr']);
    expect(output).toContain('127.0.0.1:9 rejected: invalid: attribute "port" must be Number (N), got S');
    expect(status.stdout).toMatch(/^REFUSED\s+REASON\s+CAPABILITIES\s+TOLD\s+WHY$/m);
    expect(status.stdout).toMatch(/^127\.0\.0\.1:9\s+invalid\s+\(all\)\s+yes\s+attribute "port" must be Number \(N\), got S$/m);
    expect(status.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${server.port}\\s+unknown-capability\\s+ocr\\s+yes\\s+capability "ocr" is not routed by this deployment`, 'm'));
    expect(explainOk.code).toBe(0);
    expect(explainOk.stdout).toContain(`${leaseKey}: the lease is live: active`);
    expect(explainOk.stdout).toMatch(/^ {2}ocr: NOT IN ROTATION\n {4}- the registry refuses it: capability "ocr" is not routed by this deployment \(known: search, speech, vision\) \(the lease holds this reason in rejection\)$/m);
    expect(explainOk.stdout).toMatch(/^ {2}vision: IN ROTATION$/m);
    expect(explainOk.stdout).toContain('- requests reach it by X-Agent-Capability: vision or path /agents/vision or /agents/vision/*');
    expect(explainBad.stdout).toMatch(/^127\.0\.0\.1:9: the lease is invalid, so the registry routes it nowhere \(invalid: attribute "port" must be Number \(N\), got S\); the lease holds this reason/m);
    await ddb.send(new DeleteItemCommand({ TableName: state.tableName, Key: { target: { S: '127.0.0.1:9' } } }));
  });

  it('SIGTERM: exits 0 within 10 s, removes the state file, leaves no process and frees the ports', async () => {
    const pid = child.pid!;
    tree = processTree(pid).map((p) => ({ pid: p, cmd: commandLine(p) }));
    // The servers really are part of what is stopped.
    expect(tree.some((p) => p.cmd.includes('DynamoDBLocal') || p.cmd.startsWith('java'))).toBe(true);
    expect(tree.some((p) => p.cmd.includes('moto'))).toBe(true);
    const ports = [portOf(state.dynamodbEndpoint), portOf(state.elbv2Endpoint), portOf(state.loadBalancerEndpoint)];

    const signalled = Date.now();
    // To the whole group, as a terminal's Ctrl-C or a supervisor's stop does.
    process.kill(-pid, 'SIGTERM');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    const elapsed = Date.now() - signalled;
    console.log(`agent-lb local exited ${elapsed} ms after SIGTERM with ${code}`);
    expect(code).toBe(0);
    expect(elapsed).toBeLessThan(10_000);
    expect(output).toContain('stopping (SIGTERM)');
    expect(existsSync(stateFile)).toBe(false);
    // Nothing of its process group survives...
    await waitFor(
      () => {
        try {
          process.kill(-pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      2000,
      'the process group to be empty',
    );
    // ...nor of the servers', which run in groups of their own: every process of the tree, by pid.
    await waitFor(() => tree.every((p) => !processAlive(p.pid)), 5000, () => `no survivor among ${JSON.stringify(tree.filter((p) => processAlive(p.pid)))}`);
    for (const port of ports) expect(await connectResult(port)).toBe('ECONNREFUSED');
  });
});

describe('agent-lb local with bad flags', () => {
  it.each([
    [['local', '--agents', '-1'], /--agents must be an integer in 0–1000, got "-1"/],
    [['local', '--capabilities', 'Bad Name'], /--capabilities: "Bad Name" must match/],
    [['local', '--lb-port', '70000'], /--lb-port must be an integer in 0–65535, got "70000"/],
    [['local', '--time-scale', '2'], /--time-scale must be a number in 0\.01–1, got "2"/],
  ])('%j → exit code 2 and one line on stderr', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: /);
    expect(lines[0]).toMatch(message);
  });

  it('--lb-port on a port in use → exit code 2 naming it, before anything starts', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const result = await runCli(['local', '--agents', '0', '--lb-port', String(port)]);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(new RegExp(`^error: .*127\\.0\\.0\\.1:${port}`))]);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});

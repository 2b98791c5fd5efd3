import { ConditionalCheckFailedException, CreateTableCommand, DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeLoadBalancersCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DynamoDbLocal,
  freePorts,
  MotoServer,
  MotoServerNotFoundError,
  processGroupAlive,
  startDynamoDbLocal,
  startMotoServer,
} from '../../lib/local/emulators';

const REPO = resolve(__dirname, '../..');

/** Local addresses of TCP sockets listening on `port`, read from /proc (undefined off Linux). */
function listeningAddresses(port: number): string[] | undefined {
  if (!existsSync('/proc/net/tcp')) return undefined;
  const out: string[] = [];
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').trim().split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const [addrHex, portHex] = (cols[1] ?? '').split(':');
      if (cols[3] !== '0A' || addrHex === undefined || parseInt(portHex ?? '', 16) !== port) continue;
      // Each 32-bit word is in host (little-endian) order.
      const bytes = (addrHex.match(/.{8}/g) ?? []).flatMap((word) => (word.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
      if (!v6) out.push(bytes.join('.'));
      else if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) out.push(`::ffff:${bytes.slice(12).join('.')}`);
      else out.push(bytes.map((b) => b.toString(16).padStart(2, '0')).join(''));
    }
  }
  return out;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((res) => {
    const server = createServer();
    server.once('error', () => res(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => res(true)));
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('emulator launchers', () => {
  let ddb: DynamoDbLocal;
  let moto: MotoServer;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    [ddb, moto] = await Promise.all([startDynamoDbLocal(), startMotoServer()]);
    timings.dynamodbStartupMs = ddb.startupMs;
    timings.motoStartupMs = moto.startupMs;
  });

  afterAll(async () => {
    await Promise.all([ddb?.stop(), moto?.stop()]);
    console.log(`emulator timings: ${JSON.stringify(timings)}`);
  });

  it('free ports are distinct, bindable ports on 127.0.0.1', async () => {
    const ports = await freePorts(3);
    expect(new Set(ports).size).toBe(3);
    for (const port of ports) expect(await canBind(port)).toBe(true);
  });

  it('DynamoDB Local listens on 127.0.0.1 only and serves conditional writes', async () => {
    expect(ddb.endpoint).toBe(`http://127.0.0.1:${ddb.port}`);
    const addresses = listeningAddresses(ddb.port);
    if (addresses !== undefined) {
      expect(addresses.length).toBeGreaterThan(0);
      for (const address of addresses) expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(address);
    }
    const client = new DynamoDBClient(ddb.clientConfig);
    await client.send(
      new CreateTableCommand({
        TableName: 'probe',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'k', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'k', KeyType: 'HASH' }],
      }),
    );
    const put = new PutItemCommand({ TableName: 'probe', Item: { k: { S: 'a' } }, ConditionExpression: 'attribute_not_exists(k)' });
    await client.send(put);
    await expect(client.send(put)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    // -sharedDb: other credentials and region see the same table.
    const other = new DynamoDBClient({ ...ddb.clientConfig, region: 'eu-west-1', credentials: { accessKeyId: 'someoneelse', secretAccessKey: 'x' } });
    await expect(other.send(put)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    client.destroy();
    other.destroy();
  });

  it('moto_server listens on 127.0.0.1 only, at a localhost endpoint, and serves ELBv2', async () => {
    expect(moto.endpoint).toBe(`http://localhost:${moto.port}`);
    const addresses = listeningAddresses(moto.port);
    if (addresses !== undefined) {
      expect(addresses.length).toBeGreaterThan(0);
      for (const address of addresses) expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(address);
    }
    const elb = new ElasticLoadBalancingV2Client(moto.clientConfig);
    const res = await elb.send(new DescribeLoadBalancersCommand({}));
    expect(res.LoadBalancers).toEqual([]);
    elb.destroy();
  });

  it('a missing moto_server is reported with the install command', async () => {
    await expect(startMotoServer({ command: 'moto_server_not_installed_here' })).rejects.toThrow(MotoServerNotFoundError);
    await expect(startMotoServer({ command: 'moto_server_not_installed_here' })).rejects.toThrow('pip install "moto[server]"');
  });

  it('a DynamoDB Local that cannot start fails with its output and leaves nothing behind', async () => {
    await expect(startDynamoDbLocal({ javaCommand: '/nonexistent/java' })).rejects.toThrow(/DynamoDB Local failed to start[\s\S]*Java 17/);
  });

  it('stop() kills the whole process tree and frees the port; it is idempotent', async () => {
    const [d, m] = [ddb, moto];
    const started = Date.now();
    await Promise.all([d.stop(), m.stop()]);
    timings.stopBothMs = Date.now() - started;
    expect(processGroupAlive(d.pid)).toBe(false);
    expect(processGroupAlive(m.pid)).toBe(false);
    expect(await canBind(d.port)).toBe(true);
    expect(await canBind(m.port)).toBe(true);
    await Promise.all([d.stop(), m.stop()]);
  });

  it('servers die with their parent, even when it is SIGKILLed or exits without stopping them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-lb-emulators-'));
    const script = join(dir, 'parent.ts');
    writeFileSync(
      script,
      `import { startMotoServer } from ${JSON.stringify(join(REPO, 'lib/local/emulators/moto-server'))};
startMotoServer().then((m) => {
  process.stdout.write(JSON.stringify({ pid: m.pid, port: m.port }) + '\\n');
  if (process.argv[2] === 'exit') setTimeout(() => process.exit(0), 50);
  else setInterval(() => undefined, 1 << 30);
});
`,
    );
    const children: ChildProcess[] = [];
    const launch = (mode: 'kill' | 'exit'): Promise<{ child: ChildProcess; pid: number; port: number }> =>
      new Promise((res, rej) => {
        const child = spawn(process.execPath, ['--import', 'tsx', script, mode], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(child);
        let out = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) res({ child, ...(JSON.parse(line) as { pid: number; port: number }) });
        });
        let err = '';
        child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
        child.once('exit', (code) => rej(new Error(`parent exited (${code}) before starting moto: ${err}`)));
      });
    try {
      const [killed, exited] = await Promise.all([launch('kill'), launch('exit')]);
      expect(processGroupAlive(killed.pid)).toBe(true);
      killed.child.kill('SIGKILL');
      // The watchdog notices the closed pipe at once, TERMs the group, KILLs leftovers after 3 s.
      expect(await waitFor(() => !processGroupAlive(killed.pid), 8000)).toBe(true);
      expect(await waitFor(() => !processGroupAlive(exited.pid), 8000)).toBe(true);
      expect(await canBind(killed.port)).toBe(true);
      expect(await canBind(exited.port)).toBe(true);
    } finally {
      for (const child of children) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateNetworkInterfaceCommand, CreateSecurityGroupCommand, DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort } from '../../lib/local/emulators/free-port';
import { LocalStack } from '../../lib/local/local-stack';
import { fleetStatus } from '../../lib/registry/fleet-status';
import { contractItem, connectResult, targetKeys, waitFor } from '../support/local-harness';
import { get } from './data-plane-harness';

/**
 * The reproduction, now refused. A plain `python -m http.server` that is not an agent
 * (standing in for an internal admin console) is put behind the load balancer with one PutItem,
 * as anyone holding the agent grant can write it. Before, `curl -H 'X-Agent-Capability: search'
 * $LB/admin.txt` returned its secret page (its failing health check did not help: the only
 * target, the group failed open). Now the registry asks moto's EC2 who holds its address: an
 * interface outside the agents' security group, so the lease is rejected `not-admitted`, never
 * registered, and the load balancer has nothing to send the request to. An agent whose interface
 * is in the agents' group then serves, and the secret never leaks. Loopback admission is off, so
 * 127.0.0.x addresses are judged by moto's interfaces like any VPC address.
 */

const SECRET = 'admin console: root password is hunter2';
const WAIT_MS = 30_000;
let stack: LocalStack;
let ec2: EC2Client;
let dir: string;
let port: number;
let console_: ChildProcess;
let agent: http.Server;
const logger = new Logger({ serviceName: 'reproduction', logLevel: 'SILENT' });
const warn = vi.spyOn(logger, 'warn');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-admission-'));
  port = await freePort();
  writeFileSync(join(dir, 'admin.txt'), SECRET);
  // The capability serves on the console's port, so only admission stands between them.
  writeFileSync(join(dir, 'cdk.json'), JSON.stringify({ context: { 'agent-lb': { capabilities: [{ name: 'search', port, healthCheck: { path: '/health' } }] } } }));
  console_ = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { stdio: 'ignore' });
  agent = http.createServer((req, res) => res.writeHead(200, { 'Content-Type': 'text/plain' }).end(req.url === '/health' ? 'ok' : 'agent answer'));
  await new Promise<void>((resolve) => agent.listen({ host: '127.0.0.2', port }, resolve));
  await waitFor(async () => (await connectResult(port)) === 'connected', WAIT_MS, 'the admin console to listen');
  stack = await LocalStack.start({ cdkJsonPath: join(dir, 'cdk.json'), admitLoopback: false, reconcileIntervalMs: 1000, logger, dataPlane: { timeScale: 0.2 } });
  ec2 = new EC2Client({ ...stack.elbv2ClientConfig });
}, 180_000);

afterAll(async () => {
  ec2?.destroy();
  await stack?.stop();
  console_?.kill();
  await new Promise<void>((resolve) => (agent ? agent.close(() => resolve()) : resolve()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function interfaceFor(address: string, groupIds: string[]): Promise<void> {
  const { vpcId } = stack.runtimeConfig.admission!;
  const subnets = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }] }));
  await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: subnets.Subnets![0].SubnetId!, PrivateIpAddress: address, Groups: groupIds }));
}

const ask = () => get(stack.state.loadBalancerEndpoint!, '/admin.txt', { 'X-Agent-Capability': 'search' });

describe('a lease pointing the load balancer at a service that is not an agent', () => {
  it('is rejected not-admitted and never registered: the secret page is not reachable through the load balancer', async () => {
    const { vpcId } = stack.runtimeConfig.admission!;
    const consoleGroup = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'admin-console', Description: 'not an agent', VpcId: vpcId }))).GroupId!;
    await interfaceFor('127.0.0.1', [consoleGroup]);

    // The attack: one PutItem with nothing but the agent grant's actions.
    await stack.dynamodb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: contractItem({ address: '127.0.0.1', port, capabilities: ['search'] }) }));
    await stack.drain();
    await stack.reconcileNow();

    expect(warn.mock.calls.some(([m, d]) => m === 'lease rejected' && (d as { reason?: string }).reason === 'NOT_ADMITTED' && (d as { target?: string }).target === `127.0.0.1:${port}`)).toBe(true);
    expect(await targetKeys(stack.elbv2, stack.state.targetGroups.search)).toEqual([]);
    const answer = await ask();
    expect(answer.status).toBe(503);
    expect(answer.body).not.toContain(SECRET);
    // What `agent-lb status` (and local mode's live view) shows: a rejection written into the writer's lease, not drift.
    const status = await fleetStatus({ ...stack.sources(), routing: stack.runtimeConfig.routing });
    expect(status.rejections).toEqual([expect.objectContaining({ target: `127.0.0.1:${port}`, reason: 'not-admitted', capabilities: ['search'], told: true })]);
    expect(status.drift).toBe(false);
  });

  it('an agent whose interface carries the agents\' group serves, and the console is still never reached', async () => {
    await interfaceFor('127.0.0.2', stack.runtimeConfig.admission!.securityGroups as string[]);
    await stack.dynamodb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: contractItem({ address: '127.0.0.2', port, capabilities: ['search'] }) }));
    await waitFor(async () => (await ask()).status === 200, WAIT_MS, 'the agent to serve');

    const answers = await Promise.all(Array.from({ length: 20 }, ask));
    expect(answers.map((a) => `${a.status} ${a.body}`)).toEqual(Array(20).fill('200 agent answer'));
    expect(await targetKeys(stack.elbv2, stack.state.targetGroups.search)).toEqual([`127.0.0.2:${port}`]);
  });
});

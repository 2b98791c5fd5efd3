/**
 * The routing policy through local mode's endpoint, as a client sees it: a cdk.json of the
 * test's own declares the policies, local mode provisions them into moto (target group
 * attributes, weighted forward actions, pin rules), HTTP servers of the test's own hold leases
 * written with the raw AWS SDK, and every assertion is who answered a request sent to
 * `loadBalancerEndpoint`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readWeightedRules } from '../../lib/aws/listener-rules';
import { LocalStack } from '../../lib/local/local-stack';
import { contractItem, waitFor } from '../support/local-harness';
import { get, load, startTargetServer, tally, TargetServer } from './data-plane-harness';

const TIME_SCALE = 0.2;
/** Generous bounds for waits on a loaded 2-core machine; what they wait for is an event, not a duration. */
const WAIT_MS = 30_000;
/** Health checks on the servers' `/health`, at the defaults (every 10 s, timeout 5 s; × 0.2 here), so they never count as requests. */
const HEALTH = { path: '/health' };

let stack: LocalStack;
let endpoint: string;
let dir: string;
const servers: TargetServer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-policy-'));
  const cdkJson = join(dir, 'cdk.json');
  const capabilities = [
    { name: 'vision', healthCheck: HEALTH, variants: [{ name: 'canary', weight: 20 }] },
    { name: 'chat', healthCheck: HEALTH, stickiness: { type: 'lb_cookie', durationSeconds: 600 } },
    { name: 'rr', healthCheck: HEALTH, algorithm: 'round_robin' },
    { name: 'lor', healthCheck: HEALTH, algorithm: 'least_outstanding_requests' },
  ];
  writeFileSync(cdkJson, JSON.stringify({ context: { 'agent-lb': { capabilities } } }));
  stack = await LocalStack.start({ cdkJsonPath: cdkJson, reconcileIntervalMs: 1000, dataPlane: { timeScale: TIME_SCALE } });
  endpoint = stack.state.loadBalancerEndpoint!;
});

afterEach(async () => {
  const left = servers.splice(0);
  await Promise.all(left.map((s) => stack.dynamodb.send(new DeleteItemCommand({ TableName: stack.state.tableName, Key: { target: { S: `127.0.0.1:${s.port}` } } }))));
  await Promise.all(left.map((s) => s.close()));
});

afterAll(async () => {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function healthy(capability: string, server: TargetServer): Promise<boolean> {
  const out = await stack.elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: stack.state.targetGroups[capability] }));
  return (out.TargetHealthDescriptions ?? []).some((d) => d.Target?.Port === server.port && d.TargetHealth?.State === 'healthy');
}

/** Servers of the test's own, each holding a lease for `capabilities`, healthy in each of their groups. */
async function serve(capabilities: string[], ...names: string[]): Promise<TargetServer[]> {
  const started = await Promise.all(names.map(startTargetServer));
  servers.push(...started);
  for (const s of started) {
    await stack.dynamodb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: contractItem({ address: '127.0.0.1', port: s.port, capabilities, agentId: s.name, ttlSeconds: 600 }) }));
  }
  for (const s of started) for (const c of capabilities) await waitFor(() => healthy(c, s), WAIT_MS, `${s.name} healthy in ${c}`, 50);
  return started;
}

/** The weights of vision's weighted rules in moto, stable then canary. */
async function visionWeights(): Promise<number[][]> {
  return (await readWeightedRules(stack.elbv2, { listenerArn: stack.state.listenerArn })).map((r) => r.groups.map((g) => g.weight));
}

const vision = (headers: Record<string, string> = {}) => get(endpoint, '/agents/vision/x', headers);

describe('routing policy through local mode\'s endpoint', () => {
  it('an empty canary takes no traffic; once it serves, a weighted split within 5 points of 20% over 1000 requests; the variant header pins', async () => {
    const [stable] = await serve(['vision'], 'stable');
    // No canary agent: the reconcile pass holds it at 0, so no request meets its empty group.
    await waitFor(async () => JSON.stringify(await visionWeights()) === '[[100,0],[100,0]]', WAIT_MS, 'canary held at 0');
    await waitFor(async () => (await load(40, 4, () => vision())).every((a) => a.status === 200), WAIT_MS, 'the data plane routing by the held weights');
    const held = await load(200, 4, () => vision());
    expect(tally(held.map((a) => String(a.status)))).toEqual({ 200: 200 });

    const [canary] = await serve(['vision-canary'], 'canary');
    await waitFor(async () => JSON.stringify(await visionWeights()) === '[[80,20],[80,20]]', WAIT_MS, 'canary back at 20');
    await waitFor(async () => (await vision()).name === canary.name, WAIT_MS, 'the data plane routing by the restored weights', 10);

    const answers = await load(1000, 8, () => vision());
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const share = (tally(answers.map((a) => a.name!))[canary.name] ?? 0) / answers.length;
    expect(Math.abs(share - 0.2)).toBeLessThan(0.05);

    // Pinned on purpose, by header or path, in any letter case; an unknown variant is routed by weight.
    const pinned = await load(30, 3, (i) => (i % 2 ? vision({ 'X-Agent-Variant': 'canary' }) : get(endpoint, '/hello', { 'X-Agent-Capability': 'vision', 'x-agent-variant': 'CANARY' })));
    expect(tally(pinned.map((a) => a.name!))).toEqual({ [canary.name]: 30 });
    const unknown = await load(100, 4, () => vision({ 'X-Agent-Variant': 'blue' }));
    expect(tally(unknown.map((a) => a.name!))[stable.name]).toBeGreaterThan(50);
  });

  it('lb_cookie stickiness keeps a client on the agent that first served it; clients without the cookie are spread', async () => {
    await serve(['chat'], 'a', 'b', 'c');
    const first = await get(endpoint, '/agents/chat/hello');
    const cookie = first.setCookie.map((c) => c.split(';')[0]).join('; ');
    expect(cookie).toMatch(/^AWSALB=/);
    const sticky = await load(20, 4, () => get(endpoint, '/agents/chat/hello', { Cookie: cookie }));
    expect(new Set(sticky.map((a) => a.name))).toEqual(new Set([first.name]));
    const free = await load(30, 1, () => get(endpoint, '/agents/chat/hello'));
    expect(new Set(free.map((a) => a.name)).size).toBe(3);
  });

  it('a slow agent gets fewer requests under least_outstanding_requests than under round_robin', async () => {
    // One lease serves both capabilities: the same two agents, two algorithms.
    const [, slow] = await serve(['rr', 'lor'], 'fast', 'slow');
    slow.delayMs = 400;
    const slowShare = async (capability: string) => {
      const answers = await load(60, 6, () => get(endpoint, `/agents/${capability}/work`));
      expect(answers.every((a) => a.status === 200)).toBe(true);
      return tally(answers.map((a) => a.name!)).slow ?? 0;
    };
    const roundRobin = await slowShare('rr');
    const leastOutstanding = await slowShare('lor');
    console.log(`slow agent's requests of 60: round_robin ${roundRobin}, least_outstanding_requests ${leastOutstanding}`);
    // Round robin alternates whatever the speed (30); least outstanding requests sees the slow one
    // busy. The margin is wide: even on a loaded machine the fast agent answers in far less than 400 ms.
    expect(roundRobin).toBeGreaterThanOrEqual(25);
    expect(leastOutstanding).toBeLessThan(roundRobin * 0.75);
  });
});

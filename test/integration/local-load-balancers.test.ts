/**
 * Local mode of a deployment whose capabilities need two load balancers: a cdk.json of the test's
 * own whose quota (3 target groups per load balancer: the catalog's, vision's, speech's) puts
 * search on a second load balancer, whose groups and rules the stack keeps in a nested stack.
 * Every load balancer is provisioned in moto and gets a local endpoint of its own; an agent of
 * search, registered by the one registry, is reached through the second one's port, and the
 * catalog on the first names that host and port.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeRulesCommand, DescribeTargetGroupsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CatalogDocument } from '../../lib/core/catalog-document';
import { LocalStack } from '../../lib/local/local-stack';
import { contractItem, waitFor } from '../support/local-harness';
import { get, startTargetServer, TargetServer } from './data-plane-harness';

const WAIT_MS = 30_000;
let stack: LocalStack;
let dir: string;
let agent: TargetServer;
let startupMs: number;
const steps: { step: string; at: number }[] = [];

async function catalogOn(endpoint: string): Promise<CatalogDocument> {
  const answer = await get(endpoint, '/agents');
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body) as CatalogDocument;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-two-lbs-'));
  const cdkJson = join(dir, 'cdk.json');
  const capabilities = ['vision', 'speech', 'search'].map((name) => ({ name, healthCheck: { path: '/health' } }));
  writeFileSync(cdkJson, JSON.stringify({ context: { 'agent-lb': { capabilities, loadBalancerQuotas: { targetGroupsPerLoadBalancer: 3 } } } }));
  const started = Date.now();
  stack = await LocalStack.start({ cdkJsonPath: cdkJson, reconcileIntervalMs: 1000, dataPlane: { timeScale: 0.2 }, onProgress: (step) => steps.push({ step, at: Date.now() - started }) });
  startupMs = Date.now() - started;
  agent = await startTargetServer('search-1');
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await agent?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('local mode with two load balancers', () => {
  it('counts the target quota per load balancer, as on AWS: the registry knows which load balancer each capability is on', () => {
    const [first, second] = stack.deployment.loadBalancers;
    expect(stack.runtimeConfig.loadBalancers).toEqual({ vision: first.loadBalancerArn, speech: first.loadBalancerArn, search: second.loadBalancerArn });
  });

  it('provisions both in moto: search\'s group and rules on the second, with an endpoint of its own', async () => {
    console.log(`startup with 2 load balancers: ${startupMs} ms (${steps.map((s) => `${s.step} @${s.at}`).join('; ')})`);
    const [first, second] = stack.deployment.loadBalancers;
    expect(stack.deployment.loadBalancers.map((lb) => lb.capabilities)).toEqual([['vision', 'speech'], ['search']]);
    expect(stack.state.loadBalancers?.map((lb) => lb.endpoint)).toEqual(stack.dataPlanes.map((d) => d.endpoint));
    // The first keeps the endpoint (and `--lb-port`) a one-load-balancer deployment has.
    expect(stack.state.loadBalancerEndpoint).toBe(stack.dataPlanes[0].endpoint);
    expect(new Set(stack.dataPlanes.map((d) => new URL(d.endpoint).port)).size).toBe(2);
    const groupsOn = async (arn: string) => (await stack.elbv2.send(new DescribeTargetGroupsCommand({ LoadBalancerArn: arn }))).TargetGroups?.map((g) => g.TargetGroupArn) ?? [];
    expect(await groupsOn(second.loadBalancerArn)).toContain(stack.state.targetGroups.search);
    expect(await groupsOn(first.loadBalancerArn)).not.toContain(stack.state.targetGroups.search);
    const rules = (await stack.elbv2.send(new DescribeRulesCommand({ ListenerArn: second.listenerArn }))).Rules ?? [];
    expect(rules.flatMap((r) => r.Actions?.map((a) => a.TargetGroupArn) ?? [])).toContain(stack.state.targetGroups.search);
    // One registry for all: the handlers route every capability of both.
    expect(Object.keys(stack.runtimeConfig.routing.capabilities).sort()).toEqual(['search', 'speech', 'vision']);
  });

  it("registers an agent of search into the second load balancer's group and gets a request through that load balancer's port", async () => {
    const item = contractItem({ address: '127.0.0.1', port: agent.port, capabilities: ['search'], agentId: agent.name, ttlSeconds: 300 });
    await stack.dynamodb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: item }));
    const second = stack.dataPlanes[1].endpoint;
    let last = 0;
    const waited = await waitFor(
      async () => {
        const answer = await get(second, '/hello', { 'X-Agent-Capability': 'search' });
        last = answer.status;
        return answer.status === 200 && answer.name === agent.name;
      },
      WAIT_MS,
      () => `search's agent to answer through ${second}; last status ${last}`,
      200,
    );
    console.log(`lease written → first request served through load balancer 2: ${waited} ms`);
    expect((await get(second, '/agents/search/hello')).name).toBe(agent.name);
    // The first load balancer has no rule for search: its 404, as on AWS.
    expect((await get(stack.dataPlanes[0].endpoint, '/hello', { 'X-Agent-Capability': 'search' })).status).toBe(404);
  });

  it('names search on the catalog of the first load balancer with the host and port that reach it', async () => {
    const first = stack.dataPlanes[0].endpoint;
    let doc: CatalogDocument | undefined;
    await waitFor(
      async () => {
        doc = await catalogOn(first);
        return doc.capabilities.find((c) => c.name === 'search')?.routable === true;
      },
      WAIT_MS,
      () => `search routable in the catalog; last: ${JSON.stringify(doc?.capabilities.find((c) => c.name === 'search'))}`,
      200,
    );
    const search = doc!.capabilities.find((c) => c.name === 'search')!;
    expect(search.route).toEqual({ header: 'X-Agent-Capability: search', path: '/agents/search/', host: '127.0.0.1', port: Number(new URL(stack.dataPlanes[1].endpoint).port) });
    expect(doc!.capabilities.find((c) => c.name === 'vision')?.route.port).toBe(Number(new URL(first).port));
    const answer = await get(`http://${search.route.host}:${search.route.port}`, `${search.route.path}hello`);
    expect(answer.name).toBe(agent.name);
    // The same document on the second load balancer.
    expect((await catalogOn(stack.dataPlanes[1].endpoint)).capabilities.find((c) => c.name === 'search')?.route).toEqual(search.route);
  });
});

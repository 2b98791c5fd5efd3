/**
 * `GET /agents` on local mode's load balancer, as a client sees it: a cdk.json of the test's own
 * (a capability with a canary variant, a public metadata key), HTTP servers of the test's own
 * holding leases written with the raw AWS SDK, and every assertion on what the endpoint answers
 * while agents join, fail their health checks, drain and leave — counts, variants and their
 * weights in effect, the revision, ETag/304 and the blocking query, and never an address.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CatalogCapability, CatalogDocument } from '../../lib/core/catalog-document';
import { LocalStack } from '../../lib/local/local-stack';
import { contractItem, Item, waitFor } from '../support/local-harness';
import { startTargetServer, TargetServer } from './data-plane-harness';

const WAIT_MS = 30_000;
let stack: LocalStack;
let endpoint: string;
let dir: string;
const servers: TargetServer[] = [];
/** Every body the endpoint answered, to check for addresses at the end. */
const bodies: string[] = [];

interface Answer {
  status: number;
  etag: string | null;
  doc?: CatalogDocument;
  ms: number;
}

async function catalog(query = '', headers: Record<string, string> = {}): Promise<Answer> {
  const started = Date.now();
  const res = await fetch(`${endpoint}/agents${query}`, { headers });
  const text = await res.text();
  bodies.push(text);
  return { status: res.status, etag: res.headers.get('etag'), ...(text && res.status === 200 ? { doc: JSON.parse(text) as CatalogDocument } : {}), ms: Date.now() - started };
}

const entry = (doc: CatalogDocument | undefined, name: string): CatalogCapability | undefined => doc?.capabilities.find((c) => c.name === name);

/** Polls the endpoint until `check` holds for vision's entry; returns that document. */
async function until(check: (vision: CatalogCapability) => boolean, what: string): Promise<CatalogDocument> {
  let last: CatalogDocument | undefined;
  await waitFor(async () => {
    last = (await catalog()).doc;
    const vision = entry(last, 'vision');
    return vision !== undefined && check(vision);
  }, WAIT_MS, () => `${what}; last: ${JSON.stringify(entry(last, 'vision'))}`, 200);
  return last!;
}

async function joinAgent(server: TargetServer, capabilities: string[], model: string): Promise<Item> {
  const item = { ...contractItem({ address: '127.0.0.1', port: server.port, capabilities, agentId: server.name, ttlSeconds: 300 }), metadata: { M: { model: { S: model } } } };
  await stack.dynamodb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: item }));
  return item;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agent-lb-catalog-'));
  const cdkJson = join(dir, 'cdk.json');
  const capabilities = [
    { name: 'vision', healthCheck: { path: '/health' }, variants: [{ name: 'canary', weight: 20 }] },
    { name: 'speech', healthCheck: { path: '/health' }, algorithm: 'round_robin', stickiness: { type: 'lb_cookie', durationSeconds: 600 } },
  ];
  writeFileSync(cdkJson, JSON.stringify({ context: { 'agent-lb': { capabilities, catalogAttributes: ['model'] } } }));
  stack = await LocalStack.start({ cdkJsonPath: cdkJson, reconcileIntervalMs: 1000, dataPlane: { timeScale: 0.2 } });
  endpoint = stack.state.loadBalancerEndpoint!;
  for (const name of ['stable-1', 'canary-1']) servers.push(await startTargetServer(name));
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await Promise.all(servers.map((s) => s.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('GET /agents on the local load balancer', () => {
  let first: Answer;

  it('answers from the start: every capability, none routable, the canary held at weight 0, routes and policies', async () => {
    first = await catalog();
    expect(first.status).toBe(200);
    expect(first.doc?.revision).toBeGreaterThanOrEqual(1);
    expect(first.doc?.capabilities.map((c) => c.name)).toEqual(['speech', 'vision']);
    expect(entry(first.doc, 'vision')).toEqual({
      name: 'vision',
      routable: false,
      targets: { registered: 0, healthy: 0, initial: 0, unhealthy: 0, draining: 0 },
      variants: [{ name: 'canary', weight: 20, effectiveWeight: 0, healthy: 0 }],
      // The local load balancer's host and port (local mode runs each load balancer on a port of its own).
      route: { header: 'X-Agent-Capability: vision', path: '/agents/vision/', host: '127.0.0.1', port: Number(new URL(endpoint).port) },
      policy: { algorithm: 'least_outstanding_requests', stickiness: 'off' },
      attributes: { model: [] },
    });
    expect(entry(first.doc, 'speech')?.policy).toEqual({ algorithm: 'round_robin', stickiness: 'lb_cookie' });
  });

  it('answers its own ETag with 304, and the same revision while nothing changed', async () => {
    const again = await catalog('', { 'If-None-Match': first.etag! });
    expect(again.status).toBe(304);
    expect((await catalog()).doc?.revision).toBe(first.doc?.revision);
  });

  it('names where to ask: the route built from host, port and path reaches the capability', async () => {
    const vision = entry((await catalog()).doc, 'vision')!;
    const res = await fetch(`http://${vision.route.host}:${vision.route.port}${vision.route.path}hello`);
    // No agent yet: the load balancer's own 503 for the capability's empty group, not a 404 of another.
    expect(res.status).toBe(503);
  });

  it('does not take the paths of capabilities: /agents/vision/… still reaches the agents', async () => {
    const res = await fetch(`${endpoint}/agents/vision/hello`);
    expect(res.status).toBe(503);
    const post = await fetch(`${endpoint}/agents`, { method: 'POST' });
    expect(post.status).toBe(404);
  });

  let healthyDoc: CatalogDocument;

  it('shows an agent that joins: initial, then healthy and routable, with its public metadata; the canary still held out', async () => {
    const blocking = catalog(`?revision=${first.doc!.revision}&wait=20`);
    await joinAgent(servers[0], ['vision'], 'large');
    const moved = await blocking;
    expect(moved.status).toBe(200);
    expect(moved.doc!.revision).toBeGreaterThan(first.doc!.revision);
    healthyDoc = await until((v) => v.targets.healthy === 1, 'vision healthy');
    expect(entry(healthyDoc, 'vision')).toMatchObject({ routable: true, targets: { registered: 1, healthy: 1 }, variants: [{ name: 'canary', effectiveWeight: 0 }], attributes: { model: ['large'] } });
  });

  it('answers a blocking query at the change, as soon as the agent fails its health checks', async () => {
    const current = await catalog();
    const waiting = catalog(`?revision=${current.doc!.revision}&wait=20`);
    servers[0].healthy = false;
    const answer = await waiting;
    expect(answer.doc!.revision).toBeGreaterThan(current.doc!.revision);
    const sick = await until((v) => v.targets.unhealthy === 1, 'vision unhealthy');
    expect(entry(sick, 'vision')).toMatchObject({ routable: false, targets: { registered: 1, healthy: 0, unhealthy: 1 } });
    servers[0].healthy = true;
    await until((v) => v.targets.healthy === 1, 'vision healthy again');
  });

  it('answers a blocking query with the same revision when its wait is over and nothing changed', async () => {
    const current = await catalog();
    const answer = await catalog(`?revision=${current.doc!.revision}&wait=1`);
    expect(answer.doc!.revision).toBe(current.doc!.revision);
    expect(answer.ms).toBeGreaterThanOrEqual(900);
  });

  it('lets the canary in once it has a healthy agent: its configured weight in effect', async () => {
    await joinAgent(servers[1], ['vision-canary'], 'small');
    const doc = await until((v) => v.variants[0].healthy === 1, 'the canary healthy');
    expect(entry(doc, 'vision')).toMatchObject({ variants: [{ name: 'canary', weight: 20, effectiveWeight: 20, healthy: 1 }], targets: { registered: 2, healthy: 2 }, attributes: { model: ['large', 'small'] } });
  });

  it('takes a drained agent out of its variant (with nothing in flight its deregistration completes at once, as on ALB), and a released one stays out', async () => {
    await stack.dynamodb.send(
      new UpdateItemCommand({
        TableName: stack.state.tableName,
        Key: { target: { S: `127.0.0.1:${servers[1].port}` } },
        UpdateExpression: 'SET #s = :d',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':d': { S: 'draining' } },
      }),
    );
    // Draining, then gone: the data plane completes a deregistration with no request in flight at once,
    // so the catalog may or may not catch the draining state in between; it must end with the canary out.
    const drained = await until((v) => v.targets.registered === 1 && v.targets.draining === 0, 'the canary out of rotation');
    expect(entry(drained, 'vision')).toMatchObject({ targets: { registered: 1, healthy: 1, draining: 0 }, variants: [{ effectiveWeight: 0, healthy: 0 }] });
    await stack.dynamodb.send(new DeleteItemCommand({ TableName: stack.state.tableName, Key: { target: { S: `127.0.0.1:${servers[1].port}` } } }));
    const gone = await until((v) => v.targets.draining === 0 && v.targets.registered === 1, 'the canary gone');
    expect(entry(gone, 'vision')?.attributes).toEqual({ model: ['large'] });
  });

  it('never showed an address, a port, an agent id or a token', () => {
    expect(bodies.length).toBeGreaterThan(10);
    const all = bodies.join('\n');
    for (const s of servers) {
      expect(all).not.toContain(String(s.port));
      expect(all).not.toContain(s.name);
    }
    // The one host it names is the load balancer's (locally the agents' loopback address too).
    expect(all.replaceAll('"host":"127.0.0.1"', '')).not.toContain('127.0.0.1');
    expect(all).not.toContain('token-');
  });
});

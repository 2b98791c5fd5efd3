/**
 * The local data plane end to end, as a client outside the project uses it: HTTP servers of the
 * test's own hold leases written with the raw AWS SDK in the contract's format; the real sync
 * handler registers them in moto; the data plane reads moto's ELBv2 state, runs each target
 * group's health checks (the example's: `/health` every 10 s, thresholds 2/2, deregistration
 * delay 310 s — its 5-minute maxRequestDuration + 10 s — here × 0.2) and reports the states back into moto. Every assertion is what a
 * client sees: who answered a request sent to `loadBalancerEndpoint`, and what
 * DescribeTargetHealth says.
 */
import { DeleteItemCommand, DynamoDBClient, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client, TargetHealthDescription } from '@aws-sdk/client-elastic-load-balancing-v2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TargetHealthChange } from '../../lib/local/data-plane';
import { LocalStack } from '../../lib/local/local-stack';
import { contractItem, waitFor } from '../support/local-harness';
import { get, load, startTargetServer, tally, TargetServer } from './data-plane-harness';

const TIME_SCALE = 0.2;
/** The example's vision group, scaled: checks every 2 s, unhealthy after 2 failures, 62 s deregistration delay. */
const INTERVAL_MS = 10_000 * TIME_SCALE;
const DEREGISTRATION_DELAY_MS = 310_000 * TIME_SCALE;
/** Generous bounds for waits on a loaded 2-core machine; what they wait for is an event, not a duration. */
const WAIT_MS = 30_000;

let stack: LocalStack;
let endpoint: string;
let ddb: DynamoDBClient;
let elbv2: ElasticLoadBalancingV2Client;
const changes: TargetHealthChange[] = [];
const servers: TargetServer[] = [];

beforeAll(async () => {
  stack = await LocalStack.start({ reconcileIntervalMs: 1000, dataPlane: { timeScale: TIME_SCALE, onTargetHealth: (c) => changes.push(c) } });
  endpoint = stack.state.loadBalancerEndpoint!;
  // The outside client: its own credentials and clients, nothing of ours but the state's endpoints.
  const credentials = { accessKeyId: 'outsideclient', secretAccessKey: 'outside' };
  ddb = new DynamoDBClient({ region: stack.state.region, endpoint: stack.state.dynamodbEndpoint, credentials });
  elbv2 = new ElasticLoadBalancingV2Client({ region: stack.state.region, endpoint: stack.state.elbv2Endpoint, credentials });
});

afterEach(async () => {
  // Each test leaves the groups empty: leases deleted, targets drained and gone.
  const left = servers.splice(0);
  await Promise.all(left.map((s) => ddb.send(new DeleteItemCommand({ TableName: stack.state.tableName, Key: { target: { S: `127.0.0.1:${s.port}` } } }))));
  await waitFor(async () => (await Promise.all(Object.values(stack.state.targetGroups).map((arn) => describeHealth(arn)))).every((d) => d.length === 0), WAIT_MS, 'every group empty', 100);
  await Promise.all(left.map((s) => s.close()));
});

afterAll(async () => {
  ddb?.destroy();
  elbv2?.destroy();
  await stack?.stop();
});

async function describeHealth(arn: string): Promise<TargetHealthDescription[]> {
  return (await elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn }))).TargetHealthDescriptions ?? [];
}

/** DescribeTargetHealth's state of a server's target in a capability's group ('absent' when not listed). */
async function stateIn(capability: string, server: TargetServer): Promise<string> {
  const d = (await describeHealth(stack.state.targetGroups[capability])).find((x) => x.Target?.Port === server.port);
  return d?.TargetHealth?.State ?? 'absent';
}

const reaches = (capability: string, server: TargetServer, state: string) => waitFor(async () => (await stateIn(capability, server)) === state, WAIT_MS, `${server.name} ${state} in ${capability}`, 50);

/** Servers of the test's own, each holding a lease for `capabilities` written with PutItem. */
async function join(capabilities: string[], ...names: string[]): Promise<TargetServer[]> {
  const started = await Promise.all(names.map(startTargetServer));
  servers.push(...started);
  for (const s of started) {
    await ddb.send(new PutItemCommand({ TableName: stack.state.tableName, Item: contractItem({ address: '127.0.0.1', port: s.port, capabilities, agentId: s.name, ttlSeconds: 600 }) }));
  }
  for (const s of started) for (const c of capabilities) await reaches(c, s, 'healthy');
  return started;
}

/**
 * Who answered, sorted. The example's groups use least_outstanding_requests, whose ties (one
 * request at a time) are broken at random: over 40 requests each of two servers answers some
 * (a miss has probability 2^-39), in no fixed split.
 */
const servedBy = (answers: readonly { name?: string }[]) => Object.keys(tally(answers.map((a) => a.name))).sort();

const byHeader = (value: string, path = '/hello') => get(endpoint, path, { 'X-Agent-Capability': value });
const byPath = (capability: string) => get(endpoint, `/agents/${capability}/hello`);

describe('local data plane over moto (LocalStack with dataPlane)', () => {
  it('writes loadBalancerEndpoint into the state and reads new targets initial, then healthy after one check', async () => {
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const from = changes.length;
    const [a] = await join(['vision'], 'a');
    const mine = changes.slice(from).filter((c) => c.target.Port === a.port);
    expect(mine.map((c) => c.health.State).slice(0, 2)).toEqual(['initial', 'healthy']);
    expect(a.healthChecks.filter((c) => c.at <= mine[1].at)).toHaveLength(1);
  });

  it('routes by header in any letter case and by path to the capability’s own servers; an unknown one gets the 404 JSON', async () => {
    const [v1, v2] = await join(['vision'], 'v1', 'v2');
    const [s1] = await join(['speech'], 's1');
    const [k1] = await join(['search'], 'k1');
    const header = await load(40, 2, (i) => byHeader(['vision', 'VISION', 'Vision', 'vIsIoN'][i % 4]));
    expect(header.every((a) => a.status === 200)).toBe(true);
    expect(servedBy(header)).toEqual(['v1', 'v2']);
    // Header names too are case-insensitive.
    expect((await get(endpoint, '/x', { 'x-agent-capability': 'search' })).name).toBe(k1.name);
    expect((await get(endpoint, '/x', { 'X-AGENT-CAPABILITY': 'Search' })).name).toBe(k1.name);
    expect((await byPath('speech')).name).toBe(s1.name);
    expect((await get(endpoint, '/agents/speech')).name).toBe(s1.name);
    expect((await byPath('search')).name).toBe(k1.name);
    // The header rule has the lower priority number: it wins over the path.
    expect((await byHeader('search', '/agents/speech/hello')).name).toBe(k1.name);
    expect(s1.requests.map((r) => r.url)).toEqual(['/agents/speech/hello', '/agents/speech']);
    expect(v1.requests[0].headers['x-forwarded-for']).toBe('127.0.0.1');

    for (const unknown of [() => byHeader('ocr'), () => byPath('ocr'), () => get(endpoint, '/')]) {
      const answer = await unknown();
      expect(answer.status).toBe(404);
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(answer.body)).toEqual({ error: 'unknown capability', capabilities: ['search', 'speech', 'vision'], header: 'X-Agent-Capability', path: '/agents/<capability>/' });
    }
    expect(v2.requests.every((r) => !r.url.includes('ocr'))).toBe(true);
  });

  it('takes a server failing its checks out after the unhealthy threshold, lease still live, and back after it recovers', async () => {
    const [sick] = await join(['search'], 'sick', 'well');
    expect(servedBy(await load(40, 1, () => byPath('search')))).toEqual(['sick', 'well']);

    sick.healthy = false;
    const failedFrom = Date.now();
    await reaches('search', sick, 'unhealthy');
    const d = (await describeHealth(stack.state.targetGroups.search)).find((x) => x.Target?.Port === sick.port)!;
    expect(d.TargetHealth).toMatchObject({ State: 'unhealthy', Reason: 'Target.ResponseCodeMismatch' });
    const down = changes.find((c) => c.target.Port === sick.port && c.health.State === 'unhealthy')!;
    // Within interval × threshold: exactly the threshold's 2 failed checks came first, one interval apart.
    const failed = sick.healthChecks.filter((c) => !c.passed && c.at <= down.at);
    expect(failed).toHaveLength(2);
    console.log(`health path 500 → unhealthy in ${down.at - failedFrom} ms (interval ${INTERVAL_MS} ms × threshold 2)`);
    expect(tally((await load(10, 2, () => byHeader('search'))).map((a) => a.name))).toEqual({ well: 10 });
    // Out of rotation by health alone: the lease is live, the target registered.
    expect(await stateIn('search', sick)).toBe('unhealthy');

    sick.healthy = true;
    await reaches('search', sick, 'healthy');
    expect(servedBy(await load(40, 1, () => byPath('search')))).toEqual(['sick', 'well']);
  });

  it('fails open when every server of a group fails its checks, and answers 503 when the group has no target', async () => {
    const [a, b] = await join(['vision'], 'a', 'b');
    a.healthy = false;
    b.healthy = false;
    await Promise.all([reaches('vision', a, 'unhealthy'), reaches('vision', b, 'unhealthy')]);
    const answers = await load(40, 1, () => byHeader('vision'));
    expect(answers.map((x) => x.status)).toEqual(Array(40).fill(200));
    expect(servedBy(answers)).toEqual(['a', 'b']);

    // speech has no target at all.
    const none = await byHeader('speech');
    expect(none.status).toBe(503);
  });

  it('a lease set to draining: no new requests at once, the one in flight completes, draining in DescribeTargetHealth, then gone', async () => {
    const [leaving] = await join(['search'], 'leaving', 'staying');
    leaving.hold = true;
    const inFlight: Promise<{ name?: string; status: number }>[] = [];
    while (leaving.held === 0) {
      const answer = byHeader('search');
      inFlight.push(answer);
      await Promise.race([answer, leaving.whenHeld(1)]);
    }
    const held = inFlight[inFlight.length - 1];

    await ddb.send(
      new UpdateItemCommand({
        TableName: stack.state.tableName,
        Key: { target: { S: `127.0.0.1:${leaving.port}` } },
        UpdateExpression: 'SET #s = :draining',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':draining': { S: 'draining' } },
      }),
    );
    await reaches('search', leaving, 'draining');
    const drainingAt = Date.now();
    const d = (await describeHealth(stack.state.targetGroups.search)).find((x) => x.Target?.Port === leaving.port)!;
    expect(d.TargetHealth).toMatchObject({ State: 'draining', Reason: 'Target.DeregistrationInProgress' });
    // The data plane reads moto after each sync batch; wait for it to have seen the draining.
    await waitFor(() => changes.some((c) => c.target.Port === leaving.port && c.health.State === 'draining'), WAIT_MS, 'the data plane to see draining', 20);
    const before = leaving.requests.length;
    expect(tally((await load(10, 2, () => byHeader('search'))).map((a) => a.name))).toEqual({ staying: 10 });
    expect(leaving.requests.length).toBe(before);

    leaving.release();
    expect(await held).toMatchObject({ status: 200, name: 'leaving' });
    // Its last request ended: the data plane completes the deregistration at once, as ALB does,
    // and moto (so DescribeTargetHealth) shows it gone long before the 62 s delay.
    await reaches('search', leaving, 'absent');
    const goneAfter = Date.now() - drainingAt;
    console.log(`draining → gone from DescribeTargetHealth in ${goneAfter} ms (deregistration delay ${DEREGISTRATION_DELAY_MS} ms)`);
    expect(goneAfter).toBeLessThan(DEREGISTRATION_DELAY_MS);
  });
});

/**
 * The agent side of the lifecycle against AWS's DynamoDB Local: the test plays the registry with
 * the registry's own rotation write (`LeaseStore.writeRotation`: UpdateItem of
 * `rotation.<capability>` only, conditional on the lease token and an older entry), and the
 * SDK's serving() and leave() react. Also proves that renewals and rotation writes never clobber
 * each other.
 */
import { CreateTableCommand, DeleteItemCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseStore } from '../../lib/aws/lease-store';
import { decodeRotation } from '../../lib/core/lease-codec';
import { DynamoDbLocal, startDynamoDbLocal } from '../../lib/local/emulators';
import { AgentLease, AgentLeaseOptions, InFlightCounter, LeaveStepReport, NotServingError, RotationState } from '../../lib/sdk';
import type { Item } from '../support/local-harness';

const TABLE = 'leases';
let ddbLocal: DynamoDbLocal;
let client: DynamoDBClient;
/** GetItem calls the SDK's client made, counted by a middleware. */
let reads = 0;
const leases: AgentLease[] = [];
let nextPort = 9000;

function newLease(patch: Partial<AgentLeaseOptions> = {}): AgentLease {
  const lease = new AgentLease({
    tableName: TABLE,
    address: '10.0.5.1',
    port: nextPort++,
    capabilities: ['speech', 'vision'],
    agentId: 'integration',
    ttl: 30,
    client,
    rotationPollIntervalMs: 100,
    ...patch,
  });
  leases.push(lease);
  return lease;
}

async function item(target: string): Promise<Item | undefined> {
  return (await client.send(new GetItemCommand({ TableName: TABLE, Key: { target: { S: target } }, ConsistentRead: true }))).Item;
}

/** The registry's write for the lease's current holder. */
const registry = (lease: AgentLease, capability: string, state: RotationState, since = Date.now()) =>
  new LeaseStore(client, TABLE).writeRotation(lease.target, lease.leaseToken!, capability, { state, since });

/** Resolves with the first event of that name the lease emits. */
const next = (lease: AgentLease, event: 'renewed' | 'statusChanged') => new Promise<void>((r) => lease.once(event as 'renewed', () => r()));

beforeAll(async () => {
  ddbLocal = await startDynamoDbLocal();
  client = new DynamoDBClient({ ...ddbLocal.clientConfig, maxAttempts: 2 });
  client.middlewareStack.add(
    (nextHandler, context) => async (args) => {
      if (context.commandName === 'GetItemCommand') reads++;
      return nextHandler(args);
    },
    { step: 'initialize', name: 'countReads' },
  );
  await client.send(
    new CreateTableCommand({
      TableName: TABLE,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'target', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'target', KeyType: 'HASH' }],
    }),
  );
});

afterAll(async () => {
  await Promise.allSettled(leases.map((l) => l.release()));
  client?.destroy();
  await ddbLocal?.stop();
});

describe('rotation written by the registry, read by the SDK', () => {
  it('a renewal never clobbers rotation, and a rotation write never clobbers a renewal', async () => {
    // Prepare
    const lease = newLease({ ttl: 3 });
    await lease.acquire();
    const store = new LeaseStore(client, TABLE);
    const token = lease.leaseToken!;
    // The test renews itself: the lease's own heartbeat (every second) would land after them on a loaded machine.
    lease.abandon();
    const expiries = Array.from({ length: 10 }, (_, i) => Math.floor(Date.now() / 1000) + 100 + i);

    // Act: ten registry writes (the first ones racing to create the map) and ten renewals, all at once
    const results = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => store.writeRotation(lease.target, token, `c${i}`, { state: 'initial', since: Date.now() })),
      ...expiries.map((exp) => store.renew(lease.target, token, exp, exp * 1000)),
    ]);
    const after = (await item(lease.target))!;

    // Assess
    expect(results.slice(0, 10)).toEqual(Array(10).fill('written'));
    expect(Object.keys(decodeRotation(after.rotation).rotation!).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`).sort());
    expect(expiries).toContain(Number(after.expiresAt.N));
    expect(Number(after.renewedAt.N)).toBe(Number(after.expiresAt.N) * 1000);
    expect(after.leaseToken.S).toBe(token);
  });

  it('heartbeats bring rotation with no read; serving() resolves once healthy in every group', async () => {
    // Prepare
    const lease = newLease({ ttl: 3 });
    await lease.acquire();
    const readsBefore = reads;
    await registry(lease, 'vision', 'initial');
    await next(lease, 'renewed');
    const seenByHeartbeat = lease.rotation;
    const readsByHeartbeat = reads - readsBefore;

    // Act
    const serving = lease.serving({ timeoutMs: 20_000 });
    await registry(lease, 'vision', 'healthy');
    await registry(lease, 'speech', 'healthy');
    const groups = await serving;

    // Assess
    expect(readsByHeartbeat).toBe(0);
    expect(seenByHeartbeat).toEqual({ vision: { state: 'initial', since: expect.any(Number) } });
    expect(groups.map((g) => `${g.capability} ${g.state}`)).toEqual(['speech healthy', 'vision healthy']);
    expect(lease.isServing).toBe(true);
  });

  it('serving() names the groups that are not healthy when it times out', async () => {
    const lease = newLease();
    await lease.acquire();
    await registry(lease, 'vision', 'unhealthy');
    const error = (await lease.serving({ timeoutMs: 500 }).catch((e: unknown) => e)) as NotServingError;
    expect(error).toBeInstanceOf(NotServingError);
    expect(error.message).toMatch(/is not serving: not healthy in every group after 0\.\d s; not healthy: speech unreported, vision unhealthy for \d\.\d s$/);
  });

  it("a rotation write for a released lease is a no-op and does not bring the item back", async () => {
    const lease = newLease();
    await lease.acquire();
    const token = lease.leaseToken!;
    await lease.release();
    expect(await new LeaseStore(client, TABLE).writeRotation(lease.target, token, 'vision', { state: 'draining', since: Date.now() })).toBe('gone');
    expect(await item(lease.target)).toBeUndefined();
  });

  it('a rotation write planned for an earlier holder lands nowhere; an older entry never replaces a newer one', async () => {
    const lease = newLease();
    await lease.acquire();
    const store = new LeaseStore(client, TABLE);
    const first = lease.leaseToken!;
    await lease.release();
    await lease.acquire(); // a new token, rotation dropped by the PutItem
    expect(await store.writeRotation(lease.target, first, 'vision', { state: 'healthy', since: Date.now() })).toBe('gone');
    const now = Date.now();
    expect(await registry(lease, 'vision', 'draining', now)).toBe('written');
    expect(await registry(lease, 'vision', 'healthy', now - 1)).toBe('superseded');
    expect(decodeRotation((await item(lease.target))!.rotation).rotation).toEqual({ vision: { state: 'draining', since: now } });
  });
});

describe('leave() against the table', () => {
  it('drains, waits for the registry to report it out everywhere, lets in-flight work finish, then releases', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    await registry(lease, 'vision', 'healthy');
    await registry(lease, 'speech', 'healthy');
    const inFlight = new InFlightCounter();
    const endRequest = inFlight.begin();
    const steps: LeaveStepReport[] = [];
    let itemWhenInFlightStepBegan: Item | undefined;
    lease.on('leaveStep', (s) => {
      steps.push(s);
      if (s.step === 'propagation') {
        // The in-flight step begins now: the request finishes a moment later, while the lease is still there.
        void item(lease.target).then((i) => {
          itemWhenInFlightStepBegan = i;
          endRequest();
        });
      }
    });

    // Act: the registry reacts to the drain as stream sync would: deregistered → draining, later gone
    const drained = next(lease, 'statusChanged');
    const leaving = lease.leave({ propagationMarginMs: 300, inFlight });
    await drained;
    const statusSeenByRegistry = (await item(lease.target))!.status.S;
    await registry(lease, 'vision', 'draining');
    await registry(lease, 'speech', 'absent');
    const report = await leaving;

    // Assess
    expect(statusSeenByRegistry).toBe('draining');
    expect(report.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:done', 'release:done']);
    expect(steps.find((s) => s.step === 'rotation')!.detail).toMatch(/^speech absent for \d\.\d s, vision draining for \d\.\d s$/);
    expect(itemWhenInFlightStepBegan?.status.S).toBe('draining');
    expect(report.released).toBe(true);
    expect(await item(lease.target)).toBeUndefined();
  });

  it('a lease taken over mid-leave stops the wait and the new holder keeps its lease', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    await registry(lease, 'vision', 'healthy');
    const drained = next(lease, 'statusChanged');
    const leaving = lease.leave({ propagationMarginMs: 0, deadlineMs: 20_000 });
    await drained;

    // Act: a restarted agent on the same address:port takes the key over
    const taken = { ...(await item(lease.target))!, leaseToken: { S: 'new-holder' }, status: { S: 'active' } };
    delete (taken as Partial<Item>).rotation;
    await client.send(new PutItemCommand({ TableName: TABLE, Item: taken }));
    const report = await leaving;

    // Assess
    expect(report.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['drain:done', 'rotation:lost', 'propagation:done', 'inFlight:skipped', 'release:lost']);
    expect((await item(lease.target))?.leaseToken.S).toBe('new-holder');
    await client.send(new DeleteItemCommand({ TableName: TABLE, Key: { target: { S: lease.target } } }));
  });
});

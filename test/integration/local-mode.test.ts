/**
 * The lease contract end to end on real servers: agents write leases in DynamoDB Local (through
 * our SDK or the raw AWS SDK), the local poller feeds the real stream-sync handler, the real
 * reconcile handler runs on a short timer, and every assertion reads the target groups the way
 * any client would: DescribeTargetHealth against moto.
 *
 * One LocalStack for the file; each test uses its own addresses so tests never see each
 * other's targets, and each leaves its groups as it found them.
 */
import { once } from 'node:events';
import {
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { DeregisterTargetsCommand, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaseHeldError } from '../../lib/core/errors';
import { LocalStack } from '../../lib/local/local-stack';
import { ReconcileReport } from '../../lib/registry/reconcile';
import { AgentLease } from '../../lib/sdk/agent-lease';
import type { AgentLeaseOptions } from '../../lib/sdk/agent-lease-options';
import { contractItem, groupsHolding, groupTargets, Item, targetKeys, waitFor } from '../support/local-harness';

const TTL_SECONDS = 3;
const RECONCILE_MS = 1000;
/** Room for a poll, a stream read and an ELB call on a loaded 2-core machine. */
const SLACK_MS = 3000;

let stack: LocalStack;
const reconciles: ReconcileReport[] = [];
const errors: string[] = [];
const leases: AgentLease[] = [];

function agent(address: string, port: number, capabilities: string[] = ['vision'], extra: Partial<AgentLeaseOptions> = {}): AgentLease {
  const lease = new AgentLease({
    tableName: stack.state.tableName,
    address,
    port,
    capabilities,
    agentId: `test-${address}:${port}`,
    ttl: TTL_SECONDS,
    client: stack.dynamodb,
    keepProcessAlive: false,
    ...extra,
  });
  leases.push(lease);
  return lease;
}

const arn = (capability: string): string => stack.state.targetGroups[capability];
const registered = async (capability: string, key: string): Promise<boolean> => (await targetKeys(stack.elbv2, arn(capability))).includes(key);
const inNoGroup = async (key: string): Promise<boolean> => (await groupsHolding(stack.elbv2, stack.state.targetGroups, key)).length === 0;

async function getItem(key: string): Promise<Item | undefined> {
  const out = await stack.dynamodb.send(new GetItemCommand({ TableName: stack.state.tableName, Key: { target: { S: key } }, ConsistentRead: true }));
  return out.Item;
}

/** Waits for `n` reconcile passes of the timer that start after this call. */
async function reconcilePasses(n: number): Promise<void> {
  const target = reconciles.length + n;
  await waitFor(() => reconciles.length >= target, n * RECONCILE_MS + SLACK_MS * 2, `${n} reconcile passes`);
}

beforeAll(async () => {
  stack = await LocalStack.start({
    reconcileIntervalMs: RECONCILE_MS,
    onReconcile: (report) => reconciles.push(report),
    onError: (where, error) => errors.push(`${where}: ${(error as Error).message}`),
  });
  // The agents' addresses below are admitted as on AWS: an interface in the agents' security group holds each.
  const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}.${i + 1}`);
  await stack.addAgentInterfaces([...range('10.0.101', 12), ...range('10.0.104', 3), ...range('10.0.71', 2)]);
});

afterAll(async () => {
  await Promise.allSettled(leases.map((l) => (l.phase === 'held' || l.phase === 'reacquiring' ? l.release() : undefined)));
  await stack?.stop();
});

describe('local mode against DynamoDB Local and moto', () => {
  it('SDK acquire: the target appears in its target group within 3 s, and only there', async () => {
    const lease = agent('10.0.101.1', 8080);
    const started = Date.now();
    await lease.acquire();
    const waited = await waitFor(() => registered('vision', '10.0.101.1:8080'), 3000, 'registration in vision', 50);
    console.log(`acquire → registered in ${Date.now() - started} ms (waited ${waited} ms after acquire resolved)`);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await groupsHolding(stack.elbv2, stack.state.targetGroups, '10.0.101.1:8080')).toEqual(['vision']);

    await lease.release();
    await waitFor(() => inNoGroup('10.0.101.1:8080'), SLACK_MS, 'deregistration after release');
  });

  it('heartbeats change nothing: several renewals, no ELB call, the target stays', async () => {
    const lease = agent('10.0.101.2', 8080);
    await lease.acquire();
    await waitFor(() => registered('vision', '10.0.101.2:8080'), SLACK_MS, 'registration');
    await stack.drain();
    const before = stack.counters;
    const firstExpiry = lease.expiresAt!;

    let renewals = 0;
    lease.on('renewed', () => renewals++);
    await waitFor(() => renewals >= 3, TTL_SECONDS * 1000 + SLACK_MS, '3 renewals');
    await stack.drain(); // every heartbeat record has been through the sync handler
    await stack.reconcileNow(); // and reconcile saw nothing to repair

    const after = stack.counters;
    expect(after.recordsSynced).toBeGreaterThanOrEqual(before.recordsSynced + 3);
    expect(after.elbMutatingCalls).toBe(before.elbMutatingCalls);
    expect(Number((await getItem('10.0.101.2:8080'))?.expiresAt?.N)).toBeGreaterThan(firstExpiry);
    expect(await targetKeys(stack.elbv2, arn('vision'))).toContain('10.0.101.2:8080');

    await lease.release();
    await waitFor(() => inNoGroup('10.0.101.2:8080'), SLACK_MS, 'deregistration after release');
  });

  it('release: the lease is deleted and the target deregistered', async () => {
    const lease = agent('10.0.101.3', 8080);
    await lease.acquire();
    await waitFor(() => registered('vision', '10.0.101.3:8080'), SLACK_MS, 'registration');

    const started = Date.now();
    expect(await lease.release()).toBe(true);
    await waitFor(() => inNoGroup('10.0.101.3:8080'), SLACK_MS, 'deregistration after release', 50);
    console.log(`release → deregistered in ${Date.now() - started} ms`);
    expect(await getItem('10.0.101.3:8080')).toBeUndefined();
  });

  it('a crashed agent (stops renewing): reconcile deletes its expired lease and deregisters it within ttl + interval + slack', async () => {
    // DynamoDB Local's TTL sweeper also deletes expired items, every ~10 s and up to a second
    // before reconcile may (reconcile waits for expiresAt < now in whole seconds). When the
    // sweeper wins that race, the crash is run again on another address: reconcile must be the
    // one that removed at least one of them, and every crash must be cleared within budget.
    const budget = TTL_SECONDS * 1000 + RECONCILE_MS + SLACK_MS;
    let byReconcile = false;
    for (let attempt = 1; attempt <= 3 && !byReconcile; attempt++) {
      const key = `10.0.104.${attempt}:8080`;
      const lease = agent(`10.0.104.${attempt}`, 8080);
      await lease.acquire();
      await waitFor(() => registered('vision', key), SLACK_MS, 'registration');
      const deletedBefore = reconciles.reduce((n, r) => n + r.expiredLeasesDeleted, 0);

      const crashed = Date.now();
      lease.abandon();
      // Still routable while the lease is live: nothing removes a target early.
      expect(await registered('vision', key)).toBe(true);
      // A renewal in flight at the crash may still land: the lease lives at most one ttl from now.
      await waitFor(async () => (await getItem(key)) === undefined && (await inNoGroup(key)), budget, 'lease deleted and target deregistered');
      const elapsed = Date.now() - crashed;
      byReconcile = reconciles.reduce((n, r) => n + r.expiredLeasesDeleted, 0) - deletedBefore === 1;
      console.log(`crash ${attempt} → lease deleted (by ${byReconcile ? 'reconcile' : "DynamoDB Local's TTL sweeper"}) and deregistered in ${elapsed} ms (budget ${budget} ms)`);
      expect(elapsed).toBeLessThanOrEqual(budget);
    }
    expect(byReconcile).toBe(true);
  });

  it('drain: the target leaves its group while the lease stays (status draining, still renewed)', async () => {
    const lease = agent('10.0.101.5', 8080);
    await lease.acquire();
    await waitFor(() => registered('vision', '10.0.101.5:8080'), SLACK_MS, 'registration');

    await lease.drain();
    await waitFor(() => inNoGroup('10.0.101.5:8080'), SLACK_MS, 'deregistration after drain', 50);
    const drainedExpiry = Number((await getItem('10.0.101.5:8080'))?.expiresAt?.N);

    // Reconcile passes and renewals later, it is still out of rotation and still held.
    await reconcilePasses(2);
    await waitFor(async () => Number((await getItem('10.0.101.5:8080'))?.expiresAt?.N) > drainedExpiry, TTL_SECONDS * 1000 + SLACK_MS, 'a renewal while draining');
    const item = await getItem('10.0.101.5:8080');
    expect(item?.status).toEqual({ S: 'draining' });
    expect(item?.leaseToken).toEqual({ S: lease.leaseToken });
    expect(lease.held).toBe(true);
    expect(await inNoGroup('10.0.101.5:8080')).toBe(true);

    await lease.release();
    expect(await getItem('10.0.101.5:8080')).toBeUndefined();
  });

  it('a lease with several capabilities lands in each of their groups, and leaves them all on release', async () => {
    const lease = agent('10.0.101.6', 8080, ['vision', 'speech', 'search']);
    await lease.acquire();
    await waitFor(
      async () => (await groupsHolding(stack.elbv2, stack.state.targetGroups, '10.0.101.6:8080')).length === 3,
      SLACK_MS,
      'registration in all three groups',
    );
    expect(await groupsHolding(stack.elbv2, stack.state.targetGroups, '10.0.101.6:8080')).toEqual(['search', 'speech', 'vision']);

    const partial = agent('10.0.101.7', 8080, ['speech']);
    await partial.acquire();
    await waitFor(() => registered('speech', '10.0.101.7:8080'), SLACK_MS, 'registration of a one-capability lease');
    expect(await groupsHolding(stack.elbv2, stack.state.targetGroups, '10.0.101.7:8080')).toEqual(['speech']);

    await Promise.all([lease.release(), partial.release()]);
    await waitFor(async () => (await inNoGroup('10.0.101.6:8080')) && (await inNoGroup('10.0.101.7:8080')), SLACK_MS, 'deregistration everywhere');
  });

  it('invalid leases written with the raw AWS SDK are never registered; valid ones written just after them are', async () => {
    const table = stack.state.tableName;
    // Another client: not our SDK, not our codec, its own credentials (DynamoDB Local wants
    // access key ids of letters and digits only).
    const raw = new DynamoDBClient({
      region: stack.state.region,
      endpoint: stack.state.dynamodbEndpoint,
      credentials: { accessKeyId: 'rawwriter', secretAccessKey: 'raw' },
    });
    const base = (address: string, port = 8080) => contractItem({ address, port, capabilities: ['vision', 'speech'] });
    const invalid: Record<string, Item> = {
      publicIp: base('8.8.8.8'),
      portZero: base('10.0.70.2', 0),
      portAsString: { ...base('10.0.70.3'), port: { S: '8080' } },
      expiresAtAsString: { ...base('10.0.70.4'), expiresAt: { S: String(Math.floor(Date.now() / 1000) + 60) } },
      unknownCapabilityOnly: { ...base('10.0.70.5'), capabilities: { SS: ['translation'] } },
      capabilitiesAsString: { ...base('10.0.70.6'), capabilities: { S: 'vision' } },
    };
    const invalidAddresses = new Set(Object.values(invalid).map((i) => i.address.S!));
    const valid = [
      contractItem({ address: '10.0.71.1', port: 8080, capabilities: ['vision'] }),
      contractItem({ address: '10.0.71.2', port: 8080, capabilities: ['speech', 'search'] }),
    ];
    const written = [...Object.values(invalid), ...valid];
    try {
      for (const item of written) await raw.send(new PutItemCommand({ TableName: table, Item: item }));

      const seen = new Set<string>();
      const look = async () => {
        const all = await groupTargets(stack.elbv2, stack.state.targetGroups);
        for (const keys of Object.values(all)) for (const k of keys) seen.add(k);
        return all;
      };
      await waitFor(
        async () => {
          const all = await look();
          return all.vision.includes('10.0.71.1:8080') && all.speech.includes('10.0.71.2:8080') && all.search.includes('10.0.71.2:8080');
        },
        SLACK_MS,
        'the valid raw leases to be registered',
        50,
      );
      // After the stream has been fully processed and reconcile has had two looks at the table.
      await stack.drain();
      await reconcilePasses(2);
      const after = await look();
      const stray = [...seen].filter((k) => invalidAddresses.has(k.slice(0, k.lastIndexOf(':'))));
      expect(stray).toEqual([]);
      expect(after.vision).toContain('10.0.71.1:8080');
      expect(after.speech).toContain('10.0.71.2:8080');

      // Reconcile names every invalid lease (it logs and counts them) rather than ignoring them
      // silently; an item with no numeric expiresAt, which no TTL would ever remove, it deletes.
      const rejected = new Set(reconciles.flatMap((r) => r.rejections.map((x) => x.target)));
      for (const item of Object.values(invalid)) expect(rejected).toContain(item.target.S);
      expect((await raw.send(new GetItemCommand({ TableName: table, Key: { target: invalid.expiresAtAsString.target }, ConsistentRead: true }))).Item).toBeUndefined();
    } finally {
      for (const item of written) await raw.send(new DeleteItemCommand({ TableName: table, Key: { target: item.target } }));
      raw.destroy();
    }
    await waitFor(async () => (await inNoGroup('10.0.71.1:8080')) && (await inNoGroup('10.0.71.2:8080')), SLACK_MS, 'the valid leases to leave');
  });

  it('reconcile repairs a target added by hand and a live target removed by hand', async () => {
    const lease = agent('10.0.101.8', 8080);
    await lease.acquire();
    await waitFor(() => registered('vision', '10.0.101.8:8080'), SLACK_MS, 'registration');

    await stack.elbv2.send(new RegisterTargetsCommand({ TargetGroupArn: arn('vision'), Targets: [{ Id: '10.8.8.8', Port: 9000 }] }));
    await stack.elbv2.send(new DeregisterTargetsCommand({ TargetGroupArn: arn('vision'), Targets: [{ Id: '10.0.101.8', Port: 8080 }] }));
    const tampered = Date.now();
    const now = await targetKeys(stack.elbv2, arn('vision'));
    expect(now).toContain('10.8.8.8:9000');
    expect(now).not.toContain('10.0.101.8:8080');

    const passesBefore = reconciles.length;
    await waitFor(
      async () => {
        const keys = await targetKeys(stack.elbv2, arn('vision'));
        return keys.includes('10.0.101.8:8080') && !keys.includes('10.8.8.8:9000');
      },
      RECONCILE_MS + SLACK_MS,
      'reconcile to repair both',
    );
    console.log(`hand edits repaired in ${Date.now() - tampered} ms`);
    // The pass that made the repair reports when it ends, which is after its calls land.
    const sum = (key: 'driftRegistered' | 'driftDeregistered') => reconciles.slice(passesBefore).reduce((n, r) => n + r[key], 0);
    await waitFor(() => sum('driftRegistered') >= 1 && sum('driftDeregistered') >= 1, RECONCILE_MS + SLACK_MS, 'the repairing pass to report');
    const repairs = reconciles.slice(passesBefore);
    expect(repairs.reduce((n, r) => n + r.driftRegistered, 0)).toBe(1);
    expect(repairs.reduce((n, r) => n + r.driftDeregistered, 0)).toBe(1);

    await lease.release();
    await waitFor(() => inNoGroup('10.0.101.8:8080'), SLACK_MS, 'deregistration after release');
  });

  it('takeover of an address:port: the newcomer wins, the first holder gets lost, the target stays until the newcomer releases', async () => {
    const first = agent('10.0.101.9', 8080, ['vision'], { agentId: 'first' });
    await first.acquire();
    await waitFor(() => registered('vision', '10.0.101.9:8080'), SLACK_MS, 'registration');
    await stack.drain();

    // Without takeover the address:port is refused while the first lease lives.
    await expect(agent('10.0.101.9', 8080, ['vision'], { agentId: 'polite' }).acquire()).rejects.toBeInstanceOf(LeaseHeldError);

    const callsBefore = stack.counters.elbMutatingCalls;
    const lost = once(first, 'lost');
    const second = agent('10.0.101.9', 8080, ['vision'], { agentId: 'second', takeover: true });
    await second.acquire();
    expect((await getItem('10.0.101.9:8080'))?.agentId).toEqual({ S: 'second' });

    // The first holder notices at its next renewal; the target never leaves meanwhile.
    let alwaysRegistered = true;
    let settled = false;
    void lost.then(() => (settled = true));
    await waitFor(
      async () => {
        alwaysRegistered &&= await registered('vision', '10.0.101.9:8080');
        return settled;
      },
      TTL_SECONDS * 1000 + SLACK_MS,
      "the first holder's lost event",
    );
    expect(alwaysRegistered).toBe(true);
    expect(first.held).toBe(false);
    // Its release must not delete the newcomer's lease.
    expect(await first.release()).toBe(false);
    await stack.drain();
    await stack.reconcileNow();
    expect(await registered('vision', '10.0.101.9:8080')).toBe(true);
    expect(stack.counters.elbMutatingCalls).toBe(callsBefore); // same endpoint: no ELB call at all

    expect(await second.release()).toBe(true);
    await waitFor(() => inNoGroup('10.0.101.9:8080'), SLACK_MS, 'deregistration after the newcomer released');
  });

  it('the handlers reported no errors', () => {
    expect(errors).toEqual([]);
  });
});

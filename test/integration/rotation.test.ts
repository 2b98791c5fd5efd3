/**
 * The registry's `rotation` feedback end to end on local mode (DynamoDB Local, its stream, the
 * sync and reconcile handlers, moto's ELB): an agent's lease is registered by sync without a
 * write, told `healthy` by the next reconcile pass's group reads in one UpdateItem; a re-acquired
 * lease (new token) is told again; leave() sees `draining` from sync's deregistration and releases.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStatus } from '../../lib/cli/fleet-render';
import { decodeRotation } from '../../lib/core/lease-codec';
import type { LeaseRotation } from '../../lib/core/lease-schema';
import { LocalStack } from '../../lib/local/local-stack';
import { fleetStatus } from '../../lib/registry/fleet-status';
import { AgentLease } from '../../lib/sdk';
import { groupsHolding, waitFor } from '../support/local-harness';

let stack: LocalStack;
const leases: AgentLease[] = [];

beforeAll(async () => {
  // Reconcile only when the test says so: which writer wrote what stays visible.
  stack = await LocalStack.start({ reconcileIntervalMs: 3_600_000, rotationPollIntervalMs: 0 });
});

afterAll(async () => {
  await Promise.allSettled(leases.map((l) => l.release()));
  await stack?.stop();
});

async function rotationOf(target: string): Promise<{ token?: string; rotation: LeaseRotation }> {
  const out = await stack.dynamodb.send(new GetItemCommand({ TableName: stack.state.tableName, Key: { target: { S: target } }, ConsistentRead: true }));
  return { token: out.Item?.leaseToken?.S, rotation: decodeRotation(out.Item?.rotation).rotation ?? {} };
}

describe('rotation on local mode', () => {
  it('registered (no write) → healthy (reconcile, one write) → re-acquired and told again → draining on leave → released', async () => {
    const lease = new AgentLease({ tableName: stack.state.tableName, address: '127.0.0.1', port: 18_080, capabilities: ['vision', 'speech'], ttl: 10, allowLoopback: true, client: stack.dynamodb, rotationPollIntervalMs: 100 });
    leases.push(lease);
    const key = lease.target;

    // Sync registers the target in both groups and writes nothing: a fresh lease has no entry to correct.
    await lease.acquire();
    await waitFor(async () => (await groupsHolding(stack.elbv2, stack.state.targetGroups, key)).length === 2, 10_000, 'sync to register the target');
    await stack.drain();
    const afterSync = await rotationOf(key);
    expect(afterSync.token).toBe(lease.leaseToken);
    expect(afterSync.rotation).toEqual({});

    // Reconcile reads the groups (moto reports the target healthy) and writes both entries in one UpdateItem; serving() resolves.
    const report = await stack.reconcileNow();
    expect(report.registryWrites).toMatchObject({ written: 2, leases: 1, updates: 1, changed: 1, failed: 0 });
    expect((await rotationOf(key)).rotation).toMatchObject({ vision: { state: 'healthy' }, speech: { state: 'healthy' } });
    await lease.serving({ timeoutMs: 10_000 });
    // A second pass changes nothing: written on change only.
    expect((await stack.reconcileNow()).registryWrites.planned).toBe(0);

    // `status` shows it.
    const status = await fleetStatus({ ...stack.sources(), routing: stack.runtimeConfig.routing });
    expect(renderStatus(status)).toMatch(new RegExp(`^${key.replace(/\./g, '\\.')}\\s+vision\\s+healthy\\s+\\d+s\\s+healthy$`, 'm'));

    // Released and acquired again: a new token, and the PutItem dropped rotation; the registry tells
    // the new lease again (sync writes the entries back when the release and the acquire share a
    // batch, else the next group read writes what it sees).
    const first = lease.leaseToken;
    await lease.release();
    await lease.acquire();
    expect(lease.leaseToken).not.toBe(first);
    await waitFor(async () => (await groupsHolding(stack.elbv2, stack.state.targetGroups, key)).length === 2, 10_000, 'the re-acquired lease registered');
    await stack.drain();
    await stack.reconcileNow();
    expect(Object.keys((await rotationOf(key)).rotation).sort()).toEqual(['speech', 'vision']);
    await lease.serving({ timeoutMs: 10_000 });

    // leave(): drained → sync deregisters and writes `draining` → confirmed → released.
    const left = await lease.leave({ propagationMarginMs: 0 });
    expect(left.steps.find((s) => s.step === 'rotation')?.outcome).toBe('confirmed');
    expect(left.released).toBe(true);
    expect((await rotationOf(key)).token).toBeUndefined();
    expect(await groupsHolding(stack.elbv2, stack.state.targetGroups, key)).toEqual([]);
  });
});

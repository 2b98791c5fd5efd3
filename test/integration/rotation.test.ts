/**
 * The registry's `rotation` feedback end to end on local mode (DynamoDB Local, its stream, the
 * sync and reconcile handlers, moto's ELB): an agent's lease is registered and told `initial` by
 * sync, `healthy` by the next reconcile pass's group reads; a re-acquired lease (new token) is
 * told again; leave() sees `draining` from sync's deregistration and releases.
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
  it('registered → initial (sync) → healthy (reconcile) → re-acquired and told again → draining on leave → released', async () => {
    const lease = new AgentLease({ tableName: stack.state.tableName, address: '127.0.0.1', port: 18_080, capabilities: ['vision', 'speech'], ttl: 10, allowLoopback: true, client: stack.dynamodb, rotationPollIntervalMs: 100 });
    leases.push(lease);
    const key = lease.target;

    // Sync registers the target and records `initial` in both groups.
    await lease.acquire();
    await waitFor(async () => Object.keys((await rotationOf(key)).rotation).length === 2, 10_000, 'sync to write rotation');
    const afterSync = await rotationOf(key);
    expect(afterSync.token).toBe(lease.leaseToken);
    expect(afterSync.rotation).toEqual({ vision: { state: 'initial', since: expect.any(Number) }, speech: { state: 'initial', since: expect.any(Number) } });
    expect((await groupsHolding(stack.elbv2, stack.state.targetGroups, key)).sort()).toEqual(['speech', 'vision']);

    // Reconcile reads the groups (moto reports the target healthy) and writes it; serving() resolves.
    const report = await stack.reconcileNow();
    expect(report.rotation).toMatchObject({ written: 2, failed: 0 });
    expect((await rotationOf(key)).rotation).toMatchObject({ vision: { state: 'healthy' }, speech: { state: 'healthy' } });
    await lease.serving({ timeoutMs: 10_000 });
    // A second pass changes nothing: written on change only.
    expect((await stack.reconcileNow()).rotation.planned).toBe(0);

    // `status` shows it.
    const status = await fleetStatus({ ...stack.sources(), routing: stack.runtimeConfig.routing });
    expect(renderStatus(status)).toMatch(new RegExp(`^${key.replace(/\./g, '\\.')}\\s+vision\\s+healthy\\s+\\d+s\\s+healthy$`, 'm'));

    // Released and acquired again: a new token, and the PutItem dropped rotation; the registry tells the new lease again.
    const first = lease.leaseToken;
    await lease.release();
    await lease.acquire();
    expect(lease.leaseToken).not.toBe(first);
    await waitFor(async () => Object.keys((await rotationOf(key)).rotation).length === 2, 10_000, 'rotation written into the re-acquired lease');
    await stack.reconcileNow();
    await lease.serving({ timeoutMs: 10_000 });

    // leave(): drained → sync deregisters and writes `draining` → confirmed → released.
    const left = await lease.leave({ propagationMarginMs: 0 });
    expect(left.steps.find((s) => s.step === 'rotation')?.outcome).toBe('confirmed');
    expect(left.released).toBe(true);
    expect((await rotationOf(key)).token).toBeUndefined();
    expect(await groupsHolding(stack.elbv2, stack.state.targetGroups, key)).toEqual([]);
  });
});

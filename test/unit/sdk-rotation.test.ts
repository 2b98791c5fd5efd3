import { GetItemCommand, InternalServerError } from '@aws-sdk/client-dynamodb';
import { describe, expect, it, vi } from 'vitest';
import { AgentLease, AgentLeaseOptions, LeaseRotation, NotServingError } from '../../lib/sdk';
import { ddb, leaseOptions, NOW_MS, useSdkTable } from '../support/sdk-lease-table';

const table = useSdkTable();
/** This file's lease serves two capabilities. */
const newLease = (patch: Partial<AgentLeaseOptions> = {}): AgentLease => new AgentLease(leaseOptions({ capabilities: ['vision', 'speech'], ...patch }));

describe('rotation tracking', () => {
  it('a heartbeat brings the rotation the registry wrote, with one rotation event per change', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const events: LeaseRotation[] = [];
    lease.on('rotation', (r) => events.push(r));
    table.setRotation('vision', 'initial', NOW_MS + 500);

    // Act: two heartbeats see the same rotation
    await vi.advanceTimersByTimeAsync(20_000);

    // Assess
    expect(lease.rotation).toEqual({ vision: { state: 'initial', since: NOW_MS + 500 } });
    expect(events).toEqual([{ vision: { state: 'initial', since: NOW_MS + 500 } }]);
    expect(table.count('get')).toBe(0); // nobody waits: no reads
    await lease.release();
  });

  it('keeps the newer entry when replies arrive out of order, and starts empty after a new acquire', async () => {
    // Prepare
    const lease = newLease({ reacquire: true });
    await lease.acquire();
    table.setRotation('vision', 'healthy', NOW_MS + 2_000);
    await vi.advanceTimersByTimeAsync(10_000);
    // A reply carrying an older entry (a poll sent before the registry's last write)
    const older = { M: { vision: { M: { state: { S: 'initial' }, since: { N: String(NOW_MS + 1_000) } } } } };
    (lease as unknown as { onItemSeen(item: unknown): void }).onItemSeen({ ...table.item, rotation: older });
    const afterStaleReply = lease.rotation;

    // Act: the lease is lost and acquired again; the new PutItem has no rotation
    table.takeOver();
    await vi.advanceTimersByTimeAsync(10_000);
    table.item = undefined; // the other holder released
    await vi.advanceTimersByTimeAsync(2_000); // the re-acquire backoff

    // Assess
    expect(afterStaleReply).toEqual({ vision: { state: 'healthy', since: NOW_MS + 2_000 } });
    expect(lease.phase).toBe('held');
    expect(lease.rotation).toEqual({});
    await lease.release();
  });

  it('ignores malformed entries and keeps the well-formed ones', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    table.setRotation('vision', 'healthy', NOW_MS);
    table.item!.rotation.M!.speech = { M: { state: { S: 'on-fire' }, since: { N: String(NOW_MS) } } };

    // Act
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(lease.rotation).toEqual({ vision: { state: 'healthy', since: NOW_MS } });
    await lease.release();
  });

  it('polls with consistent reads only while watched', async () => {
    // Prepare
    const lease = newLease({ rotationPollIntervalMs: 500 });
    await lease.acquire();

    // Act
    const stop = lease.watchRotation();
    await vi.advanceTimersByTimeAsync(2_000);
    stop();
    await vi.advanceTimersByTimeAsync(5_000);

    // Assess
    expect(table.count('get')).toBe(4);
    expect(ddb).toHaveReceivedCommandWith(GetItemCommand, { TableName: 'leases', Key: { target: { S: '10.0.3.17:8080' } }, ConsistentRead: true });
    await lease.release();
  });

  it('a poll that finds the item gone or taken over confirms the loss with an immediate renewal', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    const lost = vi.fn();
    lease.on('lost', lost);
    const stop = lease.watchRotation();

    // Act
    table.takeOver();
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess: lost after one poll, not at the next heartbeat 10 s later
    expect(table.log).toEqual(['put', 'get', 'renew']);
    expect(lost).toHaveBeenCalledOnce();
    expect(lease.phase).toBe('lost');
    stop();
  });
});

describe('serving()', () => {
  it('resolves once the target is healthy in every group, polling meanwhile', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const serving = lease.serving({ timeoutMs: 30_000 });
    let resolved = false;
    void serving.then(() => (resolved = true));

    // Act
    table.setRotation('vision', 'healthy', NOW_MS + 1_000);
    table.setRotation('speech', 'initial', NOW_MS + 1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    const withOneHealthy = resolved;
    table.setRotation('speech', 'healthy', NOW_MS + 2_500);
    await vi.advanceTimersByTimeAsync(2_000);

    // Assess
    expect(withOneHealthy).toBe(false);
    await expect(serving).resolves.toEqual([
      { capability: 'speech', state: 'healthy', since: NOW_MS + 2_500 },
      { capability: 'vision', state: 'healthy', since: NOW_MS + 1_000 },
    ]);
    expect(lease.isServing).toBe(true);
    const readsWhenServing = table.count('get');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(table.count('get')).toBe(readsWhenServing); // polling stopped
    await lease.release();
  });

  it('times out with NOT_SERVING naming each group that is not healthy and its state', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    table.setRotation('vision', 'unhealthy', NOW_MS + 1_000);

    // Act
    const error = lease.serving({ timeoutMs: 5_000 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(5_000);

    // Assess
    const e = (await error) as NotServingError;
    expect(e).toBeInstanceOf(NotServingError);
    expect(e).toMatchObject({ code: 'NOT_SERVING', reason: 'timeout', target: '10.0.3.17:8080' });
    expect(e.message).toBe('10.0.3.17:8080 is not serving: not healthy in every group after 5.0 s; not healthy: speech unreported, vision unhealthy for 4.0 s');
    expect(e.groups).toEqual([
      { capability: 'speech', state: 'unreported' },
      { capability: 'vision', state: 'unhealthy', since: NOW_MS + 1_000 },
    ]);
    await lease.release();
  });

  it('rejects when the lease is lost meanwhile, and at once when already released', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    const waiting = lease.serving().catch((e: unknown) => e);

    // Act
    table.takeOver();
    await vi.advanceTimersByTimeAsync(1_000);
    await lease.release();

    // Assess
    expect(await waiting).toMatchObject({ code: 'NOT_SERVING', reason: 'lost', cause: expect.objectContaining({ code: 'LEASE_LOST' }) });
    await expect(lease.serving()).rejects.toMatchObject({ reason: 'released', message: '10.0.3.17:8080 is not serving: the lease was released; not healthy: speech unreported, vision unreported' });
  });

  it('rejects when released while waiting', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const waiting = lease.serving().catch((e: unknown) => e);

    // Act
    await lease.release();

    // Assess
    expect(await waiting).toMatchObject({ code: 'NOT_SERVING', reason: 'released' });
  });

  it('may be called before acquire() and does not read until the lease is held', async () => {
    // Prepare
    const lease = newLease({ capabilities: ['vision'] });
    const waiting = lease.serving({ timeoutMs: 60_000 });
    await vi.advanceTimersByTimeAsync(3_000);
    const readsBeforeAcquire = table.count('get');

    // Act
    await lease.acquire();
    table.setRotation('vision', 'healthy', NOW_MS + 4_000);
    await vi.advanceTimersByTimeAsync(2_000);

    // Assess
    expect(readsBeforeAcquire).toBe(0);
    await expect(waiting).resolves.toHaveLength(1);
    await lease.release();
  });

  it('keeps polling through a failed read', async () => {
    // Prepare
    const lease = newLease({ capabilities: ['vision'] });
    await lease.acquire();
    table.failNext.get = new InternalServerError({ message: 'boom', $metadata: {} });
    const waiting = lease.serving({ timeoutMs: 60_000 });

    // Act
    await vi.advanceTimersByTimeAsync(1_000);
    table.setRotation('vision', 'healthy', NOW_MS + 1_500);
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    await expect(waiting).resolves.toEqual([{ capability: 'vision', state: 'healthy', since: NOW_MS + 1_500 }]);
    await lease.release();
  });

  it('does not resolve for a draining lease, and says so on timeout', async () => {
    // Prepare
    const lease = newLease({ capabilities: ['vision'] });
    await lease.acquire();
    table.setRotation('vision', 'healthy', NOW_MS);
    await lease.drain();

    // Act
    const error = lease.serving({ timeoutMs: 2_000 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(2_000);

    // Assess
    expect(((await error) as Error).message).toBe('10.0.3.17:8080 is not serving: not healthy in every group after 2.0 s (the lease is draining)');
    await lease.release();
  });

  it('refuses a negative timeout', async () => {
    await expect(newLease().serving({ timeoutMs: -1 })).rejects.toThrow('serving: timeoutMs must be a number of milliseconds ≥ 0, got -1');
  });
});

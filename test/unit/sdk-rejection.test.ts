import { describe, expect, it, vi } from 'vitest';
import { AgentLease, AgentLeaseOptions, NotServingError, StoredRejection } from '../../lib/sdk';
import { leaseOptions, NOW_MS, useSdkTable } from '../support/sdk-lease-table';

const table = useSdkTable();
/** This file's lease lists a capability the deployment routes (vision) and one it does not (ocr). */
const newLease = (patch: Partial<AgentLeaseOptions> = {}): AgentLease => new AgentLease(leaseOptions({ capabilities: ['ocr', 'vision'], ...patch }));

const unrouted: StoredRejection = {
  reason: 'unknown-capability',
  message: 'capability "ocr" is not routed by this deployment (known: speech, vision)',
  since: NOW_MS + 500,
  capabilities: ['ocr'],
};
const invalid: StoredRejection = { reason: 'invalid', message: 'address "203.0.113.9" is outside the allowed ranges (10.0.0.0/16)', since: NOW_MS + 500 };

describe('rejection', () => {
  it('a heartbeat brings the registry\'s rejection; `rejected` is emitted once per verdict, not again after a re-acquire', async () => {
    // Prepare
    const lease = newLease();
    const seen: StoredRejection[] = [];
    lease.on('rejected', (r) => seen.push(r));
    await lease.acquire();

    // Act
    table.setRejection(unrouted);
    await vi.advanceTimersByTimeAsync(10_000); // a heartbeat
    const afterHeartbeat = lease.rejection;
    table.item = undefined; // swept: the next heartbeat finds the lease lost and re-acquires
    await vi.advanceTimersByTimeAsync(10_100);
    const afterReacquire = lease.rejection;
    const phase = lease.phase;
    table.setRejection({ ...unrouted, since: NOW_MS + 21_000 }); // the registry writes the same verdict again
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(afterHeartbeat).toEqual(unrouted);
    expect([phase, afterReacquire]).toEqual(['held', undefined]); // the new item has none until the registry looks at it
    expect(lease.rejection).toEqual({ ...unrouted, since: NOW_MS + 21_000 });
    expect(seen).toEqual([unrouted]);
    await lease.release();
  });

  it('ignores a malformed rejection: a reader never fails on the registry\'s feedback', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();

    // Act
    table.item!.rejection = { M: { reason: { S: 'Unknown Capability!' }, message: { S: 'x' }, since: { N: String(NOW_MS) } } };
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(lease.rejection).toBeUndefined();
    await lease.release();
  });
});

describe('serving() with a capability refused', () => {
  it('serves once healthy in every capability that is not refused: an unrouted one does not hold it back', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const serving = lease.serving({ timeoutMs: 30_000 });

    // Act
    table.setRotation('vision', 'healthy', NOW_MS + 1_000);
    table.setRejection(unrouted);
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    await expect(serving).resolves.toEqual([
      { capability: 'ocr', state: 'rejected' },
      { capability: 'vision', state: 'healthy', since: NOW_MS + 1_000 },
    ]);
    expect(lease.isServing).toBe(true);
    await lease.release();
  });

  it('rejects at once with reason `rejected` when the registry refuses the whole lease', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const serving = lease.serving({ timeoutMs: 60_000 });
    const failed = serving.catch((e: unknown) => e);

    // Act
    table.setRejection(invalid);
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    const error = (await failed) as NotServingError;
    expect(error).toBeInstanceOf(NotServingError);
    expect(error.reason).toBe('rejected');
    expect(error.message).toBe('10.0.3.17:8080 is not serving: the registry refuses the lease (invalid: address "203.0.113.9" is outside the allowed ranges (10.0.0.0/16))');
    await lease.release();
  });
});

describe('leave() with a capability refused', () => {
  it('waits for the groups it is in, not for the one the registry refuses (no conservative fallback)', async () => {
    // Prepare
    const lease = newLease({ rotationPollIntervalMs: 500 });
    await lease.acquire();
    table.setRotation('vision', 'healthy', NOW_MS + 1_000);
    table.setRejection(unrouted);
    await vi.advanceTimersByTimeAsync(10_000); // a heartbeat brings both
    const leaving = lease.leave({ propagationMarginMs: 1_000 });

    // Act: the registry deregisters vision after the drain
    await vi.advanceTimersByTimeAsync(100);
    table.setRotation('vision', 'draining', Date.now());
    await vi.advanceTimersByTimeAsync(3_000);

    // Assess
    const report = await leaving;
    expect(report.steps.map((s) => `${s.step}:${s.outcome}`)).toEqual(['drain:done', 'rotation:confirmed', 'propagation:done', 'inFlight:skipped', 'release:done']);
    expect(report.steps.find((s) => s.step === 'rotation')!.detail).toMatch(/^ocr rejected, vision draining for /);
    expect(report.durationMs).toBeLessThan(3_000);
  });
});

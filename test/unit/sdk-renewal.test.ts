import { DeleteItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it, vi } from 'vitest';
import { LeaseHeldError, LeaseLostError, LeaseStoreError } from '../../lib/sdk';
import { conditionFailed, ddb, newLease, NOW_MS, NOW_S, throttled, useSdkMock } from '../support/sdk-lease-table';

useSdkMock();

/** Epoch-ms times at which renewals were sent, relative to the acquire. */
const renewalTimes = (): number[] =>
  ddb
    .commandCalls(UpdateItemCommand)
    .filter((c) => c.args[0].input.UpdateExpression?.includes('#expiresAt'))
    .map((c) => Number(c.args[0].input.ExpressionAttributeValues![':ren'].N) - NOW_MS);

const putTimes = (): number[] => ddb.commandCalls(PutItemCommand).map((c) => Number(c.args[0].input.Item!.renewedAt.N) - NOW_MS);

describe('renewal cadence', () => {
  it('renews every ttl/3 without jitter at the midpoint', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();

    // Act
    await vi.advanceTimersByTimeAsync(60_000);

    // Assess
    expect(renewalTimes()).toEqual([10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
    expect(lease.expiresAt).toBe(NOW_S + 60 + 30);
    await lease.release();
  });

  it('jitters each interval by at most ±10 %', async () => {
    // Prepare: the extremes of the random source
    const extremes = [0, 0.999_999];
    let i = 0;
    const lease = newLease({ ttl: 9, random: () => extremes[i++ % 2] });
    await lease.acquire();

    // Act
    await vi.advanceTimersByTimeAsync(12_000);

    // Assess: 3 s - 10 % = 2.7 s, then 3 s + 10 % = 3.3 s, …
    expect(renewalTimes()).toEqual([2700, 6000, 8700, 12_000]);
    await lease.release();
  });

  it('keeps every interval of a randomly jittered schedule within ttl/3 ± 10 %', async () => {
    // Prepare
    const lease = newLease({ random: undefined });
    await lease.acquire();

    // Act
    await vi.advanceTimersByTimeAsync(300_000);

    // Assess
    const times = [0, ...renewalTimes()];
    const gaps = times.slice(1).map((t, k) => t - times[k]);
    expect(gaps.length).toBeGreaterThanOrEqual(27);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(9000);
      expect(gap).toBeLessThanOrEqual(11_000);
    }
    await lease.release();
  });

  it('does not keep the process alive by default (timers are unref()d)', async () => {
    // Prepare
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const quiet = newLease();
    const keeping = newLease({ keepProcessAlive: true, port: 8081 });

    // Act
    await quiet.acquire();
    const quietTimers = spy.mock.results.map((r) => r.value as NodeJS.Timeout);
    spy.mockClear();
    await keeping.acquire();
    const keepingTimers = spy.mock.results.map((r) => r.value as NodeJS.Timeout);

    // Assess
    expect(quietTimers.length).toBeGreaterThan(0);
    expect(quietTimers.every((t) => !t.hasRef())).toBe(true);
    expect(keepingTimers.every((t) => t.hasRef())).toBe(true);
    spy.mockRestore();
    await quiet.release();
    await keeping.release();
  });
});

describe('renewal failures and lost leases', () => {
  it('emits lost with a LeaseLostError when a renewal condition fails, and stops renewing', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    const lost = vi.fn();
    lease.on('lost', lost);

    // Act
    await vi.advanceTimersByTimeAsync(10_000);
    await vi.advanceTimersByTimeAsync(120_000);

    // Assess
    expect(lost).toHaveBeenCalledTimes(1);
    const error = lost.mock.calls[0][0] as LeaseLostError;
    expect(error).toBeInstanceOf(LeaseLostError);
    expect(error.message).toBe('lease for 10.0.3.17:8080 lost: the lease item is gone (released by someone else, or swept after expiry)');
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 1);
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 1);
    expect(lease.state).toMatchObject({ phase: 'lost', held: false });
  });

  it('retries a transiently failed renewal sooner (1 s, 2 s, …) and then returns to the ttl/3 cadence', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejectsOnce(throttled()).rejectsOnce(throttled()).resolves({});
    const failed = vi.fn();
    lease.on('renewFailed', failed);

    // Act
    await vi.advanceTimersByTimeAsync(30_000);

    // Assess
    expect(renewalTimes()).toEqual([10_000, 11_000, 13_000, 23_000]);
    expect(failed).toHaveBeenCalledTimes(2);
    expect(failed.mock.calls[0][0]).toBeInstanceOf(LeaseStoreError);
    expect(failed.mock.calls.map((c) => c[1])).toEqual([
      { attempt: 1, retryInMs: 1000, expiresAt: NOW_S + 30 },
      { attempt: 2, retryInMs: 2000, expiresAt: NOW_S + 30 },
    ]);
    expect(lease.expiresAt).toBe(NOW_S + 23 + 30);
    await lease.release();
  });

  it('emits lost when renewals keep failing until the lease expires', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejects(throttled());
    const lost = vi.fn();
    lease.on('lost', lost);

    // Act
    await vi.advanceTimersByTimeAsync(29_999);
    const beforeExpiry = lost.mock.calls.length;
    await vi.advanceTimersByTimeAsync(1);
    await vi.advanceTimersByTimeAsync(60_000);

    // Assess
    expect(beforeExpiry).toBe(0);
    expect(lost).toHaveBeenCalledTimes(1);
    expect((lost.mock.calls[0][0] as Error).message).toBe(
      `lease for 10.0.3.17:8080 lost: not renewed before it expired at ${new Date((NOW_S + 30) * 1000).toISOString()}`,
    );
    // 10 s, then retries 1, 2, 4, 5 (capped at ttl/6), 5 s … until the expiry at 30 s
    expect(renewalTimes()).toEqual([10_000, 11_000, 13_000, 17_000, 22_000, 27_000]);
    expect(lease.phase).toBe('lost');
  });

  it('ignores a renewal that completes after the lease was declared lost', async () => {
    // Prepare: the renewal at 20 s hangs past the expiry of the lease renewed at 10 s
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    let finish: () => void = () => undefined;
    ddb
      .on(UpdateItemCommand)
      .resolvesOnce({})
      .callsFake(() => new Promise((resolve) => (finish = () => resolve({}))));
    const renewed = vi.fn();
    lease.on('renewed', renewed);

    // Act
    await vi.advanceTimersByTimeAsync(40_000);
    finish();
    await vi.advanceTimersByTimeAsync(60_000);

    // Assess
    expect(renewed).toHaveBeenCalledTimes(1);
    expect(lease.phase).toBe('lost');
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 2);
  });
});

describe('re-acquire', () => {
  it('re-acquires at once after lost, conditionally and with the same token, and resumes renewing', async () => {
    // Prepare: takeover is for the first acquire only
    const lease = newLease({ takeover: true });
    await lease.acquire();
    const token = lease.leaseToken!;
    ddb.on(UpdateItemCommand).rejectsOnce(conditionFailed()).resolves({});
    const events: string[] = [];
    lease.on('lost', () => events.push(`lost:${lease.phase}`));
    lease.on('reacquired', (s) => events.push(`reacquired:${s.phase}`));

    // Act: lost at 10 s, re-acquired on the next tick (Node timers wait at least 1 ms)
    await vi.advanceTimersByTimeAsync(10_001);

    // Assess
    expect(events).toEqual(['lost:reacquiring', 'reacquired:held']);
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 2);
    expect(ddb).toHaveReceivedNthCommandWith(PutItemCommand, 2, {
      ConditionExpression: 'attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine',
      ExpressionAttributeValues: { ':now': { N: String(NOW_S + 10) }, ':mine': { S: token } },
    });
    expect(putTimes()).toEqual([0, 10_001]);

    // Act: renewal resumes ttl/3 after the re-acquire
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(renewalTimes()).toEqual([10_000, 20_001]);
    expect(lease.state).toMatchObject({ phase: 'held', leaseToken: token, expiresAt: NOW_S + 20 + 30 });
    await lease.release();
  });

  it('keeps retrying with backoff capped at ttl while another holder owns the lease', async () => {
    // Prepare
    const lease = newLease({ ttl: 6 });
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejectsOnce(conditionFailed()).resolves({});
    ddb.on(PutItemCommand).rejects(conditionFailed());
    const failures: unknown[][] = [];
    lease.on('reacquireFailed', (error, info) => failures.push([error.constructor.name, info]));
    const reacquired = vi.fn();
    lease.on('reacquired', reacquired);

    // Act: lost at 2 s; attempts 1 ms later, then 1, 2, 4, 6, 6 s apart; the other holder goes away before the last
    await vi.advanceTimersByTimeAsync(20_000);
    ddb.on(PutItemCommand).resolves({});
    await vi.advanceTimersByTimeAsync(2_000);

    // Assess
    expect(putTimes()).toEqual([0, 2001, 3001, 5001, 9001, 15_001, 21_001]);
    expect(failures).toEqual([
      ['LeaseHeldError', { attempt: 1, retryInMs: 1000 }],
      ['LeaseHeldError', { attempt: 2, retryInMs: 2000 }],
      ['LeaseHeldError', { attempt: 3, retryInMs: 4000 }],
      ['LeaseHeldError', { attempt: 4, retryInMs: 6000 }],
      ['LeaseHeldError', { attempt: 5, retryInMs: 6000 }],
    ]);
    expect(reacquired).toHaveBeenCalledTimes(1);
    expect(lease.held).toBe(true);
    await lease.release();
  });

  it('re-acquires a drained lease as draining', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    await lease.drain();
    ddb.on(UpdateItemCommand).rejects(conditionFailed());

    // Act
    await vi.advanceTimersByTimeAsync(10_001);

    // Assess
    expect(ddb.commandCalls(PutItemCommand)[1].args[0].input.Item!.status).toEqual({ S: 'draining' });
    ddb.on(UpdateItemCommand).resolves({});
    await lease.release();
  });

  it('release during re-acquire stops the attempts and deletes conditionally', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const token = lease.leaseToken!;
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    ddb.on(PutItemCommand).rejects(conditionFailed());
    await vi.advanceTimersByTimeAsync(10_001);
    expect(lease.phase).toBe('reacquiring');

    // Act
    const deleted = await lease.release();
    await vi.advanceTimersByTimeAsync(120_000);

    // Assess
    expect(deleted).toBe(true);
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 2);
    expect(ddb).toHaveReceivedCommandWith(DeleteItemCommand, { ExpressionAttributeValues: { ':mine': { S: token } } });
    expect(lease.phase).toBe('released');
  });

  it('a listener may release the lease from its lost handler; no re-acquire is attempted', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    lease.on('lost', () => void lease.release());

    // Act
    await vi.advanceTimersByTimeAsync(60_000);

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 1);
    expect(ddb).toHaveReceivedCommandTimes(DeleteItemCommand, 1);
    expect(lease.phase).toBe('released');
  });

  it('an explicit acquire while re-acquiring tries at once and reports the held error', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    ddb.on(PutItemCommand).rejects(conditionFailed());
    await vi.advanceTimersByTimeAsync(10_001);

    // Act
    const result = lease.acquire();

    // Assess
    await expect(result).rejects.toBeInstanceOf(LeaseHeldError);
    expect(lease.phase).toBe('reacquiring');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 4);
    await lease.release();
  });
});

describe('abandon (a crash drill)', () => {
  it('stops renewing and never deletes, so the lease lapses at its expiry', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    await vi.advanceTimersByTimeAsync(10_000);

    // Act
    lease.abandon();
    await vi.advanceTimersByTimeAsync(120_000);

    // Assess
    expect(renewalTimes()).toEqual([10_000]);
    expect(ddb).toHaveReceivedCommandTimes(DeleteItemCommand, 0);
    expect(lease.phase).toBe('lost');
  });
});

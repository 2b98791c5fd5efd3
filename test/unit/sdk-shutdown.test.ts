import { DeleteItemCommand, GetItemCommand, InternalServerError, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { EventEmitter } from 'node:events';
import { createServer } from 'node:http';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentLease, ConfigError, installShutdownHandlers, LeaveReport, ShutdownHandlerOptions } from '../../lib/sdk';
import { ddb, leaseOptions, useSdkMock } from '../support/sdk-lease-table';

useSdkMock();
const newLease = (port = 8080): AgentLease => new AgentLease(leaseOptions({ port }));

type Listener = (signal: NodeJS.Signals) => void;

/**
 * Installs the handlers and returns the listeners it added, so a test calls exactly those
 * instead of `process.emit`, which would also run the test runner's own signal listeners.
 */
function install(lease: AgentLease | AgentLease[], options: ShutdownHandlerOptions, signal: NodeJS.Signals = 'SIGTERM') {
  const before = process.listeners(signal);
  const remove = installShutdownHandlers(lease, options);
  const added = process.listeners(signal).filter((l) => !before.includes(l)) as Listener[];
  return { remove, added, send: () => added.forEach((l) => l(signal)) };
}

/** Names of the writes in order: put, renew, draining, active, delete. */
const writes = (): string[] =>
  ddb.calls().map((c) => {
    const command = c.args[0];
    if (command instanceof PutItemCommand) return 'put';
    if (command instanceof DeleteItemCommand) return 'delete';
    if (command instanceof GetItemCommand) return 'get';
    if (command instanceof UpdateItemCommand) return command.input.ExpressionAttributeValues?.[':status']?.S ?? 'renew';
    return command.constructor.name;
  });

/** The registry's rotation for vision, as GetItem returns it with the token of the last PutItem. */
let rotation: Record<string, unknown> | undefined;
const setRotation = (state: string, since: number) => (rotation = { M: { vision: { M: { state: { S: state }, since: { N: String(since) } } } } });

beforeEach(() => {
  rotation = undefined;
  ddb.on(GetItemCommand).callsFake(() => {
    const put = ddb.commandCalls(PutItemCommand).at(-1)!.args[0].input;
    // As the table holds it: the last status written since that PutItem (the SDK compares what it reads with what it wrote).
    const status = ddb
      .commandCalls(UpdateItemCommand)
      .map((c) => c.args[0].input.ExpressionAttributeValues?.[':status'])
      .filter((v) => v !== undefined)
      .at(-1);
    return { Item: { ...put.Item, ...(status ? { status } : {}), ...(rotation ? { rotation } : {}) } };
  });
});

describe('installShutdownHandlers', () => {
  it('on SIGTERM leaves rotation (drain, out of rotation, margin), releases, logs each step and removes its handlers', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const lines: string[] = [];
    const { added, send } = install(lease, { propagationMarginMs: 2_000, exit: false, log: (l) => lines.push(l) });
    expect(added).toHaveLength(1);

    // Act: the registry reports the target draining 700 ms after the drain
    send();
    await vi.advanceTimersByTimeAsync(700);
    setRotation('draining', Date.now());
    await vi.advanceTimersByTimeAsync(2_299);
    const beforeMarginEnds = writes();
    await vi.advanceTimersByTimeAsync(1);

    // Assess
    expect(beforeMarginEnds).toEqual(['put', 'draining', 'get']);
    expect(writes()).toEqual(['put', 'draining', 'get', 'delete']);
    expect(lease.phase).toBe('released');
    expect(process.listeners('SIGTERM')).not.toContain(added[0]);
    expect(lines).toEqual([
      'agent-lb leave 10.0.3.17:8080: SIGTERM, leaving rotation (deadline 314.0 s)', // 10 s rotation wait + the 2 s margin + a 5-minute request + 2 s release
      'agent-lb leave 10.0.3.17:8080: drain done in 0.0 s (1 of 1 drained)',
      'agent-lb leave 10.0.3.17:8080: rotation confirmed in 1.0 s (vision draining for 0.3 s)',
      'agent-lb leave 10.0.3.17:8080: propagation done in 2.0 s (margin 2.0 s)',
      'agent-lb leave 10.0.3.17:8080: inFlight skipped in 0.0 s (no in-flight source given)',
      'agent-lb leave 10.0.3.17:8080: release done in 0.0 s (1 deleted)',
      'agent-lb leave 10.0.3.17:8080: done in 3.0 s, released',
    ]);
  });

  it('exits with code 0 when done, by default', async () => {
    // Prepare
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const lease = newLease();
    await lease.acquire();
    const { remove, send } = install(lease, { propagationMarginMs: 0, unconfirmedRotationWaitMs: 1_000, log: false });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    expect(exit).toHaveBeenCalledExactlyOnceWith(0);
    expect(writes()).toEqual(['put', 'draining', 'get', 'delete']);
    remove();
  });

  it('a second signal cuts the waits short and releases at once', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    let report: LeaveReport | undefined;
    const { send } = install(lease, { exit: false, log: false, onLeft: (r) => (report = r) });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(100);
    send();
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(writes()).toEqual(['put', 'draining', 'delete']);
    expect(report?.steps.map((s) => s.outcome)).toEqual(['done', 'hurried', 'hurried', 'skipped', 'done']);
  });

  it('does not wait for a lease that is not held', async () => {
    // Prepare
    const lease = newLease();
    const { send } = install(lease, { exit: false, log: false });
    const released = vi.fn();
    lease.on('released', released);

    // Act
    send();
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(released).toHaveBeenCalledExactlyOnceWith({ target: '10.0.3.17:8080', deleted: false });
    expect(ddb.calls()).toHaveLength(0);
  });

  it('reports a failed drain and still releases every lease, within the deadline', async () => {
    // Prepare
    const leases = [newLease(8080), newLease(8081)];
    for (const l of leases) await l.acquire();
    ddb.on(UpdateItemCommand).rejects(new InternalServerError({ message: 'boom', $metadata: {} }));
    const onError = vi.fn();
    const { send } = install(leases, { deadlineMs: 4_000, exit: false, onError, log: false });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(4_000);

    // Assess
    expect(onError).toHaveBeenCalledTimes(2);
    expect((onError.mock.calls[0][0] as Error).message).toContain('setStatus on table leases failed: InternalServerError: boom');
    expect(ddb).toHaveReceivedCommandTimes(DeleteItemCommand, 2);
  });

  it('listens on the given signals and the returned function removes the listeners', () => {
    // Prepare
    const lease = newLease();
    const { remove, added } = install(lease, { signals: ['SIGUSR2'], exit: false }, 'SIGUSR2');

    // Act
    remove();

    // Assess
    expect(added).toHaveLength(1);
    expect(process.listeners('SIGUSR2')).not.toContain(added[0]);
  });

  it('refuses bad options when installed, not at the signal', () => {
    expect(() => installShutdownHandlers(newLease(), { deadlineMs: -1 })).toThrow(new ConfigError('leave: deadlineMs must be a number of milliseconds > 0, got -1'));
    expect(() => installShutdownHandlers(newLease(), { drainSeconds: 15 } as never)).toThrow(/drainSeconds is gone/);
    expect(() => installShutdownHandlers(newLease(), { signals: [] })).toThrow('installShutdownHandlers: signals must be a non-empty array, got []');
    const server = createServer();
    expect(() => installShutdownHandlers(newLease(), { server, inFlight: () => 0 })).toThrow('installShutdownHandlers: give server or inFlight, not both');
    expect(() => installShutdownHandlers(newLease(), { server: {} as never })).toThrow(/^trackInFlight needs a Node HTTP server/);
  });

  it('takes the HTTP server itself and waits for its requests: the same as inFlight: trackInFlight(server)', async () => {
    // Prepare: a request in flight on the server, which never ends
    const lease = newLease();
    await lease.acquire();
    const server = createServer(() => undefined);
    let left: LeaveReport | undefined;
    const { send } = install(lease, { server, exit: false, log: false, propagationMarginMs: 0, unconfirmedRotationWaitMs: 0, deadlineMs: 3_000, onLeft: (r) => (left = r) });
    server.emit('request', { method: 'GET', url: '/slow' }, Object.assign(new EventEmitter(), { headersSent: false, destroy: () => undefined }));

    // Act
    send();
    await vi.advanceTimersByTimeAsync(3_000);

    // Assess: the wait ran to the deadline and cut it
    expect(left?.steps.find((st) => st.step === 'inFlight')).toMatchObject({ outcome: 'deadline', detail: expect.stringMatching(/^1 still in flight, cut: GET "\/slow" \(in flight \d\.\d s\)$/) });
  });
});

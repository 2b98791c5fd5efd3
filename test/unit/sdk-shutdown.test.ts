import { DeleteItemCommand, DynamoDBClient, InternalServerError, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher, CustomMatcher } from 'aws-sdk-client-mock-vitest';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentLease, ConfigError, installShutdownHandlers, ShutdownHandlerOptions } from '../../lib/sdk';

expect.extend(allCustomMatcher);
declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  interface Matchers<T = any> extends CustomMatcher<T> {}
}

const NOW_MS = 1_800_000_000_000;
const ddb = mockClient(DynamoDBClient);

function newLease(port = 8080): AgentLease {
  return new AgentLease({
    tableName: 'leases',
    address: '10.0.3.17',
    port,
    capabilities: ['vision'],
    agentId: 'agent-1',
    ttl: 30,
    client: new DynamoDBClient({ region: 'eu-west-1' }),
    random: () => 0.5,
  });
}

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
    if (command instanceof UpdateItemCommand) return command.input.ExpressionAttributeValues?.[':status']?.S ?? 'renew';
    return command.constructor.name;
  });

beforeEach(() => {
  ddb.reset();
  ddb.on(PutItemCommand).resolves({}).on(UpdateItemCommand).resolves({}).on(DeleteItemCommand).resolves({});
  vi.useFakeTimers({ now: NOW_MS });
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('installShutdownHandlers', () => {
  it('on SIGTERM drains, keeps the lease for drainSeconds, then releases and removes its handlers', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const { added, send } = install(lease, { drainSeconds: 5, exit: false });
    expect(added).toHaveLength(1);

    // Act
    send();
    await vi.advanceTimersByTimeAsync(4_999);
    const duringDrain = writes();
    await vi.advanceTimersByTimeAsync(1);

    // Assess
    expect(duringDrain).toEqual(['put', 'draining']);
    expect(writes()).toEqual(['put', 'draining', 'delete']);
    expect(ddb).toHaveReceivedCommandWith(UpdateItemCommand, { ExpressionAttributeValues: { ':status': { S: 'draining' }, ':mine': { S: expect.any(String) } } });
    expect(lease.phase).toBe('released');
    expect(process.listeners('SIGTERM')).not.toContain(added[0]);
  });

  it('keeps renewing while it waits', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const { send } = install(lease, { drainSeconds: 12, exit: false });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(12_000);

    // Assess
    expect(writes()).toEqual(['put', 'draining', 'renew', 'delete']);
  });

  it('exits with code 0 when done, by default', async () => {
    // Prepare
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const lease = newLease();
    await lease.acquire();
    const { remove, send } = install(lease, { drainSeconds: 1 });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess
    expect(exit).toHaveBeenCalledExactlyOnceWith(0);
    expect(writes()).toEqual(['put', 'draining', 'delete']);
    remove();
  });

  it('a second signal cuts the wait short', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const { send } = install(lease, { drainSeconds: 15, exit: false });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(100);
    send();
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(writes()).toEqual(['put', 'draining', 'delete']);
  });

  it('does not wait for a lease that is not held', async () => {
    // Prepare
    const lease = newLease();
    const { send } = install(lease, { drainSeconds: 15, exit: false });
    const released = vi.fn();
    lease.on('released', released);

    // Act
    send();
    await vi.advanceTimersByTimeAsync(0);

    // Assess
    expect(released).toHaveBeenCalledExactlyOnceWith({ target: '10.0.3.17:8080', deleted: false });
    expect(ddb.calls()).toHaveLength(0);
  });

  it('reports a failed drain and still releases every lease', async () => {
    // Prepare
    const leases = [newLease(8080), newLease(8081)];
    for (const l of leases) await l.acquire();
    ddb.on(UpdateItemCommand).rejects(new InternalServerError({ message: 'boom', $metadata: {} }));
    const onError = vi.fn();
    const { send } = install(leases, { drainSeconds: 2, exit: false, onError });

    // Act
    send();
    await vi.advanceTimersByTimeAsync(2_000);

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

  it('refuses a negative drainSeconds', () => {
    expect(() => installShutdownHandlers(newLease(), { drainSeconds: -1 })).toThrow(
      new ConfigError('installShutdownHandlers: drainSeconds must be a number ≥ 0, got -1'),
    );
  });
});

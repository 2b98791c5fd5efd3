import { DeleteItemCommand, DynamoDBClient, InternalServerError, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, it, vi } from 'vitest';
import {
  AgentLease,
  AgentLeaseOptions,
  ConfigError,
  InvalidLeaseError,
  LeaseHeldError,
  LeaseLostError,
  LeaseRejectionReason,
  LeaseStoreError,
} from '../../lib/sdk';
import { conditionFailed, ddb, leaseOptions, NOW_MS, NOW_S, useSdkMock } from '../support/sdk-lease-table';

const TABLE = 'agent-lb-leases';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

useSdkMock();
/** This file's lease: two capabilities, the default ttl. */
const newLease = (patch: Partial<AgentLeaseOptions> = {}): AgentLease => new AgentLease(leaseOptions({ tableName: TABLE, capabilities: ['vision', 'speech'], ...patch }));

function expectedItem(token: string, status = 'active'): Record<string, unknown> {
  return {
    target: { S: '10.0.3.17:8080' },
    address: { S: '10.0.3.17' },
    port: { N: '8080' },
    capabilities: { SS: ['speech', 'vision'] },
    expiresAt: { N: String(NOW_S + 30) },
    leaseToken: { S: token },
    agentId: { S: 'agent-1' },
    status: { S: status },
    renewedAt: { N: String(NOW_MS) },
    registeredAt: { N: String(NOW_MS) },
  };
}

describe('AgentLease.acquire', () => {
  it('puts the contract item conditionally, validated, with a random token and expiry in epoch seconds', async () => {
    // Prepare
    const lease = newLease();

    // Act
    const state = await lease.acquire();

    // Assess
    const token = lease.leaseToken!;
    expect(token).toMatch(UUID);
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 1);
    expect(ddb.commandCalls(PutItemCommand)[0].args[0].input).toEqual({
      TableName: TABLE,
      Item: expectedItem(token),
      ConditionExpression: 'attribute_not_exists(#target) OR #expiresAt < :now OR #leaseToken = :mine',
      ExpressionAttributeNames: { '#target': 'target', '#expiresAt': 'expiresAt', '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: { ':now': { N: String(NOW_S) }, ':mine': { S: token } },
    });
    expect(state).toEqual({
      phase: 'held',
      target: '10.0.3.17:8080',
      agentId: 'agent-1',
      held: true,
      status: 'active',
      leaseToken: token,
      expiresAt: NOW_S + 30,
      renewedAt: NOW_MS,
    });
  });

  it('with takeover puts the same item without any condition', async () => {
    // Prepare
    const lease = newLease({ takeover: true });

    // Act
    await lease.acquire();

    // Assess
    expect(ddb.commandCalls(PutItemCommand)[0].args[0].input).toEqual({ TableName: TABLE, Item: expectedItem(lease.leaseToken!) });
  });

  it('throws LeaseHeldError when the condition fails, and does not start renewing', async () => {
    // Prepare
    ddb.on(PutItemCommand).rejects(conditionFailed());
    const lease = newLease();
    const acquired = vi.fn();
    lease.on('acquired', acquired);

    // Act
    const result = lease.acquire();

    // Assess
    await expect(result).rejects.toBeInstanceOf(LeaseHeldError);
    await expect(result).rejects.toMatchObject({ code: 'LEASE_HELD', context: { target: '10.0.3.17:8080' } });
    expect(lease.phase).toBe('idle');
    expect(lease.held).toBe(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 0);
    expect(acquired).not.toHaveBeenCalled();
  });

  it('keeps its token after a failed attempt, so a write that landed without a reply is recognised as ours', async () => {
    // Prepare
    ddb.on(PutItemCommand).rejectsOnce(new InternalServerError({ message: 'boom', $metadata: {} })).resolves({});
    const lease = newLease();

    // Act
    await expect(lease.acquire()).rejects.toBeInstanceOf(LeaseStoreError);
    await lease.acquire();

    // Assess
    const [first, second] = ddb.commandCalls(PutItemCommand).map((c) => c.args[0].input.Item?.leaseToken?.S);
    expect(first).toBe(second);
  });

  it('resolves without a write when already held, and emits acquired once', async () => {
    // Prepare
    const lease = newLease();
    const acquired = vi.fn();
    lease.on('acquired', acquired);

    // Act
    await Promise.all([lease.acquire(), lease.acquire()]);

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(PutItemCommand, 1);
    expect(acquired).toHaveBeenCalledTimes(1);
  });

  it('writes IPv6 keys in brackets, availabilityZone and metadata', async () => {
    // Prepare
    const lease = newLease({
      address: 'fd00::17',
      allowedCidrs: ['fd00::/8'],
      availabilityZone: 'all',
      metadata: { version: '1.4.2', gpus: 2 },
    });

    // Act
    await lease.acquire();

    // Assess
    expect(ddb).toHaveReceivedCommandWith(PutItemCommand, {
      Item: expect.objectContaining({
        target: { S: '[fd00::17]:8080' },
        address: { S: 'fd00::17' },
        availabilityZone: { S: 'all' },
        metadata: { M: { version: { S: '1.4.2' }, gpus: { N: '2' } } },
      }),
    });
  });

  it('creates its own client from clientConfig (endpoint override) and destroys it on release', async () => {
    // Prepare
    const lease = newLease({
      client: undefined,
      clientConfig: { endpoint: 'http://localhost:8000', region: 'local', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } },
    });

    // Act
    await lease.acquire();
    const client = ddb.commandCalls(PutItemCommand)[0].thisValue as DynamoDBClient;
    const destroy = vi.spyOn(client, 'destroy');
    await lease.release();

    // Assess
    const endpoint = await client.config.endpoint!();
    expect(endpoint).toMatchObject({ hostname: 'localhost', port: 8000, protocol: 'http:' });
    expect(destroy).toHaveBeenCalledTimes(1);
  });
});

describe('AgentLease validation', () => {
  it.each<[string, Partial<AgentLeaseOptions>, string]>([
    ['ttl below 3', { ttl: 2 }, 'AgentLease: ttl must be a whole number of seconds in 3–3600, got 2'],
    ['ttl above an hour', { ttl: 3601 }, 'AgentLease: ttl must be a whole number of seconds in 3–3600, got 3601'],
    ['fractional ttl', { ttl: 4.5 }, 'AgentLease: ttl must be a whole number of seconds in 3–3600, got 4.5'],
    ['empty capabilities', { capabilities: [] }, 'AgentLease: capabilities must be a non-empty array of capability names, got []'],
    ['empty table name', { tableName: '' }, 'AgentLease: tableName must be a non-empty string, got ""'],
    ['port as a string', { port: '8080' as unknown as number }, 'AgentLease: port must be a number, got "8080"'],
    ['client and clientConfig', { clientConfig: {} }, 'AgentLease: give either client or clientConfig, not both'],
    ['malformed CIDR', { allowedCidrs: ['10.0.0.0/33'] }, 'invalid CIDR "10.0.0.0/33": expected <IPv4>/<0-32> or <IPv6>/<0-128>'],
    ['non-boolean reacquire', { reacquire: 'yes' as unknown as boolean }, 'AgentLease: reacquire must be true or false, got "yes"'],
  ])('refuses %s with a ConfigError', (_name, patch, message) => {
    // Act
    const create = (): AgentLease => newLease(patch);

    // Assess
    expect(create).toThrow(ConfigError);
    expect(create).toThrow(message);
    expect(ddb.calls()).toHaveLength(0);
  });

  it.each<[string, Partial<AgentLeaseOptions>, LeaseRejectionReason, string]>([
    ['a public IP', { address: '8.8.8.8' }, 'ADDRESS_NOT_ALLOWED', 'address "8.8.8.8" is outside the allowed ranges'],
    ['loopback', { address: '127.0.0.1' }, 'ADDRESS_NOT_ALLOWED', 'address "127.0.0.1" is loopback and can never be a target'],
    ['port 0', { port: 0 }, 'BAD_PORT', 'port 0 is outside 1–65535'],
    ['port 65536', { port: 65536 }, 'BAD_PORT', 'port 65536 is outside 1–65535'],
    ['a bad capability name', { capabilities: ['vision', 'Bad Name!'] }, 'BAD_CAPABILITIES', 'capability names "Bad Name!" do not match'],
    ['metadata over 2 KiB', { metadata: { blob: 'x'.repeat(3000) } }, 'METADATA_TOO_LARGE', 'limit 2048'],
  ])('refuses %s with the core InvalidLeaseError before anything is sent', (_name, patch, reason, message) => {
    // Act
    let error: unknown;
    try {
      newLease(patch);
    } catch (e) {
      error = e;
    }

    // Assess
    expect(error).toBeInstanceOf(InvalidLeaseError);
    expect((error as InvalidLeaseError).rejections.map((r) => r.reason)).toEqual([reason]);
    expect((error as Error).message).toContain(message);
    expect(ddb.calls()).toHaveLength(0);
  });

  it('accepts loopback only with allowLoopback (local mode)', () => {
    expect(() => newLease({ address: '127.0.0.1', allowLoopback: true })).not.toThrow();
  });

  it('writes an IPv6 address in its canonical form, so one endpoint has one key', () => {
    // Act
    const lease = newLease({ address: 'FD00:0:0::17', allowedCidrs: ['fd00::/8'] });

    // Assess
    expect(lease.target).toBe('[fd00::17]:8080');
  });

  it('validates the real item at acquire too: a clock in the wrong unit is caught before any write', async () => {
    // Prepare: a clock in microseconds makes expiresAt look like milliseconds
    const lease = newLease({ clock: () => NOW_MS * 1000 });

    // Act
    const result = lease.acquire();

    // Assess
    await expect(result).rejects.toBeInstanceOf(InvalidLeaseError);
    await expect(result).rejects.toMatchObject({ context: { reasons: ['BAD_EXPIRY'] } });
    expect(ddb.calls()).toHaveLength(0);
  });
});

describe('AgentLease renew, drain, release', () => {
  it('renews after ttl/3 with an UpdateItem of expiresAt and renewedAt only, conditional on the token', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const renewed = vi.fn();
    lease.on('renewed', renewed);

    // Act
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 1);
    expect(ddb.commandCalls(UpdateItemCommand)[0].args[0].input).toEqual({
      TableName: TABLE,
      Key: { target: { S: '10.0.3.17:8080' } },
      UpdateExpression: 'SET #expiresAt = :exp, #renewedAt = :ren',
      ConditionExpression: '#leaseToken = :mine',
      ExpressionAttributeNames: { '#expiresAt': 'expiresAt', '#renewedAt': 'renewedAt', '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: {
        ':exp': { N: String(NOW_S + 10 + 30) },
        ':ren': { N: String(NOW_MS + 10_000) },
        ':mine': { S: lease.leaseToken! },
      },
      // The item comes back with the reply (no read capacity): that is how heartbeats bring `rotation`.
      ReturnValues: 'ALL_NEW',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    expect(renewed).toHaveBeenCalledWith(expect.objectContaining({ expiresAt: NOW_S + 40, renewedAt: NOW_MS + 10_000, held: true }));
    expect(lease.expiresAt).toBe(NOW_S + 40);
  });

  it('drain sets status draining conditionally and keeps renewing; activate sets it back', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const token = lease.leaseToken!;

    // Act
    const drained = await lease.drain();
    await vi.advanceTimersByTimeAsync(10_000);
    const activated = await lease.activate();

    // Assess
    const updates = ddb.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(updates[0]).toEqual({
      TableName: TABLE,
      Key: { target: { S: '10.0.3.17:8080' } },
      UpdateExpression: 'SET #status = :status',
      ConditionExpression: '#leaseToken = :mine',
      ExpressionAttributeNames: { '#status': 'status', '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: { ':status': { S: 'draining' }, ':mine': { S: token } },
      ReturnValues: 'ALL_NEW',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    expect(updates[1].UpdateExpression).toBe('SET #expiresAt = :exp, #renewedAt = :ren');
    expect(updates[2].ExpressionAttributeValues).toEqual({ ':status': { S: 'active' }, ':mine': { S: token } });
    expect(drained).toMatchObject({ status: 'draining', held: true });
    expect(activated).toMatchObject({ status: 'active', held: true });
    expect(lease.lease?.status).toBe('active');
  });

  it('drain before acquire writes nothing and the lease is acquired as draining', async () => {
    // Prepare
    const lease = newLease();

    // Act
    await lease.drain();
    await lease.acquire();

    // Assess
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 0);
    expect(ddb.commandCalls(PutItemCommand)[0].args[0].input.Item).toEqual(expectedItem(lease.leaseToken!, 'draining'));
  });

  it('drain of a lease that turns out lost rejects with LeaseLostError and emits lost', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    ddb.on(UpdateItemCommand).rejects(conditionFailed());
    const lost = vi.fn();
    lease.on('lost', lost);

    // Act
    const result = lease.drain();

    // Assess
    await expect(result).rejects.toBeInstanceOf(LeaseLostError);
    expect(lost).toHaveBeenCalledTimes(1);
    expect(lease.phase).toBe('lost');
  });

  it('release deletes conditionally on the token, stops renewing and is idempotent', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const token = lease.leaseToken!;
    const released = vi.fn();
    lease.on('released', released);

    // Act
    const [first, second] = await Promise.all([lease.release(), lease.release()]);
    const third = await lease.release();
    await vi.advanceTimersByTimeAsync(60_000);

    // Assess
    expect(ddb).toHaveReceivedCommandExactlyOnceWith(DeleteItemCommand, {
      TableName: TABLE,
      Key: { target: { S: '10.0.3.17:8080' } },
      ConditionExpression: '#leaseToken = :mine',
      ExpressionAttributeNames: { '#leaseToken': 'leaseToken' },
      ExpressionAttributeValues: { ':mine': { S: token } },
    });
    expect([first, second, third]).toEqual([true, true, true]);
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 0);
    expect(released).toHaveBeenCalledExactlyOnceWith({ target: '10.0.3.17:8080', deleted: true });
    expect(lease.state).toMatchObject({ phase: 'released', held: false });
    expect(lease.leaseToken).toBeUndefined();
  });

  it('release resolves false when the lease was no longer ours', async () => {
    // Prepare
    ddb.on(DeleteItemCommand).rejects(conditionFailed());
    const lease = newLease();
    await lease.acquire();

    // Act
    const deleted = await lease.release();

    // Assess
    expect(deleted).toBe(false);
  });

  it('release of a lease never acquired sends nothing', async () => {
    // Prepare
    const lease = newLease();

    // Act
    const deleted = await lease.release();

    // Assess
    expect(deleted).toBe(false);
    expect(ddb.calls()).toHaveLength(0);
  });

  it('a failed release can be retried; acquire after release uses a new token', async () => {
    // Prepare
    ddb.on(DeleteItemCommand).rejectsOnce(new InternalServerError({ message: 'boom', $metadata: {} })).resolves({});
    const lease = newLease();
    await lease.acquire();
    const firstToken = lease.leaseToken;

    // Act
    await expect(lease.release()).rejects.toBeInstanceOf(LeaseStoreError);
    const retried = await lease.release();
    await lease.acquire();

    // Assess
    expect(retried).toBe(true);
    expect(ddb).toHaveReceivedCommandTimes(DeleteItemCommand, 2);
    expect(lease.leaseToken).not.toBe(firstToken);
    expect(lease.held).toBe(true);
    await lease.release();
  });
});

describe('AgentLease call ordering', () => {
  it('runs release, acquire, release called back to back in order, ending released', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();

    // Act
    const results = await Promise.all([lease.release(), lease.acquire(), lease.release()]);

    // Assess
    expect(results[0]).toBe(true);
    expect(results[2]).toBe(true);
    expect(ddb.calls().map((c) => c.args[0].constructor.name)).toEqual(['PutItemCommand', 'DeleteItemCommand', 'PutItemCommand', 'DeleteItemCommand']);
    expect(lease.phase).toBe('released');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(ddb).toHaveReceivedCommandTimes(UpdateItemCommand, 0);
  });
});

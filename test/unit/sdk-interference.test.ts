/**
 * Another agent holding the agent grant writes a lease it does not hold: a drain without the
 * token, a rewrite of its capabilities, a takeover, a forged `rotation`. The holder reads the
 * stored item back with every renewal (`ALL_NEW`) and puts its own lease back, or reports the
 * lease lost; a malformed or future-dated `rotation` never crashes it or pins its state.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentLease, AgentLeaseOptions, InterferenceInfo, LeaseLostError } from '../../lib/sdk';
import { describeGroups, servingProgress } from '../../lib/sdk/rotation-progress';
import { SdkLeaseTable, testClient } from '../support/sdk-lease-table';
import '../support/lease-fixtures';

const NOW_MS = 1_800_000_000_000;
const ddb = mockClient(DynamoDBClient);
let table: SdkLeaseTable;

function newLease(patch: Partial<AgentLeaseOptions> = {}): AgentLease {
  return new AgentLease({
    tableName: 'leases',
    address: '10.0.3.17',
    port: 8080,
    capabilities: ['vision'],
    agentId: 'agent-1',
    ttl: 30,
    client: testClient(),
    random: () => 0.5,
    ...patch,
  });
}

beforeEach(() => {
  ddb.reset();
  table = new SdkLeaseTable(ddb);
  vi.useFakeTimers({ now: NOW_MS });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('someone else writes our lease', () => {
  it('a drain without our token is seen at the next heartbeat, reported, and undone with one conditional UpdateItem', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const seen: InterferenceInfo[] = [];
    lease.on('interference', (i) => seen.push(i));
    table.tamper({ status: { S: 'draining' }, agentId: { S: 'evil-agent' } });
    table.tamper({ agentId: { S: 'agent-1' } }); // only the status stays changed

    // Act: one heartbeat
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(seen).toEqual([{ target: '10.0.3.17:8080', fields: ['status'], restored: true }]);
    expect(table.item?.status).toEqual({ S: 'active' });
    expect(table.log).toEqual(['put', 'renew', 'active']);
    expect(lease.status).toBe('active');
    expect(lease.held).toBe(true);
    await lease.release();
  });

  it('our own drain racing a heartbeat is not taken for someone else’s', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const seen: InterferenceInfo[] = [];
    lease.on('interference', (i) => seen.push(i));

    // Act
    await lease.drain();
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(seen).toEqual([]);
    expect(table.item?.status).toEqual({ S: 'draining' });
    await lease.release();
  });

  it('rewritten capabilities, port or agentId: the whole lease is put back with our token, and the event names what changed', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    const seen: InterferenceInfo[] = [];
    lease.on('interference', (i) => seen.push(i));
    table.tamper({ capabilities: { SS: ['vision', 'admin'] }, agentId: { S: 'evil-agent' } });

    // Act
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(seen).toEqual([{ target: '10.0.3.17:8080', fields: ['capabilities', 'agentId'], restored: true, storedAgentId: '"evil-agent"' }]);
    expect(table.item?.capabilities).toEqual({ SS: ['vision'] });
    expect(table.item?.agentId).toEqual({ S: 'agent-1' });
    expect(table.item?.leaseToken).toEqual({ S: lease.leaseToken });
    expect(table.log).toEqual(['put', 'renew', 'put']);
    await lease.release();
  });

  it('a takeover is reported as lost, naming the holder the item now carries', async () => {
    // Prepare
    const lease = newLease({ reacquire: false });
    await lease.acquire();
    const lost: LeaseLostError[] = [];
    lease.on('lost', (e) => lost.push(e));
    table.takeOver(undefined, 'evil\u001b]0;pwned\u0007agent');

    // Act
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(lost).toHaveLength(1);
    expect(lost[0].message).toBe('lease for 10.0.3.17:8080 lost: taken over by another holder (agentId "evil\\u001b]0;pwned\\u0007agent")');
    expect(lease.phase).toBe('lost');
  });
});

describe('a forged or malformed rotation', () => {
  it.each([
    ['a since no date can hold', { M: { vision: { M: { state: { S: 'absent' }, since: { N: '9007199254740991' } } } } }],
    ['a since in 2100', { M: { vision: { M: { state: { S: 'healthy' }, since: { N: String(Date.UTC(2100, 0, 1)) } } } } }],
    ['an unknown state', { M: { vision: { M: { state: { S: 'pwned' }, since: { N: String(NOW_MS) } } } } }],
    ['not a map at all', { S: 'healthy' }],
    ['a list', { L: [{ S: 'x' }] }],
  ])('%s: ignored (unknown), no crash, not serving', async (_name, rotation) => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    table.tamper({ rotation: rotation as never });

    // Act
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(lease.rotation).toEqual({});
    expect(lease.isServing).toBe(false);
    expect(() => describeGroups(servingProgress(lease.rotation, lease.capabilities).groups, NOW_MS)).not.toThrow();
    await lease.release();
  });

  it('a future-dated entry never wins over the registry’s later, true one', async () => {
    // Prepare
    const lease = newLease();
    await lease.acquire();
    table.tamper({ rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: String(NOW_MS + 86_400_000) } } } } } });
    await vi.advanceTimersByTimeAsync(10_000);

    // Act: the registry overwrites it with what ELB says
    table.setRotation('vision', 'unhealthy', NOW_MS + 10_500);
    await vi.advanceTimersByTimeAsync(10_000);

    // Assess
    expect(lease.rotation).toEqual({ vision: { state: 'unhealthy', since: NOW_MS + 10_500 } });
    await lease.release();
  });

  it('describeGroups never throws, whatever since it is handed', () => {
    expect(describeGroups([{ capability: 'vision', state: 'healthy', since: 9007199254740991 }], NOW_MS)).toBe('vision healthy since an impossible date');
  });
});

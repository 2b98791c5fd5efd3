import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressPolicy,
  encodeLease,
  firstUnappliedRecord,
  Lease,
  LeaseChangeRecord,
  planStreamBatch,
  RawItem,
  replayChangesToSend,
  RoutingConfig,
  TargetRef,
} from '../../lib/core';

const policy = new AddressPolicy();
const routing: RoutingConfig = {
  allowedCidrs: ['10.0.0.0/8'],
  capabilities: {
    vision: { targetGroupArn: 'tg/vision', targetType: 'ip' },
    speech: { targetGroupArn: 'tg/speech', targetType: 'ip' },
    ec2: { targetGroupArn: 'tg/ec2', targetType: 'instance' },
  },
};
const T = 1_800_000_000;

function lease(n: number, patch: Partial<Lease> = {}): RawItem {
  const address = `10.0.0.${n}`;
  return encodeLease({
    target: `${address}:80`,
    address,
    port: 80,
    capabilities: ['vision'],
    expiresAt: T + 30,
    leaseToken: 't',
    agentId: `a${n}`,
    status: 'active',
    renewedAt: T * 1000,
    registeredAt: T * 1000,
    ...patch,
  });
}

let seq = 0;
const rec = (oldImage?: RawItem, newImage?: RawItem, extra: Partial<LeaseChangeRecord> = {}): LeaseChangeRecord => ({
  id: String(++seq),
  writtenAtSeconds: T,
  ...(oldImage ? { oldImage } : {}),
  ...(newImage ? { newImage } : {}),
  ...extra,
});

/** A group's plan; `replay` (only when there is any) lists its replay-only changes, `+` a registration, `-` a deregistration. */
const summary = (records: LeaseChangeRecord[]) =>
  Object.fromEntries(
    planStreamBatch(records, policy, routing).groups.map((g) => {
      const replay = [...g.ifReplayed.register.map((t) => `+${t.key}`), ...g.ifReplayed.deregister.map((t) => `-${t.key}`)];
      return [g.targetGroupArn, { reg: g.register.map((t) => t.key), dereg: g.deregister.map((t) => t.key), ...(replay.length > 0 ? { replay } : {}) }];
    }),
  );

describe('planStreamBatch', () => {
  it.each<[string, LeaseChangeRecord[], Record<string, { reg: string[]; dereg: string[]; replay?: string[] }>]>([
    ['new lease registers in its group', [rec(undefined, lease(1))], { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } }],
    ['heartbeat changes nothing', [rec(lease(1), lease(1, { expiresAt: T + 60, renewedAt: T * 1000 + 5 }))], {}],
    ['release deregisters', [rec(lease(1), undefined)], { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } }],
    ['drain deregisters', [rec(lease(1), lease(1, { status: 'draining' }))], { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } }],
    ['re-activate registers', [rec(lease(1, { status: 'draining' }), lease(1))], { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } }],
    [
      'register then release in one batch: nothing to send unless it is a retry whose first delivery registered the target',
      [rec(undefined, lease(1)), rec(lease(1), undefined)],
      { 'tg/vision': { reg: [], dereg: [], replay: ['-10.0.0.1:80'] } },
    ],
    [
      'capability moves between groups',
      [rec(lease(1), lease(1, { capabilities: ['speech'] }))],
      { 'tg/speech': { reg: ['10.0.0.1:80'], dereg: [] }, 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } },
    ],
    [
      'several capabilities land in each group',
      [rec(undefined, lease(1, { capabilities: ['speech', 'vision'] }))],
      { 'tg/speech': { reg: ['10.0.0.1:80'], dereg: [] }, 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } },
    ],
    ['unknown capability is ignored, known one routes', [rec(undefined, lease(1, { capabilities: ['nope', 'vision'] }))], { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } }],
    ['lease already expired when written does not register', [rec(undefined, lease(1, { expiresAt: T - 1 }))], {}],
    [
      'an overwrite of a lease that expired since it was written takes out what it may have left in a group',
      [rec(lease(1, { expiresAt: T - 1, capabilities: ['speech'] }), lease(1, { expiresAt: T - 10, capabilities: ['nope'] }))],
      { 'tg/speech': { reg: [], dereg: ['10.0.0.1:80'] } },
    ],
    [
      'a release of an expired lease, then a live lease for the same target, in one batch: registered',
      [rec(lease(1, { expiresAt: T - 1 }), undefined), rec(undefined, lease(1), { writtenAtSeconds: T + 1 })],
      { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } },
    ],
    ['renewal of an expired lease registers again', [rec(lease(1, { expiresAt: T - 1 }), lease(1, { expiresAt: T + 30 }))], { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } }],
    ['an invalid overwrite of a valid lease removes the target', [rec(lease(1), { ...lease(1), port: { S: '80' } })], { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } }],
    ['public address is never registered', [rec(undefined, lease(1, { address: '8.8.8.8', target: '8.8.8.8:80' }))], {}],
    [
      'instance id routes only to the instance capability',
      [rec(undefined, lease(1, { address: 'i-0123456789abcdef0', target: 'i-0123456789abcdef0:80', capabilities: ['ec2', 'vision'] }))],
      { 'tg/ec2': { reg: ['i-0123456789abcdef0:80'], dereg: [] } },
    ],
  ])('%s', (_name, records, expected) => {
    expect(summary(records)).toEqual(expected);
  });

  it.each<[string, LeaseChangeRecord[], Record<string, { reg: string[]; dereg: string[] }>]>([
    ['a renewal that lets the lease lapse takes it out', [rec(lease(1), lease(1, { expiresAt: T - 1 }))], { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } }],
    [
      'two heartbeats, the second after the expiry and renewing to a past one (each record judged at its own time): out',
      [rec(lease(1, { expiresAt: T + 5 }), lease(1, { expiresAt: T + 5, renewedAt: T * 1000 + 1 })), rec(lease(1, { expiresAt: T + 5, renewedAt: T * 1000 + 1 }), lease(1, { expiresAt: T + 8 }), { writtenAtSeconds: T + 9 })],
      { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } },
    ],
    ['a heartbeat writing a malformed expiry takes the target out', [rec(lease(1), { ...lease(1), expiresAt: { N: '1.5' } })], { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } }],
    ['a heartbeat mending a malformed expiry puts it in', [rec({ ...lease(1), renewedAt: { S: 'x' } }, lease(1))], { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } }],
    ['a registry write (rotation only) changes nothing', [rec(lease(1), { ...lease(1), rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: String(T * 1000) } } } } } })], {}],
    [
      'a heartbeat to a past expiry of a lease that had already expired (it was registered while live): out',
      [rec(lease(1, { expiresAt: T - 2 }), lease(1, { expiresAt: T - 1 }))],
      { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } },
    ],
    [
      'a registry write after the lease expired judges nothing again (reconcile takes it out)',
      [rec(lease(1, { expiresAt: T - 1 }), { ...lease(1, { expiresAt: T - 1 }), rotation: { M: {} } })],
      {},
    ],
    [
      'a renewal followed by a registry write after its expiry: the renewal registers',
      [
        rec(lease(1, { expiresAt: T - 10 }), lease(1, { expiresAt: T + 1 })),
        rec(lease(1, { expiresAt: T + 1 }), { ...lease(1, { expiresAt: T + 1 }), rotation: { M: {} } }, { writtenAtSeconds: T + 1 }),
      ],
      { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } },
    ],
  ])('records that change only non-routing attributes: %s', (_name, records, expected) => {
    expect(summary(records)).toEqual(expected);
  });

  it('a heartbeat or a registry write of a lease with a rejected capability reports nothing again (the write that made it did)', () => {
    const made = lease(1, { capabilities: ['nope', 'vision'] });
    const plan = planStreamBatch(
      [rec(made, lease(1, { capabilities: ['nope', 'vision'], expiresAt: T + 60 })), rec(made, { ...made, rotation: { M: {} } })],
      policy,
      routing,
    );
    expect(plan.kinds).toEqual(['heartbeat', 'registry']);
    expect(plan.rejections).toEqual([]);
  });

  it('classifies records for metrics: heartbeat, registration, release, TTL deletion', () => {
    const plan = planStreamBatch(
      [
        rec(undefined, lease(1)),
        rec(lease(2), lease(2, { expiresAt: T + 90 })),
        rec(lease(3), undefined),
        rec(lease(4), undefined, { removedByTtl: true }),
      ],
      policy,
      routing,
    );
    expect(plan.kinds).toEqual(['registration', 'heartbeat', 'release', 'ttl-deletion']);
  });

  it('reports rejections of new images with the target and the reason', () => {
    const plan = planStreamBatch([rec(undefined, lease(1, { capabilities: ['nope', 'vision'] }))], policy, routing);
    expect(plan.rejections).toEqual([expect.objectContaining({ reason: 'UNKNOWN_CAPABILITY', target: '10.0.0.1:80', capability: 'nope' })]);
  });

  it('points a retry at the first record of the earliest failed target', () => {
    const records = [rec(undefined, lease(1)), rec(undefined, lease(2)), rec(lease(1), lease(1, { status: 'draining' })), rec(undefined, lease(3))];
    const plan = planStreamBatch(records, policy, routing);
    expect(firstUnappliedRecord(plan, ['10.0.0.3:80'])).toBe(3);
    expect(firstUnappliedRecord(plan, ['10.0.0.3:80', '10.0.0.2:80'])).toBe(1);
    expect(firstUnappliedRecord(plan, [])).toBeUndefined();
  });

  it('gives the same plan when a batch is replayed', () => {
    const records = [rec(undefined, lease(1)), rec(lease(2), undefined), rec(undefined, lease(3, { capabilities: ['speech'] }))];
    expect(planStreamBatch(records, policy, routing)).toEqual(planStreamBatch(records, policy, routing));
  });
});

// ---- property: edge-triggered plans keep the groups equal to the live set ----

type Op =
  | { kind: 'put'; n: number; caps: string[]; status: 'active' | 'draining'; ttl: number; invalid: boolean }
  | { kind: 'heartbeat'; n: number; ttl: number; malformed: boolean }
  | { kind: 'rotation'; n: number }
  | { kind: 'delete'; n: number; ttlSweep: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('put' as const),
    n: fc.integer({ min: 1, max: 6 }),
    caps: fc.subarray(['vision', 'speech', 'ec2', 'nope'], { minLength: 1 }),
    status: fc.constantFrom('active' as const, 'draining' as const),
    ttl: fc.constantFrom(-10, 30),
    invalid: fc.boolean(),
  }),
  // Heartbeats that renew, that let the lease lapse (a renewal to a past expiry), or that write a malformed expiry.
  fc.record({ kind: fc.constant('heartbeat' as const), n: fc.integer({ min: 1, max: 6 }), ttl: fc.constantFrom(30, 30, 1, -3), malformed: fc.boolean() }),
  // The registry's own write: only `rotation` changes.
  fc.record({ kind: fc.constant('rotation' as const), n: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('delete' as const), n: fc.integer({ min: 1, max: 6 }), ttlSweep: fc.boolean() }),
);

/** Desired membership by the contract's rule, judged at each lease's last write by its agent (not the registry's). */
function desiredOf(table: Map<number, { item: RawItem; at: number }>): Set<string> {
  const out = new Set<string>();
  for (const { item, at } of table.values()) {
    const plan = planStreamBatch([{ id: 'x', newImage: item, writtenAtSeconds: at }], policy, routing);
    for (const g of plan.groups) for (const t of g.register) out.add(`${g.targetGroupArn}|${t.key}`);
  }
  return out;
}

describe('planStreamBatch: a batch delivered again with the records written since (a retry after a partial failure)', () => {
  it.each<[string, LeaseChangeRecord[], Record<string, { reg: string[]; dereg: string[]; replay?: string[] }>]>([
    [
      'release, then a re-acquire of the same target: its first delivery may have deregistered it',
      [rec(lease(1), undefined), rec(undefined, lease(1))],
      { 'tg/vision': { reg: [], dereg: [], replay: ['+10.0.0.1:80'] } },
    ],
    [
      'drain, then re-activate: its first delivery may have deregistered it',
      [rec(lease(1), lease(1, { status: 'draining' })), rec(lease(1, { status: 'draining' }), lease(1))],
      { 'tg/vision': { reg: [], dereg: [], replay: ['+10.0.0.1:80'] } },
    ],
    [
      'a capability moved away and back: back in the first group, out of the second',
      [rec(lease(1), lease(1, { capabilities: ['speech'] })), rec(lease(1, { capabilities: ['speech'] }), lease(1))],
      { 'tg/vision': { reg: [], dereg: [], replay: ['+10.0.0.1:80'] }, 'tg/speech': { reg: [], dereg: [], replay: ['-10.0.0.1:80'] } },
    ],
    [
      'a new lease whose capability changed: registered in the new group, out of the one it first named',
      [rec(undefined, lease(1)), rec(lease(1), lease(1, { capabilities: ['speech'] }))],
      { 'tg/speech': { reg: ['10.0.0.1:80'], dereg: [] }, 'tg/vision': { reg: [], dereg: [], replay: ['-10.0.0.1:80'] } },
    ],
    ['a new lease, then its heartbeats: only the registration', [rec(undefined, lease(1)), rec(lease(1), lease(1, { expiresAt: T + 60 })), rec(lease(1, { expiresAt: T + 60 }), lease(1, { expiresAt: T + 90 }))], { 'tg/vision': { reg: ['10.0.0.1:80'], dereg: [] } }],
    ['a release after heartbeats: only the deregistration', [rec(lease(1), lease(1, { expiresAt: T + 60 })), rec(lease(1, { expiresAt: T + 60 }), undefined)], { 'tg/vision': { reg: [], dereg: ['10.0.0.1:80'] } }],
    ['a lease that stays out throughout: nothing', [rec(undefined, lease(1, { status: 'draining' })), rec(lease(1, { status: 'draining' }), undefined)], {}],
  ])('%s', (_name, records, expected) => {
    expect(summary(records)).toEqual(expected);
  });

  it('replays from the first record of a key whose only change is replay-only', () => {
    const records = [rec(undefined, lease(2)), rec(undefined, lease(1)), rec(lease(1), undefined)];
    const plan = planStreamBatch(records, policy, routing);
    expect(firstUnappliedRecord(plan, ['10.0.0.1:80'])).toBe(1);
  });
});

describe('replayChangesToSend', () => {
  const a: TargetRef = { id: '10.0.0.1', port: 80, key: '10.0.0.1:80' };
  const b: TargetRef = { id: '10.0.0.2', port: 80, key: '10.0.0.2:80' };
  it.each<[string, 'register' | 'deregister', number, TargetRef[], ReadonlySet<string> | undefined, string[]]>([
    ['riding a deregistration the group makes anyway: all', 'deregister', 3, [a, b], new Set(), ['10.0.0.1:80', '10.0.0.2:80']],
    ['riding a registration the group makes anyway: all', 'register', 1, [a, b], new Set(['10.0.0.1:80', '10.0.0.2:80']), ['10.0.0.1:80', '10.0.0.2:80']],
    ['alone, deregistrations of targets the group holds', 'deregister', 0, [a, b], new Set(['10.0.0.2:80']), ['10.0.0.2:80']],
    ['alone, registrations of targets the group lacks', 'register', 0, [a, b], new Set(['10.0.0.2:80']), ['10.0.0.1:80']],
    ['alone, and the group agrees: none', 'deregister', 0, [a], new Set(), []],
    ['alone, and the group could not be read: all', 'register', 0, [a, b], undefined, ['10.0.0.1:80', '10.0.0.2:80']],
  ])('%s', (_name, action, planned, replayOnly, registered, expected) => {
    expect(replayChangesToSend(action, planned, replayOnly, registered).map((t) => t.key)).toEqual(expected);
  });
});

/** The stream records `ops` write, and the table they leave. */
function writes(ops: readonly Op[]): { records: LeaseChangeRecord[]; table: Map<number, { item: RawItem; at: number }> } {
  const table = new Map<number, { item: RawItem; at: number }>();
  const records: LeaseChangeRecord[] = [];
  let now = T;
  for (const op of ops) {
    now += 1;
    const before = table.get(op.n)?.item;
    let after: RawItem | undefined;
    if (op.kind === 'put') {
      // Slots 5 and 6 hold instance targets, so the instance-type capability and type mismatches are exercised.
      const address = op.n >= 5 ? `i-0000000${op.n}` : `10.0.0.${op.n}`;
      after = lease(op.n, { address, target: `${address}:80`, capabilities: op.caps, status: op.status, expiresAt: now + op.ttl });
      if (op.invalid) after = { ...after, port: { N: '0' } };
    } else if (op.kind === 'heartbeat') {
      if (!before) continue;
      after = { ...before, expiresAt: op.malformed && op.ttl === 1 ? { S: String(now + 30) } : { N: String(now + op.ttl) }, renewedAt: { N: String(now * 1000) } };
    } else if (op.kind === 'rotation') {
      if (!before) continue;
      after = { ...before, rotation: { M: { vision: { M: { state: { S: 'healthy' }, since: { N: String(now * 1000) } } } } } };
    }
    if (!before && !after) continue;
    const keyItem = (after ?? before)!;
    records.push({
      id: String(records.length),
      key: keyItem.target.S,
      writtenAtSeconds: now,
      ...(before ? { oldImage: before } : {}),
      ...(after ? { newImage: after } : {}),
      ...(op.kind === 'delete' && op.ttlSweep ? { removedByTtl: true } : {}),
    });
    // The registry's own write judges nothing again: a lease that expired before it is
    // reconcile's to take out, as one that expired with no record at all.
    if (after) table.set(op.n, { item: after, at: op.kind === 'rotation' ? table.get(op.n)!.at : now });
    else table.delete(op.n);
  }
  return { records, table };
}

describe('planStreamBatch property', () => {
  it('for any sequence of writes and deletes, applying the plans batch by batch yields exactly the live set', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }), (ops, cuts) => {
        const { records, table } = writes(ops);
        const groups = new Set<string>();
        let i = 0;
        for (const size of [...cuts, records.length]) {
          const batch = records.slice(i, i + size);
          i += size;
          for (const g of planStreamBatch(batch, policy, routing).groups) {
            for (const t of g.deregister) groups.delete(`${g.targetGroupArn}|${t.key}`);
            for (const t of g.register) groups.add(`${g.targetGroupArn}|${t.key}`);
          }
          if (i >= records.length) break;
        }
        expect([...groups].sort()).toEqual([...desiredOf(table)].sort());
      }),
      { numRuns: 500 },
    );
  });
});

describe('planStreamBatch property: retries', () => {
  it('for any sequence of writes, delivered in batches that partly fail and come back with the records written since, the groups end exactly the live set', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 40 }),
        fc.array(fc.record({ size: fc.integer({ min: 1, max: 8 }), failed: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }) }), { minLength: 1, maxLength: 12 }),
        (ops, deliveries) => {
          const { records, table } = writes(ops);
          const groups = new Set<string>();
          const registered = (arn: string) => new Set([...groups].filter((m) => m.startsWith(`${arn}|`)).map((m) => m.slice(arn.length + 1)));
          let start = 0;
          // Each delivery starts at the first unapplied record and reaches as far as its size: a retry carries the records written since.
          for (let d = 0; start < records.length; d++) {
            const { size, failed: failedSlots } = deliveries[d % deliveries.length];
            const batch = records.slice(start, start + size);
            const plan = planStreamBatch(batch, policy, routing);
            // After the given deliveries, every change lands (the stream drains).
            const fails = (key: string) => d < deliveries.length && failedSlots[Number(/(\d+)(?::80)?$/.exec(key.replace(/^i-0+/, ''))![1]) % 6];
            const failed = new Set<string>();
            for (const g of plan.groups) {
              const ok = (t: TargetRef) => (fails(t.key) ? (failed.add(t.key), false) : true);
              const register = [...g.register.filter(ok), ...replayChangesToSend('register', g.register.length, g.ifReplayed.register, registered(g.targetGroupArn)).filter(ok)];
              const deregister = [...g.deregister.filter(ok), ...replayChangesToSend('deregister', g.deregister.length, g.ifReplayed.deregister, registered(g.targetGroupArn)).filter(ok)];
              for (const t of register) groups.add(`${g.targetGroupArn}|${t.key}`);
              for (const t of deregister) groups.delete(`${g.targetGroupArn}|${t.key}`);
            }
            const first = firstUnappliedRecord(plan, failed);
            start += first ?? batch.length;
          }
          expect([...groups].sort()).toEqual([...desiredOf(table)].sort());
        },
      ),
      { numRuns: 1000 },
    );
  });
});

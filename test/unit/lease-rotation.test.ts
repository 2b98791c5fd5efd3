/**
 * The `rotation` attribute in the lease contract: decoded when well-formed, dropped entry by
 * entry when not, never a reason to refuse a lease, never written by agents, never a routing
 * change. Plus the pure rules the SDK waits on (serving, out of rotation).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddressPolicy,
  decodeLease,
  decodeRotation,
  encodeLease,
  encodeRotationEntry,
  Lease,
  LeaseRotation,
  planStreamBatch,
  RawAttributeValue,
  RawItem,
  RoutingConfig,
} from '../../lib/core';
import { describeGroups, outOfRotationProgress, servingProgress } from '../../lib/sdk';

const T_MS = 1_800_000_000_000;
const policy = new AddressPolicy();
const routing: RoutingConfig = { allowedCidrs: ['10.0.0.0/8'], capabilities: { vision: { targetGroupArn: 'tg/vision', targetType: 'ip' } } };
const lease: Lease = {
  target: '10.0.1.5:8080',
  address: '10.0.1.5',
  port: 8080,
  capabilities: ['speech', 'vision'],
  expiresAt: T_MS / 1000 + 30,
  leaseToken: 'tok-1',
  agentId: 'agent-1',
  status: 'active',
  renewedAt: T_MS,
  registeredAt: T_MS,
};
const entry = (state: string, since: number | string = T_MS): RawAttributeValue => ({ M: { state: { S: state }, since: { N: String(since) } } });
const withRotation = (rotation: unknown): RawItem => ({ ...encodeLease(lease), rotation } as RawItem);

describe('decodeRotation', () => {
  it.each<[string, unknown, object | undefined, string[]]>([
    ['absent', undefined, undefined, []],
    ['NULL', { NULL: true }, undefined, []],
    ['every state', { M: { vision: entry('healthy'), speech: entry('draining', T_MS + 1) } }, { vision: { state: 'healthy', since: T_MS }, speech: { state: 'draining', since: T_MS + 1 } }, []],
    ['extra keys in an entry (room for a reason code later)', { M: { vision: { M: { ...entry('unhealthy').M, reason: { S: 'Target.Timeout' } } } } }, { vision: { state: 'unhealthy', since: T_MS } }, []],
    ['not a map', { S: 'healthy' }, undefined, ['attribute "rotation" must be Map (M), got S']],
    ['an unknown state', { M: { vision: entry('on-fire'), speech: entry('absent') } }, { speech: { state: 'absent', since: T_MS } }, [
      'rotation entry "vision": state must be one of initial, healthy, unhealthy, draining, unused, unavailable, absent (S), got "on-fire"',
    ]],
    ['since in seconds', { M: { vision: entry('healthy', T_MS / 1000) } }, undefined, ['rotation entry "vision": since 1800000000 looks like epoch seconds; it takes epoch milliseconds']],
    ['since not a number', { M: { vision: entry('healthy', '0x10') } }, undefined, ['rotation entry "vision": since must be a whole number of epoch milliseconds (N), got "0x10"']],
    ['an entry that is not a map', { M: { vision: { S: 'healthy' } } }, undefined, ['rotation entry "vision": must be Map (M), got S']],
    ['a key that is no capability name', { M: { 'Vision!': entry('healthy') } }, undefined, ['rotation entry "Vision!": not a capability name (^[a-z0-9][a-z0-9_-]{0,62}$)']],
  ])('%s', (_name, raw, rotation, problems) => {
    expect(decodeRotation(raw)).toEqual({ ...(rotation ? { rotation } : {}), problems });
  });

  it('keeps a log line short however many entries are broken', () => {
    const many = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`c${i}`, { S: 'x' }]));
    expect(decodeRotation({ M: many }).problems).toHaveLength(6);
    expect(decodeRotation({ M: many }).problems.at(-1)).toBe('and 45 more');
  });

  it('round-trips what the registry writes', () => {
    const written = { M: { vision: encodeRotationEntry({ state: 'initial', since: T_MS + 0.7 }) } };
    expect(decodeRotation(written).rotation).toEqual({ vision: { state: 'initial', since: T_MS } });
  });

  it('"constructor" is a capability like any other', () => {
    const decoded = decodeRotation({ M: { constructor: entry('healthy') } }).rotation!;
    expect(Object.hasOwn(decoded, 'constructor')).toBe(true);
    expect(servingProgress({}, ['constructor']).pending).toEqual([{ capability: 'constructor', state: 'unreported' }]);
  });
});

describe('rotation in the lease', () => {
  it('a valid lease carries its well-formed rotation', () => {
    const out = decodeLease(withRotation({ M: { vision: entry('healthy') } }), policy);
    expect(out).toEqual({ ok: true, lease: { ...lease, rotation: { vision: { state: 'healthy', since: T_MS } } } });
  });

  it('agents never write it: encodeLease leaves it out', () => {
    expect(encodeLease({ ...lease, rotation: { vision: { state: 'healthy', since: T_MS } } })).not.toHaveProperty('rotation');
  });

  it('whatever the rotation attribute holds, it never changes whether a lease is valid', () => {
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withNullPrototype: true }), (junk) => {
        const out = decodeLease(withRotation(junk), policy);
        expect(out.ok).toBe(true);
      }),
    );
  });

  it('a change of rotation alone is not a routing change: no register, no deregister', () => {
    const before = withRotation({ M: { vision: entry('initial') } });
    const after = withRotation({ M: { vision: entry('healthy', T_MS + 5_000) } });
    const plan = planStreamBatch([{ id: '1', oldImage: before, newImage: after, writtenAtSeconds: T_MS / 1000 }], policy, routing);
    expect(plan.groups).toEqual([]);
    expect(plan.kinds).toEqual(['registry']);
  });

  it('a malformed rotation does not keep a new lease out of its group', () => {
    const plan = planStreamBatch([{ id: '1', newImage: withRotation({ S: 'garbage' }), writtenAtSeconds: T_MS / 1000 }], policy, routing);
    expect(plan.groups.map((g) => [g.targetGroupArn, g.register.map((t) => t.key)])).toEqual([['tg/vision', ['10.0.1.5:8080']]]);
    expect(plan.rejections.filter((r) => r.reason !== 'UNKNOWN_CAPABILITY')).toEqual([]);
  });
});

describe('servingProgress / outOfRotationProgress', () => {
  const rotation = { vision: { state: 'healthy', since: T_MS }, speech: { state: 'draining', since: T_MS + 2_000 } } as const;

  it.each<[string, LeaseRotation, readonly string[], boolean, string[]]>([
    ['healthy everywhere', { vision: rotation.vision }, ['vision'], true, []],
    ['one group draining', rotation, ['speech', 'vision'], false, ['speech']],
    ['a group never reported', { vision: rotation.vision }, ['speech', 'vision'], false, ['speech']],
  ])('serving: %s', (_name, r, capabilities, done, pending) => {
    const progress = servingProgress(r, capabilities);
    expect(progress.done).toBe(done);
    expect(progress.pending.map((g) => g.capability)).toEqual(pending);
  });

  it.each<[string, string, number, boolean]>([
    ['draining after the drain', 'draining', T_MS + 1, true],
    ['absent after the drain', 'absent', T_MS + 1, true],
    ['unused (no longer registered) after the drain', 'unused', T_MS, true],
    ['draining from before the drain (stale)', 'draining', T_MS - 1, false],
    ['healthy', 'healthy', T_MS + 1, false],
    ['unhealthy (ALBs fail open: it may still get requests)', 'unhealthy', T_MS + 1, false],
    ['initial', 'initial', T_MS + 1, false],
    ['unavailable (health checks off: still routed)', 'unavailable', T_MS + 1, false],
  ])('out of rotation: %s', (_name, state, since, out) => {
    expect(outOfRotationProgress({ vision: { state: state as never, since } }, ['vision'], T_MS).done).toBe(out);
  });

  it('describes groups for a log line', () => {
    const groups = servingProgress(rotation, ['speech', 'vision', 'search']).groups;
    expect(describeGroups(groups, T_MS + 4_000)).toBe('speech draining for 2.0 s, vision healthy for 4.0 s, search unreported');
  });
});

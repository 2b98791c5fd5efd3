/**
 * fast-check generators of lease items as any writer could put them in the table: valid leases
 * and every kind of bad one the lease contract (docs/lease-contract.md) rules out. Each generated case says, by
 * construction and never by asking the codec, what must happen to it: the groups its target
 * belongs in, or the rejection reason it must produce. Shared by the pure and the real-server
 * fuzz tests.
 *
 * A case is built from a `slot` (unique within a test) so that keys never collide by accident:
 * two cases with the same key would make the expected outcome depend on their order.
 */
import fc from 'fast-check';
import type { LeaseRejectionReason } from '../../lib/core/errors';
import { MAX_LEASE_TOKEN_CHARS } from '../../lib/core/lease-schema';

export interface FuzzEnv {
  /** Capabilities whose target groups take IP targets. */
  readonly ipCapabilities: readonly string[];
  /** Capabilities whose target groups take instance targets. */
  readonly instanceCapabilities: readonly string[];
  /** fd00::/8 is among the allowed CIDRs. */
  readonly ipv6: boolean;
  /** Loopback addresses are allowed (local mode only). */
  readonly loopback: boolean;
  /**
   * Only items DynamoDB stores as written: the key is a non-empty string, sets are non-empty and
   * without duplicates, numbers are canonical decimals, no lone surrogates, items well under 400 KB.
   */
  readonly storable: boolean;
  /** "Now" in epoch seconds, as the consumer judges liveness: stream write time or reconcile clock. */
  readonly nowSeconds: number;
  /**
   * Where valid IPv4 leases live: the private ranges (a routing that names them), or loopback
   * (local mode, whose only addresses admitted without a network interface are its own).
   * @default 'private'
   */
  readonly validAddresses?: 'private' | 'loopback';
  /** Longest TTL a valid lease may have (the deployment's maximum). @default 86400 */
  readonly maxTtlSeconds?: number;
}

export interface ElbTargetShape {
  readonly Id: string;
  readonly Port: number;
  readonly AvailabilityZone?: string;
}

export interface LeaseCase {
  /** What the generator meant, for failure messages. */
  readonly label: string;
  readonly item: Record<string, unknown>;
  /** The lease key when the item has a readable one. */
  readonly key?: string;
  /** The ELB target the lease names (valid address and port only). */
  readonly target?: ElbTargetShape;
  /** Capabilities whose groups must hold `target`; empty for anything not routable. */
  readonly groups: readonly string[];
  /** A reason the item must be rejected with; undefined when nothing is wrong with it. */
  readonly reason?: LeaseRejectionReason;
}

export type CaseFactory = (slot: number) => LeaseCase;

/** Counterexamples print as the case's label rather than as function source. */
function named(label: string, factory: CaseFactory): CaseFactory {
  return Object.assign(factory, { [fc.toStringMethod]: () => label });
}

/** The key spelling of the contract, written independently of lib/core's formatTarget. */
export function keyOf(address: string, port: number | string): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A private IPv4 address unique to `slot` in one of the four default ranges. */
function ipv4For(slot: number, range: number): string {
  const [b2, b1, b0] = [(slot >> 16) & 255, (slot >> 8) & 255, slot & 255];
  switch (range) {
    case 1:
      return `172.${16 + (b2 & 15)}.${b1}.${b0}`;
    case 2:
      return `192.168.${b1}.${b0}`;
    case 3:
      return `100.${64 + (b2 & 63)}.${b1}.${b0}`;
    default:
      return `10.${b2}.${b1}.${b0}`;
  }
}

/** Addresses of invalid cases whose address is fine: 10.250/16 and up, never used by valid ones below slot 2^20. */
function spareIpv4(slot: number): string {
  return `10.${250 + ((slot >> 16) & 3)}.${(slot >> 8) & 255}.${slot & 255}`;
}

const instanceFor = (slot: number) => `i-${(slot + 1).toString(16).padStart(17, '0')}`;
const ipv6For = (slot: number) => `fd00::${(slot + 1).toString(16)}`;

// ------------------------------------------------------------------ strings

/** Free-form text (agentId, leaseToken): any code point, control characters included, up to the contract's length caps. */
function freeText(env: FuzzEnv): fc.Arbitrary<string> {
  const plain = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
  const tricky = fc.constantFrom('\u0000', '\n{"level":"ERROR","message":"forged"}', '\u001b[2J\u001b[31mred', 'agent\u202eevil', '🦊'.repeat(10), 'x'.repeat(MAX_LEASE_TOKEN_CHARS));
  const lone = fc.constantFrom('\ud800', 'a\udfffb');
  return env.storable ? fc.oneof({ weight: 4, arbitrary: plain }, { weight: 1, arbitrary: tricky }) : fc.oneof({ weight: 4, arbitrary: plain }, { weight: 1, arbitrary: tricky }, { weight: 1, arbitrary: lone });
}

/** A small metadata map (≤ 2 KiB as JSON), with unicode keys and values. */
const smallMetadata = fc
  .dictionary(fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 24 }), { maxKeys: 4 })
  .map((d) => Object.fromEntries(Object.entries(d).map(([k, v]) => [k, { S: v }])));

// ------------------------------------------------------------------ valid leases

interface Base {
  address: string;
  port: number;
  capabilities: string[];
  expiresAt: number;
  status: string;
  agentId: string;
  leaseToken: string;
  availabilityZone?: string;
  metadata?: Record<string, unknown>;
}

function itemOf(b: Base): Record<string, unknown> {
  return {
    target: { S: keyOf(b.address, b.port) },
    address: { S: b.address },
    port: { N: String(b.port) },
    capabilities: { SS: b.capabilities },
    expiresAt: { N: String(b.expiresAt) },
    leaseToken: { S: b.leaseToken },
    agentId: { S: b.agentId },
    status: { S: b.status },
    renewedAt: { N: String(b.expiresAt * 1000 - 20_000) },
    registeredAt: { N: String(b.expiresAt * 1000 - 60_000) },
    ...(b.availabilityZone === undefined ? {} : { availabilityZone: { S: b.availabilityZone } }),
    ...(b.metadata === undefined ? {} : { metadata: { M: b.metadata } }),
  };
}

function nonEmptySubset(names: readonly string[]): fc.Arbitrary<string[]> {
  return fc.subarray([...names], { minLength: 1 });
}

interface BaseShape {
  kind: 'ipv4' | 'ipv6' | 'instance';
  range: number;
  port: number;
  capabilities: string[];
  ttl: number;
  agentId: string;
  leaseToken: string;
  availabilityZone?: string;
  metadata?: Record<string, unknown>;
}

function baseShape(env: FuzzEnv): fc.Arbitrary<BaseShape> {
  const kinds: BaseShape['kind'][] = ['ipv4'];
  if (env.ipv6) kinds.push('ipv6');
  if (env.instanceCapabilities.length > 0) kinds.push('instance');
  return fc.constantFrom(...kinds).chain((kind) =>
    fc.record(
      {
        kind: fc.constant(kind),
        range: fc.integer({ min: 0, max: 3 }),
        port: fc.integer({ min: 1, max: 65535 }),
        capabilities: nonEmptySubset(kind === 'instance' ? env.instanceCapabilities : env.ipCapabilities),
        ttl: fc.integer({ min: 60, max: env.maxTtlSeconds ?? 86_400 }),
        agentId: freeText(env),
        leaseToken: freeText(env),
        availabilityZone: fc.constantFrom('all', 'us-east-1a'),
        metadata: smallMetadata,
      },
      { requiredKeys: ['kind', 'range', 'port', 'capabilities', 'ttl', 'agentId', 'leaseToken'] },
    ),
  );
}

function baseFor(shape: BaseShape, slot: number, env: FuzzEnv): Base {
  const address =
    shape.kind === 'instance'
      ? instanceFor(slot)
      : shape.kind === 'ipv6'
        ? ipv6For(slot)
        : env.validAddresses === 'loopback'
          ? `127.${100 + ((slot >> 16) & 127)}.${(slot >> 8) & 255}.${slot & 255}`
          : ipv4For(slot, shape.range);
  return {
    address,
    port: shape.port,
    capabilities: shape.capabilities,
    expiresAt: env.nowSeconds + shape.ttl,
    status: 'active',
    agentId: shape.agentId,
    leaseToken: shape.leaseToken,
    ...(shape.availabilityZone === undefined ? {} : { availabilityZone: shape.availabilityZone }),
    ...(shape.metadata === undefined ? {} : { metadata: shape.metadata }),
  };
}

function targetOf(b: Base): ElbTargetShape {
  return { Id: b.address, Port: b.port, ...(b.availabilityZone ? { AvailabilityZone: b.availabilityZone } : {}) };
}

/** A live, valid lease: its target belongs in every group it names. */
export function validLease(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  return baseShape(env).map((shape) =>
    named(`valid ${shape.kind} ${JSON.stringify(shape.capabilities)}`, (slot) => {
      const b = baseFor(shape, slot, env);
      return { label: `valid ${shape.kind}`, item: itemOf(b), key: keyOf(b.address, b.port), target: targetOf(b), groups: b.capabilities };
    }),
  );
}

/** A valid lease that also names capabilities nobody routes: it still routes where it can, and the unknown ones are reported. */
export function partlyRoutableLease(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  return fc.tuple(baseShape(env), fc.constantFrom('unknowncap', 'constructor', 'gpu-2', 'x'.repeat(63))).map(([shape, unknown]) =>
    named(`partly routable ${shape.kind} (+${unknown})`, (slot) => {
      const b = baseFor(shape, slot, env);
      const item = itemOf({ ...b, capabilities: [...b.capabilities, unknown] });
      return { label: `partly routable (+${unknown})`, item, key: keyOf(b.address, b.port), target: targetOf(b), groups: b.capabilities, reason: 'UNKNOWN_CAPABILITY' };
    }),
  );
}

/** Valid but not live: draining, or expired before it was written. Never registered, never a rejection. */
export function notLiveLease(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  return fc.tuple(baseShape(env), fc.constantFrom('draining', 'expired')).map(([shape, how]) =>
    named(`not live (${how})`, (slot) => {
      const b = baseFor(shape, slot, env);
      const dead = how === 'draining' ? { ...b, status: 'draining' } : { ...b, expiresAt: env.nowSeconds - 3600 };
      return { label: `not live (${how})`, item: itemOf(dead), key: keyOf(b.address, b.port), target: targetOf(b), groups: [] };
    }),
  );
}

// ------------------------------------------------------------------ invalid leases

const REQUIRED = ['target', 'address', 'port', 'capabilities', 'expiresAt', 'leaseToken', 'agentId', 'status', 'renewedAt', 'registeredAt'] as const;
const EXPECTED_TYPE: Record<(typeof REQUIRED)[number], 'S' | 'N' | 'SS'> = {
  target: 'S',
  address: 'S',
  port: 'N',
  capabilities: 'SS',
  expiresAt: 'N',
  leaseToken: 'S',
  agentId: 'S',
  status: 'S',
  renewedAt: 'N',
  registeredAt: 'N',
};

/** Attribute values of every DynamoDB type, and shapes that are not attribute values at all. */
const WRONG_VALUES: { type: string; value: unknown; storable: boolean }[] = [
  { type: 'S', value: { S: '1800000030' }, storable: true },
  { type: 'S', value: { S: '' }, storable: true },
  { type: 'N', value: { N: '42' }, storable: true },
  { type: 'SS', value: { SS: ['vision'] }, storable: true },
  { type: 'NS', value: { NS: ['1', '2'] }, storable: true },
  { type: 'L', value: { L: [{ S: 'vision' }] }, storable: true },
  { type: 'M', value: { M: { S: { S: 'x' } } }, storable: true },
  { type: 'BOOL', value: { BOOL: true }, storable: true },
  { type: 'NULL', value: { NULL: true }, storable: true },
  { type: 'B', value: { B: new Uint8Array([1, 2, 3]) }, storable: true },
  { type: 'two', value: { S: 'a', N: '1' }, storable: false },
  { type: 'raw string', value: 'vision', storable: false },
  { type: 'raw number', value: 8080, storable: false },
  { type: 'null', value: null, storable: false },
  { type: 'array', value: [{ S: 'x' }], storable: false },
  { type: 'S holding a number', value: { S: 8080 }, storable: false },
  { type: 'SS holding numbers', value: { SS: [1, 2] }, storable: false },
];

/** An address that is fine: invalid cases that are about something else use it. */
function healthyBase(env: FuzzEnv, slot: number, port = 1 + (slot % 65535)): Base {
  return {
    address: env.validAddresses === 'loopback' ? `127.${230 + ((slot >> 16) & 15)}.${(slot >> 8) & 255}.${slot & 255}` : spareIpv4(slot),
    port,
    capabilities: [env.ipCapabilities[0]],
    expiresAt: env.nowSeconds + Math.min(3600, env.maxTtlSeconds ?? 3600),
    status: 'active',
    agentId: `fuzz-${slot}`,
    leaseToken: `token-${slot}`,
  };
}

function invalid(label: string, reason: LeaseRejectionReason, build: (slot: number) => { item: Record<string, unknown>; key?: string }): CaseFactory {
  return named(`${label} → ${reason}`, (slot) => ({ label, reason, groups: [], ...build(slot) }));
}

/** Same item with one attribute replaced (or removed when `value` is undefined). */
function patched(b: Base, patch: Record<string, unknown>, drop: string[] = []): Record<string, unknown> {
  const item: Record<string, unknown> = { ...itemOf(b), ...patch };
  for (const k of drop) delete item[k];
  return item;
}

function missingAttribute(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const names = env.storable ? REQUIRED.filter((n) => n !== 'target') : [...REQUIRED];
  return fc.constantFrom(...names).map((name) =>
    invalid(`missing ${name}`, 'MISSING_ATTRIBUTE', (slot) => {
      const b = healthyBase(env, slot);
      return { item: patched(b, {}, [name]), ...(name === 'target' ? {} : { key: keyOf(b.address, b.port) }) };
    }),
  );
}

function wrongType(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const names = env.storable ? REQUIRED.filter((n) => n !== 'target') : [...REQUIRED];
  return fc.tuple(fc.constantFrom(...names), fc.constantFrom(...WRONG_VALUES.filter((w) => !env.storable || w.storable))).filter(([name, w]) => w.type !== EXPECTED_TYPE[name] || JSON.stringify(w.value) === '{"S":""}').map(([name, w]) =>
    invalid(`${name} as ${w.type}`, 'WRONG_TYPE', (slot) => {
      const b = healthyBase(env, slot);
      const readableKey = name !== 'target';
      return { item: patched(b, { [name]: w.value }), ...(readableKey ? { key: keyOf(b.address, b.port) } : {}) };
    }),
  );
}

function badPort(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const texts = ['0', '65536', '-1', '80.5', '99999999999999999999', '100000'];
  const unstorable = ['0x50', ' 80', '80 ', 'Infinity', 'NaN', '1e400', '', '٨٠'];
  return fc.constantFrom(...texts, ...(env.storable ? [] : unstorable)).map((text) =>
    invalid(`port ${JSON.stringify(text)}`, 'BAD_PORT', (slot) => {
      const b = healthyBase(env, slot);
      const key = keyOf(b.address, text);
      return { item: patched(b, { port: { N: text }, target: { S: key } }), key };
    }),
  );
}

interface AddressEdge {
  readonly address: string;
  readonly reason: LeaseRejectionReason;
  /** Allowed when loopback is (local mode). */
  readonly loopback?: boolean;
  /** Refused by DynamoDB or the SDK before it is stored. */
  readonly unstorable?: boolean;
  /** Valid when fd00::/8 is allowed. */
  readonly inUla?: boolean;
}

/** The address edge cases of issue 4, and their neighbours. */
export const ADDRESS_EDGES: readonly AddressEdge[] = [
  { address: '0.0.0.0', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '127.0.0.1', reason: 'ADDRESS_NOT_ALLOWED', loopback: true },
  { address: '127.1.2.3', reason: 'ADDRESS_NOT_ALLOWED', loopback: true },
  { address: '::1', reason: 'ADDRESS_NOT_ALLOWED', loopback: true },
  { address: '::', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '::ffff:8.8.8.8', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '::ffff:10.0.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '::FFFF:10.0.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '::ffff:a00:1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '0:0:0:0:0:ffff:a00:1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '0:0:0:0:0:ffff:10.0.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '::ffff:127.0.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '::ffff:169.254.169.254', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '169.254.169.254', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '169.254.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: 'fe80::1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: 'fe80::1%eth0', reason: 'BAD_ADDRESS' },
  { address: 'fd00::1%eth0', reason: 'BAD_ADDRESS' },
  { address: 'fd00::1%25eth0', reason: 'BAD_ADDRESS' },
  { address: '224.0.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '239.255.255.250', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: 'ff02::1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '8.8.8.8', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '1.1.1.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '2001:db8::1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '2600:1f18::1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '64:ff9b::a00:1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '255.255.255.255', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '240.0.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '172.32.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '100.128.0.1', reason: 'ADDRESS_NOT_ALLOWED' },
  { address: '010.0.0.1', reason: 'BAD_ADDRESS' },
  { address: '10.0.0.01', reason: 'BAD_ADDRESS' },
  { address: '10.0.0.256', reason: 'BAD_ADDRESS' },
  { address: '256.1.1.1', reason: 'BAD_ADDRESS' },
  { address: '10.0.0', reason: 'BAD_ADDRESS' },
  { address: '10.1', reason: 'BAD_ADDRESS' },
  { address: '167772161', reason: 'BAD_ADDRESS' },
  { address: '0x0a000001', reason: 'BAD_ADDRESS' },
  { address: '10.0.0.1/32', reason: 'BAD_ADDRESS' },
  { address: '10.0.0.1:80', reason: 'BAD_ADDRESS' },
  { address: '[fd00::1]', reason: 'BAD_ADDRESS' },
  { address: 'FD00::1', reason: 'BAD_ADDRESS' },
  { address: 'fd00:0:0:0:0:0:0:1', reason: 'BAD_ADDRESS' },
  { address: 'fd00::0:1', reason: 'BAD_ADDRESS' },
  { address: 'fd00::1', reason: 'ADDRESS_NOT_ALLOWED', inUla: true },
  { address: 'example.com', reason: 'BAD_ADDRESS' },
  { address: 'localhost', reason: 'BAD_ADDRESS' },
  { address: ' 10.0.0.1', reason: 'BAD_ADDRESS' },
  { address: '10.0.0.1\n', reason: 'BAD_ADDRESS' },
  { address: '10.0.0.1\u0000', reason: 'BAD_ADDRESS' },
  { address: '１０.０.０.１', reason: 'BAD_ADDRESS' },
  { address: 'i-0123456789ABCDEF0', reason: 'BAD_ADDRESS' },
  { address: 'i-123', reason: 'BAD_ADDRESS' },
  { address: 'i-0123456789abcdef01', reason: 'BAD_ADDRESS' },
  { address: '\u001b[2J10.0.0.1', reason: 'BAD_ADDRESS' },
  // Its key would exceed DynamoDB's 2048-byte partition key limit.
  { address: 'x'.repeat(300_000), reason: 'BAD_ADDRESS', unstorable: true },
];

function badAddress(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const edges = ADDRESS_EDGES.filter((e) => !(e.loopback && env.loopback) && !(e.inUla && env.ipv6) && !(e.unstorable && env.storable));
  return fc.constantFrom(...edges).map((edge) =>
    invalid(`address ${JSON.stringify(edge.address.slice(0, 40))}`, edge.reason, (slot) => {
      const b = { ...healthyBase(env, slot), address: edge.address };
      return { item: itemOf(b), key: keyOf(b.address, b.port) };
    }),
  );
}

/** Random IPv4 addresses outside the four allowed ranges (and loopback when it is allowed). */
function publicIpv4(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const allowed = (a: number, b: number) => a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (env.loopback && a === 127);
  return fc
    .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
    .filter(([a, b]) => !allowed(a, b))
    .map((octets) =>
      invalid(`address ${octets.join('.')}`, 'ADDRESS_NOT_ALLOWED', (slot) => {
        const b = { ...healthyBase(env, slot), address: octets.join('.') };
        return { item: itemOf(b), key: keyOf(b.address, b.port) };
      }),
    );
}

function badCapabilities(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const names = ['Vision', 'VISION', 'has space', ' vision', 'vision\n', '-x', '_x', 'a'.repeat(64), 'visión', 'ｖision', 'vi/sion', 'vision*', '\u0000', '\u001b[31m', 'x'.repeat(200_000)];
  const unstorable = [''];
  const sets = fc.constantFrom(...names, ...(env.storable ? [] : unstorable)).chain((bad) => fc.constantFrom<string[]>([bad], [env.ipCapabilities[0], bad]));
  const choice = env.storable ? sets : fc.oneof(sets, fc.constant<string[]>([]));
  return choice.map((capabilities) =>
    invalid(`capabilities ${JSON.stringify(capabilities.map((c) => c.slice(0, 20)))}`, 'BAD_CAPABILITIES', (slot) => {
      const b = { ...healthyBase(env, slot), capabilities };
      return { item: itemOf(b), key: keyOf(b.address, b.port) };
    }),
  );
}

function unknownCapabilitiesOnly(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  return fc.subarray(['unknowncap', 'constructor', 'prototype', 'gpu-2', 'z'.repeat(63)], { minLength: 1 }).map((capabilities) =>
    invalid(`only unknown capabilities ${capabilities.join(',').slice(0, 40)}`, 'UNKNOWN_CAPABILITY', (slot) => {
      const b = { ...healthyBase(env, slot), capabilities };
      return { item: itemOf(b), key: keyOf(b.address, b.port) };
    }),
  );
}

function targetTypeMismatch(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const cases: CaseFactory[] = [
    invalid('instance id in an ip group', 'TARGET_TYPE_MISMATCH', (slot) => {
      const b = { ...healthyBase(env, slot), address: instanceFor(slot), capabilities: [...env.ipCapabilities] };
      return { item: itemOf(b), key: keyOf(b.address, b.port) };
    }),
  ];
  if (env.instanceCapabilities.length > 0) {
    cases.push(
      invalid('IP address in an instance group', 'TARGET_TYPE_MISMATCH', (slot) => {
        const b = { ...healthyBase(env, slot), capabilities: [...env.instanceCapabilities] };
        return { item: itemOf(b), key: keyOf(b.address, b.port) };
      }),
    );
  }
  return fc.constantFrom(...cases);
}

function targetMismatch(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  type Variant = (b: Base) => string;
  const variants: [string, Variant, boolean][] = [
    ['other port', (b) => `${b.address}:${b.port === 1 ? 2 : b.port - 1}`, false],
    ['other address', (b) => `10.249.0.1:${b.port}`, false],
    ['no port', (b) => b.address, false],
    ['brackets on IPv4', (b) => `[${b.address}]:${b.port}`, false],
    ['trailing space', (b) => `${b.address}:${b.port} `, false],
    ['port with leading zero', (b) => `${b.address}:0${b.port}`, false],
    ['unicode look-alike', (b) => `${b.address.replace(/\./g, '。')}:${b.port}`, false],
    ['IPv6 without brackets', (b) => `${b.address}:${b.port}`, true],
    ['upper-case IPv6', (b) => `[${b.address.toUpperCase()}]:${b.port}`, true],
  ];
  return fc.constantFrom(...variants.filter(([, , v6]) => !v6 || env.ipv6)).map(([label, variant, v6]) =>
    invalid(`target ${label}`, 'TARGET_MISMATCH', (slot) => {
      const b = v6 ? { ...healthyBase(env, slot), address: ipv6For(slot) } : healthyBase(env, slot);
      const key = variant(b);
      return { item: patched(b, { target: { S: key } }), key };
    }),
  );
}

function badExpiry(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const ms = (n: number) => String((env.nowSeconds + n) * 1000);
  const texts: [string, string][] = [
    ['in milliseconds', ms(30)],
    ['in milliseconds, long ago', ms(-86_400 * 365)],
    ['in microseconds', `${ms(30)}000`],
    ['zero', '0'],
    ['negative', '-5'],
    ['fractional', `${env.nowSeconds + 30}.5`],
  ];
  const unstorable: [string, string][] = [
    ['hex', '0x6b49d21e'],
    ['Infinity', 'Infinity'],
    ['1e400', '1e400'],
  ];
  return fc.constantFrom(...texts, ...(env.storable ? [] : unstorable)).map(([label, text]) =>
    invalid(`expiresAt ${label}`, 'BAD_EXPIRY', (slot) => {
      const b = healthyBase(env, slot);
      return { item: patched(b, { expiresAt: { N: text } }), key: keyOf(b.address, b.port) };
    }),
  );
}

function badStatus(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  return fc.constantFrom('Active', 'ACTIVE', 'active ', 'paused', 'draining\u0000', '✅').map((status) =>
    invalid(`status ${JSON.stringify(status)}`, 'BAD_STATUS', (slot) => {
      const b = { ...healthyBase(env, slot), status };
      return { item: itemOf(b), key: keyOf(b.address, b.port) };
    }),
  );
}

function bigMetadata(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const size = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 2049, max: 8000 }) }, { weight: 1, arbitrary: fc.integer({ min: 100_000, max: env.storable ? 300_000 : 390_000 }) });
  return fc.tuple(size, fc.constantFrom('x', 'é', '🦊')).map(([bytes, ch]) =>
    invalid(`metadata of ~${bytes} bytes of ${ch}`, 'METADATA_TOO_LARGE', (slot) => {
      const b = { ...healthyBase(env, slot), metadata: { blob: { S: ch.repeat(Math.ceil(bytes / Buffer.byteLength(ch))) } } };
      return { item: itemOf(b), key: keyOf(b.address, b.port) };
    }),
  );
}

function notAnItem(): fc.Arbitrary<CaseFactory> {
  return fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.boolean()).map((value) =>
    named(`not an item: ${JSON.stringify(value)}`, () => ({
      label: `not an item: ${JSON.stringify(value)}`,
      item: value as unknown as Record<string, unknown>,
      groups: [],
      reason: 'WRONG_TYPE',
    })),
  );
}

/** Every kind of invalid lease, each with the reason it must be rejected for. */
export function invalidLease(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  const kinds = [
    missingAttribute(env),
    wrongType(env),
    badPort(env),
    badAddress(env),
    publicIpv4(env),
    badCapabilities(env),
    unknownCapabilitiesOnly(env),
    targetTypeMismatch(env),
    targetMismatch(env),
    badExpiry(env),
    badStatus(env),
    bigMetadata(env),
  ];
  return env.storable ? fc.oneof(...kinds) : fc.oneof(...kinds, notAnItem());
}

/** Any case at all: valid, partly routable, not live or invalid (mostly invalid). */
export function anyLease(env: FuzzEnv): fc.Arbitrary<CaseFactory> {
  return fc.oneof(
    { weight: 3, arbitrary: validLease(env) },
    { weight: 1, arbitrary: partlyRoutableLease(env) },
    { weight: 1, arbitrary: notLiveLease(env) },
    { weight: 5, arbitrary: invalidLease(env) },
  );
}

/** A batch of cases with distinct slots from `firstSlot` on, in random order. */
export function leaseBatch(env: FuzzEnv, firstSlot: number, maxLength = 20): fc.Arbitrary<LeaseCase[]> {
  return fc.array(anyLease(env), { minLength: 1, maxLength }).map((factories) => factories.map((f, i) => f(firstSlot + i)));
}

/** Arbitrary DynamoDB-like attribute values, nested, for "never throws" properties. */
export const attributeValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ S: fc.string({ unit: 'binary' }) }),
    fc.record({ N: fc.oneof(fc.double().map(String), fc.string()) }),
    fc.record({ SS: fc.array(fc.oneof(fc.string(), fc.integer())) }),
    fc.record({ NS: fc.array(fc.string()) }),
    fc.record({ BOOL: fc.boolean() }),
    fc.record({ NULL: fc.boolean() }),
    fc.record({ B: fc.string() }),
    fc.record({ L: fc.array(tie('value'), { maxLength: 3 }) }),
    fc.record({ M: fc.dictionary(fc.string(), tie('value'), { maxKeys: 3 }) }),
    fc.anything(),
  ),
})).value;

/** Items with the contract's attribute names (and others) holding anything. */
export const arbitraryItem: fc.Arbitrary<Record<string, unknown>> = fc.dictionary(
  fc.oneof(fc.constantFrom(...REQUIRED, 'availabilityZone', 'metadata'), fc.string()),
  attributeValue,
  { maxKeys: 14 },
);

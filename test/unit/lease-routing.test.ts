import { describe, expect, it } from 'vitest';
import { AddressPolicy, decodeLease, encodeLease, Lease, LeaseRejectionReason, RoutingConfig, routeLease } from '../../lib/core';
import { admittedAsLoopback, latestExpiry } from '../../lib/core/lease-routing';
import { formatPortRange, mergePortRanges, parsePortRanges, portAllowed } from '../../lib/core/port-ranges';
import { REJECTION_REASON_OF, REJECTION_REASONS } from '../../lib/core/rejection';

const NOW = 1_800_000_000;
const lease = (patch: Partial<Lease> = {}): Lease => ({
  target: '10.0.1.5:8080',
  address: '10.0.1.5',
  port: 8080,
  capabilities: ['vision'],
  expiresAt: NOW + 30,
  leaseToken: 't',
  agentId: 'a',
  status: 'active',
  renewedAt: NOW * 1000,
  registeredAt: NOW * 1000,
  ...patch,
});
const routing = (patch: Partial<RoutingConfig> = {}): RoutingConfig => ({
  allowedCidrs: [],
  vpcCidrs: ['10.0.0.0/16'],
  maxLeaseTtlSeconds: 3600,
  capabilities: {
    vision: { targetGroupArn: 'tg-vision', targetType: 'ip', ports: [{ from: 8080, to: 8080 }] },
    batch: { targetGroupArn: 'tg-batch', targetType: 'ip', ports: [{ from: 9000, to: 9099 }, { from: 8080, to: 8080 }] },
    open: { targetGroupArn: 'tg-open', targetType: 'ip' },
  },
  ...patch,
});
const reasons = (l: Lease, r: RoutingConfig = routing(), now: number | undefined = NOW) => routeLease(l, r, now).rejections.map((x) => x.reason);
const groups = (l: Lease, r: RoutingConfig = routing(), now: number | undefined = NOW) => routeLease(l, r, now).memberships.map((m) => m.targetGroupArn);

describe('ports per capability', () => {
  it.each<[string, Partial<Lease>, string[], LeaseRejectionReason[]]>([
    ['the declared port', { capabilities: ['vision'] }, ['tg-vision'], []],
    ['another port is refused for that capability only', { port: 22, target: '10.0.1.5:22', capabilities: ['vision', 'open'] }, ['tg-open'], ['PORT_NOT_ALLOWED']],
    ['inside a declared range', { port: 9050, target: '10.0.1.5:9050', capabilities: ['batch'] }, ['tg-batch'], []],
    ['just past a range', { port: 9100, target: '10.0.1.5:9100', capabilities: ['batch'] }, [], ['PORT_NOT_ALLOWED']],
    ['a capability declaring no ports (hand-written routing) takes any', { port: 1, target: '10.0.1.5:1', capabilities: ['open'] }, ['tg-open'], []],
  ])('%s', (_name, patch, expected, why) => {
    expect(groups(lease(patch))).toEqual(expected);
    expect(reasons(lease(patch))).toEqual(why);
  });

  it('the message names the port and the allowed ones', () => {
    const [r] = routeLease(lease({ port: 22, target: '10.0.1.5:22', capabilities: ['batch'] }), routing(), NOW).rejections;
    expect(r).toMatchObject({ reason: 'PORT_NOT_ALLOWED', capability: 'batch', message: 'port 22 is not among the ports of capability "batch" (9000-9099, 8080)' });
  });

  it('formats, parses, merges and matches ranges', () => {
    expect(formatPortRange({ from: 80, to: 80 })).toBe('80');
    expect(portAllowed(80, [{ from: 1, to: 79 }])).toBe(false);
    expect(parsePortRanges('9000-9099, 8080')).toEqual([{ from: 9000, to: 9099 }, { from: 8080, to: 8080 }]);
    expect(mergePortRanges([{ from: 8081, to: 8081 }, { from: 8080, to: 8080 }, { from: 9000, to: 9100 }, { from: 9050, to: 9200 }])).toEqual([{ from: 8080, to: 8081 }, { from: 9000, to: 9200 }]);
  });

  it.each(['0', '65536', '90-80', 'http', '80,', '1-2-3'])('refuses ports %j in one line', (text) => {
    expect(() => parsePortRanges(text)).toThrow(/^ports "/);
  });

  it('local mode: loopback agents on any port, only when loopback admission is on', () => {
    const local = routing({ allowLoopback: true, admitLoopback: true });
    const l = lease({ address: '127.0.0.1', target: '127.0.0.1:45123', port: 45123 });
    expect(admittedAsLoopback('127.0.0.1', local)).toBe(true);
    expect(groups(l, local)).toEqual(['tg-vision']);
    expect(reasons(l, routing({ allowLoopback: true }))).toEqual(['PORT_NOT_ALLOWED']);
    expect(admittedAsLoopback('10.0.1.5', local)).toBe(false);
  });
});

describe('maximum lease TTL', () => {
  it.each<[string, number, boolean]>([
    ['now + max', NOW + 3600, true],
    ['within the clock-skew allowance', NOW + 3600 + 30, true],
    ['past it', NOW + 3600 + 31, false],
    ['year 5138', 99_999_999_999, false],
  ])('expiresAt %s', (_name, expiresAt, routed) => {
    expect(groups(lease({ expiresAt })).length > 0).toBe(routed);
    if (!routed) expect(reasons(lease({ expiresAt }))).toEqual(['EXPIRY_TOO_FAR']);
  });

  it('is judged only when the caller gives the time, and only when the routing sets a maximum', () => {
    expect(routeLease(lease({ expiresAt: NOW + 100_000 }), routing()).memberships.map((m) => m.targetGroupArn)).toEqual(['tg-vision']);
    expect(groups(lease({ expiresAt: NOW + 100_000 }), routing({ maxLeaseTtlSeconds: undefined }))).toEqual(['tg-vision']);
    expect(latestExpiry({ maxLeaseTtlSeconds: 60 }, NOW)).toBe(NOW + 90);
  });
});

describe('availabilityZone and the VPC (ELB: "all" outside the VPC, never inside)', () => {
  const policy = new AddressPolicy(['192.168.0.0/16'], { vpcCidrs: ['10.0.0.0/16'] });
  const decode = (patch: Partial<Lease>) => decodeLease(encodeLease(lease(patch)), policy);
  it.each<[string, Partial<Lease>, LeaseRejectionReason | undefined]>([
    ['inside the VPC, no zone', {}, undefined],
    ['inside the VPC with "all"', { availabilityZone: 'all' }, 'ZONE_NOT_ALLOWED'],
    ['in a range named explicitly, outside the VPC, with "all"', { address: '192.168.1.1', target: '192.168.1.1:8080', availabilityZone: 'all' }, undefined],
    ['outside the VPC without "all"', { address: '192.168.1.1', target: '192.168.1.1:8080' }, 'ZONE_NOT_ALLOWED'],
    ['another private range, not named', { address: '172.16.0.1', target: '172.16.0.1:8080', availabilityZone: 'all' }, 'ADDRESS_NOT_ALLOWED'],
  ])('%s', (_name, patch, reason) => {
    const out = decode(patch);
    expect(out.ok ? undefined : out.rejections.map((r) => r.reason)[0]).toBe(reason);
  });

  it('default ranges are the VPC’s only: 10.1/16 is refused in a 10.0/16 VPC', () => {
    const vpcOnly = new AddressPolicy([], { vpcCidrs: ['10.0.0.0/16'] });
    expect(vpcOnly.check('10.1.0.1')).toMatchObject({ ok: false, message: 'address "10.1.0.1" is outside the allowed ranges (10.0.0.0/16)' });
    expect(vpcOnly.check('10.0.200.1').ok).toBe(true);
  });
});

describe('free-text caps', () => {
  const policy = new AddressPolicy(['10.0.0.0/8']);
  it.each<[string, Partial<Lease>]>([
    ['agentId of 257 characters', { agentId: 'a'.repeat(257) }],
    ['leaseToken of 129 characters', { leaseToken: 't'.repeat(129) }],
    ['availabilityZone of 33 characters', { availabilityZone: 'z'.repeat(33) }],
    ['101 capabilities', { capabilities: Array.from({ length: 101 }, (_, i) => `c${i}`) }],
  ])('%s is refused (TOO_LONG)', (_name, patch) => {
    const out = decodeLease(encodeLease(lease(patch)), policy);
    expect(out.ok).toBe(false);
    expect(out.ok ? [] : out.rejections.map((r) => r.reason)).toEqual(['TOO_LONG']);
  });

  it('agentId of 256 characters is fine', () => {
    expect(decodeLease(encodeLease(lease({ agentId: 'a'.repeat(256) })), policy).ok).toBe(true);
  });
});

describe('rejection codes, declared once', () => {
  it('map every fine reason onto a stable code', () => {
    expect(REJECTION_REASONS).toEqual(['invalid', 'unknown-capability', 'target-type-mismatch', 'port-not-allowed', 'expiry-too-far', 'not-admitted', 'over-quota']);
    expect(REJECTION_REASON_OF.NOT_ADMITTED).toBe('not-admitted');
    expect(REJECTION_REASON_OF.OVER_QUOTA).toBe('over-quota');
    expect(REJECTION_REASON_OF.PORT_NOT_ALLOWED).toBe('port-not-allowed');
    expect(REJECTION_REASON_OF.EXPIRY_TOO_FAR).toBe('expiry-too-far');
    expect(REJECTION_REASON_OF.TOO_LONG).toBe('invalid');
    expect(REJECTION_REASON_OF.ZONE_NOT_ALLOWED).toBe('invalid');
  });
});

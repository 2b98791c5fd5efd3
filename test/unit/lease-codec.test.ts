import { describe, expect, it } from 'vitest';
import { AddressPolicy, decodeLease, encodeLease, encodeValidLease, InvalidLeaseError, isLive, Lease, LeaseRejectionReason, RawItem, routeLease } from '../../lib/core';

const policy = new AddressPolicy([...['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'], 'fd00::/8']);

const valid: Lease = {
  target: '10.0.1.5:8080',
  address: '10.0.1.5',
  port: 8080,
  capabilities: ['vision'],
  expiresAt: 1_800_000_030,
  leaseToken: 'tok-1',
  agentId: 'agent-1',
  status: 'active',
  renewedAt: 1_800_000_000_000,
  registeredAt: 1_800_000_000_000,
};
const item = (patch: Record<string, unknown> = {}, drop: string[] = []): RawItem => {
  const base: Record<string, unknown> = { ...encodeLease(valid), ...patch };
  for (const k of drop) delete base[k];
  return base as RawItem;
};

describe('decodeLease', () => {
  it('accepts a contract-conforming item and returns its typed lease', () => {
    const out = decodeLease(item(), policy);
    expect(out).toEqual({ ok: true, lease: valid });
  });

  it('accepts IPv6 targets in brackets and instance ids', () => {
    expect(decodeLease(item({ target: { S: '[fd00::5]:80' }, address: { S: 'fd00::5' }, port: { N: '80' } }), policy).ok).toBe(true);
    expect(decodeLease(item({ target: { S: 'i-0123456789abcdef0:80' }, address: { S: 'i-0123456789abcdef0' }, port: { N: '80' } }), policy).ok).toBe(true);
  });

  it.each<[string, RawItem | unknown, LeaseRejectionReason, RegExp]>([
    ['missing address', item({}, ['address']), 'MISSING_ATTRIBUTE', /"address" is missing/],
    ['missing leaseToken', item({}, ['leaseToken']), 'MISSING_ATTRIBUTE', /"leaseToken" is missing/],
    ['port as a string', item({ port: { S: '8080' } }), 'WRONG_TYPE', /"port" must be Number \(N\), got S/],
    ['port 0', item({ port: { N: '0' }, target: { S: '10.0.1.5:0' } }), 'BAD_PORT', /port 0 is outside 1–65535/],
    ['port 70000', item({ port: { N: '70000' }, target: { S: '10.0.1.5:70000' } }), 'BAD_PORT', /outside 1–65535/],
    ['fractional port', item({ port: { N: '80.5' }, target: { S: '10.0.1.5:80.5' } }), 'BAD_PORT', /port 80.5/],
    ['target not matching', item({ target: { S: '10.0.1.6:8080' } }), 'TARGET_MISMATCH', /expected "10.0.1.5:8080"/],
    ['IPv6 target without brackets', item({ target: { S: 'fd00::5:80' }, address: { S: 'fd00::5' }, port: { N: '80' } }), 'TARGET_MISMATCH', /\[fd00::5\]:80/],
    ['public IP', item({ address: { S: '8.8.8.8' }, target: { S: '8.8.8.8:8080' } }), 'ADDRESS_NOT_ALLOWED', /outside the allowed ranges/],
    ['loopback', item({ address: { S: '127.0.0.1' }, target: { S: '127.0.0.1:8080' } }), 'ADDRESS_NOT_ALLOWED', /loopback/],
    ['IPv6 loopback', item({ address: { S: '::1' }, target: { S: '[::1]:8080' } }), 'ADDRESS_NOT_ALLOWED', /loopback/],
    ['unspecified', item({ address: { S: '0.0.0.0' }, target: { S: '0.0.0.0:8080' } }), 'ADDRESS_NOT_ALLOWED', /unspecified/],
    ['link-local (instance metadata)', item({ address: { S: '169.254.169.254' }, target: { S: '169.254.169.254:8080' } }), 'ADDRESS_NOT_ALLOWED', /link-local/],
    ['multicast', item({ address: { S: '224.0.0.1' }, target: { S: '224.0.0.1:8080' } }), 'ADDRESS_NOT_ALLOWED', /multicast/],
    ['IPv4-mapped IPv6', item({ address: { S: '::ffff:10.0.0.1' }, target: { S: '[::ffff:10.0.0.1]:8080' } }), 'ADDRESS_NOT_ALLOWED', /IPv4-mapped/],
    ['hostname', item({ address: { S: 'example.com' }, target: { S: 'example.com:8080' } }), 'BAD_ADDRESS', /neither an IP address nor an EC2 instance id/],
    ['IPv4-mapped IPv6 spelled out', item({ address: { S: '0:0:0:0:0:ffff:a00:1' }, target: { S: '[0:0:0:0:0:ffff:a00:1]:8080' } }), 'ADDRESS_NOT_ALLOWED', /IPv4-mapped/],
    ['IPv6 with a zone index', item({ address: { S: 'fd00::5%eth0' }, target: { S: '[fd00::5%eth0]:8080' } }), 'BAD_ADDRESS', /zone index/],
    ['IPv6 not in canonical form', item({ address: { S: 'FD00:0::5' }, target: { S: '[FD00:0::5]:8080' } }), 'BAD_ADDRESS', /canonical IPv6 form \(RFC 5952\): write "fd00::5"/],
    ['IPv4 with a leading zero', item({ address: { S: '010.0.1.5' }, target: { S: '010.0.1.5:8080' } }), 'BAD_ADDRESS', /neither an IP address/],
    ['port in hexadecimal', item({ port: { N: '0x1f90' } }), 'BAD_PORT', /"port" is not a finite decimal number: "0x1f90"/],
    ['port with spaces', item({ port: { N: ' 8080' } }), 'BAD_PORT', /not a finite decimal number/],
    ['expiresAt of Infinity', item({ expiresAt: { N: 'Infinity' } }), 'BAD_EXPIRY', /not a finite decimal number/],
    ['expiresAt in microseconds', item({ expiresAt: { N: '1800000030000000' } }), 'BAD_EXPIRY', /looks like milliseconds/],
    ['metadata that is not JSON', item({ metadata: { M: { big: 1n } } }), 'WRONG_TYPE', /"metadata" cannot be serialized/],
    ['empty capabilities', item({ capabilities: { SS: [] } }), 'BAD_CAPABILITIES', /must not be empty/],
    ['capabilities as a list', item({ capabilities: { L: [{ S: 'vision' }] } }), 'WRONG_TYPE', /String Set \(SS\), got L/],
    ['upper-case capability', item({ capabilities: { SS: ['Vision'] } }), 'BAD_CAPABILITIES', /"Vision" do not match/],
    ['expiresAt as a string', item({ expiresAt: { S: '1800000030' } }), 'WRONG_TYPE', /"expiresAt" must be Number/],
    ['expiresAt in milliseconds', item({ expiresAt: { N: '1800000030000' } }), 'BAD_EXPIRY', /looks like milliseconds/],
    ['unknown status', item({ status: { S: 'paused' } }), 'BAD_STATUS', /"paused" must be "active" or "draining"/],
    ['metadata over 2 KiB', item({ metadata: { M: { blob: { S: 'x'.repeat(2100) } } } }), 'METADATA_TOO_LARGE', /limit 2048/],
    ['not an object', 'hello', 'WRONG_TYPE', /not a map/],
    ['null', null, 'WRONG_TYPE', /not a map/],
  ])('rejects %s with reason %s', (_name, raw, reason, message) => {
    const out = decodeLease(raw, policy);
    expect(out.ok).toBe(false);
    if (out.ok) return;
    const match = out.rejections.find((r) => r.reason === reason);
    expect(match, JSON.stringify(out.rejections)).toBeDefined();
    expect(match!.message).toMatch(message);
  });

  it('quotes untrusted values with control characters escaped and long ones cut', () => {
    const out = decodeLease(item({ address: { S: `\u001b[2J${'x'.repeat(5000)}` }, status: { S: 'line\nforged' } }), policy);
    expect(out.ok).toBe(false);
    if (out.ok) return;
    for (const r of out.rejections) {
      // eslint-disable-next-line no-control-regex
      expect(r.message).not.toMatch(/[\u0000-\u001f]/);
      expect(r.message.length).toBeLessThan(400);
    }
    expect(out.rejections.find((r) => r.reason === 'BAD_ADDRESS')!.message).toMatch(/^address "\\u001b\[2Jx+…\(5011 characters\) is neither/);
    expect(out.rejections.find((r) => r.reason === 'BAD_STATUS')!.message).toBe('status "line\\nforged" must be "active" or "draining"');
  });

  it('reports every problem of an item at once', () => {
    const out = decodeLease(item({ port: { S: 'x' }, status: { S: 'x' } }, ['agentId']), policy);
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.rejections.map((r) => r.reason).sort()).toEqual(['BAD_STATUS', 'MISSING_ATTRIBUTE', 'WRONG_TYPE']);
  });

  it('accepts the VPC CIDR when configured and refuses it otherwise', () => {
    const vpcOnly = new AddressPolicy(['10.20.0.0/16']);
    expect(decodeLease(item({ address: { S: '10.20.3.4' }, target: { S: '10.20.3.4:8080' } }), vpcOnly).ok).toBe(true);
    expect(decodeLease(item(), vpcOnly).ok).toBe(false);
  });
});

describe('routeLease', () => {
  it('treats capability names that are Object.prototype members ("constructor") as unknown, not as a route', () => {
    const routing = { capabilities: { vision: { targetGroupArn: 'arn:tg/vision', targetType: 'ip' as const } }, allowedCidrs: ['10.0.0.0/8'] };
    const routed = routeLease({ ...valid, capabilities: ['constructor', 'vision'] }, routing);
    expect(routed.memberships.map((m) => m.targetGroupArn)).toEqual(['arn:tg/vision']);
    expect(routed.rejections).toEqual([expect.objectContaining({ reason: 'UNKNOWN_CAPABILITY', capability: 'constructor' })]);
  });
});

describe('encodeValidLease', () => {
  it('throws InvalidLeaseError naming the reason before anything is written', () => {
    expect(() => encodeValidLease({ ...valid, address: '8.8.8.8', target: '8.8.8.8:8080' }, policy)).toThrow(InvalidLeaseError);
    expect(() => encodeValidLease({ ...valid, address: '8.8.8.8', target: '8.8.8.8:8080' }, policy)).toThrow(/outside the allowed ranges/);
  });
});

describe('isLive', () => {
  it.each([
    ['active, expires later', 'active', 101, 100, true],
    ['active, expires now', 'active', 100, 100, false],
    ['active, expired', 'active', 99, 100, false],
    ['draining, not expired', 'draining', 500, 100, false],
  ] as const)('%s → %s', (_n, status, expiresAt, now, live) => {
    expect(isLive({ status, expiresAt }, now)).toBe(live);
  });
});

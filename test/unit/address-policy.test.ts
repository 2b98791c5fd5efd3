import { BlockList } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';

/** The rule as Node's BlockList states it: refused ranges first, then the allowed ones. */
function reference(address: string, allowed: readonly string[]): boolean {
  const list = (cidrs: readonly string[]) => {
    const l = new BlockList();
    for (const c of cidrs) {
      const [network, prefix] = c.split('/');
      l.addSubnet(network, Number(prefix), 'ipv4');
    }
    return l;
  };
  if (list(['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4']).check(address, 'ipv4')) return false;
  return list(allowed).check(address, 'ipv4');
}

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const cidr = fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`);

describe('AddressPolicy: IPv4 ranges judged as numbers', () => {
  it('agrees with BlockList on any address and any allowed CIDRs (host bits set, /0 and /32 included)', () => {
    fc.assert(
      fc.property(ipv4, fc.array(cidr, { maxLength: 4 }), (address, allowed) => {
        expect(new AddressPolicy(allowed).check(address).ok).toBe(reference(address, allowed));
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['10.255.255.255', ['10.0.0.0/8'], true],
    ['11.0.0.0', ['10.0.0.0/8'], false],
    ['100.127.255.255', ['100.64.0.0/10'], true],
    ['100.128.0.0', ['100.64.0.0/10'], false],
    ['8.8.8.8', ['0.0.0.0/0'], true],
    ['127.0.0.1', ['0.0.0.0/0'], false],
    ['192.168.1.4', ['192.168.1.4/32'], true],
  ] as const)('%s in %j: %s', (address, allowed, ok) => {
    expect(new AddressPolicy(allowed).check(address).ok).toBe(ok);
  });

  it('IPv6 ranges still go through BlockList', () => {
    const policy = new AddressPolicy(['10.0.0.0/8', 'fd00::/8']);
    expect(policy.check('fd00::5').ok).toBe(true);
    expect(policy.check('fe00::5').ok).toBe(false);
    expect(new AddressPolicy(['10.0.0.0/8']).check('fd00::5').ok).toBe(false);
  });
});

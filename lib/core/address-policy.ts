import { BlockList, isIP } from 'node:net';
import { ConfigError } from './errors';
import { quoteUntrusted } from './untrusted-text';

/** Ranges ELBv2 accepts as IP targets without question (RFC 1918 and RFC 6598 shared space). */
export const DEFAULT_ALLOWED_CIDRS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];

/** Never a valid target, whatever the configuration says: these would point the ALB at itself or nowhere. */
const ALWAYS_REFUSED: readonly { cidr: string; what: string }[] = [
  { cidr: '0.0.0.0/8', what: 'unspecified' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
  { cidr: '224.0.0.0/4', what: 'multicast' },
  { cidr: '240.0.0.0/4', what: 'reserved' },
  { cidr: '::/128', what: 'unspecified' },
  { cidr: '::1/128', what: 'loopback' },
  { cidr: 'fe80::/10', what: 'link-local' },
  { cidr: 'ff00::/8', what: 'multicast' },
];

const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
/** Longer than any IP address or instance id (an IPv6 address with an embedded IPv4 one is 45). */
const MAX_ADDRESS_CHARS = 64;

/** ::ffff:0:0/96 in any spelling (`::ffff:10.0.0.1`, `0:0:0:0:0:ffff:a00:1`, …); an IPv4 address in disguise. */
const IPV4_MAPPED = new BlockList();
IPV4_MAPPED.addSubnet('::ffff:0:0', 96, 'ipv6');

/**
 * The RFC 5952 text of an IPv6 address (lower case, longest zero run compressed), as the WHATWG
 * URL parser serializes hosts; undefined when the parser refuses it (a zone index, for one).
 */
function canonicalIpv6(address: string): string | undefined {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

export interface AddressPolicyOptions {
  /**
   * Accept 127.0.0.0/8 and ::1. Only local mode sets this, where demo agents really listen on
   * loopback; the deployed stack's configuration cannot express it.
   * @default false
   */
  readonly allowLoopback?: boolean;
  /**
   * The VPC's CIDR blocks: always allowed, and the line ELB draws for `availabilityZone`. An IP
   * outside them (in a range named in `allowedCidrs`) must say `all`; one inside must not.
   * @default - unknown: no zone rule
   */
  readonly vpcCidrs?: readonly string[];
}

export type AddressKind = 'ipv4' | 'ipv6' | 'instance';

export type AddressCheck =
  | { readonly ok: true; readonly kind: AddressKind }
  | { readonly ok: false; readonly malformed: boolean; readonly message: string };

interface ParsedCidr {
  readonly network: string;
  readonly prefix: number;
  readonly type: 'ipv4' | 'ipv6';
}

export function parseCidr(cidr: string): ParsedCidr {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  const family = match ? isIP(match[1]) : 0;
  const prefix = match ? Number(match[2]) : NaN;
  if (!match || family === 0 || prefix > (family === 4 ? 32 : 128)) {
    throw new ConfigError(`invalid CIDR "${cidr}": expected <IPv4>/<0-32> or <IPv6>/<0-128>`);
  }
  return { network: match[1], prefix, type: family === 4 ? 'ipv4' : 'ipv6' };
}

/** An IPv4 address (as `isIP` accepts it) as an unsigned 32-bit number. */
function ipv4Number(address: string): number {
  const [a, b, c, d] = address.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/**
 * A set of CIDRs: IPv4 ranges compared as numbers (a lease is judged on every registration, and
 * BlockList builds a SocketAddress per look), IPv6 ones through a BlockList.
 */
class Ranges {
  private readonly v4: { network: number; mask: number }[] = [];
  private readonly v6 = new BlockList();
  private hasV6 = false;

  public constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const { network, prefix, type } = parseCidr(cidr);
      if (type === 'ipv4') {
        const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
        this.v4.push({ network: (ipv4Number(network) & mask) >>> 0, mask });
      } else {
        this.v6.addSubnet(network, prefix, 'ipv6');
        this.hasV6 = true;
      }
    }
  }

  /** `n`: the address as {@link ipv4Number} reads it, for an IPv4 one. */
  public has(address: string, type: 'ipv4' | 'ipv6', n: number): boolean {
    if (type === 'ipv6') return this.hasV6 && this.v6.check(address, 'ipv6');
    return this.v4.some((r) => ((n & r.mask) >>> 0) === r.network);
  }
}

/**
 * Decides which target addresses a lease may point the load balancer at. Built once per
 * configuration; `check` is pure and cheap.
 */
export class AddressPolicy {
  private readonly allowed: Ranges;
  private readonly refused: { list: Ranges; what: string }[];
  private readonly vpc?: Ranges;
  /** Every range an IP target may be in: the VPC's, then the ones named explicitly. */
  public readonly allowedCidrs: readonly string[];
  public readonly vpcCidrs?: readonly string[];

  public constructor(allowedCidrs: readonly string[] = DEFAULT_ALLOWED_CIDRS, options: AddressPolicyOptions = {}) {
    this.vpcCidrs = options.vpcCidrs;
    this.allowedCidrs = [...new Set([...(options.vpcCidrs ?? []), ...allowedCidrs])];
    if (options.vpcCidrs) this.vpc = new Ranges(options.vpcCidrs);
    const loopback = options.allowLoopback ? ['127.0.0.0/8', '::1/128'] : [];
    this.allowed = new Ranges([...this.allowedCidrs, ...loopback]);
    this.refused = ALWAYS_REFUSED.filter(({ what }) => !(options.allowLoopback && what === 'loopback')).map(({ cidr, what }) => ({
      list: new Ranges([cidr]),
      what,
    }));
  }

  /** Verdicts by address: fleets renew the same few thousand addresses over and over. */
  private readonly verdicts = new Map<string, AddressCheck>();

  public check(address: string): AddressCheck {
    const known = this.verdicts.get(address);
    if (known) return known;
    const verdict = this.judge(address);
    // Only real addresses are worth remembering; an item can carry a 400 KB "address".
    if (address.length > MAX_ADDRESS_CHARS) return verdict;
    if (this.verdicts.size >= 50_000) this.verdicts.clear();
    this.verdicts.set(address, verdict);
    return verdict;
  }

  /**
   * Whether `address` lies in the VPC's CIDR blocks; `undefined` when they are unknown or the
   * address is no IP. Addresses outside the VPC are only ever in ranges named explicitly.
   */
  public inVpc(address: string): boolean | undefined {
    const family = isIP(address);
    if (this.vpc === undefined || family === 0) return undefined;
    return family === 4 ? this.vpc.has(address, 'ipv4', ipv4Number(address)) : this.vpc.has(address, 'ipv6', 0);
  }

  /**
   * What is wrong with `availabilityZone` for `address` (an allowed IP), if anything: ELB takes an
   * IP outside the VPC only with `all`, and refuses `all` for one inside. Needs the VPC's ranges.
   */
  public zoneProblem(address: string, availabilityZone: string | undefined): string | undefined {
    const inVpc = this.inVpc(address);
    if (inVpc === undefined || isLoopbackAddress(address)) return undefined;
    const quoted = quoteUntrusted(address);
    if (inVpc && availabilityZone === 'all') {
      return `address ${quoted} is inside the VPC (${this.vpcCidrs!.join(', ')}); availabilityZone "all" is only for addresses outside it`;
    }
    if (!inVpc && availabilityZone !== 'all') {
      return `address ${quoted} is outside the VPC (${this.vpcCidrs!.join(', ')}): it needs availabilityZone "all", as ELB requires`;
    }
    return undefined;
  }

  private judge(address: string): AddressCheck {
    const quoted = quoteUntrusted(address);
    if (INSTANCE_ID.test(address)) return { ok: true, kind: 'instance' };
    const family = isIP(address);
    if (family === 0) {
      return { ok: false, malformed: true, message: `address ${quoted} is neither an IP address nor an EC2 instance id (i-…)` };
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (type === 'ipv6') {
      if (address.includes('%')) {
        return { ok: false, malformed: true, message: `address ${quoted} has a zone index (%…), which means nothing to a load balancer` };
      }
      if (/^::ffff:/i.test(address) || IPV4_MAPPED.check(address, 'ipv6')) {
        return { ok: false, malformed: false, message: `address ${quoted} is an IPv4-mapped IPv6 address; write the IPv4 form` };
      }
      // One endpoint, one lease key: "FD00:0::1" and "fd00::1" must not be two leases (or two targets).
      const canonical = canonicalIpv6(address);
      if (canonical !== address) {
        return {
          ok: false,
          malformed: true,
          message: `address ${quoted} is not in canonical IPv6 form (RFC 5952)${canonical === undefined ? '' : `: write "${canonical}"`}`,
        };
      }
    }
    const n = type === 'ipv4' ? ipv4Number(address) : 0;
    for (const { list, what } of this.refused) {
      if (list.has(address, type, n)) {
        return { ok: false, malformed: false, message: `address ${quoted} is ${what} and can never be a target` };
      }
    }
    if (!this.allowed.has(address, type, n)) {
      return {
        ok: false,
        malformed: false,
        message: `address ${quoted} is outside the allowed ranges (${this.allowedCidrs.join(', ')})`,
      };
    }
    return { ok: true, kind: type };
  }
}

/**
 * The canonical text of an address, as a lease must carry it (one endpoint, one key): an IPv4
 * address as it is (four decimals without leading zeros), an IPv6 address in RFC 5952 form
 * (lower case, the longest run of two or more zero groups as `::`, the leftmost on a tie, no
 * embedded dotted IPv4; what Python's `ipaddress` and Go's `net.IP.String()` write for all but
 * IPv4-mapped addresses), an EC2 instance id as it is. Undefined for anything else, an IPv6
 * address with a zone index (`%eth0`) included. The SDKs canonicalize the address they are given;
 * the registry refuses a lease whose address is not canonical.
 */
export function canonicalAddress(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  if (INSTANCE_ID.test(text)) return text;
  const family = isIP(text);
  if (family === 4) return text;
  if (family === 6 && !text.includes('%')) return canonicalIpv6(text);
  return undefined;
}

const LOOPBACK = new Ranges(['127.0.0.0/8', '::1/128']);

/** Whether `address` is a loopback IP (127.0.0.0/8, ::1): local mode's agents. */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  return family === 4 ? LOOPBACK.has(address, 'ipv4', ipv4Number(address)) : family === 6 && LOOPBACK.has(address, 'ipv6', 0);
}

/** The lease key for an address and port: `a.b.c.d:p`, `[v6]:p`, or `i-…:p`. */
export function formatTarget(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

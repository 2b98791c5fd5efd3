import { DescribeInstancesCommand, DescribeNetworkInterfacesCommand, EC2Client, EC2ClientConfig, Filter } from '@aws-sdk/client-ec2';
import { isIP } from 'node:net';
import type { HolderFacts } from '../core/admission';
import { Ec2LookupError } from '../core/errors';
import { isTransient, untilAborted } from './elb-targets';

/**
 * The only place agent-lb asks EC2 who holds an address: one DescribeNetworkInterfaces for the
 * addresses of a batch (filtered on the VPC and on those addresses, so the answer is the few
 * interfaces asked about, never the VPC's thousands), one DescribeInstances for its instance
 * ids; chunked, paginated, under a deadline, errors mapped to {@link Ec2LookupError}. Retries of
 * throttling (`RequestLimitExceeded`) and 5xx are the SDK's (createEc2Client).
 */

/**
 * EC2 clients for admission (here, not in clients.ts: @aws-sdk/client-ec2 is a local-mode package
 * an SDK-only install leaves out, and the CLI loads clients.ts; the handlers are bundled with it)
 * (DescribeNetworkInterfaces, DescribeInstances): the standard
 * retry mode, fewer attempts. Every lookup runs under a deadline (EC2_LOOKUP_DEADLINE_MS); past
 * it the registrations it was for wait for the batch's retry or the next pass.
 */
export function createEc2Client(config: EC2ClientConfig = {}): EC2Client {
  return new EC2Client({ retryMode: 'standard', maxAttempts: 4, ...config });
}

/** Filter values one call carries at most (EC2 caps the values of a request's filters); more addresses take more calls. */
export const MAX_ADDRESSES_PER_CALL = 200;

/** Longest one lookup may take, the SDK's retries included: past it the registrations it was for wait. */
export const EC2_LOOKUP_DEADLINE_MS = 3000;

/** Interfaces per page: EC2 allows 5–1000; the filters keep answers far smaller. */
const PAGE_SIZE = 1000;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** RFC 5952 form, as leases write IPv6 (EC2 answers in its own spelling). */
function canonical(address: string): string {
  if (isIP(address) !== 6) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}

export interface LookupOptions {
  /** @default a signal firing after EC2_LOOKUP_DEADLINE_MS */
  readonly abortSignal?: AbortSignal;
}

export class Ec2Holders {
  /** EC2 calls sent so far (every page counts), for metrics and benchmarks. */
  public calls = 0;

  public constructor(private readonly client: EC2Client) {}

  /**
   * EC2's facts for each of `ids` (IPv4 and IPv6 addresses, instance ids) within `vpcId`: the
   * holder, or `null` when nothing in that VPC holds it. Throws {@link Ec2LookupError} when any
   * call fails: a partial answer is no answer.
   */
  public async lookUp(vpcId: string, ids: readonly string[], options: LookupOptions = {}): Promise<Map<string, HolderFacts | null>> {
    const signal = options.abortSignal ?? AbortSignal.timeout(EC2_LOOKUP_DEADLINE_MS);
    const found = new Map<string, HolderFacts | null>(ids.map((id) => [id, null]));
    const v4 = ids.filter((id) => isIP(id) === 4);
    const v6 = ids.filter((id) => isIP(id) === 6);
    const instances = ids.filter((id) => id.startsWith('i-'));
    const work: Promise<void>[] = [];
    for (const batch of chunks(v4, MAX_ADDRESSES_PER_CALL)) work.push(this.interfaces(vpcId, 'addresses.private-ip-address', batch, found, signal));
    for (const batch of chunks(v6, MAX_ADDRESSES_PER_CALL)) work.push(this.interfaces(vpcId, 'ipv6-addresses.ipv6-address', batch, found, signal));
    for (const batch of chunks(instances, MAX_ADDRESSES_PER_CALL)) work.push(this.instances(vpcId, batch, found, signal));
    await Promise.all(work);
    return found;
  }

  private async interfaces(vpcId: string, filter: string, addresses: readonly string[], found: Map<string, HolderFacts | null>, signal: AbortSignal): Promise<void> {
    const asked = new Set(addresses);
    const Filters: Filter[] = [
      { Name: 'vpc-id', Values: [vpcId] },
      { Name: filter, Values: [...addresses] },
    ];
    let NextToken: string | undefined;
    do {
      const command = new DescribeNetworkInterfacesCommand({ Filters, MaxResults: PAGE_SIZE, ...(NextToken ? { NextToken } : {}) });
      const out = await this.send('DescribeNetworkInterfaces', () => this.client.send(command, { abortSignal: signal }), signal);
      for (const eni of out.NetworkInterfaces ?? []) {
        const facts: HolderFacts = {
          holder: eni.NetworkInterfaceId ?? 'an interface without an id',
          ...(eni.VpcId ? { vpcId: eni.VpcId } : {}),
          securityGroupIds: (eni.Groups ?? []).flatMap((g) => (g.GroupId ? [g.GroupId] : [])),
        };
        const held = [eni.PrivateIpAddress, ...(eni.PrivateIpAddresses ?? []).map((a) => a.PrivateIpAddress), ...(eni.Ipv6Addresses ?? []).map((a) => a.Ipv6Address)];
        for (const address of held) {
          const key = address === undefined ? undefined : canonical(address);
          if (key !== undefined && asked.has(key) && found.get(key) === null) found.set(key, facts);
        }
      }
      NextToken = out.NextToken;
    } while (NextToken);
  }

  private async instances(vpcId: string, ids: readonly string[], found: Map<string, HolderFacts | null>, signal: AbortSignal): Promise<void> {
    const Filters: Filter[] = [
      { Name: 'vpc-id', Values: [vpcId] },
      { Name: 'instance-id', Values: [...ids] },
    ];
    let NextToken: string | undefined;
    do {
      const command = new DescribeInstancesCommand({ Filters, MaxResults: PAGE_SIZE, ...(NextToken ? { NextToken } : {}) });
      const out = await this.send('DescribeInstances', () => this.client.send(command, { abortSignal: signal }), signal);
      for (const instance of (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
        if (!instance.InstanceId || !found.has(instance.InstanceId)) continue;
        // An instance is admitted by any of its interfaces' groups: the load balancer reaches it on its primary one.
        const groups = [...(instance.SecurityGroups ?? []), ...(instance.NetworkInterfaces ?? []).flatMap((n) => n.Groups ?? [])].flatMap((g) => (g.GroupId ? [g.GroupId] : []));
        found.set(instance.InstanceId, { holder: instance.InstanceId, ...(instance.VpcId ? { vpcId: instance.VpcId } : {}), securityGroupIds: [...new Set(groups)] });
      }
      NextToken = out.NextToken;
    } while (NextToken);
  }

  private async send<T>(action: string, call: () => Promise<T>, signal: AbortSignal): Promise<T> {
    this.calls++;
    try {
      if (signal.aborted) throw Object.assign(new Error('the lookup was abandoned: its deadline passed'), { name: 'AbortError' });
      return await untilAborted(call(), signal);
    } catch (error) {
      const name = (error as { name?: string })?.name ?? 'Error';
      const message = (error as Error)?.message ?? String(error);
      throw new Ec2LookupError(name === 'AbortError' || isTransient(error), `EC2 ${action} failed: ${name}: ${message}`, { cause: error, awsErrorName: name });
    }
  }
}

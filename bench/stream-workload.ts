import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { encodeLease } from '../lib/core/lease-codec';
import { Lease, RawItem } from '../lib/core/lease-schema';
import { mulberry32 } from '../test/support/prng';

export interface WorkloadMix {
  readonly records: number;
  readonly batchSize: number;
  readonly heartbeatShare: number;
  readonly registrationShare: number;
  readonly capabilities: number;
  readonly seed: number;
}

/** Small deterministic PRNG (mulberry32, shared with the chaos run) so a run can be repeated exactly. */
export const prng = mulberry32;

export const capabilityNames = (n: number) => Array.from({ length: n }, (_, i) => `cap-${String(i).padStart(2, '0')}`);

/**
 * Stream batches with a realistic mix: mostly heartbeats of registered agents, some new
 * agents (1–3 capabilities each), some releases and TTL expiries. Records are Lambda-shaped.
 */
export function* streamWorkload(mix: WorkloadMix): Generator<DynamoDBStreamEvent> {
  const rand = prng(mix.seed);
  const caps = capabilityNames(mix.capabilities);
  const live: RawItem[] = [];
  let next = 1;
  let seq = 0;
  let now = 1_800_000_000;
  const newLease = (): RawItem => {
    const n = next++;
    const address = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
    const count = 1 + Math.floor(rand() * 3);
    const chosen = new Set<string>();
    while (chosen.size < count) chosen.add(caps[Math.floor(rand() * caps.length)]);
    const lease: Lease = {
      target: `${address}:8080`,
      address,
      port: 8080,
      capabilities: [...chosen],
      expiresAt: now + 86_400,
      leaseToken: `t${n}`,
      agentId: `agent-${n}`,
      status: 'active',
      renewedAt: now * 1000,
      registeredAt: now * 1000,
    };
    return encodeLease(lease);
  };
  const record = (eventName: 'INSERT' | 'MODIFY' | 'REMOVE', oldImage?: RawItem, newImage?: RawItem, ttl = false): DynamoDBRecord => ({
    eventID: String(seq),
    eventName,
    eventSource: 'aws:dynamodb',
    dynamodb: {
      Keys: { target: { S: (newImage ?? oldImage)!.target.S! } },
      ...(oldImage ? { OldImage: oldImage as never } : {}),
      ...(newImage ? { NewImage: newImage as never } : {}),
      SequenceNumber: String(++seq).padStart(21, '0'),
      ApproximateCreationDateTime: now,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
    ...(ttl ? { userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' } } : {}),
  });

  let emitted = 0;
  while (emitted < mix.records) {
    const records: DynamoDBRecord[] = [];
    while (records.length < mix.batchSize && emitted < mix.records) {
      const r = rand();
      if (live.length === 0 || (r >= mix.heartbeatShare && r < mix.heartbeatShare + mix.registrationShare)) {
        const item = newLease();
        live.push(item);
        records.push(record('INSERT', undefined, item));
      } else if (r < mix.heartbeatShare) {
        const i = Math.floor(rand() * live.length);
        const renewed = { ...live[i], expiresAt: { N: String(now + 86_400) }, renewedAt: { N: String(now * 1000) } };
        records.push(record('MODIFY', live[i], renewed));
        live[i] = renewed;
      } else {
        const i = Math.floor(rand() * live.length);
        const [gone] = live.splice(i, 1);
        records.push(record('REMOVE', gone, undefined, rand() < 0.5));
      }
      emitted++;
    }
    now += 1;
    yield { Records: records };
  }
}

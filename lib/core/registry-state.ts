import { LEASE_ATTR, LeaseStatus, RawAttributeValue, RawItem, ROTATION_STATES, RotationState } from './lease-schema';

/**
 * The registry state table: a DynamoDB table only the registry writes (agents have no access to
 * it, and it has no stream), declared here once. It holds
 * - the capability catalog, one item (`pk = "catalog"`, `sk = "document"`) that `GET /agents`
 *   serves (see catalog-document.ts), and
 * - the ELB call budget's shared bucket, one item (`pk = "elb-budget"`, `sk = "bucket"`) every
 *   registry container takes its Register/Deregister tokens from (see shared-elb-bucket.ts), and
 * - the member index, one item per (capability, target): `pk = "members#<capability>"`,
 *   `sk = "<address>:<port>"`, the agent's address, rotation state and metadata as the registry
 *   last read them from its lease. A capability's members are one Query away, so the catalog is
 *   recounted and `discoverAgents` answers without ever scanning the lease table.
 * Everything in it is derived from the lease table and the registry's own observations: losing it
 * loses nothing the next reconcile pass does not rebuild.
 */

/** Key attributes of every item of the registry state table. */
export const REGISTRY_STATE_KEY = { partition: 'pk', sort: 'sk' } as const;

/** Environment variable naming the registry state table for trusted discovery (`discoverAgents`), when not given. */
export const REGISTRY_TABLE_ENV = 'AGENT_LB_REGISTRY_TABLE';

/** Tag on the registry state table (local mode and `--stack` tell it from the lease table by it). */
export const REGISTRY_STATE_ROLE_TAG = 'agent-lb:role';
export const REGISTRY_STATE_ROLE = 'registry-state';

/** The catalog document's item. */
export const CATALOG_ITEM_KEY = { pk: 'catalog', sk: 'document' } as const;

/**
 * The ELB call budget's shared bucket: a partition of its own, so that an IAM
 * `dynamodb:LeadingKeys` condition grants this item alone. It cannot collide: member partitions
 * all start with {@link MEMBERS_PARTITION_PREFIX} and the catalog's is `catalog`.
 */
export const ELB_BUDGET_ITEM_KEY = { pk: 'elb-budget', sk: 'bucket' } as const;

/** Attribute names of the shared bucket's item: tokens (N), when counted (N, epoch ms), version (N), holds (M of id → N, epoch ms). */
export const ELB_BUDGET_ATTR = { tokens: 'tokens', atMs: 'atMs', version: 'version', holds: 'holds' } as const;

/** Partition of a capability's members (the name agents list: `vision`, `vision-canary`). */
export const MEMBERS_PARTITION_PREFIX = 'members#';
export function membersPartition(capability: string): string {
  return `${MEMBERS_PARTITION_PREFIX}${capability}`;
}

/** Attribute names of the registry state items beyond the key. */
export const REGISTRY_STATE_ATTR = {
  /** Catalog: the document's revision (N), when it was built (N, epoch ms), its ETag (S) and the gzip'd JSON (B). */
  revision: 'revision',
  generatedAt: 'generatedAt',
  etag: 'etag',
  body: 'body',
  /** Members: the lease's fields (same names as the lease contract's) ... */
  address: LEASE_ATTR.address,
  port: LEASE_ATTR.port,
  agentId: LEASE_ATTR.agentId,
  status: LEASE_ATTR.status,
  registeredAt: LEASE_ATTR.registeredAt,
  availabilityZone: LEASE_ATTR.availabilityZone,
  metadata: LEASE_ATTR.metadata,
  /** ... the target's rotation entry in this capability's group (`state` S, `since` N) ... */
  state: 'state',
  since: 'since',
  /** ... and when the registry read the lease (epoch ms): a write from an older read never replaces one from a newer read. */
  readAt: 'readAt',
} as const;

/** One lease's target in one capability's group, as the member index holds it. Never a lease token. */
export interface CatalogMember {
  /** The group's capability: the name agents list (`vision`, or a variant's `vision-canary`). */
  readonly capability: string;
  /** `<address>:<port>`, the lease key. */
  readonly target: string;
  readonly address: string;
  readonly port: number;
  readonly agentId: string;
  readonly status: LeaseStatus;
  /** The lease's `rotation` entry for this group; absent before the registry's first write. */
  readonly state?: RotationState;
  /** Epoch ms of that entry. */
  readonly since?: number;
  readonly availabilityZone?: string;
  /** Epoch ms. */
  readonly registeredAt: number;
  /** The lease's metadata as written (≤ 2 KiB). */
  readonly metadata?: Readonly<Record<string, RawAttributeValue>>;
}

/** The member index item of `member`, read from its lease at `readAt` (epoch ms). */
export function encodeMember(member: CatalogMember, readAt: number): RawItem {
  const A = REGISTRY_STATE_ATTR;
  return {
    [REGISTRY_STATE_KEY.partition]: { S: membersPartition(member.capability) },
    [REGISTRY_STATE_KEY.sort]: { S: member.target },
    [A.address]: { S: member.address },
    [A.port]: { N: String(member.port) },
    [A.agentId]: { S: member.agentId },
    [A.status]: { S: member.status },
    [A.registeredAt]: { N: String(Math.floor(member.registeredAt)) },
    [A.readAt]: { N: String(Math.floor(readAt)) },
    ...(member.state !== undefined ? { [A.state]: { S: member.state } } : {}),
    ...(member.since !== undefined ? { [A.since]: { N: String(Math.floor(member.since)) } } : {}),
    ...(member.availabilityZone !== undefined ? { [A.availabilityZone]: { S: member.availabilityZone } } : {}),
    ...(member.metadata !== undefined ? { [A.metadata]: { M: member.metadata } } : {}),
  };
}

const wholeNumber = (v: RawAttributeValue | undefined): number | undefined => {
  if (v?.N === undefined) return undefined;
  const n = Number(v.N);
  return Number.isSafeInteger(n) ? n : undefined;
};

/**
 * A member index item back as a {@link CatalogMember}; `undefined` for an item that is not one
 * (another partition, a missing field). Only the registry writes these items, but a reader never
 * trusts a table to hold what it expects.
 */
export function decodeMember(item: RawItem): CatalogMember | undefined {
  const A = REGISTRY_STATE_ATTR;
  const pk = item[REGISTRY_STATE_KEY.partition]?.S;
  const target = item[REGISTRY_STATE_KEY.sort]?.S;
  const address = item[A.address]?.S;
  const port = wholeNumber(item[A.port]);
  const agentId = item[A.agentId]?.S;
  const status = item[A.status]?.S;
  const registeredAt = wholeNumber(item[A.registeredAt]);
  if (pk === undefined || !pk.startsWith(MEMBERS_PARTITION_PREFIX) || target === undefined || address === undefined || port === undefined) return undefined;
  if (agentId === undefined || (status !== 'active' && status !== 'draining') || registeredAt === undefined) return undefined;
  const state = item[A.state]?.S;
  const since = wholeNumber(item[A.since]);
  const zone = item[A.availabilityZone]?.S;
  const metadata = item[A.metadata]?.M;
  return {
    capability: pk.slice(MEMBERS_PARTITION_PREFIX.length),
    target,
    address,
    port,
    agentId,
    status,
    registeredAt,
    ...(state !== undefined && (ROTATION_STATES as readonly string[]).includes(state) ? { state: state as RotationState } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(zone !== undefined ? { availabilityZone: zone } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
  };
}

/** When the registry read the lease a member item was written from (epoch ms); 0 when unknown. */
export function memberReadAt(item: RawItem): number {
  return wholeNumber(item[REGISTRY_STATE_ATTR.readAt]) ?? 0;
}

/** Whether two members say the same thing (what a repair compares; `readAt` is not part of it). */
export function sameMember(a: CatalogMember, b: CatalogMember): boolean {
  return canonicalJson(encodeMember(a, 0)) === canonicalJson(encodeMember(b, 0));
}

/** JSON with every object's keys sorted: equal values give equal text, whatever order a map came back in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

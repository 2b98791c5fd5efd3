import { AddressPolicy } from './address-policy';
import { decodeLease } from './lease-codec';
import { LEASE_ATTR, Lease, LeaseStatus, RawAttributeValue, RawItem } from './lease-schema';
import { quoteUntrusted } from './untrusted-text';

/**
 * What someone else did to a lease its holder still holds (same token), read from the item
 * DynamoDB hands back (a renewal's `ALL_NEW`, a poll): the agent grant cannot bind an item to
 * its writer on ECS, so another agent can drain a lease or rewrite its attributes without the
 * token. The holder notices at its next heartbeat and puts its own lease back. Pure.
 */
export type LeaseInterference =
  | { readonly kind: 'none' }
  /** Attributes the holder owns were changed; `statusOnly` when only `status` was (restored with one UpdateItem). */
  | { readonly kind: 'changed'; readonly fields: readonly string[]; readonly statusOnly: boolean; readonly storedAgentId?: string };

/** The holder's own attributes, compared; the heartbeat's (`expiresAt`, `renewedAt`) move with every renewal and are not. */
const OWN_ATTRS = [
  LEASE_ATTR.address,
  LEASE_ATTR.port,
  LEASE_ATTR.capabilities,
  LEASE_ATTR.agentId,
  LEASE_ATTR.status,
  LEASE_ATTR.registeredAt,
  LEASE_ATTR.availabilityZone,
  LEASE_ATTR.metadata,
] as const;

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const na = (a as { N?: unknown }).N;
  const nb = (b as { N?: unknown }).N;
  // Numbers compare by value, at any depth (`"8080"` and `"8080.0"` are one number to DynamoDB).
  if (typeof na === 'string' && typeof nb === 'string') return Number(na) === Number(nb);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    const sa = [...a].map((x) => JSON.stringify(x)).sort();
    const sb = [...b].map((x) => JSON.stringify(x)).sort();
    return sa.every((x, i) => x === sb[i]);
  }
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function valueOf(lease: Lease, attr: (typeof OWN_ATTRS)[number], status: LeaseStatus): RawAttributeValue | undefined {
  switch (attr) {
    case 'address':
      return { S: lease.address };
    case 'port':
      return { N: String(lease.port) };
    case 'capabilities':
      return { SS: [...lease.capabilities] };
    case 'agentId':
      return { S: lease.agentId };
    case 'status':
      return { S: status };
    case 'registeredAt':
      return { N: String(lease.registeredAt) };
    case 'availabilityZone':
      return lease.availabilityZone === undefined ? undefined : { S: lease.availabilityZone };
    case 'metadata':
      return lease.metadata === undefined ? undefined : { M: lease.metadata };
  }
}

function sameAttr(stored: RawAttributeValue | undefined, ours: RawAttributeValue | undefined): boolean {
  return same(stored, ours);
}

/**
 * Compares the stored item with the lease as its holder wrote it. `statuses` are the statuses the
 * holder itself may have written by now (the one it wants, and one being written), so its own
 * drain racing a heartbeat is never taken for someone else's. An item with another token is not
 * judged here: the holder's conditional writes fail on it, which is how it learns it lost the lease.
 */
export function leaseInterference(stored: RawItem | undefined, ours: Lease, statuses: readonly LeaseStatus[], policy: AddressPolicy): LeaseInterference {
  if (stored === undefined || stored[LEASE_ATTR.leaseToken]?.S !== ours.leaseToken) return { kind: 'none' };
  const fields = OWN_ATTRS.filter((attr) => {
    if (attr === LEASE_ATTR.status) return !statuses.some((s) => sameAttr(stored[attr], { S: s }));
    return !sameAttr(stored[attr], valueOf(ours, attr, statuses[0]));
  });
  // The registry's attributes are read, never judged; anything the decoder refuses is a change too.
  if (fields.length === 0 && decodeLease(stored, policy).ok) return { kind: 'none' };
  const storedAgentId = stored[LEASE_ATTR.agentId]?.S;
  return {
    kind: 'changed',
    fields: fields.length === 0 ? ['(item no longer valid)'] : [...fields],
    statusOnly: fields.length === 1 && fields[0] === LEASE_ATTR.status,
    ...(storedAgentId !== undefined && storedAgentId !== ours.agentId ? { storedAgentId: quoteUntrusted(storedAgentId, 80) } : {}),
  };
}

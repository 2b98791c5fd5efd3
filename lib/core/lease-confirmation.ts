import { AddressPolicy } from './address-policy';
import { decodeLease, isLive, leaseKeyOf } from './lease-codec';
import { routeLease } from './lease-routing';
import { HEARTBEAT_ATTRS, Lease, RawAttributeValue, RawItem, REGISTRY_ATTRS, RoutingConfig, TargetRef } from './lease-schema';

/**
 * "The stream says which leases changed; the table says what is true." Whatever a change was
 * planned from (stream images that may be late, duplicated or replayed; a scan that is seconds
 * old), it goes to ELB only when a consistent read of the lease made just before agrees:
 * a registration only when the lease is live now and names the group, a deregistration only
 * when it does not. Pure: the reads are the caller's.
 */

export type TargetAction = 'register' | 'deregister';

export interface ConfirmationContext {
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
  /** Epoch seconds of the read. */
  readonly nowSeconds: number;
  /**
   * `<targetGroupArn> <key>` of targets the registry refuses whatever their lease says: EC2 does
   * not admit their address (two reconcile passes agreed). @default none
   */
  readonly refusedMembers?: ReadonlySet<string>;
}

/** What a read item routes to, by item, policy and routing: a lease in several groups is decoded once per read, not once per group. */
const routed = new WeakMap<RawItem, { policy: AddressPolicy; routing: RoutingConfig; nowSeconds: number; lease?: Lease; groups: ReadonlySet<string> }>();

function routedItem(item: RawItem, ctx: ConfirmationContext): { lease?: Lease; groups: ReadonlySet<string> } {
  const known = routed.get(item);
  if (known !== undefined && known.policy === ctx.policy && known.routing === ctx.routing && known.nowSeconds === ctx.nowSeconds) return known;
  const decoded = decodeLease(item, ctx.policy);
  const view = decoded.ok
    ? {
        policy: ctx.policy,
        routing: ctx.routing,
        nowSeconds: ctx.nowSeconds,
        lease: decoded.lease,
        // With the read's time: a lease expiring beyond the deployment's maximum TTL routes nowhere.
        groups: new Set(routeLease(decoded.lease, ctx.routing, ctx.nowSeconds).memberships.map((m) => m.targetGroupArn)),
      }
    : { policy: ctx.policy, routing: ctx.routing, nowSeconds: ctx.nowSeconds, groups: new Set<string>() };
  routed.set(item, view);
  return view;
}

/** Whether `item` (read just now; `undefined` = no lease) wants its target in `targetGroupArn`. */
export function wantsTarget(item: RawItem | undefined, targetGroupArn: string, ctx: ConfirmationContext): boolean {
  if (!item) return false;
  if (ctx.refusedMembers !== undefined && ctx.refusedMembers.size > 0) {
    const key = leaseKeyOf(item);
    if (key !== undefined && ctx.refusedMembers.has(`${targetGroupArn} ${key}`)) return false;
  }
  const { lease, groups } = routedItem(item, ctx);
  return lease !== undefined && isLive(lease, ctx.nowSeconds) && groups.has(targetGroupArn);
}

export interface ConfirmationVerdict {
  /** The read agrees: send these. */
  readonly send: TargetRef[];
  /** The read disagrees, or there is no read of the key: do not send. */
  readonly withheld: TargetRef[];
}

/**
 * Splits planned changes of one group by what the reads say. `reads` maps lease key → item
 * (`undefined` = no item); a key the reads do not cover is withheld, never acted on blind.
 */
export function confirmChanges(
  action: TargetAction,
  targetGroupArn: string,
  targets: readonly TargetRef[],
  reads: ReadonlyMap<string, RawItem | undefined>,
  ctx: ConfirmationContext,
): ConfirmationVerdict {
  const send: TargetRef[] = [];
  const withheld: TargetRef[] = [];
  for (const target of targets) {
    const agrees = reads.has(target.key) && wantsTarget(reads.get(target.key), targetGroupArn, ctx) === (action === 'register');
    (agrees ? send : withheld).push(target);
  }
  return { send, withheld };
}

/**
 * After a call landed, the targets a later read contradicts: registered ones the table no
 * longer wants (the lease ended while the call was in flight), deregistered ones it wants again
 * (a lease acquired meanwhile). The caller undoes them with the opposite call.
 */
export function contradictedBy(
  action: TargetAction,
  targetGroupArn: string,
  landed: readonly TargetRef[],
  reads: ReadonlyMap<string, RawItem | undefined>,
  ctx: ConfirmationContext,
): TargetRef[] {
  return confirmChanges(action === 'register' ? 'deregister' : 'register', targetGroupArn, landed, reads, ctx).send;
}

/** The heartbeat's and the registry's own attributes: like a renewal, no change of the lease itself. */
const NOT_VERSIONED = new Set<string>([...HEARTBEAT_ATTRS, ...REGISTRY_ATTRS]);

function canonical(value: RawAttributeValue | undefined): string {
  if (value === undefined || value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  const parts: string[] = [];
  for (const type of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[type];
    if ((type === 'SS' || type === 'NS') && Array.isArray(v)) parts.push(`${type}:${JSON.stringify([...(v as string[])].sort())}`);
    else if (type === 'M' && v && typeof v === 'object') {
      const m = v as Record<string, RawAttributeValue>;
      parts.push(`M:{${Object.keys(m).sort().map((k) => `${JSON.stringify(k)}=${canonical(m[k])}`).join(',')}}`);
    } else if (type === 'L' && Array.isArray(v)) parts.push(`L:[${(v as RawAttributeValue[]).map(canonical).join(',')}]`);
    else parts.push(`${type}:${JSON.stringify(v)}`);
  }
  return `{${parts.join(';')}}`;
}

/** Two FNV-1a 32-bit hashes with different offsets, as 16 hex digits: short keys for caches. */
function digest(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/**
 * Identifies one version of a lease: a digest of every attribute but the heartbeat's
 * (`expiresAt`, `renewedAt`) and the registry's own (`rotation`). A renewal keeps it; a re-acquire
 * (new token), a drain, a new zone, capability list or metadata changes it. `''` for no item.
 */
export function leaseVersion(item: RawItem | undefined): string {
  if (!item) return '';
  return digest(
    Object.keys(item)
      .filter((k) => !NOT_VERSIONED.has(k))
      .sort()
      .map((k) => `${JSON.stringify(k)}=${canonical(item[k])}`)
      .join(','),
  );
}

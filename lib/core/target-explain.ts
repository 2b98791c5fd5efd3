import { AddressPolicy } from './address-policy';
import { decodeLease, decodeRotation, isLive, leaseKeyOf, rotationEntry } from './lease-codec';
import { routeLease } from './lease-routing';
import { RawItem, RoutingConfig } from './lease-schema';
import { ObservedTarget, presenceOf } from './reconcile-planner';
import { decodeRejection, rejectionVerdict, sameVerdict, STORED_ONLY_REASONS } from './rejection';
import { quoteUntrusted } from './untrusted-text';

/**
 * `agent-lb explain <address:port>`: in words, why a target is or is not in rotation in each
 * capability — its lease (there, valid, live), the registry's verdict and whether the lease
 * holds it, the lease's `rotation`, what ELB reports now with the group's health check, and the
 * rules that send requests there. Pure: the CLI reads, this explains.
 */

/** A target group's health check, as DescribeTargetGroups reports it. */
export interface HealthCheckView {
  readonly protocol?: string;
  readonly path?: string;
  /** `traffic-port` or a number. */
  readonly port?: string;
  readonly codes?: string;
  readonly intervalSeconds?: number;
  readonly healthyThreshold?: number;
  readonly unhealthyThreshold?: number;
}

/** What was read of one capability's group. */
export interface GroupView {
  /** The target as DescribeTargetHealth lists it; undefined when the group does not list it. */
  readonly target?: ObservedTarget;
  readonly healthCheck?: HealthCheckView;
  /** How requests reach the group: `X-Agent-Capability: vision`, `path /agents/vision/*`, … */
  readonly routes?: readonly string[];
  /** The group could not be read (why). */
  readonly unread?: string;
}

export interface ExplainInput {
  /** The lease key asked about. */
  readonly key: string;
  /** Its item, read with a consistent read; undefined when there is none. */
  readonly item: RawItem | undefined;
  readonly nowMs: number;
  readonly policy: AddressPolicy;
  readonly routing: RoutingConfig;
  /** By capability: every routed capability's group as read. */
  readonly groups: Readonly<Record<string, GroupView>>;
}

export interface CapabilityExplanation {
  readonly capability: string;
  /** Gets new requests now: registered and healthy. */
  readonly inRotation: boolean;
  /** Sentences, in the order a person checks them. */
  readonly why: readonly string[];
}

export interface TargetExplanation {
  readonly target: string;
  /** One sentence about the lease as a whole. */
  readonly lease: string;
  readonly capabilities: readonly CapabilityExplanation[];
}

const ago = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};

/**
 * `renewedAt` is the agent's word, on the agent's clock: one ahead of ours (a skewed clock, or a
 * value written to look fresh) is said to be ahead, not "renewed 0 s ago".
 */
function renewedText(renewedAtMs: number, nowMs: number): string {
  const aheadMs = renewedAtMs - nowMs;
  return aheadMs > RENEWED_AHEAD_TOLERANCE_MS ? `renewedAt is ${ago(aheadMs)} ahead of this clock: the agent's clock is off, or the value is not a renewal time` : `renewed ${ago(nowMs - renewedAtMs)} ago`;
}

/** Clocks of healthy hosts agree within a second or two (NTP); more ahead than this is said. */
const RENEWED_AHEAD_TOLERANCE_MS = 5_000;

function healthCheckText(hc: HealthCheckView | undefined, leasePort: number | undefined): string {
  if (!hc) return 'its health check';
  const port = hc.port === undefined || hc.port === 'traffic-port' ? (leasePort === undefined ? 'the traffic port' : `port ${leasePort}`) : `port ${hc.port}`;
  const every = hc.intervalSeconds ? ` every ${hc.intervalSeconds} s` : '';
  return `${hc.protocol ?? 'HTTP'} GET ${hc.path ?? '/'} on ${port}${every}, expecting ${hc.codes ?? '200'}`;
}

/** What the target's ELB state means, in a sentence, and whether it gets new requests. */
function elbSentence(view: GroupView, desired: boolean, leasePort: number | undefined): { text: string; inRotation: boolean } {
  if (view.unread) return { text: `its target group could not be read: ${view.unread}`, inRotation: false };
  const t = view.target;
  const check = healthCheckText(view.healthCheck, leasePort);
  const presence = t === undefined ? 'absent' : presenceOf(t);
  if (presence === 'absent') {
    return desired
      ? { text: 'ELB does not list it although its lease is live: stream sync registers it within seconds, or reconcile at its next pass (drift)', inRotation: false }
      : { text: 'ELB does not list it: not registered', inRotation: false };
  }
  if (presence === 'draining') {
    return {
      text: `ELB is draining it (deregistered: requests in flight finish, no new ones)${desired ? '; its lease is live again, so reconcile registers it again' : ''}`,
      inRotation: false,
    };
  }
  const reason = t!.reason ? ` (${t!.reason})` : '';
  const stale = desired ? '' : '; it has no live lease for this capability, so reconcile removes it';
  switch (t!.state) {
    case 'healthy':
      return { text: `ELB reports it healthy: it gets requests${stale}`, inRotation: true };
    case 'initial':
      return { text: `ELB registered it and waits for its first passing health check${reason}: ${check}${stale}`, inRotation: false };
    case 'unhealthy': {
      const back = view.healthCheck?.healthyThreshold ? `; back in rotation after ${view.healthCheck.healthyThreshold} passing checks` : '';
      return { text: `ELB reports it unhealthy${reason}: it fails ${check}${back} (when every target of the group is unhealthy, ALB fails open and sends to all of them)${stale}`, inRotation: false };
    }
    default:
      return { text: `ELB reports it ${t!.state}${reason}${stale}`, inRotation: false };
  }
}

export function explainTarget(input: ExplainInput): TargetExplanation {
  const nowSeconds = Math.floor(input.nowMs / 1000);
  const routed = Object.keys(input.routing.capabilities);
  const listedBy = routed.filter((c) => input.groups[c]?.target !== undefined && presenceOf(input.groups[c].target!) !== 'absent');
  const stored = decodeRejection(input.item?.rejection);

  if (input.item === undefined) {
    return {
      target: input.key,
      lease: `no lease for ${input.key}: the registry routes it nowhere`,
      capabilities: listedBy.map((capability) => {
        const elb = elbSentence(input.groups[capability], false, undefined);
        return { capability, inRotation: elb.inRotation, why: ['no lease lists it', elb.text] };
      }),
    };
  }

  const decoded = decodeLease(input.item, input.policy);
  if (!decoded.ok) {
    const verdict = rejectionVerdict(decoded.rejections)!;
    const told = stored !== undefined && sameVerdict(verdict, stored) ? `the lease holds this reason (rejection, since ${new Date(stored.since).toISOString()})` : 'the registry has not written this reason into the lease yet';
    const listed = Array.isArray(input.item.capabilities?.SS) ? (input.item.capabilities.SS as string[]).filter((c) => typeof c === 'string') : [];
    const names = [...new Set([...listed.filter((c) => routed.includes(c)), ...listedBy])].sort();
    return {
      target: leaseKeyOf(input.item) ?? input.key,
      lease: `the lease is invalid, so the registry routes it nowhere (${verdict.reason}: ${verdict.message}); ${told}`,
      capabilities: names.map((capability) => {
        const elb = elbSentence(input.groups[capability] ?? {}, false, undefined);
        return { capability, inRotation: elb.inRotation, why: ['the lease is invalid', elb.text] };
      }),
    };
  }

  const lease = decoded.lease;
  const live = isLive(lease, nowSeconds);
  const expiresIn = lease.expiresAt - nowSeconds;
  const leaseText = live
    ? `the lease is live: active, expires in ${expiresIn} s (${renewedText(lease.renewedAt, input.nowMs)}) by agent ${quoteUntrusted(lease.agentId, 60)}`
    : lease.expiresAt <= nowSeconds
      ? `the lease expired ${ago((nowSeconds - lease.expiresAt) * 1000)} ago: not live, so its target leaves every group and reconcile deletes it`
      : `the lease is draining (the agent took itself out of rotation, lease kept, expires in ${expiresIn} s): not live`;
  const routing = routeLease(lease, input.routing);
  const verdict = rejectionVerdict(routing.rejections);
  const told = verdict === undefined ? '' : stored !== undefined && sameVerdict(verdict, stored) ? ' (the lease holds this reason in rejection)' : ' (the registry has not written this reason into the lease yet)';
  const rotation = decodeRotation(input.item.rotation).rotation;
  const capabilities = [...new Set([...lease.capabilities, ...listedBy])].sort();
  // Admission (EC2), the target quota, a capability's declared ports and the maximum TTL are decided
  // from AWS facts and settings explain does not read: only the registry's stored verdict tells them.
  const byFacts = stored !== undefined && STORED_ONLY_REASONS.includes(stored.reason) && !routing.rejections.some((r) => r.capability === undefined) ? stored : undefined;
  const refusedByFacts = (capability: string): boolean => byFacts !== undefined && (byFacts.capabilities === undefined || byFacts.capabilities.includes(capability));

  return {
    target: lease.target,
    lease: leaseText,
    capabilities: capabilities.map((capability) => {
      const refused = routing.rejections.find((r) => r.capability === capability);
      const membership = routing.memberships.find((m) => m.capability === capability);
      const why: string[] = [];
      if (!lease.capabilities.includes(capability)) why.push('the lease does not list it');
      else if (refused) why.push(`the registry refuses it: ${refused.message}${told}`);
      else if (refusedByFacts(capability)) {
        why.push(`the registry refuses it (${byFacts!.reason}, since ${new Date(byFacts!.since).toISOString()}): ${quoteUntrusted(byFacts!.message, 200)}`);
      }
      else if (membership) why.push(live ? 'the lease lists it and is live: it belongs in the group' : `the lease lists it but is not live: it does not belong in the group`);
      const desired = membership !== undefined && live;
      const view = input.groups[capability];
      if (view === undefined) return { capability, inRotation: false, why };
      const entry = rotationEntry(rotation, capability);
      if (membership) why.push(entry ? `the lease's rotation says ${entry.state} for ${ago(input.nowMs - entry.since)}` : 'the lease has no rotation entry for it yet');
      const elb = elbSentence(view, desired, lease.port);
      why.push(elb.text);
      if (elb.inRotation && view.routes && view.routes.length > 0) why.push(`requests reach it by ${view.routes.join(' or ')}`);
      return { capability, inRotation: elb.inRotation, why };
    }),
  };
}

/** The explanation as lines for a terminal: the lease, then per capability `IN ROTATION`/`NOT IN ROTATION` and its reasons. */
export function renderExplanation(e: TargetExplanation): string {
  const lines = [`${e.target}: ${e.lease}`];
  if (e.capabilities.length === 0) lines.push('  (no capability lists it, and no group holds it)');
  for (const c of e.capabilities) {
    lines.push(`  ${c.capability}: ${c.inRotation ? 'IN ROTATION' : 'NOT IN ROTATION'}`);
    for (const w of c.why) lines.push(`    - ${w}`);
  }
  return lines.join('\n');
}

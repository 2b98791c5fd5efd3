import { formatTarget } from '../core/address-policy';
import { decodeLease, isLive, leaseKeyOf, rotationEntry } from '../core/lease-codec';
import { decodeRejection, refusedCapabilities, sameVerdict } from '../core/rejection';
import { currentVerdict, standingFactRejection } from '../core/rejection-planner';
import { routeLease } from '../core/lease-routing';
import { Lease, RotationState, RoutingConfig } from '../core/lease-schema';
import { rotationStateOf } from '../core/rotation-planner';
import { ObservedTarget, planReconcile, presenceOf } from '../core/reconcile-planner';
import { addressPolicyFor } from '../core/runtime-config';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { WeightedRule } from '../core/variant-weights';
import { readWeightedRules } from '../aws/listener-rules';
import { VariantTags, variantTagsOf } from '../aws/target-groups';
import { readGroups } from './group-reads';

/**
 * What `agent-lb status` and `agent-lb leases` show, read from the deployment (rendered by
 * lib/cli/fleet-render.ts; local mode's live view reads the same).
 */

export interface CapabilityStatus {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly liveLeases: number;
  /** Targets in rotation: registered and not draining (ELB's `draining` is on its way out). */
  readonly registered: number;
  /** Targets ELB is draining (deregistered, waiting out the deregistration delay). */
  readonly draining: number;
  readonly health: Readonly<Record<string, number>>;
  /** The group's targets as ELB reports them. */
  readonly targets: readonly ObservedTarget[];
  /** Live leases whose target is not in rotation (absent, or draining). */
  readonly missing: readonly string[];
  /** Registered targets without a live lease for this capability (draining targets excepted). */
  readonly stale: readonly string[];
  /** For a weighted variant and for a capability that has variants: its share of the capability's requests. */
  readonly weight?: CapabilityWeight;
}

/** A group's share of its capability's requests, in percent. */
export interface CapabilityWeight {
  /** The variant's configured weight, or for the stable group 100 − its variants' weights. */
  readonly configured: number;
  /** What the listener rules say now (the reconcile pass holds a variant without a healthy target at 0); absent when the rules were not read. */
  readonly routed?: number;
  /** For a variant: the capability it belongs to. */
  readonly variantOf?: string;
}

/** One lease's target in one capability's group: what the registry told the agent (`rotation`) and what ELB says now. */
export interface TargetRotation {
  readonly target: string;
  readonly capability: string;
  /** The lease's `rotation` entry: the state the registry last wrote; absent before its first write. */
  readonly state?: RotationState;
  /** Epoch ms of that entry's `since`. */
  readonly since?: number;
  /** How long the target has been in `state`, seconds (never negative: the registry's clock may run ahead). */
  readonly ageSeconds?: number;
  /** The state ELB reports now (`absent` when the group does not list the target). */
  readonly elbState: string;
}

/** A lease the registry refuses, or refuses some capabilities of, and why (its `rejection`, as the registry judges it now). */
export interface TargetRejection {
  readonly target: string;
  /** A stable code: `invalid`, `unknown-capability`, `target-type-mismatch`, … */
  readonly reason: string;
  readonly message: string;
  /** The capabilities refused; absent when the whole lease is. */
  readonly capabilities?: readonly string[];
  /** Whether the lease already holds this verdict (the registry has told its writer), and since when (epoch ms). */
  readonly told: boolean;
  readonly since?: number;
}

export interface FleetStatus {
  readonly at: string;
  readonly capabilities: readonly CapabilityStatus[];
  /** Per lease held (not expired) and capability it routes to, by target then capability. */
  readonly rotation: readonly TargetRotation[];
  /** Every lease not expired that the registry refuses in whole or in part, by target. */
  readonly rejections: readonly TargetRejection[];
  readonly leases: { readonly total: number; readonly live: number; readonly invalid: number };
  readonly drift: boolean;
}

export interface FleetSources {
  readonly elb: ElbTargets;
  readonly store: LeaseStore;
  readonly routing: RoutingConfig;
  readonly now?: () => number;
  /** Weighted variants' tags, by target group ARN. @default none */
  readonly variants?: Readonly<Record<string, VariantTags>>;
  /** The listener's weighted rules, for the weights in effect. @default - not read: configured weights only */
  readonly weightedRules?: readonly WeightedRule[];
}

/**
 * Live leases vs registered targets vs ALB health, per capability. Drift is computed by the
 * same planner the reconcile Lambda uses, so `status` reports exactly what reconcile would fix.
 */
export async function fleetStatus(src: FleetSources): Promise<FleetStatus> {
  const nowMs = (src.now ?? Date.now)();
  const nowSeconds = Math.floor(nowMs / 1000);
  const { groups, unread } = await readGroups(src.elb, src.routing);
  if (unread.length > 0) throw unread[0];
  const { items } = await src.store.scanAll(true);
  const policy = addressPolicyFor(src.routing);
  const plan = planReconcile({ groups, items, nowSeconds, policy, routing: src.routing, safetyValveShare: 1 });
  const liveByGroup = new Map<string, number>();
  const rotation: TargetRotation[] = [];
  const readGroup = new Map(groups.map((g) => [g.targetGroupArn, new Map(g.targets.map((t) => [formatTarget(t.id, t.port), t]))]));
  let invalid = 0;
  const rejections: TargetRejection[] = [];
  /** `<targetGroupArn> <key>` the registry refuses from AWS facts (not admitted, over the quota): refused, not drift. */
  const refusedByFacts = new Set<string>();
  for (const item of items) {
    const verdict = currentVerdict(item, policy, src.routing, nowSeconds);
    const expiresAt = Number(item.expiresAt?.N);
    if (verdict !== undefined && !(Number.isFinite(expiresAt) && expiresAt <= nowSeconds)) {
      const stored = decodeRejection(item.rejection);
      const told = stored !== undefined && sameVerdict(verdict, stored);
      rejections.push({ target: leaseKeyOf(item) ?? '?', ...verdict, told, ...(told ? { since: stored.since } : {}) });
    }
    const d = decodeLease(item, policy);
    if (!d.ok) {
      invalid++;
      continue;
    }
    if (d.lease.expiresAt > nowSeconds) {
      for (const m of routeLease(d.lease, src.routing, nowSeconds).memberships) {
        const entry = rotationEntry(d.lease.rotation, m.capability);
        const seen = readGroup.get(m.targetGroupArn)?.get(d.lease.target);
        rotation.push({
          target: d.lease.target,
          capability: m.capability,
          ...(entry ? { state: entry.state, since: entry.since, ageSeconds: Math.max(0, Math.floor((nowMs - entry.since) / 1000)) } : {}),
          elbState: seen === undefined ? 'absent' : (rotationStateOf(seen) ?? seen.state),
        });
      }
    }
    if (!isLive(d.lease, nowSeconds)) continue;
    const routed = routeLease(d.lease, src.routing, nowSeconds);
    const refused = refusedCapabilities(standingFactRejection(item, routed.rejections), d.lease.capabilities);
    for (const m of routed.memberships) {
      if (refused.includes(m.capability)) refusedByFacts.add(`${m.targetGroupArn} ${d.lease.target}`);
      else liveByGroup.set(m.targetGroupArn, (liveByGroup.get(m.targetGroupArn) ?? 0) + 1);
    }
  }
  const capabilities = groups.map((g): CapabilityStatus => {
    const repair = plan.groups.find((r) => r.targetGroupArn === g.targetGroupArn)!;
    const health: Record<string, number> = {};
    for (const t of g.targets) health[t.state] = (health[t.state] ?? 0) + 1;
    return {
      capability: g.capability,
      targetGroupArn: g.targetGroupArn,
      liveLeases: liveByGroup.get(g.targetGroupArn) ?? 0,
      registered: g.targets.filter((t) => presenceOf(t) === 'registered').length,
      draining: g.targets.filter((t) => presenceOf(t) === 'draining').length,
      health,
      targets: g.targets,
      missing: repair.register.filter((t) => !refusedByFacts.has(`${g.targetGroupArn} ${t.key}`)).map((t) => t.key),
      stale: repair.deregister.map((d) => d.target.key),
      ...weightOf(g.capability, g.targetGroupArn, src),
    };
  });
  return {
    at: new Date(nowMs).toISOString(),
    capabilities,
    rotation: rotation.sort((a, b) => a.target.localeCompare(b.target) || a.capability.localeCompare(b.capability)),
    rejections: rejections.sort((a, b) => a.target.localeCompare(b.target)),
    leases: { total: items.length, live: plan.liveLeases, invalid },
    drift: capabilities.some((c) => c.missing.length > 0 || c.stale.length > 0),
  };
}

function weightOf(capability: string, arn: string, src: FleetSources): { weight?: CapabilityWeight } {
  const variants = Object.values(src.variants ?? {});
  const own = src.variants?.[arn];
  const ofThis = variants.filter((v) => v.variantOf === capability);
  if (!own && ofThis.length === 0) return {};
  const configured = own ? own.weight : 100 - ofThis.reduce((n, v) => n + v.weight, 0);
  const routed = src.weightedRules?.flatMap((r) => r.groups).find((g) => g.targetGroupArn === arn)?.weight;
  return { weight: { configured, ...(routed !== undefined ? { routed } : {}), ...(own ? { variantOf: own.variantOf } : {}) } };
}

/**
 * The variant part of the status sources: the groups' variant tags (one DescribeTags per 20
 * groups) and, where the deployment names its listener or load balancer and has variants, the
 * weighted rules (the weights in effect); elsewhere status shows the configured weights.
 */
export async function variantSources(
  client: ElasticLoadBalancingV2Client,
  deployment: { readonly targetGroups: Readonly<Record<string, string>>; readonly listenerArn?: string; readonly loadBalancerArn?: string },
): Promise<Pick<FleetSources, 'variants' | 'weightedRules'>> {
  const variants = await variantTagsOf(client, Object.values(deployment.targetGroups));
  const on = deployment.listenerArn ? { listenerArn: deployment.listenerArn } : deployment.loadBalancerArn ? { loadBalancerArn: deployment.loadBalancerArn } : undefined;
  if (!on || Object.keys(variants).length === 0) return { variants };
  return { variants, weightedRules: await readWeightedRules(client, on) };
}

export interface LeaseRow {
  readonly target: string;
  readonly agentId: string;
  readonly capabilities: readonly string[];
  readonly status: string;
  readonly live: boolean;
  readonly expiresInSeconds: number;
  readonly problems?: readonly string[];
}

export async function listLeases(store: LeaseStore, routing: RoutingConfig, capability?: string, now: () => number = Date.now): Promise<LeaseRow[]> {
  const nowSeconds = Math.floor(now() / 1000);
  const policy = addressPolicyFor(routing);
  const { items } = await store.scanAll(true);
  const rows: LeaseRow[] = [];
  for (const item of items) {
    const d = decodeLease(item, policy);
    if (!d.ok) {
      rows.push({
        target: item.target?.S ?? '?',
        agentId: item.agentId?.S ?? '?',
        capabilities: item.capabilities?.SS ?? [],
        status: 'invalid',
        live: false,
        expiresInSeconds: Number(item.expiresAt?.N ?? 0) - nowSeconds,
        problems: d.rejections.map((r) => r.message),
      });
      continue;
    }
    const l: Lease = d.lease;
    const found = routeLease(l, routing, nowSeconds).rejections;
    const standing = standingFactRejection(item, found);
    const problems = [...found.map((r) => r.message), ...(standing ? [`${standing.reason}: ${standing.message}`] : [])];
    rows.push({
      target: l.target,
      agentId: l.agentId,
      capabilities: l.capabilities,
      status: l.status,
      live: isLive(l, nowSeconds),
      expiresInSeconds: l.expiresAt - nowSeconds,
      ...(problems.length ? { problems } : {}),
    });
  }
  return rows.filter((r) => !capability || r.capabilities.includes(capability)).sort((a, b) => a.target.localeCompare(b.target));
}

import { ProxyLogEntry } from './fault-proxy';
import { LeaseTruth } from './lease-truth';
import { Sample } from './sampler';

/**
 * The independent checker: compares what the target groups held (the sampler's reads, and the
 * mutations moto accepted as the proxy saw them) with when the agents' leases were live (from
 * the agents' own write log). It never asks agent-lb's code anything.
 *
 * (a) false deregistration: a target removed from a group while its lease listing that group
 *     was certainly live — from `decisionWindowMs` before the call was first sent (the handlers
 *     confirm with a consistent read at most that long before, see DEREGISTER_DEADLINE_MS) until
 *     moto accepted it. Checked exactly on every DeregisterTargets moto accepted, and on every
 *     sampled disappearance (from the sample before, less the window, to the sample after).
 *     A lease that became live inside that window ("racing") is counted apart, with the time
 *     until its target was registered again.
 * (b) lost registration: after quiescence, a live lease (consistent Scan) whose target is
 *     missing from a group it names.
 * (c) staleness: how long a target stayed registered after its lease was no longer even
 *     possibly live; bound = reconcile interval + retry budget (so TTL + reconcile interval +
 *     retry budget from the agent's last act; see chaos-run.ts for the budget).
 */

export interface CheckerBounds {
  /** Longest time between a handler's confirming read and its DeregisterTargets call. */
  readonly decisionWindowMs: number;
  readonly ttlMs: number;
  readonly reconcileIntervalMs: number;
  /** What the design allows beyond one reconcile interval (the passes' retry budget, outages). */
  readonly retryBudgetMs: number;
}

export interface FalseDeregistration {
  readonly target: string;
  readonly capability: string;
  readonly origin: string;
  readonly firstSentAt: number;
  readonly landedBy: number;
  readonly how: 'exact' | 'sampled';
}

export interface StaleEpisode {
  readonly target: string;
  readonly capability: string;
  /** When the lease stopped being possibly live (or when the stale registration appeared, if later). */
  readonly from: number;
  readonly until: number;
  /** From the last write any agent sent for this target (the agent's last act); for an episode that began when the lease died. */
  readonly sinceLastActMs: number;
  /** The target was registered again after its lease had died (a late or replayed registration), rather than left registered. */
  readonly reappeared: boolean;
  readonly neverLeased: boolean;
  readonly stillRegisteredAtEnd: boolean;
}

export interface Verdict {
  readonly falseDeregistrations: readonly FalseDeregistration[];
  /** Deregistrations that landed while a lease was live that had become live within the decision window (or while the call was in flight). */
  readonly racingDeregistrations: number;
  /** Longest time such a target stayed out before it was registered again. */
  readonly worstRacingGapMs: number;
  readonly lostRegistrations: readonly { target: string; capability: string; source: 'scan' | 'agents' }[];
  readonly staleEpisodes: number;
  /** Of those, episodes where a dead lease's target was registered again (late or replayed registration). */
  readonly staleReappearances: number;
  /** The first 50 of them, for post-mortems. */
  readonly reappearanceEpisodes: readonly StaleEpisode[];
  readonly worstStaleness?: StaleEpisode;
  /** Bounds: after lease death ≤ reconcile interval + retry budget; after the last act ≤ TTL + that. */
  readonly stalenessBoundMs: number;
  readonly lastActBoundMs: number;
  readonly stalenessViolations: readonly StaleEpisode[];
  /** Longest time any stale target stayed registered after the last write an agent sent for it. */
  readonly worstSinceLastActMs: number;
  /** Longest time from a lease becoming certainly live to its target showing registered (sampled). */
  readonly worstRegistrationDelayMs: number;
  /** Spells of certain liveness longer than the staleness bound during which the target never showed registered. */
  readonly unregisteredLiveSpells: readonly { target: string; capability: string; start: number; end: number }[];
  readonly samples: number;
  readonly deregistrationsChecked: number;
}

function invert(targetGroups: Readonly<Record<string, string>>): Map<string, string> {
  return new Map(Object.entries(targetGroups).map(([c, arn]) => [arn, c]));
}

export function check(input: {
  truth: LeaseTruth;
  samples: readonly Sample[];
  proxyLog: readonly ProxyLogEntry[];
  targetGroups: Readonly<Record<string, string>>;
  /** The sample taken after quiescence. */
  final: Sample;
  bounds: CheckerBounds;
}): Verdict {
  const { truth, bounds } = input;
  const capabilityOf = invert(input.targetGroups);
  const capabilities = Object.keys(input.targetGroups);

  // (a) exact: every deregistration moto accepted.
  const firstSent = new Map<string, number>();
  for (const e of input.proxyLog) firstSent.set(e.invocationId, Math.min(firstSent.get(e.invocationId) ?? Infinity, e.receivedAt));
  const falseDeregistrations: FalseDeregistration[] = [];
  let racingDeregistrations = 0;
  let worstRacingGapMs = 0;
  let deregistrationsChecked = 0;
  const window = bounds.decisionWindowMs;
  const registrations = input.proxyLog.filter((e) => e.action === 'RegisterTargets' && e.status === 200 && e.forwardedAt !== undefined);
  for (const e of input.proxyLog) {
    if (e.action !== 'DeregisterTargets' || e.status !== 200 || e.forwardedAt === undefined) continue;
    const capability = capabilityOf.get(e.targetGroupArn ?? '') ?? '?';
    const sentAt = firstSent.get(e.invocationId) ?? e.receivedAt;
    const landedBy = e.answeredAt ?? e.forwardedAt;
    for (const target of e.targets) {
      deregistrationsChecked++;
      if (truth.certainlyLiveThroughout(target, capability, sentAt - window, landedBy)) {
        falseDeregistrations.push({ target, capability, origin: e.origin, firstSentAt: sentAt, landedBy, how: 'exact' });
      } else if (truth.certainlyLiveThroughout(target, capability, landedBy, landedBy)) {
        racingDeregistrations++;
        // Out of rotation until registered again, or until that lease ended anyway.
        const back = registrations.find((r) => r.forwardedAt! >= e.forwardedAt! && r.targetGroupArn === e.targetGroupArn && r.targets.includes(target));
        const liveUntil = truth.certainlyLive(target, capability).find(([a, b]) => a <= landedBy && landedBy < b)?.[1] ?? landedBy;
        worstRacingGapMs = Math.max(worstRacingGapMs, Math.min(back?.forwardedAt ?? Infinity, liveUntil) - landedBy);
      }
    }
  }

  // (a) sampled: every disappearance between two samples.
  const withGroups = input.samples.filter((s) => s.groups !== undefined);
  for (let i = 1; i < withGroups.length; i++) {
    const before = withGroups[i - 1];
    const after = withGroups[i];
    for (const capability of capabilities) {
      const now = after.groups!.get(capability)!;
      for (const target of before.groups!.get(capability)!) {
        if (now.has(target)) continue;
        if (truth.certainlyLiveThroughout(target, capability, before.startedAt - window, after.endedAt)) {
          falseDeregistrations.push({ target, capability, origin: 'sampled', firstSentAt: before.startedAt, landedBy: after.endedAt, how: 'sampled' });
        }
      }
    }
  }

  // (b) after quiescence: every live lease's target in every group it names.
  const lostRegistrations: Verdict['lostRegistrations'][number][] = [];
  const final = input.final;
  if (final.groups === undefined || final.leases === undefined) throw new Error('the final sample could not read the target groups and the lease table');
  for (const [target, lease] of final.leases) {
    if (lease.status !== 'active' || lease.expiresAt * 1000 <= final.endedAt) continue;
    for (const capability of lease.capabilities) {
      const group = final.groups.get(capability);
      if (group && !group.has(target)) lostRegistrations.push({ target, capability, source: 'scan' });
    }
  }
  for (const { target, capability } of truth.pairs()) {
    if (!final.groups.has(capability) || final.groups.get(capability)!.has(target)) continue;
    if (truth.certainlyLiveThroughout(target, capability, final.startedAt, final.endedAt)) lostRegistrations.push({ target, capability, source: 'agents' });
  }

  // (c) staleness, per (target, capability), over runs of samples where it is registered and dead.
  const stalenessBoundMs = bounds.reconcileIntervalMs + bounds.retryBudgetMs;
  const lastActBoundMs = bounds.ttlMs + stalenessBoundMs;
  const episodes: StaleEpisode[] = [];
  for (const capability of capabilities) {
    const targets = new Set<string>();
    for (const s of withGroups) for (const t of s.groups!.get(capability)!) targets.add(t);
    for (const target of targets) {
      let open: { from: number; dead: number; reappeared: boolean } | undefined;
      let previous: Sample | undefined;
      const close = (until: number, atEnd: boolean) => {
        const act = open!.dead === -Infinity ? undefined : truth.lastWriteBefore(target, open!.dead);
        episodes.push({
          target,
          capability,
          from: open!.from,
          until,
          sinceLastActMs: open!.reappeared ? until - open!.from : act ? until - act.t0 : Infinity,
          reappeared: open!.reappeared,
          neverLeased: open!.dead === -Infinity,
          stillRegisteredAtEnd: atEnd,
        });
        open = undefined;
      };
      for (const s of withGroups) {
        const registered = s.groups!.get(capability)!.has(target);
        const dead = registered ? truth.deadSince(target, capability, s.endedAt) : undefined;
        const stale = dead !== undefined && dead <= s.startedAt;
        if (stale && open === undefined) {
          // Registered and dead since `dead`; if it was not registered at the previous sample, it (re)appeared after that one began.
          const wasRegistered = previous?.groups!.get(capability)!.has(target) ?? false;
          const from = wasRegistered ? dead : Math.max(dead, previous?.startedAt ?? -Infinity);
          open = { from: Number.isFinite(from) ? from : s.startedAt, dead, reappeared: !wasRegistered && previous !== undefined && from > dead };
        } else if (!stale && open !== undefined) {
          close(s.endedAt, false);
        }
        previous = s;
      }
      if (open !== undefined) close(withGroups[withGroups.length - 1].endedAt, true);
    }
  }
  const duration = (e: StaleEpisode) => e.until - e.from;
  const worstStaleness = episodes.reduce<StaleEpisode | undefined>((w, e) => (w === undefined || duration(e) > duration(w) ? e : w), undefined);
  const stalenessViolations = episodes.filter((e) => e.neverLeased || e.stillRegisteredAtEnd || duration(e) > stalenessBoundMs || e.sinceLastActMs > lastActBoundMs);

  // Registration delay: lease certainly live → first sample showing it registered.
  let worstRegistrationDelayMs = 0;
  const unregisteredLiveSpells: Verdict['unregisteredLiveSpells'][number][] = [];
  const lastSampleAt = withGroups[withGroups.length - 1]?.startedAt ?? 0;
  for (const { target, capability } of truth.pairs()) {
    for (const [start, end] of truth.certainlyLive(target, capability)) {
      const seen = withGroups.find((s) => s.startedAt >= start && s.groups!.get(capability)?.has(target));
      if (seen === undefined || seen.startedAt >= end) {
        if (Math.min(end, lastSampleAt) - start > stalenessBoundMs) unregisteredLiveSpells.push({ target, capability, start, end });
        continue;
      }
      worstRegistrationDelayMs = Math.max(worstRegistrationDelayMs, seen.endedAt - start);
    }
  }

  return {
    falseDeregistrations,
    racingDeregistrations,
    worstRacingGapMs,
    lostRegistrations,
    staleEpisodes: episodes.length,
    staleReappearances: episodes.filter((e) => e.reappeared).length,
    reappearanceEpisodes: episodes.filter((e) => e.reappeared).slice(0, 50),
    ...(worstStaleness ? { worstStaleness } : {}),
    stalenessBoundMs,
    lastActBoundMs,
    stalenessViolations,
    worstSinceLastActMs: episodes.reduce((m, e) => (Number.isFinite(e.sinceLastActMs) ? Math.max(m, e.sinceLastActMs) : m), 0),
    worstRegistrationDelayMs,
    unregisteredLiveSpells,
    samples: input.samples.length,
    deregistrationsChecked,
  };
}

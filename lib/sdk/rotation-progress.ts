import { rotationEntry } from '../core/lease-codec';
import type { LeaseRotation, RotationState } from '../core/lease-schema';
import { refusedCapabilities } from '../core/rejection';
import type { RejectionVerdict } from '../core/rejection';

/**
 * States in which a target gets no new requests from its group: `draining` (deregistered,
 * in-flight requests may finish), `absent` (left the group) and `unused` (not registered, or
 * the group is used by no listener rule). Every other state may receive traffic — `unhealthy`
 * included, since an ALB fails open when all of a group's targets are unhealthy.
 */
export const OUT_OF_ROTATION_STATES: readonly RotationState[] = ['draining', 'absent', 'unused'];

/** One capability's target group as the lease's `rotation` (and `rejection`) show it. */
export interface GroupRotation {
  readonly capability: string;
  /**
   * `unreported` when the registry has written no entry for this capability (yet); `rejected`
   * when the registry refuses the capability (the lease's `rejection`): it has no group to wait for.
   */
  readonly state: RotationState | 'unreported' | 'rejected';
  /** Epoch milliseconds (the registry's clock); absent when unreported or rejected. */
  readonly since?: number;
}

export interface RotationProgress {
  /** True when every group is where the wait wants it. */
  readonly done: boolean;
  /** Every capability of the lease, in order. */
  readonly groups: readonly GroupRotation[];
  /** The groups not there yet. */
  readonly pending: readonly GroupRotation[];
  /** True when the registry refuses every capability of the lease: it can never serve as written. */
  readonly allRejected: boolean;
}

function groupsOf(rotation: LeaseRotation | undefined, capabilities: readonly string[], rejection: RejectionVerdict | undefined): GroupRotation[] {
  const refused = refusedCapabilities(rejection, capabilities);
  return capabilities.map((capability) => {
    if (refused.includes(capability)) return { capability, state: 'rejected' };
    const entry = rotationEntry(rotation, capability);
    return entry === undefined ? { capability, state: 'unreported' } : { capability, state: entry.state, since: entry.since };
  });
}

function progress(groups: GroupRotation[], there: (g: GroupRotation) => boolean): RotationProgress {
  const allRejected = groups.length > 0 && groups.every((g) => g.state === 'rejected');
  const pending = groups.filter((g) => g.state !== 'rejected' && !there(g));
  return { done: pending.length === 0 && !allRejected, groups, pending, allRejected };
}

/**
 * Serving: `healthy` in the target group of every capability the lease lists that the registry
 * does not refuse (`rejection`), and at least one such capability. A capability refused on its
 * own (`unknown-capability`, …) keeps the agent from serving nothing else.
 */
export function servingProgress(rotation: LeaseRotation | undefined, capabilities: readonly string[], rejection?: RejectionVerdict): RotationProgress {
  return progress(groupsOf(rotation, capabilities, rejection), (g) => g.state === 'healthy');
}

/**
 * Out of rotation: in one of `OUT_OF_ROTATION_STATES` in every group, reported at or after
 * `notBeforeMs` (epoch ms). The bound keeps a stale entry from counting: a `draining` written
 * before the lease was last re-activated says nothing about the drain being waited for. A
 * capability the registry refuses has no group, so nothing is waited for it; a lease refused
 * whole is out of rotation everywhere.
 */
export function outOfRotationProgress(rotation: LeaseRotation | undefined, capabilities: readonly string[], notBeforeMs: number, rejection?: RejectionVerdict): RotationProgress {
  const p = progress(groupsOf(rotation, capabilities, rejection), (g) => OUT_OF_ROTATION_STATES.includes(g.state as RotationState) && (g.since ?? -Infinity) >= notBeforeMs);
  return p.allRejected ? { ...p, done: true } : p;
}

/**
 * The draining is over: the target left the group (`absent`, or `unused`) in every group. ALB
 * completes a deregistration once nothing is in flight on the target, or cuts what is left at
 * the end of the deregistration delay: after that, no request of the load balancer runs on it.
 * A capability the registry refuses has no group to drain from.
 */
export function drainedProgress(rotation: LeaseRotation | undefined, capabilities: readonly string[], rejection?: RejectionVerdict): RotationProgress {
  const p = progress(groupsOf(rotation, capabilities, rejection), (g) => g.state === 'absent' || g.state === 'unused');
  return p.allRejected ? { ...p, done: true } : p;
}

/** `vision healthy for 4.2 s, speech unreported, ocr rejected`: one line for errors and logs. */
export function describeGroups(groups: readonly GroupRotation[], nowMs: number): string {
  return groups
    .map((g) => {
      if (g.since === undefined) return `${g.capability} ${g.state}`;
      const age = nowMs - g.since;
      const date = new Date(g.since);
      // Never throw while describing: a `since` no Date can hold says so instead (the decoder already drops those).
      const when = age >= 0 ? `for ${(age / 1000).toFixed(1)} s` : Number.isNaN(date.getTime()) ? 'since an impossible date' : `since ${date.toISOString()}`;
      return `${g.capability} ${g.state} ${when}`;
    })
    .join(', ');
}

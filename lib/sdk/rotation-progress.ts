import { rotationEntry } from '../core/lease-codec';
import type { LeaseRotation, RotationState } from '../core/lease-schema';

/**
 * States in which a target gets no new requests from its group: `draining` (deregistered,
 * in-flight requests may finish), `absent` (left the group) and `unused` (not registered, or
 * the group is used by no listener rule). Every other state may receive traffic — `unhealthy`
 * included, since an ALB fails open when all of a group's targets are unhealthy.
 */
export const OUT_OF_ROTATION_STATES: readonly RotationState[] = ['draining', 'absent', 'unused'];

/** One capability's target group as the lease's `rotation` shows it. */
export interface GroupRotation {
  readonly capability: string;
  /** `unreported` when the registry has written no entry for this capability (yet). */
  readonly state: RotationState | 'unreported';
  /** Epoch milliseconds (the registry's clock); absent when unreported. */
  readonly since?: number;
}

export interface RotationProgress {
  /** True when every group is where the wait wants it. */
  readonly done: boolean;
  /** Every capability of the lease, in order. */
  readonly groups: readonly GroupRotation[];
  /** The groups not there yet. */
  readonly pending: readonly GroupRotation[];
}

function groupsOf(rotation: LeaseRotation | undefined, capabilities: readonly string[]): GroupRotation[] {
  return capabilities.map((capability) => {
    const entry = rotationEntry(rotation, capability);
    return entry === undefined ? { capability, state: 'unreported' } : { capability, state: entry.state, since: entry.since };
  });
}

function progress(groups: GroupRotation[], there: (g: GroupRotation) => boolean): RotationProgress {
  const pending = groups.filter((g) => !there(g));
  return { done: pending.length === 0, groups, pending };
}

/** Serving: `healthy` in the target group of every capability the lease lists. */
export function servingProgress(rotation: LeaseRotation | undefined, capabilities: readonly string[]): RotationProgress {
  return progress(groupsOf(rotation, capabilities), (g) => g.state === 'healthy');
}

/**
 * Out of rotation: in one of `OUT_OF_ROTATION_STATES` in every group, reported at or after
 * `notBeforeMs` (epoch ms). The bound keeps a stale entry from counting: a `draining` written
 * before the lease was last re-activated says nothing about the drain being waited for.
 */
export function outOfRotationProgress(rotation: LeaseRotation | undefined, capabilities: readonly string[], notBeforeMs: number): RotationProgress {
  return progress(groupsOf(rotation, capabilities), (g) => OUT_OF_ROTATION_STATES.includes(g.state as RotationState) && (g.since ?? -Infinity) >= notBeforeMs);
}

/**
 * The draining is over: the target left the group (`absent`, or `unused`) in every group. ALB
 * completes a deregistration once nothing is in flight on the target, or cuts what is left at
 * the end of the deregistration delay: after that, no request of the load balancer runs on it.
 */
export function drainedProgress(rotation: LeaseRotation | undefined, capabilities: readonly string[]): RotationProgress {
  return progress(groupsOf(rotation, capabilities), (g) => g.state === 'absent' || g.state === 'unused');
}

/** `vision healthy for 4.2 s, speech unreported`: one line for errors and logs. */
export function describeGroups(groups: readonly GroupRotation[], nowMs: number): string {
  return groups
    .map((g) => {
      if (g.since === undefined) return `${g.capability} ${g.state}`;
      const age = nowMs - g.since;
      return `${g.capability} ${g.state} ${age >= 0 ? `for ${(age / 1000).toFixed(1)} s` : `since ${new Date(g.since).toISOString()}`}`;
    })
    .join(', ');
}

import { AgentLbError, AgentLbErrorOptions } from '../core/errors';
import type { GroupRotation } from './rotation-progress';

/** Why `serving()` gave up. */
export type NotServingReason = 'timeout' | 'lost' | 'released' | 'aborted' | 'rejected';

/**
 * `lease.serving()` did not see the target `healthy` in every group it asked for: the wait
 * timed out, was aborted, the lease was lost or released meanwhile, or the registry refuses
 * every capability of the lease (`rejected`: the lease's `rejection` says why). `groups` holds every
 * group that was not healthy, with its last reported state (`unreported` when the registry
 * wrote none: a capability this deployment does not route, or a registry that predates
 * `rotation`).
 */
export class NotServingError extends AgentLbError {
  public readonly reason: NotServingReason;
  public readonly target: string;
  public readonly groups: readonly GroupRotation[];

  public constructor(target: string, reason: NotServingReason, why: string, groups: readonly GroupRotation[], options: AgentLbErrorOptions = {}) {
    super('NOT_SERVING', `${target} is not serving: ${why}`, { ...options, context: { ...options.context, target, reason, groups } });
    this.name = 'NotServingError';
    this.reason = reason;
    this.target = target;
    this.groups = groups;
  }
}

/** Where an address was looked for. */
export type AddressDiscoverySource = 'ecs-task-metadata' | 'ec2-instance-metadata';

/** One place an address was looked for, and why none came from it. */
export interface AddressDiscoveryAttempt {
  readonly source: AddressDiscoverySource;
  readonly reason: string;
}

/** No explicit address was given and none could be found; `attempts` says where it was looked for. */
export class AddressNotFoundError extends AgentLbError {
  public readonly attempts: readonly AddressDiscoveryAttempt[];

  public constructor(attempts: readonly AddressDiscoveryAttempt[], options: AgentLbErrorOptions = {}) {
    const tried = attempts.map((a) => `${a.source}: ${a.reason}`).join('; ');
    super('ADDRESS_NOT_FOUND', `no address to register: pass one explicitly (tried ${tried || 'nothing'})`, {
      ...options,
      context: { ...options.context, attempts },
    });
    this.name = 'AddressNotFoundError';
    this.attempts = attempts;
  }
}

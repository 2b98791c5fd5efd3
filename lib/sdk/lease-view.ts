import type { EventEmitter } from 'node:events';
import type { LeaseRotation, LeaseStatus } from '../core/lease-schema';
import type { StoredRejection } from '../core/rejection';
import type { AgentLeaseEvents, AgentLeaseState, LeasePhase } from './agent-lease-events';

/**
 * What `serving()` and `leave()` read of a lease and do with it: the lease as those waits see
 * it. `AgentLease` is one; naming the view instead of the class keeps the waits free of the
 * class that calls them (no import cycle), and lets tests hand them something smaller.
 */
export interface LeaseView extends Pick<EventEmitter<AgentLeaseEvents>, 'on' | 'off' | 'emit'> {
  readonly target: string;
  readonly phase: LeasePhase;
  readonly held: boolean;
  readonly status: LeaseStatus;
  /** The capabilities the lease lists (sorted, no duplicates). */
  readonly capabilities: readonly string[];
  /** The registry's `rotation` as last seen. */
  readonly rotation: LeaseRotation;
  /** The registry's `rejection` as last seen; undefined while the lease is routed as written. */
  readonly rejection: StoredRejection | undefined;
  /** Epoch ms at which `draining` was last written; undefined while active. */
  readonly drainedAt: number | undefined;
  /** The lease's clock, epoch milliseconds. */
  now(): number;
  drain(): Promise<AgentLeaseState>;
  release(): Promise<boolean>;
  /** Polls the item until the returned function is called; `rotation` events follow. */
  watchRotation(): () => void;
}

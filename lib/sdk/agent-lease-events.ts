import type { LeaseLostError } from '../core/errors';
import type { LeaseRotation, LeaseStatus } from '../core/lease-schema';
import type { StoredRejection } from '../core/rejection';
import type { LeaveStepReport } from './leave-report';

/**
 * Where a lease is in its life:
 * - `idle`: never acquired (or the first `acquire()` failed);
 * - `held`: acquired and being renewed;
 * - `reacquiring`: lost, trying to acquire again with backoff (`reacquire: true`);
 * - `lost`: lost and not trying again (`reacquire: false`); `acquire()` may be called again;
 * - `released`: `release()` was called; `acquire()` may be called again.
 */
export type LeasePhase = 'idle' | 'held' | 'reacquiring' | 'lost' | 'released';

/** A snapshot of an `AgentLease`. */
export interface AgentLeaseState {
  readonly phase: LeasePhase;
  /** The lease key, `<address>:<port>` (`[<v6>]:<port>`). */
  readonly target: string;
  readonly agentId: string;
  /** True while the lease is held and renewed (phase `held`). */
  readonly held: boolean;
  /** `active` or `draining`: the status written, or to be written at the next (re-)acquire. */
  readonly status: LeaseStatus;
  /** Token of this holder, from the first `acquire()` until `release()`. */
  readonly leaseToken?: string;
  /** Epoch seconds of the last successful write (acquire or renewal); absent before the first. */
  readonly expiresAt?: number;
  /** Epoch milliseconds of the last successful acquire or renewal. */
  readonly renewedAt?: number;
}

/** Context of a failed renewal or re-acquire attempt. */
export interface RetryInfo {
  /** 1 for the first failure in a row. */
  readonly attempt: number;
  /** When the next attempt runs. */
  readonly retryInMs: number;
  /** Epoch seconds at which the lease expires if no renewal succeeds (renewals only). */
  readonly expiresAt?: number;
}

/** Someone else changed a lease we hold (same token): what, and whether we put it back. */
export interface InterferenceInfo {
  readonly target: string;
  /** The attributes found changed (`status`, `capabilities`, …). */
  readonly fields: readonly string[];
  /** True when our lease was written back; false when that write failed for a transient reason (retried at the next heartbeat). */
  readonly restored: boolean;
  /** The `agentId` the stored item carried, quoted, when it was not ours. */
  readonly storedAgentId?: string;
}

export interface ReleasedInfo {
  readonly target: string;
  /** False when the lease was no longer ours (taken over or swept) or was never written. */
  readonly deleted: boolean;
}

/**
 * Events of an `AgentLease`. There is deliberately no `error` event: an `EventEmitter` throws
 * an unhandled `error`, and a renewal hiccup must never crash an agent that did not listen.
 */
export interface AgentLeaseEvents {
  /** `acquire()` succeeded. */
  acquired: [state: AgentLeaseState];
  /** A heartbeat moved `expiresAt`. */
  renewed: [state: AgentLeaseState];
  /** A heartbeat failed for a transient reason (throttling, network); it is retried sooner. */
  renewFailed: [error: Error, info: RetryInfo];
  /**
   * The lease is no longer ours: a renewal's condition failed (taken over, or swept after
   * expiry), or no renewal succeeded before `expiresAt`. Renewal stops; re-acquire starts
   * when enabled.
   */
  lost: [error: LeaseLostError];
  /** The lease was acquired again after `lost`. */
  reacquired: [state: AgentLeaseState];
  /** A re-acquire attempt failed (`LeaseHeldError`: another holder owns it now); retried with backoff. */
  reacquireFailed: [error: Error, info: RetryInfo];
  /**
   * Someone else (another agent: the agent grant cannot bind a lease to its writer on ECS) changed
   * the lease we hold without taking it over — drained it, changed its capabilities or address —
   * as a heartbeat's reply or a poll showed. The lease is put back as we wrote it (`restored`);
   * a takeover shows as `lost` instead.
   */
  interference: [info: InterferenceInfo];
  /** `drain()` or `activate()` changed the stored status. */
  statusChanged: [state: AgentLeaseState];
  /** `release()` finished. */
  released: [info: ReleasedInfo];
  /**
   * The registry's `rotation` for this lease changed (per capability: the target's state in that
   * capability's target group and since when), as seen in a renewal's reply or a poll. After
   * an (re-)acquire it starts empty: the new item has none until the registry writes it.
   */
  rotation: [rotation: LeaseRotation, previous: LeaseRotation];
  /**
   * The registry refuses this lease or some of its capabilities, and says why (the lease's
   * `rejection`: a stable `reason`, a one-line `message`, the `capabilities` refused when not all,
   * `since`). Emitted once per verdict: the same one seen again after a re-acquire is not repeated.
   */
  rejected: [rejection: StoredRejection];
  /** One step of `leave()` ended (drain, rotation, propagation, inFlight, release), with its timing. */
  leaveStep: [step: LeaveStepReport];
}

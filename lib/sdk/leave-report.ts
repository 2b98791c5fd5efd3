/**
 * What a leave reports, step by step (types and the one-line log format). Kept apart from
 * `leave.ts` so the lease's event map can name a step without importing the leave itself.
 */

export type LeaveStepName = 'drain' | 'rotation' | 'propagation' | 'inFlight' | 'release';
/**
 * - `done`: the step did what it is for; `confirmed`: the registry reported every group out of rotation;
 * - `fallback`: some group was never reported out, so the conservative wait was used instead;
 * - `deadline`: cut short by the deadline; `hurried`: cut short by the abort signal (a second signal);
 * - `lost`: the lease was lost (taken over or swept) before or during the step;
 * - `skipped`: nothing to do (no lease held, no in-flight source); `failed`: an error, in `LeaveReport.errors`.
 */
export type LeaveStepOutcome = 'done' | 'confirmed' | 'fallback' | 'deadline' | 'hurried' | 'lost' | 'skipped' | 'failed';

export interface LeaveStepReport {
  readonly step: LeaveStepName;
  readonly outcome: LeaveStepOutcome;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly durationMs: number;
  /** One line for operators: what was waited for and how it ended. */
  readonly detail: string;
  /** The lease keys this leave is for. */
  readonly targets: readonly string[];
}

export interface LeaveReport {
  readonly targets: readonly string[];
  /** drain, rotation, propagation, inFlight, release, in that order. */
  readonly steps: readonly LeaveStepReport[];
  readonly durationMs: number;
  /** True when every lease held at the start was deleted by its holder (us). */
  readonly released: boolean;
  readonly errors: readonly Error[];
}


const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** One log line per step: `agent-lb leave 10.0.3.17:8080: rotation confirmed in 1.2 s (vision draining for 0.8 s)`. */
export function formatLeaveStep(step: LeaveStepReport): string {
  return `agent-lb leave ${step.targets.join(', ')}: ${step.step} ${step.outcome} in ${seconds(step.durationMs)}${step.detail ? ` (${step.detail})` : ''}`;
}

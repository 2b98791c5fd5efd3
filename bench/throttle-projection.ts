/**
 * The documented account-wide bucket for RegisterTargets + DeregisterTargets, per account and
 * Region: burst 20, refill 4 per second. Every projection below is arithmetic on call counts
 * the bench measured; nothing here is measured itself.
 */
export const ELB_BURST = 20;
export const ELB_REFILL_PER_SECOND = 4;

export const COLD_START_FORMULA = `seconds = max(0, (calls − ${ELB_BURST}) / ${ELB_REFILL_PER_SECOND}): C calls wanted at once from a full bucket; the last one is sent after that many seconds (retries of throttled calls only add to it)`;
export const BACKLOG_FORMULA = `backlog growth = max(0, calls per second − ${ELB_REFILL_PER_SECOND}) calls/s: above the refill rate the queue of unsent calls grows without bound`;

/** Time to send `calls` calls from a full bucket. */
export function secondsToSend(calls: number): number {
  return Math.max(0, (calls - ELB_BURST) / ELB_REFILL_PER_SECOND);
}

/** A steady rate of calls per second is sustainable only up to the refill rate; above it the backlog grows without bound. */
export function backlogGrowthPerSecond(callsPerSecond: number): number {
  return Math.max(0, callsPerSecond - ELB_REFILL_PER_SECOND);
}

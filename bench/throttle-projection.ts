/**
 * The documented account-wide bucket for RegisterTargets + DeregisterTargets: burst 20,
 * refill 4 per second. Time to send C calls from a full bucket: max(0, (C − 20) / 4) seconds.
 */
export const ELB_BURST = 20;
export const ELB_REFILL_PER_SECOND = 4;

export function secondsToSend(calls: number): number {
  return Math.max(0, (calls - ELB_BURST) / ELB_REFILL_PER_SECOND);
}

/** A steady rate of calls per second is sustainable only below the refill rate; above it the backlog grows without bound. */
export function backlogGrowthPerSecond(callsPerSecond: number): number {
  return Math.max(0, callsPerSecond - ELB_REFILL_PER_SECOND);
}

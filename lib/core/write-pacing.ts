/**
 * How many registry writes go out at once when nothing waits for them (the rotation poll's and
 * reconcile's feedback writes into leases and catalog entries), led by their own latency.
 *
 * A fixed width was wrong both ways. Four at a time kept those writes from crowding the table's
 * queue while a join's registrations read leases (issue 17: sixteen at a time put B2's
 * registrar-alone p99 from 1.5 s to 1.8–2.1 s), but made a first pass over 10 000 leases take
 * ~30 s on DynamoDB Local; thirty-two while no stream batch was being handled sped that pass up
 * and sent B2's local registration p99 to 16 s. The table's latency tells which case it is: when
 * it is idle, wider does not slow a write, so the width grows; when a write comes back much slower
 * than the fastest seen, something else queues at the table and the width halves.
 *
 * Additive increase, multiplicative decrease (as TCP's congestion window, led by delay rather than
 * loss, as TCP Vegas): +1 per `width` writes that came back fast, ×½ at most once per `width`
 * writes that came back slow. Pure: the caller measures and asks.
 */

export interface WritePacing {
  /** Writes that may be in flight now (at least `min`). */
  readonly width: number;
  /** The fastest write seen, ms: the table's latency when nothing queues ahead. */
  readonly fastestMs: number | undefined;
  /** Writes still to come back before the width may halve again (one halving per round). */
  readonly holdOff: number;
}

export interface WritePacingLimits {
  readonly min: number;
  readonly start: number;
  readonly max: number;
  /** A write is slow beyond this multiple of the fastest, fast below `fastBelow` times it. */
  readonly slowAbove: number;
  readonly fastBelow: number;
}

/**
 * Start at the four that kept registrations unharmed; sixteen at most: on AWS a new on-demand
 * table takes 4 000 writes/s, and sixteen 5 ms writes at a time stay under it. Slow is 3× the
 * fastest write; fast is under 1.5× it: DynamoDB Local's own spread between writes is ~2×.
 */
export const OBSERVED_WRITE_PACING: WritePacingLimits = { min: 2, start: 4, max: 16, slowAbove: 3, fastBelow: 1.5 };

/** Latencies this close to zero are below the clock's resolution: they set no fastest time. */
const FLOOR_MS = 1;

export function startPacing(limits: WritePacingLimits = OBSERVED_WRITE_PACING): WritePacing {
  return { width: limits.start, fastestMs: undefined, holdOff: 0 };
}

/** The pacing after a write came back in `latencyMs`. */
export function afterWrite(p: WritePacing, latencyMs: number, limits: WritePacingLimits = OBSERVED_WRITE_PACING): WritePacing {
  const ms = Math.max(FLOOR_MS, latencyMs);
  const fastestMs = p.fastestMs === undefined ? ms : Math.min(p.fastestMs, ms);
  const holdOff = Math.max(0, p.holdOff - 1);
  if (p.fastestMs === undefined) return { width: p.width, fastestMs, holdOff };
  if (ms > limits.slowAbove * fastestMs) {
    if (holdOff > 0) return { width: p.width, fastestMs, holdOff };
    const width = Math.max(limits.min, Math.floor(p.width / 2));
    return { width, fastestMs, holdOff: Math.ceil(p.width) };
  }
  if (ms < limits.fastBelow * fastestMs) return { width: Math.min(limits.max, p.width + 1 / Math.max(1, Math.floor(p.width))), fastestMs, holdOff };
  return { width: p.width, fastestMs, holdOff };
}

/** Writes to start now: the width, whole. */
export function inFlightAllowed(p: WritePacing): number {
  return Math.max(1, Math.floor(p.width));
}

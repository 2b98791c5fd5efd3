/** Distribution of a sample, in the unit of the sample (milliseconds throughout the bench). */
export interface Distribution {
  /** Values measured. */
  readonly n: number;
  /** Waits that timed out: counted above every measured value. A percentile that falls on them is null ("more than `timedOutAfter`"). */
  readonly timedOut: number;
  readonly timedOutAfter?: number;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  /** Of the measured values only. */
  readonly mean: number | null;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * Nearest-rank percentiles (the p-th percentile is the smallest value with at least p % of the
 * sample at or below it): no interpolation, so every figure is a value that was measured.
 * `timedOut` waits rank above all measured values, so they push percentiles up rather than
 * vanish from the sample.
 */
export function distribution(values: readonly number[], timedOut = 0, timedOutAfter?: number): Distribution {
  const total = values.length + timedOut;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number): number | null => {
    if (total === 0) return null;
    const i = Math.max(0, Math.ceil((p / 100) * total) - 1);
    return i < sorted.length ? round1(sorted[i]) : null;
  };
  return {
    n: values.length,
    timedOut,
    ...(timedOut > 0 && timedOutAfter !== undefined ? { timedOutAfter } : {}),
    p50: rank(50),
    p95: rank(95),
    p99: rank(99),
    max: timedOut > 0 || sorted.length === 0 ? null : round1(sorted[sorted.length - 1]),
    mean: sorted.length === 0 ? null : round1(sorted.reduce((s, v) => s + v, 0) / sorted.length),
  };
}

/** Median of fully measured values. */
export function median(values: readonly number[]): number {
  return distribution(values).p50 ?? NaN;
}

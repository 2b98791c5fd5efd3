import { ConfigError } from './errors';
import { MAX_PORT, MIN_PORT, PortRange } from './lease-schema';

/**
 * Ports as configurations write them: `8080`, `9000-9099`, a list of those joined by commas in
 * the Lambdas' environment (`"9000-9099,8080"`). One parser and one printer for every side.
 */

/** `8080`, `9000-9099`. */
export function formatPortRange(range: PortRange): string {
  return range.from === range.to ? String(range.from) : `${range.from}-${range.to}`;
}

/** `9000-9099,8080`. */
export function formatPortRanges(ranges: readonly PortRange[]): string {
  return ranges.map(formatPortRange).join(',');
}

/** Whether `port` is among `ranges`. */
export function portAllowed(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some((r) => port >= r.from && port <= r.to);
}

/** What is wrong with a range (a whole port or two, 1–65535, `from` ≤ `to`), if anything. */
export function portRangeProblem(range: PortRange): string | undefined {
  const ok = (p: number) => Number.isInteger(p) && p >= MIN_PORT && p <= MAX_PORT;
  if (!ok(range.from) || !ok(range.to)) return `port ${formatPortRange(range)} is out of range ${MIN_PORT}–${MAX_PORT}`;
  if (range.from > range.to) return `port range ${range.from}-${range.to} runs backwards`;
  return undefined;
}

/**
 * Parses `"9000-9099,8080"` (or one part of it).
 * @throws ConfigError naming the text and what is allowed
 */
export function parsePortRanges(text: string): PortRange[] {
  const ranges = text.split(',').map((part) => {
    const m = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(part);
    if (!m) throw new ConfigError(`ports ${JSON.stringify(text)}: ${JSON.stringify(part)} is not a port or a range like 9000-9099`);
    const range = { from: Number(m[1]), to: Number(m[2] ?? m[1]) };
    const problem = portRangeProblem(range);
    if (problem) throw new ConfigError(`ports ${JSON.stringify(text)}: ${problem}`);
    return range;
  });
  return ranges;
}

/** The same ports as fewer ranges: sorted, overlapping and adjacent ranges joined (one security group rule each). */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.from - b.from || a.to - b.to);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r.from <= last.to + 1) out[out.length - 1] = { from: last.from, to: Math.max(last.to, r.to) };
    else out.push({ ...r });
  }
  return out;
}

/**
 * How values agent-lb does not control (attributes of a lease item anyone with table access may
 * write) are put into messages, logs and CLI output: quoted, escaped, and cut short.
 */

/** Longest rendering of an untrusted value in a message: an item may hold 400 KB, a log line should not. */
export const MAX_QUOTED_CHARS = 120;

/**
 * Renders an untrusted value (an attribute of a lease item) for a message: JSON quoting turns
 * control characters into visible escapes, so a value can neither forge a log line nor drive
 * the terminal of someone running `agent-lb leases`, and long values are cut with their length.
 */
export function quoteUntrusted(value: unknown, max = MAX_QUOTED_CHARS): string {
  const text = JSON.stringify(value) ?? String(value);
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…(${text.length} characters)`;
}

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
  // JSON escapes C0 controls, quotes and backslashes only: C1 controls (U+009B is a one-character
  // CSI), line separators, bidirectional overrides and zero-width characters pass it unchanged.
  const text = (JSON.stringify(value) ?? String(value)).replace(BEYOND_JSON, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…(${text.length} characters)`;
}

/** Widest cell of a CLI table or the live view, in characters: one long `agentId` must not widen every row. */
export const MAX_CELL_CHARS = 64;

/**
 * Characters that change what a terminal shows rather than showing themselves: C0 and C1
 * controls and DEL (escape sequences, newlines that forge rows, carriage returns that overwrite
 * them), Unicode line and paragraph separators, bidirectional overrides and isolates (which
 * reorder a row), zero-width characters and the byte-order mark; and the backslash, so an
 * escape is never ambiguous with text that spells one.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\\]/gu;

/** {@link UNPRINTABLE} less what `JSON.stringify` escapes already (C0 controls, the backslash). */
const BEYOND_JSON = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu;

function escapeChar(c: string): string {
  if (c === '\\') return '\\\\';
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return named[c] ?? `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`;
}

/**
 * One cell of a table a person reads in a terminal (`agent-lb leases`, `status`, the live view):
 * every cell of every table goes through here. Ordinary text is shown as it is; anything that
 * could drive the terminal or forge a row is escaped visibly; a cell longer than `max` is cut
 * with its full length shown, so one hostile value neither floods the output nor widens every row.
 */
export function tableCell(value: unknown, max = MAX_CELL_CHARS): string {
  const text = (typeof value === 'string' ? value : String(value)).replace(UNPRINTABLE, escapeChar);
  const chars = [...text];
  if (chars.length <= max) return text;
  const suffix = `…(${chars.length} chars)`;
  return chars.slice(0, Math.max(1, max - suffix.length)).join('') + suffix;
}

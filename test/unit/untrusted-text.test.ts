import { describe, expect, it } from 'vitest';
import { MAX_CELL_CHARS, quoteUntrusted, tableCell } from '../../lib/core/untrusted-text';

describe('tableCell: one function for every cell of every CLI table and the live view', () => {
  it.each<[string, string, string]>([
    ['plain text stays as it is', 'worker-7', 'worker-7'],
    ['an ANSI clear-screen is escaped, not sent', '\u001b[2J\u001b[Hx', '\\u001b[2J\\u001b[Hx'],
    ['an OSC title sequence', '\u001b]0;pwned\u0007', '\\u001b]0;pwned\\u0007'],
    ['a newline cannot forge a row', 'a\n10.0.0.9:80  forged', 'a\\n10.0.0.9:80  forged'],
    ['a carriage return cannot overwrite the row', 'real\rfake', 'real\\rfake'],
    ['C1 control (CSI)', 'a\u009bb', 'a\\u009bb'],
    ['bidi override reorders nothing', 'abc\u202edef', 'abc\\u202edef'],
    ['zero-width joiner and BOM', 'a\u200db\ufeff', 'a\\u200db\\ufeff'],
    ['line separator', 'a\u2028b', 'a\\u2028b'],
    ['a backslash is escaped so escapes are unambiguous', 'C:\\x', 'C:\\\\x'],
    ['non-ASCII letters stay', 'agent-é-東京', 'agent-é-東京'],
  ])('%s', (_name, input, shown) => {
    expect(tableCell(input)).toBe(shown);
  });

  it('cuts a long value, says how long it was, and stays within the width', () => {
    const cell = tableCell('x'.repeat(100_000));
    expect([...cell].length).toBeLessThanOrEqual(MAX_CELL_CHARS);
    expect(cell).toMatch(/^x+…\(100000 chars\)$/);
  });

  it('renders non-strings', () => {
    expect(tableCell(42)).toBe('42');
    expect(tableCell(undefined)).toBe('undefined');
  });

  it('quoteUntrusted escapes what JSON leaves raw: C1 controls (a one-character CSI), line separators, bidi overrides, zero-width characters', () => {
    const quoted = quoteUntrusted('x\u009b2J\u202eevil\u2028y\u200bz\u007f');
    expect(quoted).toBe('"x\\u009b2J\\u202eevil\\u2028y\\u200bz\\u007f"');
    expect(quoted).not.toMatch(/[\u007f-\u009f\u2028\u202e\u200b]/u);
    expect(quoteUntrusted('ok: ünïcödé 日本')).toBe('"ok: ünïcödé 日本"');
  });

  it('quoteUntrusted (messages) stays JSON-quoted and bounded', () => {
    expect(quoteUntrusted('a\nb')).toBe('"a\\nb"');
    expect(quoteUntrusted('y'.repeat(500)).length).toBeLessThan(200);
  });
});

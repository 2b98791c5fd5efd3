import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { wildcardMatch } from '../../../lib/local/data-plane/wildcard';

/** The meaning of ALB's wildcards written as a regular expression, to check the scanner against. */
function reference(pattern: string, text: string, caseInsensitive: boolean): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '[\\s\\S]*' : c === '?' ? '[\\s\\S]' : c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, caseInsensitive ? 'i' : '').test(text);
}

describe('wildcardMatch', () => {
  it.each<[string, string, boolean, boolean]>([
    ['vision', 'vision', false, true],
    ['vision', 'Vision', false, false],
    ['vision', 'VISION', true, true],
    ['/agents/vision/*', '/agents/vision/', false, true],
    ['/agents/vision/*', '/agents/vision/a/b', false, true],
    ['/agents/vision/*', '/agents/vision', false, false],
    ['/agents/*/hello', '/agents/speech/hello', false, true],
    ['v?sion', 'vision', false, true],
    ['v?sion', 'vsion', false, false],
    ['*', '', false, true],
    ['?', '', false, false],
    ['**a**', 'bab', false, true],
    ['a*b*c', 'aXXbYYc', false, true],
    ['a*b*c', 'aXXcYYb', false, false],
    ['', '', false, true],
    ['', 'x', false, false],
  ])('%j vs %j (case-insensitive %s) → %s', (pattern, text, ci, expected) => {
    expect(wildcardMatch(pattern, text, { caseInsensitive: ci })).toBe(expected);
  });

  // Patterns and texts drawn from a small alphabet so that matches are frequent, not only misses.
  const alphabet = fc.constantFrom('a', 'b', 'A', 'B', '/', '.', '-', '*', '?');
  const textAlphabet = fc.constantFrom('a', 'b', 'A', 'B', '/', '.', '-', '*', '?', 'x');

  it('agrees with the regular expression meaning for every pattern and text', () => {
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 12 }), fc.string({ unit: textAlphabet, maxLength: 16 }), fc.boolean(), (pattern, text, ci) => {
        expect(wildcardMatch(pattern, text, { caseInsensitive: ci })).toBe(reference(pattern, text, ci));
      }),
      { numRuns: 3000 },
    );
  });

  it('matches every text against the pattern made of that text with some characters replaced by ? and *', () => {
    fc.assert(
      fc.property(fc.string({ unit: textAlphabet, minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 5 }), (text, holes) => {
        const chars = text.split('');
        for (const h of holes) chars[h % chars.length] = h % 2 === 0 ? '?' : '*';
        expect(wildcardMatch(chars.join(''), text)).toBe(true);
      }),
    );
  });
});

/**
 * ALB's wildcard comparison strings: `*` matches 0 or more characters and `?` exactly one, in
 * `http-header` values, `host-header`, `path-pattern` and `query-string` conditions (ELB user
 * guide, "Condition types for listener rules"). There is no escape: a literal `*` or `?` cannot
 * be matched on its own.
 *
 * Matched without regular expressions, by the classic greedy scan with one backtrack point, so
 * a pattern of many stars costs O(pattern × text) at worst and never blows up.
 */

export interface WildcardOptions {
  /** Compare without regard to letter case (header values, host names, query strings). @default false */
  readonly caseInsensitive?: boolean;
}

/** Whether `text` matches `pattern` in full. */
export function wildcardMatch(pattern: string, text: string, options: WildcardOptions = {}): boolean {
  const p = options.caseInsensitive ? pattern.toLowerCase() : pattern;
  const t = options.caseInsensitive ? text.toLowerCase() : text;
  let pi = 0;
  let ti = 0;
  let starAt = -1;
  let resumeAt = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === t[ti]))) {
      pi++;
      ti++;
    } else if (pi < p.length && p[pi] === '*') {
      starAt = pi++;
      resumeAt = ti;
    } else if (starAt >= 0) {
      // Let the last star swallow one more character and retry from there.
      pi = starAt + 1;
      ti = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

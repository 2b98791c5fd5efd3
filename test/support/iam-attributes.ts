/**
 * What IAM sees of a DynamoDB request for the condition key `dynamodb:Attributes`: the top-level
 * attribute names the request names — the item of a PutItem, the paths of its UpdateExpression,
 * ConditionExpression and ProjectionExpression (aliases resolved), the legacy AttributeUpdates,
 * Expected and AttributesToGet, and the key. Used to check real SDK requests against the agent
 * grant's condition. The key is counted in, the cautious reading: the grant lists it anyway.
 */

const KEYWORDS = new Set(['set', 'remove', 'add', 'delete', 'and', 'or', 'not', 'between', 'in']);

/** Top-level attribute names an expression names: `SET #a.b = :v, c[0] = :w` → a's name, c. */
export function expressionNames(expression: string | undefined, aliases: Readonly<Record<string, string>> = {}): string[] {
  if (expression === undefined) return [];
  const out: string[] = [];
  const token = /(#[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*)|:[A-Za-z0-9_]+|(\.)|(\[\s*\d+\s*\])|\S/g;
  let afterDot = false;
  for (let m = token.exec(expression); m !== null; m = token.exec(expression)) {
    const [whole, name, dot, index] = m;
    if (dot) {
      afterDot = true;
      continue;
    }
    if (index) continue;
    if (name) {
      const rest = expression.slice(token.lastIndex);
      const isFunction = /^\s*\(/.test(rest);
      const nested = afterDot;
      afterDot = false;
      if (isFunction || nested || (!name.startsWith('#') && KEYWORDS.has(name.toLowerCase()))) continue;
      out.push(name.startsWith('#') ? (aliases[name] ?? name) : name);
      continue;
    }
    afterDot = false;
    void whole;
  }
  return out;
}

/** The `dynamodb:Attributes` of a request (its input, as the SDK sends it). */
export function requestAttributes(input: Record<string, unknown>): string[] {
  const aliases = (input.ExpressionAttributeNames as Record<string, string> | undefined) ?? {};
  const names = new Set<string>([
    ...Object.keys((input.Item as object | undefined) ?? {}),
    ...Object.keys((input.Key as object | undefined) ?? {}),
    ...Object.keys((input.AttributeUpdates as object | undefined) ?? {}),
    ...Object.keys((input.Expected as object | undefined) ?? {}),
    ...((input.AttributesToGet as string[] | undefined) ?? []),
    ...expressionNames(input.UpdateExpression as string | undefined, aliases),
    ...expressionNames(input.ConditionExpression as string | undefined, aliases),
    ...expressionNames(input.ProjectionExpression as string | undefined, aliases),
  ]);
  return [...names].sort();
}

interface Statement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Condition?: Record<string, Record<string, unknown>>;
}

/**
 * Whether `statements` allow `action` with these attributes. Understands what the agent grant
 * uses: Allow statements, and `ForAllValues:StringEquals` on `dynamodb:Attributes` (every
 * attribute named must be listed); any other condition operator makes this throw, so the check
 * cannot silently pass a policy it does not understand.
 */
export function allows(statements: readonly Statement[], action: string, attributes: readonly string[]): boolean {
  return statements.some((s) => {
    if (s.Effect !== 'Allow' || ![s.Action].flat().includes(action)) return false;
    for (const [operator, keys] of Object.entries(s.Condition ?? {})) {
      for (const [key, values] of Object.entries(keys)) {
        if (operator !== 'ForAllValues:StringEquals' || key !== 'dynamodb:Attributes') throw new Error(`condition ${operator} ${key} is not understood here`);
        const listed = new Set([values].flat() as string[]);
        if (!attributes.every((a) => listed.has(a))) return false;
      }
    }
    return true;
  });
}

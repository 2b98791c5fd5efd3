
/**
 * DynamoDB's condition and update expressions, evaluated on an in-memory item: the subset the
 * lease store writes with (SET and REMOVE of attribute paths, `=`/`<>`/`<`/`<=`/`>`/`>=`,
 * `attribute_exists`, `attribute_not_exists`, `attribute_type`, AND/OR/NOT, parentheses), with
 * DynamoDB's semantics: a comparison of different types is false, a nested SET needs its parent
 * map. So the fakes that count the registry's writes apply them as DynamoDB would, whatever
 * expression the lease store builds.
 */

/** An attribute value in any of the shapes the SDK, Lambda and the fixtures use (`{ S: … }`, `{ M: … }`, …). */
export type AttributeValue = { readonly [type: string]: any };
export type Item = Readonly<Record<string, AttributeValue>>;

export interface ExpressionInput {
  readonly UpdateExpression?: string;
  readonly ConditionExpression?: string;
  readonly ExpressionAttributeNames?: Record<string, string>;
  readonly ExpressionAttributeValues?: Readonly<Record<string, AttributeValue>>;
}

type Token = { kind: 'name' | 'value' | 'word' | 'op' | 'punct'; text: string };

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(#[A-Za-z0-9_]+)|(:[A-Za-z0-9_]+)|(<>|<=|>=|=|<|>)|([(),.])|([A-Za-z_][A-Za-z0-9_]*))/y;
  let at = 0;
  while (at < expression.length) {
    if (/^\s*$/.test(expression.slice(at))) break;
    re.lastIndex = at;
    const m = re.exec(expression);
    if (!m) throw new Error(`cannot read expression at ${JSON.stringify(expression.slice(at))}`);
    at = re.lastIndex;
    if (m[1]) tokens.push({ kind: 'name', text: m[1] });
    else if (m[2]) tokens.push({ kind: 'value', text: m[2] });
    else if (m[3]) tokens.push({ kind: 'op', text: m[3] });
    else if (m[4]) tokens.push({ kind: 'punct', text: m[4] });
    else tokens.push({ kind: 'word', text: m[5] });
  }
  return tokens;
}

class Parser {
  private at = 0;
  public constructor(
    private readonly tokens: Token[],
    private readonly input: ExpressionInput,
  ) {}

  public peek(): Token | undefined {
    return this.tokens[this.at];
  }
  public next(): Token {
    const t = this.tokens[this.at++];
    if (!t) throw new Error('unexpected end of expression');
    return t;
  }
  public expect(text: string): void {
    const t = this.next();
    if (t.text !== text) throw new Error(`expected ${text}, got ${t.text}`);
  }
  public done(): boolean {
    return this.at >= this.tokens.length;
  }

  /** A document path: names (`#a` or plain) joined by dots. */
  public path(): string[] {
    const parts = [this.name()];
    while (this.peek()?.text === '.') {
      this.next();
      parts.push(this.name());
    }
    return parts;
  }
  private name(): string {
    const t = this.next();
    if (t.kind === 'name') {
      const name = this.input.ExpressionAttributeNames?.[t.text];
      if (name === undefined) throw new Error(`${t.text} is not in ExpressionAttributeNames`);
      return name;
    }
    if (t.kind === 'word') return t.text;
    throw new Error(`expected an attribute name, got ${t.text}`);
  }
  public value(): AttributeValue {
    const t = this.next();
    const value = t.kind === 'value' ? this.input.ExpressionAttributeValues?.[t.text] : undefined;
    if (value === undefined) throw new Error(`${t.text} is not in ExpressionAttributeValues`);
    return value;
  }
  public operand(item: Item | undefined): AttributeValue | undefined {
    return this.peek()?.kind === 'value' ? this.value() : resolve(item, this.path());
  }
}

/** The value at `path` in `item`, or undefined. */
export function resolve(item: Item | undefined, path: readonly string[]): AttributeValue | undefined {
  let value: AttributeValue | undefined = item?.[path[0]];
  for (const key of path.slice(1)) {
    const map = value?.M;
    value = map !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
  }
  return value;
}

function typeOf(value: AttributeValue): string {
  return Object.keys(value).find((k) => value[k] !== undefined) ?? '';
}

function compare(op: string, a: AttributeValue | undefined, b: AttributeValue | undefined): boolean {
  if (a === undefined || b === undefined) return op === '<>' && (a !== undefined || b !== undefined);
  const type = typeOf(a);
  if (type !== typeOf(b)) return op === '<>';
  const x = a[type];
  const y = b[type];
  if (op === '=' || op === '<>') return (JSON.stringify(x) === JSON.stringify(y)) === (op === '=');
  if (type !== 'N' && type !== 'S') return false;
  const [l, r] = type === 'N' ? [Number(x), Number(y)] : [String(x), String(y)];
  return op === '<' ? l < r : op === '<=' ? l <= r : op === '>' ? l > r : l >= r;
}

/** Whether `input.ConditionExpression` holds for `item` (`undefined`: no item). No condition holds. */
export function conditionHolds(item: Item | undefined, input: ExpressionInput): boolean {
  if (!input.ConditionExpression) return true;
  const p = new Parser(tokenize(input.ConditionExpression), input);
  const or = (): boolean => {
    let v = and();
    while (p.peek()?.text.toUpperCase() === 'OR') {
      p.next();
      v = and() || v;
    }
    return v;
  };
  const and = (): boolean => {
    let v = not();
    while (p.peek()?.text.toUpperCase() === 'AND') {
      p.next();
      v = not() && v;
    }
    return v;
  };
  const not = (): boolean => {
    if (p.peek()?.text.toUpperCase() === 'NOT') {
      p.next();
      return !not();
    }
    return primary();
  };
  const primary = (): boolean => {
    const t = p.peek();
    if (t?.text === '(') {
      p.next();
      const v = or();
      p.expect(')');
      return v;
    }
    if (t?.kind === 'word' && ['attribute_exists', 'attribute_not_exists', 'attribute_type'].includes(t.text)) {
      p.next();
      p.expect('(');
      const value = resolve(item, p.path());
      let result: boolean;
      if (t.text === 'attribute_type') {
        p.expect(',');
        const type = p.value().S;
        result = value !== undefined && typeOf(value) === type;
      } else result = (value !== undefined) === (t.text === 'attribute_exists');
      p.expect(')');
      return result;
    }
    const left = p.operand(item);
    const op = p.next();
    if (op.kind !== 'op') throw new Error(`expected a comparison, got ${op.text}`);
    return compare(op.text, left, p.operand(item));
  };
  const result = or();
  if (!p.done()) throw new Error(`unread rest of condition at ${p.peek()?.text}`);
  return result;
}

function setPath(item: Item, path: readonly string[], value: AttributeValue | undefined): Item {
  const [head, ...rest] = path;
  const out: Record<string, AttributeValue> = { ...item };
  if (rest.length === 0) {
    if (value === undefined) delete out[head];
    else out[head] = value;
    return out;
  }
  const parent = item[head]?.M;
  if (parent === undefined) {
    if (value === undefined) return out;
    throw Object.assign(new Error('The document path provided in the update expression is invalid for update'), { name: 'ValidationException' });
  }
  out[head] = { M: setPath(parent, rest, value) };
  return out;
}

/** `item` after `input.UpdateExpression` (SET and REMOVE clauses). Throws ValidationException for a nested SET without its map. */
export function applyUpdate(item: Item, input: ExpressionInput): Item {
  if (!input.UpdateExpression) return item;
  const p = new Parser(tokenize(input.UpdateExpression), input);
  let out = item;
  while (!p.done()) {
    const clause = p.next().text.toUpperCase();
    if (clause !== 'SET' && clause !== 'REMOVE') throw new Error(`unsupported update clause ${clause}`);
    for (;;) {
      const path = p.path();
      if (clause === 'SET') {
        p.expect('=');
        out = setPath(out, path, p.value());
      } else out = setPath(out, path, undefined);
      if (p.peek()?.text !== ',') break;
      p.next();
    }
  }
  return out;
}

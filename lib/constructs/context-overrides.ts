import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Node } from 'constructs';
import { ConfigError } from '../core/errors';

/** JSON shapes of the settings of the `agent-lb` context object. */
/** `port[]`: ports as numbers or ranges as `"9000-9099"` strings. */
export type ContextKind = 'string' | 'number' | 'boolean' | 'string[]' | 'port[]' | 'object' | 'object[]';

/** How the app reads the `agent-lb` context: the object's settings and their kinds, and its key. */
export interface ContextSchema {
  readonly key: string;
  readonly settings: Readonly<Record<string, ContextKind>>;
}

/** What `readContextObject` needs besides the construct tree. */
export interface ContextSourceOptions {
  /**
   * Directory of the cdk.json whose `agent-lb` object a `-c agent-lb='{...}'` is merged over.
   *
   * @default - the working directory, where the CDK CLI runs the app
   */
  readonly cdkJsonDir?: string;
}

/** The `<key>` object in the `context` of `<dir>/cdk.json`, or undefined when there is none. */
export function cdkJsonContextObject(dir: string, key: string): Record<string, unknown> | undefined {
  const file = join(dir, 'cdk.json');
  if (!existsSync(file)) return undefined;
  let parsed: { context?: Record<string, unknown> };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as { context?: Record<string, unknown> };
  } catch (cause) {
    throw new ConfigError(`${file} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const value = parsed?.context?.[key];
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * A value given as `-c <key>.<setting>=<text>`: the CDK CLI passes it as a string, which is read
 * as the setting's kind. Values that already have the right JSON type (an App's context set in
 * code) pass through. Lists take JSON or comma-separated text; capabilities also take names.
 */
export function coerceSetting(where: string, kind: ContextKind, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const text = value.trim();
  const json = (): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      throw new ConfigError(`${where} must be JSON here, got ${JSON.stringify(value)}`);
    }
  };
  switch (kind) {
    case 'string':
      return value;
    case 'number':
      if (!/^-?\d+(\.\d+)?$/.test(text)) throw new ConfigError(`${where} must be a number, got ${JSON.stringify(value)}`);
      return Number(text);
    case 'boolean':
      if (text !== 'true' && text !== 'false') throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(value)}`);
      return text === 'true';
    case 'string[]':
      return text.startsWith('[') ? json() : text.split(',').map((s) => s.trim()).filter((s) => s !== '');
    case 'port[]':
      return text.startsWith('[') ? json() : text.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    case 'object':
      return json();
    case 'object[]':
      return text.startsWith('[') ? json() : text.split(',').map((s) => s.trim()).filter((s) => s !== '').map((name) => ({ name }));
  }
}

/**
 * The context object the app is configured by, with every way the CDK CLI can set it applied:
 * 1. cdk.json's `context.<key>` object (or an App's context set in code);
 * 2. `-c <key>='{...}'`: a JSON object merged over (1) setting by setting (a setting it names is
 *    replaced whole, `capabilities` included);
 * 3. `-c <key>.<setting>=<value>`: one setting, its text read as the setting's kind.
 * Unknown settings in (3) are refused, naming the known ones.
 */
export function readContextObject(node: Node, schema: ContextSchema, options: ContextSourceOptions = {}): unknown {
  const raw: unknown = node.tryGetContext(schema.key);
  let base: unknown = raw;
  if (typeof raw === 'string') {
    let given: unknown;
    try {
      given = JSON.parse(raw);
    } catch {
      throw new ConfigError(`context "${schema.key}" is not valid JSON: ${raw}`);
    }
    const fromFile = cdkJsonContextObject(options.cdkJsonDir ?? process.cwd(), schema.key);
    base = fromFile && typeof given === 'object' && given !== null && !Array.isArray(given) ? { ...fromFile, ...given } : given;
  }

  const overrides: Record<string, unknown> = {};
  for (const [setting, kind] of Object.entries(schema.settings)) {
    const value: unknown = node.tryGetContext(`${schema.key}.${setting}`);
    if (value !== undefined) overrides[setting] = coerceSetting(`${schema.key}.${setting}`, kind, value);
  }
  // Typos only show in the whole context, which older `constructs` cannot list from the root.
  const all = (node as { getAllContext?: () => Record<string, unknown> }).getAllContext?.() ?? {};
  for (const key of Object.keys(all)) {
    if (!key.startsWith(`${schema.key}.`)) continue;
    const setting = key.slice(schema.key.length + 1);
    if (!Object.hasOwn(schema.settings, setting)) {
      throw new ConfigError(`-c ${key}: "${setting}" is not a known setting; known: ${Object.keys(schema.settings).join(', ')}`);
    }
  }
  if (Object.keys(overrides).length === 0) return base;
  if (base !== undefined && (typeof base !== 'object' || base === null || Array.isArray(base))) return base; // the parser names the problem
  return { ...(base as Record<string, unknown> | undefined), ...overrides };
}

import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The cookies an ALB generates for sticky sessions (ELB user guide, "Sticky sessions for your
 * Application Load Balancer" and "Forward actions"):
 *
 * - duration-based (`lb_cookie`): "When a load balancer first receives a request from a client,
 *   it routes the request to a target (based on the chosen algorithm), and generates a cookie
 *   named AWSALB. It encodes information about the selected target"; "AWSALB is the only name
 *   used across all target groups". It also sends `AWSALBCORS`, the same value with
 *   `SameSite=None; Secure`.
 * - application-based (`app_cookie`): when the target's response sets the configured cookie, the
 *   load balancer "automatically generates a new encrypted application cookie to capture
 *   stickiness information ... for each target group that has application-based stickiness
 *   enabled"; the client sees it as `AWSALBAPP-0` (more shards past 4 KB).
 * - target group stickiness of a weighted forward action: "it generates a cookie named AWSALBTG
 *   that encodes information about the selected target group" (and `AWSALBTGCORS`).
 * - "The load balancer generated cookie has its own expiry of 7 days which is non-configurable";
 *   the stickiness duration is checked inside it, and "the Application Load Balancer resets the
 *   expiry of the cookies it generates after every request". "Application Load Balancers use
 *   the Expires attribute in the cookie header instead of the Max-Age attribute."
 *
 * ALB encrypts its cookies with a rotating key. Locally they are signed (HMAC-SHA256 with a key
 * the data plane draws at start) and readable: a cookie that was altered, or that another data
 * plane signed, "cannot be decoded" and the request gets a new target, as on ALB.
 */

export const LB_COOKIE = 'AWSALB';
export const LB_COOKIE_CORS = 'AWSALBCORS';
export const APP_COOKIE = 'AWSALBAPP-0';
export const GROUP_COOKIE = 'AWSALBTG';
export const GROUP_COOKIE_CORS = 'AWSALBTGCORS';
export const COOKIE_LIFETIME_MS = 7 * 24 * 3600 * 1000;

/** Cookies of a request by name; the first of duplicates wins. */
export function parseCookies(headers: readonly string[] | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const header of headers ?? []) {
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq <= 0) continue;
      const name = part.slice(0, eq).trim();
      if (name !== '' && !cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim());
    }
  }
  return cookies;
}

/** The cookie names a `Set-Cookie` response header list sets. */
export function setCookieNames(setCookie: readonly string[] | string | undefined): string[] {
  const list = setCookie === undefined ? [] : typeof setCookie === 'string' ? [setCookie] : setCookie;
  return list.map((line) => line.slice(0, Math.max(0, line.indexOf('='))).trim()).filter((n) => n !== '');
}

function sign(payload: string, key: Buffer): string {
  return createHmac('sha256', key).update(payload).digest('base64url');
}

/** `base64url(JSON).signature`: URL-safe without encoding, as ALB cookie values must be. */
export function encodeStickyValue(data: unknown, key: Buffer): string {
  const payload = Buffer.from(JSON.stringify(data), 'utf8').toString('base64url');
  return `${payload}.${sign(payload, key)}`;
}

/** The data of a value {@link encodeStickyValue} made with `key`; `undefined` when it cannot be decoded. */
export function decodeStickyValue(value: string | undefined, key: Buffer): unknown {
  if (value === undefined) return undefined;
  const dot = value.indexOf('.');
  if (dot <= 0) return undefined;
  const payload = value.slice(0, dot);
  const given = Buffer.from(value.slice(dot + 1));
  const expected = Buffer.from(sign(payload, key));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

interface StickyEntry {
  /** Target key (`id:port`) or target group ARN. */
  readonly t: string;
  /** End of the stickiness duration, epoch ms. */
  readonly e: number;
}

function isEntry(x: unknown): x is StickyEntry {
  return typeof x === 'object' && x !== null && typeof (x as StickyEntry).t === 'string' && typeof (x as StickyEntry).e === 'number';
}

function setCookie(name: string, value: string, now: number, cors: boolean): string {
  const expires = new Date(now + COOKIE_LIFETIME_MS).toUTCString();
  return `${name}=${value}; Expires=${expires}; Path=/${cors ? '; SameSite=None; Secure' : ''}`;
}

/** The target an `AWSALB` cookie names for this group, while its stickiness duration lasts. */
export function lbCookieTarget(cookies: ReadonlyMap<string, string>, key: Buffer, targetGroupArn: string, now: number): string | undefined {
  for (const name of [LB_COOKIE, LB_COOKIE_CORS]) {
    const data = decodeStickyValue(cookies.get(name), key);
    if (isEntry(data) && (data as { g?: unknown }).g === targetGroupArn && data.e > now) return data.t;
  }
  return undefined;
}

/** `Set-Cookie` lines binding the client to `targetKey` of the group for `durationMs` from now. */
export function lbCookieSetCookies(key: Buffer, targetGroupArn: string, targetKey: string, now: number, durationMs: number): string[] {
  const value = encodeStickyValue({ g: targetGroupArn, t: targetKey, e: now + durationMs }, key);
  return [setCookie(LB_COOKIE, value, now, false), setCookie(LB_COOKIE_CORS, value, now, true)];
}

function appEntries(cookies: ReadonlyMap<string, string>, key: Buffer): Record<string, StickyEntry> {
  const data = decodeStickyValue(cookies.get(APP_COOKIE), key);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return {};
  return Object.fromEntries(Object.entries(data as Record<string, unknown>).filter((e): e is [string, StickyEntry] => isEntry(e[1])));
}

/**
 * What an `AWSALBAPP-0` cookie says for this group: `present` when it holds an entry for the
 * group (the session is sticky and the load balancer keeps it so, on a new target if need be),
 * `target` while that entry's stickiness duration lasts.
 */
export function appCookieTarget(cookies: ReadonlyMap<string, string>, key: Buffer, targetGroupArn: string, now: number): { present: boolean; target?: string } {
  const entry = appEntries(cookies, key)[targetGroupArn];
  if (entry === undefined) return { present: false };
  return entry.e > now ? { present: true, target: entry.t } : { present: true };
}

/** `Set-Cookie` for `AWSALBAPP-0` with this group's entry renewed; other groups' live entries kept. */
export function appCookieSetCookies(
  cookies: ReadonlyMap<string, string>,
  key: Buffer,
  targetGroupArn: string,
  targetKey: string,
  now: number,
  durationMs: number,
): string[] {
  const entries = Object.fromEntries(Object.entries(appEntries(cookies, key)).filter(([, e]) => e.e > now));
  entries[targetGroupArn] = { t: targetKey, e: now + durationMs };
  return [setCookie(APP_COOKIE, encodeStickyValue(entries, key), now, false)];
}

/** The target group an `AWSALBTG` cookie names, while the action's stickiness duration lasts. */
export function groupCookieTarget(cookies: ReadonlyMap<string, string>, key: Buffer, now: number): string | undefined {
  for (const name of [GROUP_COOKIE, GROUP_COOKIE_CORS]) {
    const data = decodeStickyValue(cookies.get(name), key);
    if (isEntry(data) && data.e > now) return data.t;
  }
  return undefined;
}

export function groupCookieSetCookies(key: Buffer, targetGroupArn: string, now: number, durationMs: number): string[] {
  const value = encodeStickyValue({ t: targetGroupArn, e: now + durationMs }, key);
  return [setCookie(GROUP_COOKIE, value, now, false), setCookie(GROUP_COOKIE_CORS, value, now, true)];
}

import { describe, expect, it } from 'vitest';
import {
  appCookieSetCookies,
  appCookieTarget,
  decodeStickyValue,
  encodeStickyValue,
  groupCookieSetCookies,
  groupCookieTarget,
  lbCookieSetCookies,
  lbCookieTarget,
  parseCookies,
  setCookieNames,
} from '../../../lib/local/data-plane/stickiness';

const KEY = Buffer.alloc(32, 7);
const OTHER_KEY = Buffer.alloc(32, 8);
const NOW = Date.UTC(2030, 0, 1);

/** The cookies a client sends back after receiving `setCookie` lines. */
const echo = (setCookies: readonly string[], extra = ''): Map<string, string> => parseCookies([[...setCookies.map((l) => l.split(';')[0]), extra].filter(Boolean).join('; ')]);

describe('parseCookies', () => {
  it('reads every cookie of every Cookie header; the first of duplicates wins', () => {
    expect([...parseCookies(['a=1; b=2', 'a=3;c=x=y', 'junk'])]).toEqual([
      ['a', '1'],
      ['b', '2'],
      ['c', 'x=y'],
    ]);
  });

  it('names the cookies Set-Cookie lines set', () => {
    expect(setCookieNames(['session=abc; Path=/', 'AWSALB=x; Expires=...'])).toEqual(['session', 'AWSALB']);
    expect(setCookieNames('one=1')).toEqual(['one']);
    expect(setCookieNames(undefined)).toEqual([]);
  });
});

describe('signed values', () => {
  it('round-trips data and uses only characters cookies take unencoded', () => {
    const value = encodeStickyValue({ t: '10.0.0.1:80', e: NOW }, KEY);
    expect(value).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(decodeStickyValue(value, KEY)).toEqual({ t: '10.0.0.1:80', e: NOW });
  });

  it.each([
    ['another key', (v: string) => v, OTHER_KEY],
    ['an altered payload', (v: string) => `x${v}`, KEY],
    ['an altered signature', (v: string) => `${v.slice(0, -1)}${v.endsWith('A') ? 'B' : 'A'}`, KEY],
    ['no signature', (v: string) => v.split('.')[0], KEY],
    ['garbage', () => '%%%', KEY],
  ])('cannot decode %s', (_why, mangle, key) => {
    expect(decodeStickyValue(mangle(encodeStickyValue({ t: 'x', e: 1 }, KEY)), key)).toBeUndefined();
  });
});

describe('AWSALB (duration-based stickiness)', () => {
  const lines = lbCookieSetCookies(KEY, 'tg/vision', '10.0.0.1:80', NOW, 60_000);

  it('sets AWSALB and AWSALBCORS with a 7-day Expires, CORS one SameSite=None; Secure', () => {
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^AWSALB=[^;]+; Expires=Tue, 08 Jan 2030 00:00:00 GMT; Path=\/$/);
    expect(lines[1]).toMatch(/^AWSALBCORS=[^;]+; Expires=Tue, 08 Jan 2030 00:00:00 GMT; Path=\/; SameSite=None; Secure$/);
  });

  it.each<[string, Map<string, string>, string, number, string | undefined]>([
    ['names the target within the duration', echo(lines), 'tg/vision', NOW + 59_999, '10.0.0.1:80'],
    ['expires after the stickiness duration', echo(lines), 'tg/vision', NOW + 60_000, undefined],
    ['belongs to one group (AWSALB is shared by all groups)', echo(lines), 'tg/speech', NOW, undefined],
    ['the CORS copy alone is enough', parseCookies([`AWSALBCORS=${lines[1].split(';')[0].split('=')[1]}`]), 'tg/vision', NOW, '10.0.0.1:80'],
    ['a tampered cookie is ignored', parseCookies([`AWSALB=${lines[0].split(';')[0].split('=')[1]}x`]), 'tg/vision', NOW, undefined],
  ])('%s', (_why, cookies, group, now, expected) => {
    expect(lbCookieTarget(cookies, KEY, group, now)).toBe(expected);
  });
});

describe('AWSALBAPP-0 (application-based stickiness)', () => {
  it('holds one entry per group and keeps the other groups’ live entries', () => {
    const first = appCookieSetCookies(new Map(), KEY, 'tg/a', 'a:1', NOW, 10_000);
    expect(first[0]).toMatch(/^AWSALBAPP-0=[^;]+; Expires=[^;]+; Path=\/$/);
    const second = appCookieSetCookies(echo(first), KEY, 'tg/b', 'b:1', NOW + 1000, 10_000);
    const cookies = echo(second, 'session=app-value');
    expect(appCookieTarget(cookies, KEY, 'tg/a', NOW + 5000)).toEqual({ present: true, target: 'a:1' });
    expect(appCookieTarget(cookies, KEY, 'tg/b', NOW + 5000)).toEqual({ present: true, target: 'b:1' });
    expect(appCookieTarget(cookies, KEY, 'tg/c', NOW)).toEqual({ present: false });
  });

  it('an expired entry still marks the session sticky, without a target', () => {
    const cookies = echo(appCookieSetCookies(new Map(), KEY, 'tg/a', 'a:1', NOW, 10_000));
    expect(appCookieTarget(cookies, KEY, 'tg/a', NOW + 10_000)).toEqual({ present: true });
  });

  it('drops entries of other groups that expired', () => {
    const old = echo(appCookieSetCookies(new Map(), KEY, 'tg/a', 'a:1', NOW, 1000));
    const renewed = echo(appCookieSetCookies(old, KEY, 'tg/b', 'b:1', NOW + 2000, 1000));
    expect(appCookieTarget(renewed, KEY, 'tg/a', NOW)).toEqual({ present: false });
  });
});

describe('AWSALBTG (target group stickiness)', () => {
  it('names the group within the duration, from either cookie', () => {
    const lines = groupCookieSetCookies(KEY, 'tg/canary', NOW, 30_000);
    expect(lines.map((l) => l.split('=')[0])).toEqual(['AWSALBTG', 'AWSALBTGCORS']);
    expect(groupCookieTarget(echo(lines), KEY, NOW + 29_999)).toBe('tg/canary');
    expect(groupCookieTarget(echo(lines), KEY, NOW + 30_000)).toBeUndefined();
    expect(groupCookieTarget(echo([lines[1]]), KEY, NOW)).toBe('tg/canary');
  });
});

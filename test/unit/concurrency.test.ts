import { describe, expect, it } from 'vitest';
import { mapLimit } from '../../lib/core/concurrency';

/** Runs `mapLimit` over 12 items that each wait for the test to let them finish, recording how many ran at once. */
async function widths(limit: number | (() => number), onStart: (started: number) => void = () => undefined) {
  let running = 0;
  let most = 0;
  let started = 0;
  const waiting: (() => void)[] = [];
  const result = mapLimit(Array.from({ length: 12 }, (_, i) => i), limit, async (i) => {
    running++;
    most = Math.max(most, running);
    onStart(++started);
    await new Promise<void>((resolve) => waiting.push(resolve));
    running--;
    return i * 2;
  });
  while (started < 12 || waiting.length > 0) {
    await new Promise((resolve) => setImmediate(resolve));
    waiting.splice(0).forEach((go) => go());
  }
  return { out: await result, most };
}

describe('mapLimit', () => {
  it('keeps results in order, at most `limit` at a time', async () => {
    expect(await widths(3)).toEqual({ out: Array.from({ length: 12 }, (_, i) => i * 2), most: 3 });
  });

  it('asks a width function again before each item: narrow while it says so, wide after', async () => {
    let width = 2;
    const seen = await widths(() => width, (started) => (started === 4 ? (width = 6) : undefined));
    expect(seen.out).toEqual(Array.from({ length: 12 }, (_, i) => i * 2));
    expect(seen.most).toBe(6);
    expect((await widths(() => 0)).most).toBe(1);
  });

  it('rejects on the first failure and starts nothing more', async () => {
    let calls = 0;
    const failing = mapLimit([1, 2, 3, 4, 5], () => 1, async (i) => {
      calls++;
      if (i === 2) throw new Error('boom');
      return i;
    });
    await expect(failing).rejects.toThrow('boom');
    expect(calls).toBe(2);
  });
});

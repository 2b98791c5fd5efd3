import { describe, expect, it } from 'vitest';
import { afterWrite, inFlightAllowed, OBSERVED_WRITE_PACING, startPacing, WritePacing } from '../../lib/core/write-pacing';

const L = OBSERVED_WRITE_PACING;
const at = (width: number, fastestMs: number | undefined, holdOff = 0): WritePacing => ({ width, fastestMs, holdOff });

describe('write pacing (additive increase, multiplicative decrease, led by latency)', () => {
  it('starts at the width that kept registrations unharmed', () => {
    expect(startPacing()).toEqual(at(L.start, undefined));
    expect(inFlightAllowed(startPacing())).toBe(4);
  });

  it.each<[string, WritePacing, number, WritePacing]>([
    ['the first write only sets the fastest time', at(4, undefined), 12, at(4, 12)],
    ['a fast write adds 1/width', at(4, 10), 12, at(4.25, 10)],
    ['four fast writes at width 4 add one', at(4.75, 10), 10, at(5, 10)],
    ['a faster write lowers the fastest time and counts as fast', at(4, 10), 6, at(4.25, 6)],
    ['between fast and slow: no change', at(6, 10), 20, at(6, 10)],
    ['a slow write halves the width and holds off one round', at(8, 10), 31, at(4, 10, 8)],
    ['no second halving within the round', at(4, 10, 8), 50, at(4, 10, 7)],
    ['the round over, a slow write halves again', at(4, 10, 1), 50, at(2, 10, 4)],
    ['never below min', at(2, 10), 50, at(2, 10, 2)],
    ['never above max', at(16, 10), 10, at(16, 10)],
    ['latencies under the clock resolution count as 1 ms', at(4, 1), 0, at(4.25, 1)],
    ['fast writes during the hold-off still widen', at(4, 10, 3), 10, at(4.25, 10, 2)],
  ])('%s', (_name, before, latencyMs, after) => {
    expect(afterWrite(before, latencyMs)).toEqual(after);
  });

  it('under a latency that grows with the width, settles where it stops growing; on an idle table climbs to max', () => {
    let crowded = startPacing();
    for (let i = 0; i < 1000; i++) crowded = afterWrite(crowded, 5 * Math.max(1, inFlightAllowed(crowded) - 3));
    expect(inFlightAllowed(crowded)).toBeLessThanOrEqual(L.start + 1);
    let idle = startPacing();
    for (let i = 0; i < 1000; i++) idle = afterWrite(idle, 5);
    expect(inFlightAllowed(idle)).toBe(L.max);
  });
});

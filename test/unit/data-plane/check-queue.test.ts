import { describe, expect, it } from 'vitest';
import { CheckQueue } from '../../../lib/local/data-plane/check-queue';

describe('CheckQueue', () => {
  it('takes groups in turn, so a group of one is served after at most one check of each other group', () => {
    // Prepare: 2 000 checks of a big group queued before the one check of a small one
    const queue = new CheckQueue<string>();
    for (let i = 0; i < 2000; i++) queue.push('big', `big-${i}`);
    queue.push('small', 'small-0');

    // Act
    const first = [queue.shift(), queue.shift(), queue.shift()];

    // Assess
    expect(first).toEqual(['big-0', 'small-0', 'big-1']);
    expect(queue.length).toBe(1998);
  });

  it('keeps each group in order and is empty when everything was taken', () => {
    const queue = new CheckQueue<string>();
    queue.push('a', 'a1');
    queue.push('a', 'a2');
    queue.push('b', 'b1');
    expect([queue.shift(), queue.shift(), queue.shift(), queue.shift()]).toEqual(['a1', 'b1', 'a2', undefined]);
    expect(queue.length).toBe(0);
    queue.push('c', 'c1');
    queue.clear();
    expect(queue.shift()).toBeUndefined();
  });
});

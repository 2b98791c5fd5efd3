import { describe, expect, it, test } from 'vitest';
import { assignSlots, capabilitySlot, slotBlock } from '../../lib/constructs/rule-priorities';

const SLOTS = 20;
/** The first name `prefix-<n>` whose natural slot among SLOTS is `slot`. */
function nameAt(slot: number, prefix = 'cap'): string {
  for (let n = 0; ; n++) if (capabilitySlot(`${prefix}-${n}`, SLOTS) === slot) return `${prefix}-${n}`;
}

describe('slotBlock: a capability\'s slot and, below it, one per variant (its pin rules)', () => {
  test.each<[number, number, number[]]>([
    [7, 0, [7]],
    [7, 1, [7, 6]],
    [7, 4, [7, 6, 5, 4, 3]],
  ])('slot %i with %i variants takes %j', (slot, pins, block) => expect(slotBlock(slot, pins)).toEqual(block));
});

describe('assignSlots with variants', () => {
  it('keeps the natural slot when the slots below it are free', () => {
    expect(assignSlots([{ name: nameAt(10), pins: 2 }], SLOTS)).toEqual({ slots: [10], moved: [] });
  });

  it('moves a capability whose variants would need slots below 1, saying no capability is to blame', () => {
    const name = nameAt(1);
    expect(assignSlots([{ name, pins: 1 }], SLOTS)).toEqual({ slots: [2], moved: [{ name, natural: 1, slot: 2 }] });
  });

  it('moves a later capability whose block would overlap an earlier one, naming it', () => {
    const first = nameAt(10);
    const second = nameAt(11, 'other');
    // second needs 11 and 10; 10 is first's: it takes the next slot whose block is free (12, 11)
    expect(assignSlots([{ name: first }, { name: second, pins: 1 }], SLOTS)).toEqual({ slots: [10, 12], moved: [{ name: second, natural: 11, slot: 12, by: first }] });
  });

  it('leaves a pinned capability where it is pinned (a clash is the router\'s to report)', () => {
    expect(assignSlots([{ name: 'a', priority: 5, pins: 3 }, { name: 'b', priority: 5 }], SLOTS).slots).toEqual([5, 5]);
  });

  it('refuses when no run of free slots fits a capability and its variants', () => {
    // Two slots: the first capability takes one of them, the second needs both
    expect(() => assignSlots([{ name: 'first' }, { name: 'late', pins: 1 }], 2)).toThrow('no 2 consecutive free rule-priority slots left for capability "late"');
  });
});

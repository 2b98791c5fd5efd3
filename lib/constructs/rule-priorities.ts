import { Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { AgentLbValidationError } from './validation-error';

/**
 * A range of listener-rule priorities, both ends included. agent-lb puts every rule it adds to
 * a listener inside it, so rules of your own outside the range never clash with them.
 */
export interface RulePriorityRange {
  /** Lowest priority agent-lb may use, 1–50000. */
  readonly min: number;
  /** Highest priority agent-lb may use, `min`–50000. */
  readonly max: number;
}

/** Rule priorities an ALB listener accepts. */
export const LISTENER_PRIORITIES: RulePriorityRange = { min: 1, max: 50_000 };

/**
 * Where one capability's two rules sit in a range: the range is split in two halves of `slots`
 * priorities each; slot `s` (1-based) puts the header rule at `min + s - 1` in the first half and
 * the path rule at the same place in the second, so an explicit header always wins over a path.
 */
export interface PriorityLayout {
  readonly range: RulePriorityRange;
  /** Slots in the range: half its size, rounded down. */
  readonly slots: number;
}

/** A validation error of `scope` when there is one (the router), else a plain error (a direct call). */
function validationError(scope: IConstruct | undefined, message: string): Error {
  return scope ? new AgentLbValidationError(scope, message) : new RangeError(message);
}

/**
 * Checks a range against the listener's limits and the slots it must hold (one per capability
 * and one per variant, whose pin rules sit just below their capability's); the message quotes
 * the values.
 */
export function priorityLayout(range: RulePriorityRange = LISTENER_PRIORITIES, capabilities = 0, scope?: IConstruct, variants = 0, catalog = false): PriorityLayout {
  const { min, max } = range;
  if (Token.isUnresolved(min) || Token.isUnresolved(max)) throw validationError(scope, 'priorityRange must be plain numbers, not tokens: rule priorities are fixed at synth');
  const inListener = (n: number) => Number.isInteger(n) && n >= LISTENER_PRIORITIES.min && n <= LISTENER_PRIORITIES.max;
  if (!inListener(min) || !inListener(max) || min > max) {
    throw validationError(scope, `priorityRange ${min}–${max} must be whole numbers with ${LISTENER_PRIORITIES.min} ≤ min ≤ max ≤ ${LISTENER_PRIORITIES.max}`);
  }
  const slots = Math.floor((max - min + 1) / 2);
  const needed = Math.max(capabilities, 1) + variants + (catalog ? 1 : 0);
  if (slots < needed) {
    const withCatalog = catalog ? ', and a slot for the capability catalog\'s rule' : '';
    throw validationError(scope,
      variants === 0
        ? `priorityRange ${min}–${max} holds ${max - min + 1} priorities; ${Math.max(capabilities, 1)} capabilities need at least ${2 * needed} (a header rule and a path rule each${withCatalog})`
        : `priorityRange ${min}–${max} holds ${max - min + 1} priorities; ${Math.max(capabilities, 1)} capabilities with ${variants} variants need at least ${2 * needed} ` +
            `(a header rule and a path rule per capability, and a header and a path pin rule per variant${withCatalog})`,
    );
  }
  return { range: { min, max }, slots };
}

/** Priority of the header rule of `slot`. */
export function headerRulePriority(layout: PriorityLayout, slot: number): number {
  return layout.range.min + slot - 1;
}

/** Priority of the path rule of `slot`. */
export function pathRulePriority(layout: PriorityLayout, slot: number): number {
  return layout.range.min + layout.slots + slot - 1;
}

/**
 * The natural rule-priority slot of a capability name: FNV-1a (32 bit) of its UTF-8 bytes,
 * modulo `slots`, plus 1. A pure function of the name (and of the range's size).
 */
export function capabilitySlot(name: string, slots = LISTENER_PRIORITIES.max / 2): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return (hash % slots) + 1;
}

/** A capability whose natural slot was taken by an earlier one in the list, or left no room for its variants' pin rules. */
export interface MovedSlot {
  readonly name: string;
  readonly natural: number;
  readonly slot: number;
  /** The capability holding a slot it needed; absent when the slots below `natural` ran out. */
  readonly by?: string;
}

/** What a capability asks of the priority layout: its name, a pinned slot, and the pin slots its variants need below it. */
export interface SlotRequest {
  readonly name: string;
  readonly priority?: number;
  /** Variants of the capability: their pin rules take the slots just below its own. @default 0 */
  readonly pins?: number;
}

/**
 * The slots a capability's rules take: its own (`slot`) and, for variant `i` (0-based, in the
 * order given), `slot − 1 − i`, so a pin rule always comes before its capability's weighted
 * rule and an added variant never moves the others.
 */
export function slotBlock(slot: number, pins = 0): number[] {
  return Array.from({ length: pins + 1 }, (_, i) => slot - i);
}

/**
 * Assigns slots to unpinned capabilities in list order. A capability takes its natural slot
 * when that slot and the `pins` below it are free and above 0; otherwise the next slot upwards
 * (wrapping) where they are. Pinned capabilities keep their slot (a clash is the caller's to
 * report). A variant added to a capability keeps the capability's slot unless a slot below it
 * is taken already; then the capability moves (and a warning says so, as for a hash collision).
 * @throws RangeError when no run of free slots fits a capability (the range is too fragmented)
 */
export function assignSlots(capabilities: readonly SlotRequest[], slots: number): { slots: number[]; moved: MovedSlot[] } {
  const owner = new Map<number, string>();
  const assigned: number[] = [];
  const moved: MovedSlot[] = [];
  for (const c of capabilities) {
    if (c.priority !== undefined) {
      assigned.push(c.priority);
      continue;
    }
    const pins = c.pins ?? 0;
    const natural = capabilitySlot(c.name, slots);
    const fits = (slot: number) => slot - pins >= 1 && slotBlock(slot, pins).every((s) => !owner.has(s));
    let slot = natural;
    for (let tries = 0; !fits(slot); tries++) {
      if (tries >= slots) throw new RangeError(`no ${pins + 1} consecutive free rule-priority slots left for capability "${c.name}"`);
      slot = (slot % slots) + 1;
    }
    if (slot !== natural) {
      const by = slotBlock(natural, pins).map((s) => owner.get(s)).find((o) => o !== undefined);
      moved.push({ name: c.name, natural, slot, ...(by !== undefined ? { by } : {}) });
    }
    for (const s of slotBlock(slot, pins)) owner.set(s, c.name);
    assigned.push(slot);
  }
  return { slots: assigned, moved };
}

/** The name the capability catalog's slot is hashed from: not a capability name (those match `^[a-z0-9]…`), so it is nobody's. */
export const CATALOG_SLOT_NAME = '(catalog)';

/** The first slot from `name`'s natural one upwards (wrapping) that is not in `taken`. @throws RangeError when every slot is taken */
export function freeSlot(name: string, slots: number, taken: ReadonlySet<number>): number {
  let slot = capabilitySlot(name, slots);
  for (let tries = 0; taken.has(slot); tries++) {
    if (tries >= slots) throw new RangeError(`no free rule-priority slot left for ${name}`);
    slot = (slot % slots) + 1;
  }
  return slot;
}

import { decodeRotation, plausibleRotation } from '../core/lease-codec';
import type { LeaseRotation, RawAttributeValue } from '../core/lease-schema';

export interface RotationTrackerHooks {
  /** One poll: reads the lease item and hands it to `observe`. Never rejects. */
  readonly poll: () => Promise<void>;
  readonly onChange: (rotation: LeaseRotation, previous: LeaseRotation) => void;
}

function sameRotation(a: LeaseRotation, b: LeaseRotation): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k].state === b[k].state && a[k].since === b[k].since);
}

/**
 * The latest `rotation` an agent has seen of its own lease, from every item it gets back
 * (renewals and status changes return the item) and, while someone waits on it, from polls.
 *
 * Replies may arrive out of order (a poll sent before a renewal can answer after it), so
 * observations merge per capability and the newer `since` wins: the registry only ever
 * replaces an entry with a later one, and only the agent's own PutItem removes them (`reset`).
 */
export class RotationTracker {
  private current: LeaseRotation = {};
  private watchers = 0;
  private timer?: NodeJS.Timeout;
  private polling = false;

  public constructor(
    private readonly pollIntervalMs: number,
    private readonly hooks: RotationTrackerHooks,
    /** Epoch ms: entries dated further ahead than the clock-skew allowance are ignored. @default Date.now */
    private readonly now: () => number = Date.now,
  ) {}

  public get rotation(): LeaseRotation {
    return this.current;
  }

  /** True while at least one wait polls the item. */
  public get watched(): boolean {
    return this.watchers > 0;
  }

  /** Takes in the `rotation` attribute of an item that is ours (raw, untrusted). */
  public observe(raw: RawAttributeValue | undefined): void {
    // Malformed entries are dropped by the decoder; one dated in the future (no registry clock
    // wrote it) would win every later merge and pin the state, so it counts as unknown too.
    const rotation = plausibleRotation(decodeRotation(raw).rotation, this.now());
    if (rotation === undefined) return;
    const merged: Record<string, LeaseRotation[string]> = { ...this.current };
    for (const [capability, entry] of Object.entries(rotation)) {
      const known = Object.hasOwn(merged, capability) ? merged[capability] : undefined;
      if (known === undefined || entry.since >= known.since) merged[capability] = entry;
    }
    this.replace(merged);
  }

  /** The lease item was written anew (acquire): the registry's entries went with the old one. */
  public reset(): void {
    this.replace({});
  }

  /**
   * Polls every `pollIntervalMs` until the returned function is called (once per call; several
   * watchers share one poll). The timer is not `unref()`'d: whoever waits bounds the wait.
   */
  public watch(): () => void {
    this.watchers++;
    if (this.watchers === 1) this.schedule();
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      this.watchers--;
      if (this.watchers === 0 && this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    };
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.watchers === 0 || this.polling) return;
      this.polling = true;
      void this.hooks.poll().finally(() => {
        this.polling = false;
        if (this.watchers > 0 && this.timer === undefined) this.schedule();
      });
    }, this.pollIntervalMs);
  }

  private replace(next: LeaseRotation): void {
    const previous = this.current;
    if (sameRotation(previous, next)) return;
    this.current = next;
    this.hooks.onChange(next, previous);
  }
}

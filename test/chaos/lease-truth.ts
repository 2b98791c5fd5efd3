import { LeaseWrite } from './write-log';

/**
 * When a lease was live, derived only from the agents' write log (see write-log.ts).
 *
 * The contract: a target belongs in capability C's group while its lease item is `active`,
 * lists C and `expiresAt > now`. A write lands at some unknown instant between being sent
 * (`t0`) and its outcome (`t1`); a write that failed its condition never landed; one that
 * failed otherwise (timeout, DynamoDB Local down) may have landed. So two views:
 *
 * - **certainly live** for (target, C): after a write that certainly landed (`ok`) and set a
 *   live lease listing C, up to its expiry, and only until the first write that *could* have
 *   ended it (a delete, a drain, a put without C, by anyone) was sent. A false deregistration
 *   is one that lands while the lease is certainly live.
 * - **possibly live**: from the sending of any write that could have set such a lease, up to
 *   its expiry, cut only by writes certain to have landed after it. A target still registered
 *   when its lease is not even possibly live is stale; how long is the staleness figure.
 */

export type Interval = readonly [start: number, end: number];

export interface LeaseTruthOptions {
  /** Certainly-live intervals end this much before the expiry, for clock reads racing the second boundary. @default 50 */
  readonly marginMs?: number;
}

/** Per (target, capability): merged, sorted intervals. */
export class LeaseTruth {
  public constructor(
    private readonly certain: ReadonlyMap<string, readonly Interval[]>,
    private readonly possible: ReadonlyMap<string, readonly Interval[]>,
    private readonly writes: ReadonlyMap<string, readonly LeaseWrite[]>,
  ) {}

  public certainlyLive(target: string, capability: string): readonly Interval[] {
    return this.certain.get(pairKey(target, capability)) ?? [];
  }

  public possiblyLive(target: string, capability: string): readonly Interval[] {
    return this.possible.get(pairKey(target, capability)) ?? [];
  }

  /** True when the lease was certainly live during all of [from, to]. */
  public certainlyLiveThroughout(target: string, capability: string, from: number, to: number): boolean {
    return this.certainlyLive(target, capability).some(([s, e]) => s <= from && to < e);
  }

  public possiblyLiveAt(target: string, capability: string, t: number): boolean {
    return this.possiblyLive(target, capability).some(([s, e]) => s <= t && t < e);
  }

  /**
   * When the lease was last possibly live before `t`: undefined while it still may be live at
   * `t`, -Infinity when it never was.
   */
  public deadSince(target: string, capability: string, t: number): number | undefined {
    let last = -Infinity;
    for (const [s, e] of this.possiblyLive(target, capability)) {
      if (s <= t && t < e) return undefined;
      if (e <= t && e > last) last = e;
    }
    return last;
  }

  /** The last write that may have landed for `target`, sent before `t`: the agent's last act (a refused acquire by a successor does not count). */
  public lastWriteBefore(target: string, t: number): LeaseWrite | undefined {
    let last: LeaseWrite | undefined;
    for (const w of this.writes.get(target) ?? []) if (w.outcome !== 'condition' && w.t0 <= t && (last === undefined || w.t0 > last.t0)) last = w;
    return last;
  }

  /** Every (target, capability) that was ever possibly live. */
  public pairs(): { target: string; capability: string }[] {
    return [...this.possible.keys()].map((k) => {
      const i = k.lastIndexOf('|');
      return { target: k.slice(0, i), capability: k.slice(i + 1) };
    });
  }
}

export function pairKey(target: string, capability: string): string {
  return `${target}|${capability}`;
}

function merge(intervals: Interval[]): Interval[] {
  const sorted = intervals.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

function intersect(interval: Interval, with_: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const [s, e] of with_) {
    const a = Math.max(s, interval[0]);
    const b = Math.min(e, interval[1]);
    if (b > a) out.push([a, b]);
  }
  return out;
}

const landed = (w: LeaseWrite) => w.outcome !== 'condition';
const setsActive = (w: LeaseWrite) => (w.kind === 'put' || w.kind === 'status') && w.status === 'active';
const setsDraining = (w: LeaseWrite) => (w.kind === 'put' || w.kind === 'status') && w.status === 'draining';

/**
 * A token's own status over time (its puts and drains/activates run one at a time, the SDK
 * queues them): certainly active from an `ok` activating write until the next draining write
 * is sent; possibly active from any activating write until a draining one certainly landed.
 */
function statusViews(writes: readonly LeaseWrite[]): { certain: Interval[]; possible: Interval[] } {
  const statusWrites = writes.filter((w) => (w.kind === 'put' || w.kind === 'status') && landed(w));
  const certain: Interval[] = [];
  const possible: Interval[] = [];
  statusWrites.forEach((a, i) => {
    if (!setsActive(a)) return;
    const later = statusWrites.slice(i + 1);
    const nextDrain = later.find(setsDraining);
    if (a.outcome === 'ok') certain.push([a.t1, nextDrain?.t0 ?? Infinity]);
    const drained = later.find((d) => setsDraining(d) && d.outcome === 'ok' && d.t0 >= a.t1);
    possible.push([a.t0, drained?.t1 ?? Infinity]);
  });
  return { certain: merge(certain), possible: merge(possible) };
}

/** Builds both views from the agents' write log. */
export function buildLeaseTruth(log: readonly LeaseWrite[], options: LeaseTruthOptions = {}): LeaseTruth {
  const margin = options.marginMs ?? 50;
  const byTarget = new Map<string, LeaseWrite[]>();
  for (const w of log) {
    let list = byTarget.get(w.target);
    if (!list) byTarget.set(w.target, (list = []));
    list.push(w);
  }
  const certain = new Map<string, Interval[]>();
  const possible = new Map<string, Interval[]>();
  const add = (map: Map<string, Interval[]>, key: string, intervals: Interval[]) => {
    let list = map.get(key);
    if (!list) map.set(key, (list = []));
    list.push(...intervals);
  };

  for (const [target, writes] of byTarget) {
    writes.sort((a, b) => a.t0 - b.t0);
    const caps = new Map<string, readonly string[]>();
    for (const w of writes) if (w.kind === 'put' && !caps.has(w.token)) caps.set(w.token, w.capabilities ?? []);
    const status = new Map<string, ReturnType<typeof statusViews>>();
    for (const token of caps.keys()) status.set(token, statusViews(writes.filter((w) => w.token === token)));

    for (const w of writes) {
      if ((w.kind !== 'put' && w.kind !== 'renew') || !landed(w) || w.expiresAt === undefined) continue;
      const wCaps = caps.get(w.token) ?? [];
      const views = status.get(w.token);
      if (!views) continue;
      const expiry = w.expiresAt * 1000;
      for (const capability of wCaps) {
        // Certainly live: only an `ok` write, cut at the first write that could land after it and end the lease.
        if (w.outcome === 'ok') {
          let end = expiry - margin;
          for (const d of writes) {
            if (d === w || !landed(d) || d.t1 <= w.t0) continue;
            if (d.kind === 'put') {
              const keeps = d.status === 'active' && (d.capabilities ?? []).includes(capability);
              end = Math.min(end, keeps ? (d.expiresAt ?? 0) * 1000 : d.t0);
            } else if (d.kind === 'delete' || (d.kind === 'status' && d.token !== w.token && d.status === 'draining')) {
              end = Math.min(end, d.t0);
            }
          }
          add(certain, pairKey(target, capability), intersect([w.t1, end], views.certain));
        }
        // Possibly live: any write that may have landed, cut only by writes certain to have landed after it.
        let end = expiry;
        for (const d of writes) {
          if (d === w || d.outcome !== 'ok' || d.t0 < w.t1) continue;
          if (d.kind === 'put' || d.kind === 'delete' || (d.kind === 'status' && d.token !== w.token && d.status === 'draining')) {
            end = Math.min(end, d.t1);
          }
        }
        add(possible, pairKey(target, capability), intersect([w.t0, end], views.possible));
      }
    }
  }
  return new LeaseTruth(
    new Map([...certain].map(([k, v]) => [k, merge(v)])),
    new Map([...possible].map(([k, v]) => [k, merge(v)])),
    byTarget,
  );
}

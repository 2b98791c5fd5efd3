/**
 * Seeded pseudo-random numbers for the chaos run. Every decision (agent actions, fault draws,
 * handler kills) comes from a stream derived from the run's seed and the stream's name, so one
 * component's draws never shift another's: the same seed gives the same decisions, even though
 * the timing of a run (and so the interleaving) differs between machines.
 */
export type Random = () => number;

/** mulberry32: small, fast, good enough for test decisions (not for anything secret). */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of the name, mixed with the seed: independent streams per component. */
export function stream(seed: number, name: string): Random {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mulberry32(h >>> 0);
}

export function between(random: Random, min: number, max: number): number {
  return min + (max - min) * random();
}

export function chance(random: Random, p: number): boolean {
  return p > 0 && random() < p;
}

/** Picks by weight; weights need not sum to 1. */
export function weighted<T extends string>(random: Random, weights: Readonly<Record<T, number>>): T {
  const entries = Object.entries(weights) as [T, number][];
  const total = entries.reduce((s, [, w]) => s + w, 0);
  let r = random() * total;
  for (const [name, w] of entries) {
    r -= w;
    if (r < 0) return name;
  }
  return entries[entries.length - 1][0];
}

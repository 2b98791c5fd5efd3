/**
 * The two async helpers the registry, its adapters, local mode and the benchmarks share. Kept in
 * core (no I/O of their own) so every layer can use the one copy.
 */

/** Resolves after `ms` milliseconds (at once for 0 or less). */
export function sleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/**
 * How many at a time: a number, or a function asked again before each item starts (see `WriteWidth`
 * in lib/registry/registry-writes.ts).
 */
export type Width = number | (() => number);

/** `fn` over `items`, at most `limit` at a time, results in order. A failure rejects. */
export async function mapLimit<T, R>(items: readonly T[], limit: Width, fn: (item: T) => Promise<R>): Promise<R[]> {
  if (typeof limit === 'function') return mapWidth(items, limit, fn);
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}

/** mapLimit with a width read again before each item starts (at least 1); a failure rejects and starts nothing more. */
function mapWidth<T, R>(items: readonly T[], width: () => number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  if (items.length === 0) return Promise.resolve(out);
  return new Promise<R[]>((resolve, reject) => {
    let next = 0;
    let running = 0;
    let done = 0;
    let failed = false;
    const pump = (): void => {
      while (!failed && next < items.length && running < Math.max(1, width())) {
        const i = next++;
        running++;
        fn(items[i]).then(
          (r) => {
            out[i] = r;
            running--;
            if (++done === items.length) resolve(out);
            else pump();
          },
          (error: unknown) => {
            failed = true;
            reject(error);
          },
        );
      }
    };
    pump();
  });
}

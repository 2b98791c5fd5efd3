/**
 * Health checks waiting for a free slot, one queue per target group, taken round-robin across
 * groups. A load balancer with 2 000 targets in one group would otherwise open 2 000 sockets at
 * once every interval; with a bounded number of checks in flight, taken fairly, a group with one
 * target still gets its check within one slot's time, however many targets another group has.
 */

/** Health checks in flight at once, unless configured. */
export const DEFAULT_MAX_CHECKS_IN_FLIGHT = 64;

export class CheckQueue<T> {
  private readonly queues = new Map<string, T[]>();
  private order: string[] = [];
  private size = 0;

  public get length(): number {
    return this.size;
  }

  public push(group: string, item: T): void {
    let queue = this.queues.get(group);
    if (queue === undefined) {
      this.queues.set(group, (queue = []));
      this.order.push(group);
    }
    queue.push(item);
    this.size++;
  }

  /** The next item, from the group after the one served last; `undefined` when nothing waits. */
  public shift(): T | undefined {
    while (this.order.length > 0) {
      const group = this.order.shift()!;
      const queue = this.queues.get(group)!;
      const item = queue.shift();
      if (queue.length > 0) this.order.push(group);
      else this.queues.delete(group);
      if (item !== undefined) {
        this.size--;
        return item;
      }
    }
    return undefined;
  }

  public clear(): void {
    this.queues.clear();
    this.order = [];
    this.size = 0;
  }
}

import type { SharedBucketWrite } from '../../lib/aws/shared-budget-store';
import { ElbBudgetStateError } from '../../lib/core/errors';
import type { SharedBucket } from '../../lib/core/shared-elb-bucket';
import type { SharedBucketStore } from '../../lib/registry/shared-bucket-gate';

/**
 * The shared bucket's item held in memory, written on the same condition as DynamoDB's (the
 * version read) and answering a lost race with the winner's item. Each answer comes after
 * `latencyMs` of (fake or real) timers, so two gates' writes interleave as containers' do.
 */
export class InMemorySharedBucket implements SharedBucketStore {
  public item: SharedBucket | undefined;
  public reads = 0;
  public writes = 0;
  public conflicts = 0;
  /** While set, every read and write fails as an unreachable DynamoDB would. */
  public down = false;

  public constructor(private readonly latencyMs = 0) {}

  private async answer<T>(f: () => T): Promise<T> {
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    else await Promise.resolve();
    if (this.down) throw new ElbBudgetStateError('the shared ELB call budget is unreachable (test)', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    return f();
  }

  public read(): Promise<SharedBucket | undefined> {
    return this.answer(() => {
      this.reads++;
      return this.item;
    });
  }

  public write(next: SharedBucket, readVersion: number | undefined): Promise<SharedBucketWrite> {
    return this.answer((): SharedBucketWrite => {
      this.writes++;
      if (this.item?.version !== readVersion) {
        this.conflicts++;
        return this.item ? { outcome: 'conflict', current: this.item } : { outcome: 'conflict' };
      }
      this.item = next;
      return { outcome: 'written' };
    });
  }
}

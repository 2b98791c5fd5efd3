import type { TargetHealthChange, TargetHealthSink } from './data-plane';
import type { TargetHealthReport } from './emulators';

/** The states the moto launcher takes reports of; it models `draining` itself. */
const REPORTED_STATES = new Set(['initial', 'healthy', 'unhealthy', 'unavailable']);

/** The end of a draining: reported, so moto's model ends it too when the data plane completed it early. */
const isDrainingEnd = (change: TargetHealthChange): boolean => change.health.State === 'unused' && change.health.Reason === 'Target.NotRegistered' && change.previous?.State === 'draining';

/** Sends one group's reports; resolves with the `<id>:<port>` keys applied and ignored. */
export type ReportTargetHealth = (targetGroupArn: string, reports: readonly TargetHealthReport[]) => Promise<{ applied: string[]; ignored: string[] }>;

/**
 * Writes the health the data plane's checks find into moto through the launcher's reporter seam
 * (`MotoServer.reportTargetHealth`), so DescribeTargetHealth, `agent-lb status` and reconcile
 * read the states the data plane routes by. Changes are queued and sent in the background, one
 * POST per target group per flush, the last state of each target winning: a burst of changes
 * (a fleet starting) costs a few calls, and a slow moto never holds up routing.
 *
 * `draining` is not sent: the launcher derives it from DeregisterTargets and the deregistration
 * delay, as ELB does. The end of a draining is (`unused`, `Target.NotRegistered`): when the data
 * plane completes a deregistration early because nothing was in flight, moto's model ends that
 * draining too, so DescribeTargetHealth (and the registry's `rotation`) show the target gone. A
 * report for a target moto does not hold in that state (registered again meanwhile) is ignored.
 */
export class MotoHealthSink implements TargetHealthSink {
  private queue: TargetHealthChange[] = [];
  private flushing?: Promise<void>;
  private sent = 0;

  public constructor(
    private readonly report: ReportTargetHealth,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  /** Reports sent so far (targets, not calls). */
  public get reportsSent(): number {
    return this.sent;
  }

  public onTargetHealth(change: TargetHealthChange): void {
    if (!REPORTED_STATES.has(change.health.State ?? '') && !isDrainingEnd(change)) return;
    this.queue.push(change);
    this.flushing ??= this.flush();
  }

  /** Resolves when everything queued so far has been sent (or failed). */
  public async idle(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
  }

  private async flush(): Promise<void> {
    try {
      // Let the changes of one snapshot or one round of checks gather first.
      await Promise.resolve();
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        for (const [arn, reports] of latestPerTarget(batch)) {
          try {
            await this.report(arn, reports);
            this.sent += reports.length;
          } catch (error) {
            this.onError(error);
          }
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}

/** Per group, in order of first appearance, the last reported state of each target. */
function latestPerTarget(changes: readonly TargetHealthChange[]): Map<string, TargetHealthReport[]> {
  const groups = new Map<string, Map<string, TargetHealthReport>>();
  for (const c of changes) {
    const reports = groups.get(c.targetGroupArn) ?? new Map<string, TargetHealthReport>();
    groups.set(c.targetGroupArn, reports);
    reports.set(`${c.target.Id}:${c.target.Port}`, {
      id: c.target.Id,
      port: c.target.Port,
      state: c.health.State as TargetHealthReport['state'],
      ...(c.health.Reason !== undefined ? { reason: c.health.Reason } : {}),
      ...(c.health.Description !== undefined ? { description: c.health.Description } : {}),
    });
  }
  return new Map([...groups].map(([arn, reports]) => [arn, [...reports.values()]]));
}

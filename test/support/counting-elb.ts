import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { BucketState, takeTokens } from '../../lib/core/elb-call-budget';

/** The account's Register/Deregister bucket as AWS enforces it, with another registrar taking part of its refill. */
export interface AccountBucket {
  readonly burst: number;
  readonly perSecond: number;
  /** Calls per second another registrar of the account spends from the same bucket. @default 0 */
  readonly otherPerSecond?: number;
}

/**
 * An in-memory ELBv2 stand-in that counts the calls it gets and keeps target-group state:
 * RegisterTargets and DeregisterTargets change the groups, DescribeTargetHealth lists their
 * targets with the state `health` says (`healthy` unless told otherwise). Used by B1 and the
 * projection, and by the unit tests that count what each lease change costs.
 */
export class CountingElb {
  public readonly calls: Record<string, number> = {};
  public readonly groups = new Map<string, Set<string>>();
  /** Register+Deregister calls per target group ARN. */
  public readonly mutatingByGroup = new Map<string, number>();
  /** Register and Deregister calls apart, per `<command name> <group arn>`. */
  public readonly mutatingByCommandAndGroup = new Map<string, number>();
  /** `<group arn> <target key>` → the state DescribeTargetHealth reports (default `healthy`). */
  public readonly health = new Map<string, string>();

  /** When set, Register/Deregister calls beyond the account's bucket fail as AWS fails them (400 ThrottlingException, nothing changed). */
  public bucket?: AccountBucket;
  /** Register/Deregister calls the bucket refused. */
  public throttled = 0;
  /** Clock times (ms) of the Register/Deregister calls ELB accepted, in order. */
  public readonly acceptedAt: number[] = [];
  /** `<command name> <group arn>` of each accepted Register/Deregister call, in order. */
  public readonly accepted: string[] = [];
  private bucketState?: BucketState;
  /** Called with every accepted Register/Deregister call: its command, group and `<id>:<port>` targets. */
  public onAccepted?: (command: string, targetGroupArn: string, targets: readonly string[]) => void;

  public constructor(private readonly clock: () => number = () => performance.now()) {}

  /** The most accepted Register/Deregister calls in any window of `windowMs`. */
  public busiestWindow(windowMs: number): number {
    let most = 0;
    for (let i = 0, j = 0; j < this.acceptedAt.length; j++) {
      while (this.acceptedAt[j] - this.acceptedAt[i] >= windowMs) i++;
      most = Math.max(most, j - i + 1);
    }
    return most;
  }

  private throttles(): boolean {
    if (!this.bucket) return false;
    const rate = { callsPerSecond: this.bucket.perSecond - (this.bucket.otherPerSecond ?? 0), burst: this.bucket.burst };
    const now = this.clock();
    const taken = takeTokens(this.bucketState ?? { tokens: rate.burst, atMs: now }, rate, now, 1);
    this.bucketState = taken.state;
    return taken.granted === 0;
  }

  public get mutating(): number {
    return (this.calls.RegisterTargetsCommand ?? 0) + (this.calls.DeregisterTargetsCommand ?? 0);
  }

  public asClient(): ElasticLoadBalancingV2Client {
    const send = async (command: { constructor: { name: string }; input: { TargetGroupArn: string; Targets?: { Id: string; Port: number }[] } }) => {
      const name = command.constructor.name;
      this.calls[name] = (this.calls[name] ?? 0) + 1;
      if (name === 'RegisterTargetsCommand' || name === 'DeregisterTargetsCommand') {
        if (this.throttles()) {
          this.throttled++;
          throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
        }
        this.acceptedAt.push(this.clock());
        this.accepted.push(`${name} ${command.input.TargetGroupArn}`);
        this.onAccepted?.(name, command.input.TargetGroupArn, (command.input.Targets ?? []).map((t) => `${t.Id}:${t.Port}`));
        this.mutatingByGroup.set(command.input.TargetGroupArn, (this.mutatingByGroup.get(command.input.TargetGroupArn) ?? 0) + 1);
        const id = `${name} ${command.input.TargetGroupArn}`;
        this.mutatingByCommandAndGroup.set(id, (this.mutatingByCommandAndGroup.get(id) ?? 0) + 1);
      }
      const g = this.groups.get(command.input.TargetGroupArn) ?? new Set<string>();
      this.groups.set(command.input.TargetGroupArn, g);
      for (const t of command.input.Targets ?? []) {
        if (name === 'RegisterTargetsCommand') g.add(`${t.Id}:${t.Port}`);
        else if (name === 'DeregisterTargetsCommand') g.delete(`${t.Id}:${t.Port}`);
      }
      const arn = command.input.TargetGroupArn;
      return name === 'DescribeTargetHealthCommand'
        ? {
            TargetHealthDescriptions: [...g].map((k) => ({
              Target: { Id: k.slice(0, k.lastIndexOf(':')), Port: Number(k.slice(k.lastIndexOf(':') + 1)) },
              TargetHealth: { State: this.health.get(`${arn} ${k}`) ?? 'healthy' },
            })),
          }
        : {};
    };
    return { send, destroy: () => undefined } as unknown as ElasticLoadBalancingV2Client;
  }
}

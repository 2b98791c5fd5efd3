import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';

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

  public get mutating(): number {
    return (this.calls.RegisterTargetsCommand ?? 0) + (this.calls.DeregisterTargetsCommand ?? 0);
  }

  public asClient(): ElasticLoadBalancingV2Client {
    const send = async (command: { constructor: { name: string }; input: { TargetGroupArn: string; Targets?: { Id: string; Port: number }[] } }) => {
      const name = command.constructor.name;
      this.calls[name] = (this.calls[name] ?? 0) + 1;
      if (name === 'RegisterTargetsCommand' || name === 'DeregisterTargetsCommand') {
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

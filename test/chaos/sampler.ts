import { AttributeValue, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';

/**
 * The checker's eyes: its own clients, straight to moto and DynamoDB Local (never through the
 * fault proxy or any agent-lb code). Every sample reads each target group with
 * DescribeTargetHealth and the whole lease table with a consistent Scan.
 */

export interface SampledLease {
  readonly capabilities: readonly string[];
  readonly status: string;
  readonly expiresAt: number;
}

export interface Sample {
  readonly startedAt: number;
  readonly endedAt: number;
  /** capability → registered `<id>:<port>`; undefined when a read failed (moto busy, etc.). */
  readonly groups?: ReadonlyMap<string, ReadonlySet<string>>;
  /** target → lease; undefined when the scan failed (DynamoDB Local down). */
  readonly leases?: ReadonlyMap<string, SampledLease>;
}

export interface SamplerOptions {
  readonly elbConfig: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  readonly dynamoConfig: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  readonly tableName: string;
  /** capability → target group ARN */
  readonly targetGroups: Readonly<Record<string, string>>;
  readonly intervalMs: number;
}

export class Sampler {
  public readonly samples: Sample[] = [];
  private readonly elb: ElasticLoadBalancingV2Client;
  private readonly dynamo: DynamoDBClient;
  private timer?: NodeJS.Timeout;
  private running = false;
  private inFlight: Promise<unknown> = Promise.resolve();

  public constructor(private readonly options: SamplerOptions) {
    this.elb = new ElasticLoadBalancingV2Client({ ...options.elbConfig, maxAttempts: 2 });
    this.dynamo = new DynamoDBClient({ ...options.dynamoConfig, maxAttempts: 1 });
  }

  public start(): void {
    this.running = true;
    const tick = () => {
      if (!this.running) return;
      this.inFlight = this.sample().finally(() => {
        if (this.running) this.timer = setTimeout(tick, this.options.intervalMs);
      });
    };
    tick();
  }

  public async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.inFlight.catch(() => undefined);
  }

  public destroy(): void {
    this.elb.destroy();
    this.dynamo.destroy();
  }

  /** Takes one sample now and keeps it. */
  public async sample(): Promise<Sample> {
    const startedAt = Date.now();
    const [groups, leases] = await Promise.all([this.readGroups().catch(() => undefined), this.scan().catch(() => undefined)]);
    const sample: Sample = { startedAt, endedAt: Date.now(), ...(groups ? { groups } : {}), ...(leases ? { leases } : {}) };
    this.samples.push(sample);
    return sample;
  }

  private async readGroups(): Promise<Map<string, Set<string>>> {
    const entries = await Promise.all(
      Object.entries(this.options.targetGroups).map(async ([capability, arn]) => {
        const out = await this.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: arn }), { abortSignal: AbortSignal.timeout(5000) });
        // In rotation: registered, not draining (ELB's `draining`, or gone: `Target.NotRegistered`).
        const inRotation = (out.TargetHealthDescriptions ?? []).filter((d) => d.TargetHealth?.State !== 'draining' && d.TargetHealth?.Reason !== 'Target.NotRegistered');
        const keys = new Set(inRotation.map((d) => `${d.Target?.Id}:${d.Target?.Port}`));
        return [capability, keys] as const;
      }),
    );
    return new Map(entries);
  }

  private async scan(): Promise<Map<string, SampledLease>> {
    const leases = new Map<string, SampledLease>();
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.dynamo.send(new ScanCommand({ TableName: this.options.tableName, ConsistentRead: true, ExclusiveStartKey: startKey }), {
        abortSignal: AbortSignal.timeout(5000),
      });
      for (const item of out.Items ?? []) {
        const target = item.target?.S;
        if (target === undefined) continue;
        leases.set(target, { capabilities: item.capabilities?.SS ?? [], status: item.status?.S ?? '', expiresAt: Number(item.expiresAt?.N ?? 0) });
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return leases;
  }
}

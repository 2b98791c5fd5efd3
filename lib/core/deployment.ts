import { DEFAULT_ALLOWED_CIDRS } from './address-policy';
import { ConfigError } from './errors';
import { RoutingConfig, TargetType } from './lease-schema';

/**
 * Where a deployment's lease table and target groups are, as the CLI and the sidecar need it:
 * read from a CloudFormation stack (lib/aws/stack-deployment.ts) or from the state file a
 * running local mode writes. The state file's format is declared here, once: local mode writes
 * it with {@link formatStateFile}, the CLI reads it with {@link parseStateFile}.
 */
export interface Deployment {
  readonly region: string;
  readonly dynamodbEndpoint?: string;
  readonly elbv2Endpoint?: string;
  readonly tableName: string;
  readonly loadBalancerArn?: string;
  readonly listenerArn?: string;
  /** Capability → target group ARN. */
  readonly targetGroups: Readonly<Record<string, string>>;
  /**
   * Capability → its longest request, whole seconds (`maxRequestDuration`, from each group's
   * `agent-lb:max-request-seconds` tag): the sidecar sizes its leave deadline by the longest of
   * its capabilities. Absent from deployments made before the setting existed.
   */
  readonly maxRequestSeconds?: Readonly<Record<string, number>>;
  /** The registry state table (capability catalog, member index), when the deployment has the catalog: where trusted discovery reads. */
  readonly registryTableName?: string;
}

/** What another client needs to join a local deployment: the `--state-file` contents (JSON). */
export interface LocalState extends Deployment {
  readonly dynamodbEndpoint: string;
  readonly elbv2Endpoint: string;
  /**
   * `http://127.0.0.1:<port>`: the local data plane, where clients send requests to agents as
   * they would to the ALB (`X-Agent-Capability: <name>` or `/agents/<name>/…`). Written by
   * `agent-lb local`; absent when a local stack runs without a data plane.
   */
  readonly loadBalancerEndpoint?: string;
  readonly loadBalancerArn: string;
  readonly listenerArn: string;
  /**
   * Every load balancer of the deployment, the first (`loadBalancerArn`, `loadBalancerEndpoint`)
   * first, with the capabilities (and variants) it routes and, with a data plane, its own local
   * endpoint: a capability is reached on its load balancer's endpoint only.
   */
  readonly loadBalancers?: readonly LocalLoadBalancerState[];
}

/** One load balancer of a local deployment. */
export interface LocalLoadBalancerState {
  readonly loadBalancerArn: string;
  readonly listenerArn: string;
  /** `http://127.0.0.1:<port>`, when local mode runs a data plane. */
  readonly endpoint?: string;
  readonly capabilities: readonly string[];
}

/**
 * Credentials for the clients of a local-mode deployment (a state file). The emulators accept
 * any, but the SDK sends nothing without some, and a newcomer with no AWS account has none.
 * DynamoDB Local wants letters and digits only.
 */
export const STATE_FILE_CREDENTIALS = { accessKeyId: 'agentlblocal', secretAccessKey: 'agentlblocal' } as const;

/** The state file's text for `state`. */
export function formatStateFile(state: LocalState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

/**
 * The deployment a state file describes. `source` names the file in errors.
 * @throws ConfigError when the text is not JSON or lacks region, tableName or targetGroups
 */
export function parseStateFile(text: string, source: string): Deployment {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(`cannot read state file ${source}: ${(cause as Error).message}`, { cause });
  }
  const s = raw as Partial<Deployment> | null;
  if (!s || typeof s.tableName !== 'string' || typeof s.region !== 'string' || typeof s.targetGroups !== 'object' || s.targetGroups === null) {
    throw new ConfigError(`state file ${source} lacks region, tableName or targetGroups`);
  }
  const durations = s.maxRequestSeconds;
  if (durations !== undefined && (typeof durations !== 'object' || durations === null || !Object.values(durations).every((v) => typeof v === 'number' && v > 0))) {
    throw new ConfigError(`state file ${source}: maxRequestSeconds must map capabilities to positive seconds, got ${JSON.stringify(durations)}`);
  }
  return s as Deployment;
}

/**
 * The routing a deployment's target groups imply: each capability to its group, with the group's
 * target type (`ip` when unknown) and the default address ranges. `allowLoopback` only for a
 * local deployment, whose agents listen on 127.0.0.1.
 */
export function routingFor(targetGroups: Readonly<Record<string, string>>, types: Readonly<Record<string, TargetType>>, allowLoopback = false): RoutingConfig {
  return {
    allowedCidrs: DEFAULT_ALLOWED_CIDRS,
    ...(allowLoopback ? { allowLoopback } : {}),
    capabilities: Object.fromEntries(Object.entries(targetGroups).map(([c, arn]) => [c, { targetGroupArn: arn, targetType: types[arn] ?? 'ip' }])),
  };
}

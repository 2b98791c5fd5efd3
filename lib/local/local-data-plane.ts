import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ConfigError } from '../core/errors';
import { createElbClient } from '../aws/clients';
import { AccessLogEntry, LambdaInvoker, LoadBalancer, TargetHealthChange } from './data-plane';
import type { MotoServer } from './emulators';
import { LOOPBACK } from './emulators/free-port';
import { ElbStateSource } from './elb-state-source';
import { MotoHealthSink } from './moto-health-sink';

/**
 * The host of the local load balancer's endpoint: where it listens, and the host the capability
 * catalog names for every capability in local mode (a client keeps the port it asked on).
 */
export const LOCAL_LOAD_BALANCER_HOST = LOOPBACK;

/** The local data plane of `LocalStack`: where it listens and how fast it runs ALB's timing. */
export interface LocalDataPlaneOptions {
  /** Port of the endpoint on 127.0.0.1; 0 picks a free one. @default 0 */
  readonly port?: number;
  /**
   * Multiplies the durations of a target's life cycle, for the data plane and moto's model alike:
   * each target group's health check interval and timeout, its deregistration delay and slow
   * start, and the load balancer's idle timeout. 1 runs them as configured (the example's 10 s
   * interval marks a failing target unhealthy after 2 × 10 s); 0.2 five times faster.
   * Stickiness durations are not scaled.
   * @default 1
   */
  readonly timeScale?: number;
  /** How often target health is read from moto besides the reads after each sync batch and reconcile pass, ms. @default 1000 */
  readonly pollIntervalMs?: number;
  /** How long the configuration read (rules, target groups, attributes) is reused, ms. @default 5000 */
  readonly configMaxAgeMs?: number;
  /** Every target health change the data plane makes (before it is reported into moto). */
  readonly onTargetHealth?: (change: TargetHealthChange) => void;
  /** One entry per request, like an ALB access log line. */
  readonly onAccessLog?: (entry: AccessLogEntry) => void;
  /** Something in the configuration the data plane cannot model faithfully, once per problem. */
  readonly onProblem?: (message: string) => void;
}

/** A running local data plane: the HTTP endpoint, where it reads state and where it reports health. */
export interface LocalDataPlane {
  readonly loadBalancer: LoadBalancer;
  readonly source: ElbStateSource;
  readonly sink: MotoHealthSink;
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Stops the endpoint (requests in flight are cut), then waits for the last health reports. */
  stop(): Promise<void>;
}

/** Checks the options before anything starts; quotes the bad value. */
export function checkDataPlaneOptions(options: LocalDataPlaneOptions): void {
  const { port, timeScale } = options;
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new ConfigError(`the load balancer's port must be 0 (any free port) or 1-65535, got ${JSON.stringify(port)}`);
  // Below 0.01 the example's 5 s timeout would be 50 ms: checks would fail on a busy machine.
  if (timeScale !== undefined && !(Number.isFinite(timeScale) && timeScale >= 0.01 && timeScale <= 1)) throw new ConfigError(`the time scale must be a factor in 0.01–1, got ${JSON.stringify(timeScale)}`);
}

/**
 * Starts the data plane over moto's ELBv2 state: an {@link ElbStateSource} reading the load
 * balancer through moto's API, a {@link MotoHealthSink} writing the checks' results back.
 * moto must run through the launcher with `healthReporter` (and the same `timeScale`).
 *
 * @throws PortUnavailableError when the port is taken; ConfigError for an option out of range.
 */
export async function startLocalDataPlane(params: {
  readonly moto: MotoServer;
  readonly loadBalancerArn: string;
  readonly listenerArn: string;
  readonly options: LocalDataPlaneOptions;
  /** Runs the functions the stack's Lambda target groups name (the capability catalog's), in-process. @default none: such requests get a 502 */
  readonly invokeLambda?: LambdaInvoker;
  readonly onError: (error: unknown) => void;
}): Promise<LocalDataPlane> {
  const { moto, options, onError } = params;
  checkDataPlaneOptions(options);
  if (!moto.targetsKeyedByPort) throw new ConfigError('the local data plane needs moto started through lib/local/python/moto_launcher.py (a Python with moto), not a bare moto_server');
  // Its own client, as a load balancer node is not one of the Lambdas.
  const client: ElasticLoadBalancingV2Client = createElbClient({ ...moto.clientConfig });
  const source = new ElbStateSource({ client, loadBalancerArn: params.loadBalancerArn, listenerArn: params.listenerArn, ...(options.configMaxAgeMs !== undefined ? { configMaxAgeMs: options.configMaxAgeMs } : {}) });
  const sink = new MotoHealthSink((arn, reports) => moto.reportTargetHealth(arn, reports), onError);
  let loadBalancer: LoadBalancer;
  try {
    loadBalancer = await LoadBalancer.start({
      source,
      sink: {
        onTargetHealth: (change) => {
          options.onTargetHealth?.(change);
          sink.onTargetHealth(change);
        },
      },
      host: LOCAL_LOAD_BALANCER_HOST,
      port: options.port ?? 0,
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      timeScale: options.timeScale ?? 1,
      onError: (_where, error) => onError(error),
      ...(params.invokeLambda ? { invokeLambda: params.invokeLambda } : {}),
      ...(options.onProblem ? { onProblem: options.onProblem } : {}),
      ...(options.onAccessLog ? { onAccessLog: options.onAccessLog } : {}),
    });
  } catch (error) {
    client.destroy();
    throw error;
  }
  return {
    loadBalancer,
    source,
    sink,
    endpoint: loadBalancer.endpoint,
    stop: async () => {
      await loadBalancer.stop();
      await sink.idle();
      client.destroy();
    },
  };
}

/**
 * Makes the data planes (one per load balancer) follow the target changes `client` makes (the
 * sync and reconcile handlers' clients) as they happen: after a RegisterTargets each reads moto at
 * once; after a DeregisterTargets each stops routing to those targets before the caller even gets
 * the response ({@link ElbStateSource.deregistered}; a group a data plane does not route is none
 * of its business), then reads moto.
 */
export function followTargetChanges(client: ElasticLoadBalancingV2Client, dataPlanes: readonly Pick<LocalDataPlane, 'source'>[]): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const out = await next(args);
      const input = args.input as { TargetGroupArn?: string; Targets?: { Id?: string; Port?: number }[] };
      for (const dataPlane of dataPlanes) {
        if (context.commandName === 'DeregisterTargetsCommand' && input.TargetGroupArn) dataPlane.source.deregistered(input.TargetGroupArn, input.Targets ?? []);
        else if (context.commandName === 'RegisterTargetsCommand') dataPlane.source.notify();
      }
      return out;
    },
    { step: 'initialize', name: 'agentLbFollowTargetChanges' },
  );
}

/** Seconds as a person reads them: `2 s`, `0.5 s`. */
const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(2))} s`;

/**
 * One line per capability saying the timing the data plane runs (already scaled): the health
 * check, the thresholds, the deregistration delay, the load balancer's idle timeout and slow start, e.g.
 * `vision  GET /health every 2 s (timeout 1 s): in after 1 pass, out after 2 failures, back after 2 passes · deregistration delay 62 s · idle timeout 62 s · slow start off`.
 */
export function describeTiming(dataPlane: LocalDataPlane, targetGroups: Readonly<Record<string, string>>): string[] {
  const width = Math.max(0, ...Object.keys(targetGroups).map((c) => c.length));
  return Object.entries(targetGroups).map(([capability, arn]) => {
    const group = dataPlane.loadBalancer.engine.groups.get(arn);
    if (group === undefined) return `${capability.padEnd(width)}  (not read yet)`;
    const s = group.settings;
    const check = s.enabled
      ? `${s.protocol} ${s.path} every ${seconds(s.intervalMs)} (timeout ${seconds(s.timeoutMs)}, codes ${s.matcher}): in after 1 pass, out after ${s.unhealthyThreshold} failures, back after ${s.healthyThreshold} passes`
      : 'health checks off';
    const slowStart = group.policy.slowStartMs > 0 ? seconds(group.policy.slowStartMs) : 'off';
    const idle = seconds(dataPlane.loadBalancer.idleTimeoutMs);
    return `${capability.padEnd(width)}  ${check} · deregistration delay ${seconds(group.policy.deregistrationDelayMs)} · idle timeout ${idle} · slow start ${slowStart}`;
  });
}

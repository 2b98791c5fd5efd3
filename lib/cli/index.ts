import { Command, Option } from 'commander';
import { rootMessage } from '../aws/aws-errors';
import { ConfigError, InvalidLeaseError, LeaseStoreError } from '../core/errors';
import { UsageError } from './usage-error';
import { Deployment, STATE_FILE_CREDENTIALS } from '../core/deployment';
import { assertLocalModeRunning, readStateFile, resolveDeployment } from './deployment-source';
import { intOption, main as run } from './program';
import { registerLocal } from './local-command';
import { expiryOf, isFatalLeaseFailure, Sidecar } from './sidecar';
import { createDynamoClient } from '../aws/dynamo-client';
import { LeaseStore } from '../aws/lease-store';
import { AgentLease } from '../sdk/agent-lease';
import { DEFAULT_PROPAGATION_MARGIN_MS, resolveLeaveOptions } from '../sdk/leave';
import { DEFAULT_MAX_REQUEST_DURATION_SECONDS, idleTimeoutFor, MAX_MAX_REQUEST_DURATION_SECONDS } from '../core/request-duration';
import type { SidecarProxy } from './sidecar-proxy';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface SidecarFlags {
  table?: string;
  stack?: string;
  stateFile?: string;
  region?: string;
  endpoint?: string;
  address?: string;
  port: number;
  capability: string[];
  healthUrl: string;
  ttl?: number;
  interval?: number;
  unhealthyThreshold?: number;
  drainSeconds?: number;
  readyFile?: string;
  propagationMargin?: number;
  leaveDeadline?: number;
  maxRequestDuration?: number;
  forwardTo?: string;
  listenHost?: string;
  agentId?: string;
  takeover?: boolean;
}

/** Past the leave's own deadline, how long a stop may still take before the sidecar gives up (the leave keeps to its deadline; this is the last resort). */
const STOP_GRACE_MS = 5_000;

/** Where the sidecar's lease table is, and which capabilities the deployment routes when that is known. */
async function sidecarTarget(
  f: SidecarFlags,
): Promise<{ tableName: string; region?: string; endpoint?: string; local: boolean; routes?: readonly string[]; maxRequestSeconds?: Readonly<Record<string, number>> }> {
  let deployment: Deployment | undefined;
  if (f.stateFile) {
    deployment = readStateFile(f.stateFile);
    await assertLocalModeRunning(f.stateFile, deployment);
  } else if (f.stack) {
    deployment = await resolveDeployment({ stack: f.stack, region: f.region, endpoint: f.endpoint });
  }
  const tableName = deployment?.tableName ?? f.table;
  if (!tableName) throw new UsageError('one of --table <name>, --stack <name> or --state-file <path> is required');
  const region = deployment?.region ?? f.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new UsageError('--region (or AWS_REGION) is required with --table');
  return {
    tableName,
    region,
    endpoint: deployment?.dynamodbEndpoint ?? f.endpoint,
    local: f.stateFile !== undefined,
    ...(deployment ? { routes: Object.keys(deployment.targetGroups) } : {}),
    ...(deployment?.maxRequestSeconds ? { maxRequestSeconds: deployment.maxRequestSeconds } : {}),
  };
}

/**
 * The longest request the sidecar waits for on SIGTERM, and where that figure came from:
 * `--max-request-duration`, else the longest `maxRequestDuration` among its capabilities in the
 * deployment (the target groups' `agent-lb:max-request-seconds` tags), else the default.
 */
export function sidecarMaxRequest(flag: number | undefined, capabilities: readonly string[], deployed?: Readonly<Record<string, number>>): { seconds: number; source: string } {
  if (flag !== undefined) return { seconds: flag, source: '--max-request-duration' };
  const known = capabilities.filter((c) => deployed?.[c] !== undefined);
  if (known.length > 0) {
    const longest = known.reduce((a, b) => (deployed![b] > deployed![a] ? b : a));
    return { seconds: deployed![longest], source: `maxRequestDuration of ${longest} in the deployment` };
  }
  return { seconds: DEFAULT_MAX_REQUEST_DURATION_SECONDS, source: 'the default' };
}

/** `--forward-to`: an absolute http(s) URL that is not the sidecar's own listening port. */
function forwardTarget(value: string, port: number): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--forward-to must be an absolute URL of the app, like http://127.0.0.1:8081, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--forward-to must be an http:// or https:// URL, got "${value}"`);
  const upstreamPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (upstreamPort === port && ['127.0.0.1', 'localhost', '[::1]', '0.0.0.0'].includes(url.hostname)) {
    throw new UsageError(`--forward-to ${value} is the sidecar's own port ${port} (--port is what the sidecar listens on and registers; the app listens elsewhere)`);
  }
  return url;
}

/** Rejects with a message once `ms` have passed, so a stop against an unreachable DynamoDB ends. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms / 1000}s`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * One read of the lease item before the first probe: missing or refused credentials, a missing
 * permission or table stop the sidecar at once, whether or not its process is healthy yet (the
 * first write would otherwise wait for the first healthy probe). GetItem is among the agent
 * policy's four actions. Anything transient is left to the lease's own retries.
 */
async function checkTableAccess(tableName: string, clientConfig: Record<string, unknown>, key: string): Promise<void> {
  const client = createDynamoClient({ ...clientConfig, maxAttempts: 2 });
  try {
    await within(new LeaseStore(client, tableName).get(key, false), 10_000, 'reading the lease table');
  } catch (error) {
    if (isFatalLeaseFailure(error)) throw error;
  } finally {
    client.destroy();
  }
}

function registerSidecar(program: Command): void {
  program
    .command('sidecar')
    .description('hold a lease for a local process while its health URL answers 2xx; drain on failures; on SIGTERM leave rotation (drain, wait until out of rotation everywhere plus a margin, then until nothing is in flight), release, exit 0')
    .addOption(new Option('--table <name>', 'lease table name').conflicts(['stateFile', 'stack']))
    .addOption(new Option('--stack <name>', 'CloudFormation stack deployed by agent-lb (finds the table; warns about capabilities it does not route)').conflicts('stateFile'))
    .option('--state-file <path>', 'join a local-mode deployment')
    .option('--region <region>', 'AWS Region (default: AWS_REGION)')
    .option('--endpoint <url>', 'DynamoDB endpoint override')
    .option('--address <ip>', 'address the load balancer should send traffic to (default: found in ECS task metadata v4, then EC2 IMDSv2)')
    .option('--port <port>', 'port of the process', intOption('--port', 1, 65535))
    .option('--capability <name>', 'capability served (repeatable)', collect)
    .option('--health-url <url>', 'local health URL; 2xx = healthy')
    .option('--ttl <seconds>', 'lease TTL (default: 30)', intOption('--ttl', 3, 3600))
    .option('--interval <ms>', 'probe interval (default ttl/3)', intOption('--interval', 100, 600_000))
    .option('--unhealthy-threshold <n>', 'failed probes before draining', intOption('--unhealthy-threshold', 1, 100), 3)
    .option('--ready-file <path>', 'written while the target is serving (healthy in every group), removed when it is not or when leaving')
    .option('--propagation-margin <ms>', `on SIGTERM, ms to keep serving once out of rotation everywhere (default ${DEFAULT_PROPAGATION_MARGIN_MS})`, intOption('--propagation-margin', 0, 120_000))
    .option('--leave-deadline <s>', 'on SIGTERM, seconds the whole leave may take, release included (default: the longest request + rotation wait, margin and release: 317 for 5 minutes)', intOption('--leave-deadline', 1, 3800))
    .option(
      '--max-request-duration <s>',
      `longest request the app answers, seconds; sizes the leave deadline (default: the capabilities' maxRequestDuration in the deployment, else ${DEFAULT_MAX_REQUEST_DURATION_SECONDS})`,
      intOption('--max-request-duration', 1, MAX_MAX_REQUEST_DURATION_SECONDS),
    )
    .option('--forward-to <url>', 'front the app as a reverse proxy: listen on --port (the port registered) and forward every request to this URL (e.g. http://127.0.0.1:8081), streaming answers through; on SIGTERM wait until no request is in flight')
    .option('--listen-host <host>', 'with --forward-to: interface the proxy listens on (default 0.0.0.0)')
    .addOption(new Option('--drain-seconds <s>').hideHelp().argParser((v) => Number(v)))
    .option('--agent-id <id>', 'human-readable id (default hostname:pid)')
    .option('--takeover', 'replace any existing lease on this address:port')
    .action(async (f: SidecarFlags) => {
      if (f.drainSeconds !== undefined) {
        throw new UsageError('--drain-seconds is gone: on SIGTERM the sidecar waits until the registry reports the target out of rotation, then --propagation-margin <ms>, all within --leave-deadline <s>');
      }
      // All at once: a newcomer learns every required flag from one run, not four.
      const missing = [
        f.port === undefined && '--port <port>',
        f.capability === undefined && '--capability <name>',
        f.healthUrl === undefined && '--health-url <url>',
        f.table === undefined && f.stack === undefined && f.stateFile === undefined && 'one of --table <name>, --stack <name> or --state-file <path>',
      ].filter((m): m is string => m !== false);
      if (missing.length > 0) throw new UsageError(`sidecar needs ${missing.join(', ')}`);
      try {
        new URL(f.healthUrl);
      } catch {
        throw new UsageError(`--health-url must be an absolute URL, got "${f.healthUrl}"`);
      }
      if (f.listenHost !== undefined && f.forwardTo === undefined) throw new UsageError('--listen-host is for the proxy: give --forward-to <url> too');
      const upstream = f.forwardTo !== undefined ? forwardTarget(f.forwardTo, f.port) : undefined;
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const proxyModule = upstream ? (require('./sidecar-proxy') as typeof import('./sidecar-proxy')) : undefined;
      proxyModule?.assertProxyAvailable(); // before anything starts: an SDK-only install lacks it
      const target = await sidecarTarget(f);
      const clientConfig = {
        ...(target.region ? { region: target.region } : {}),
        ...(target.endpoint ? { endpoint: target.endpoint } : {}),
        ...(target.local ? { credentials: { ...STATE_FILE_CREDENTIALS } } : {}),
      };
      let lease: AgentLease;
      try {
        // Without --address, AgentLease.create() finds it (ECS task metadata v4, EC2 IMDSv2) or says where it looked.
        lease = await AgentLease.create({
          tableName: target.tableName,
          ...(f.address !== undefined ? { address: f.address } : {}),
          port: f.port,
          capabilities: f.capability,
          ...(f.ttl ? { ttl: f.ttl } : {}),
          ...(f.agentId ? { agentId: f.agentId } : {}),
          ...(f.takeover ? { takeover: true } : {}),
          ...(target.local ? { allowLoopback: true } : {}),
          keepProcessAlive: true,
          clientConfig,
        });
      } catch (error) {
        // The SDK refuses a lease the servers would refuse; for a sidecar that is a flag problem.
        if (error instanceof InvalidLeaseError || error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
        throw error;
      }
      const found = lease.discoveredAddress;
      if (found) process.stdout.write(`${new Date().toISOString()} address ${found.address} from ${found.source}${found.availabilityZone ? ` (${found.availabilityZone})` : ''}\n`);
      const maxRequest = sidecarMaxRequest(f.maxRequestDuration, f.capability, target.maxRequestSeconds);
      const leave = {
        ...(f.propagationMargin !== undefined ? { propagationMarginMs: f.propagationMargin } : {}),
        maxRequestDurationMs: maxRequest.seconds * 1000,
        ...(f.leaveDeadline !== undefined ? { deadlineMs: f.leaveDeadline * 1000 } : {}),
      };
      const { deadlineMs } = resolveLeaveOptions(leave);
      const say = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
      let proxy: SidecarProxy | undefined;
      if (upstream && proxyModule) {
        // Listening before the lease exists: the load balancer's first health check goes through it.
        proxy = await proxyModule.SidecarProxy.start({
          port: f.port,
          ...(f.listenHost !== undefined ? { host: f.listenHost } : {}),
          upstream,
          keepAliveTimeoutMs: (idleTimeoutFor([maxRequest.seconds]) + 5) * 1000,
          onError: (line) => say(`proxy: ${line}`),
        });
        say(`proxy ${f.listenHost ?? '0.0.0.0'}:${proxy.port} → ${upstream.origin}`);
      }
      const waits = proxy ? 'the requests in flight through the proxy' : "the load balancer's draining of the target (the app's requests are not visible without --forward-to)";
      say(`on SIGTERM: waits for ${waits}, leave deadline ${deadlineMs / 1000} s${f.leaveDeadline !== undefined ? ' (--leave-deadline)' : ` (longest request ${maxRequest.seconds} s: ${maxRequest.source})`}`);
      const sidecar = new Sidecar({
        lease,
        healthUrl: f.healthUrl,
        ...(f.interval ? { intervalMs: f.interval } : {}),
        ...(f.unhealthyThreshold ? { unhealthyThreshold: f.unhealthyThreshold } : {}),
        ...(f.readyFile ? { readyFile: f.readyFile } : {}),
        ...(proxy ? { inFlight: proxy.tracker } : {}),
        leave,
      });
      try {
        await checkTableAccess(target.tableName, clientConfig, sidecar.lease.target);
      } catch (error) {
        await proxy?.close();
        throw error;
      }
      const unrouted = target.routes ? f.capability.filter((c) => !target.routes!.includes(c)) : [];
      for (const c of unrouted) {
        process.stderr.write(
          `warning: capability "${c}" is not routed by this deployment (it routes ${target.routes!.join(', ') || 'nothing'}); the registry will not register this target for it\n`,
        );
      }
      sidecar.on('event', (e) => {
        const line = e.kind === 'probe' ? (e.ok ? undefined : `probe failed: ${e.detail}`) : e.kind === 'leave' ? e.detail : `${e.kind} ${e.detail}`;
        if (line) say(line);
      });
      let signalled = false;
      let onSignal: () => void = () => undefined;
      const outcome = await new Promise<{ signal: true } | { fatal: Error }>((resolve) => {
        onSignal = () => {
          // `on`, not `once`: a repeated signal (supervisors re-send) must not kill the release half-way; it cuts the waits short.
          if (signalled) return sidecar.hurryStop();
          signalled = true;
          resolve({ signal: true });
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        void sidecar.fatal.then((error) => resolve({ fatal: error }));
        sidecar.start();
      });
      const unlisten = () => {
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGINT', onSignal);
      };
      if ('fatal' in outcome) {
        unlisten();
        // Nothing more can be written with these credentials or this table: stop, and let any lease expire.
        sidecar.hurryStop();
        void sidecar.stop().catch(() => undefined);
        await proxy?.close();
        throw outcome.fatal;
      }
      try {
        await within(sidecar.stop(), deadlineMs + STOP_GRACE_MS, 'leaving rotation');
        unlisten();
        await proxy?.close();
      } catch (cause) {
        unlisten();
        await proxy?.close();
        if (cause instanceof LeaseStoreError) throw cause;
        throw new LeaseStoreError(
          `could not release the lease on ${sidecar.lease.target} (${rootMessage(cause)}); ${expiryOf(sidecar.lease)}`,
          { cause },
        );
      }
    });
}

/** Registers the commands that need the agent SDK and local mode. */
function extend(program: Command): void {
  registerSidecar(program);
  registerLocal(program);
}

export function main(argv: readonly string[]): Promise<void> {
  return run(argv, extend);
}

import { Command, Option } from 'commander';
import { rootMessage } from '../aws/aws-errors';
import { ConfigError, InvalidLeaseError, LeaseStoreError } from '../core/errors';
import { UsageError } from './usage-error';
import { DEFAULT_DRAIN_SECONDS } from '../sdk/shutdown';
import { Deployment, STATE_FILE_CREDENTIALS } from '../core/deployment';
import { assertLocalModeRunning, readStateFile, resolveDeployment } from './deployment-source';
import { intOption, main as run } from './program';
import { registerLocal } from './local-command';
import { isFatalLeaseFailure, Sidecar } from './sidecar';
import { createDynamoClient } from '../aws/dynamo-client';
import { LeaseStore } from '../aws/lease-store';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface SidecarFlags {
  table?: string;
  stack?: string;
  stateFile?: string;
  region?: string;
  endpoint?: string;
  address: string;
  port: number;
  capability: string[];
  healthUrl: string;
  ttl?: number;
  interval?: number;
  unhealthyThreshold?: number;
  drainSeconds: number;
  agentId?: string;
  takeover?: boolean;
}

/** Time a stop may spend on DynamoDB beyond the drain wait before the sidecar gives up and lets the lease expire. */
const RELEASE_DEADLINE_MS = 15_000;

/** Where the sidecar's lease table is, and which capabilities the deployment routes when that is known. */
async function sidecarTarget(f: SidecarFlags): Promise<{ tableName: string; region?: string; endpoint?: string; local: boolean; routes?: readonly string[] }> {
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
  };
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
    .description('hold a lease for a local process while its health URL answers 2xx; drain on failures, drain and release on SIGTERM')
    .addOption(new Option('--table <name>', 'lease table name').conflicts(['stateFile', 'stack']))
    .addOption(new Option('--stack <name>', 'CloudFormation stack deployed by agent-lb (finds the table; warns about capabilities it does not route)').conflicts('stateFile'))
    .option('--state-file <path>', 'join a local-mode deployment')
    .option('--region <region>', 'AWS Region (default: AWS_REGION)')
    .option('--endpoint <url>', 'DynamoDB endpoint override')
    .option('--address <ip>', 'address the load balancer should send traffic to')
    .option('--port <port>', 'port of the process', intOption('--port', 1, 65535))
    .option('--capability <name>', 'capability served (repeatable)', collect)
    .option('--health-url <url>', 'local health URL; 2xx = healthy')
    .option('--ttl <seconds>', 'lease TTL (default: 30)', intOption('--ttl', 3, 3600))
    .option('--interval <ms>', 'probe interval (default ttl/3)', intOption('--interval', 100, 600_000))
    .option('--unhealthy-threshold <n>', 'failed probes before draining', intOption('--unhealthy-threshold', 1, 100), 3)
    .option('--drain-seconds <s>', 'on SIGTERM, seconds between drain and release (a second signal cuts it short)', intOption('--drain-seconds', 0, 3600), DEFAULT_DRAIN_SECONDS)
    .option('--agent-id <id>', 'human-readable id (default hostname:pid)')
    .option('--takeover', 'replace any existing lease on this address:port')
    .action(async (f: SidecarFlags) => {
      // All at once: a newcomer learns every required flag from one run, not four.
      const missing = [
        f.address === undefined && '--address <ip>',
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
      const target = await sidecarTarget(f);
      const clientConfig = {
        ...(target.region ? { region: target.region } : {}),
        ...(target.endpoint ? { endpoint: target.endpoint } : {}),
        ...(target.local ? { credentials: { ...STATE_FILE_CREDENTIALS } } : {}),
      };
      let sidecar: Sidecar;
      try {
        sidecar = new Sidecar({
          healthUrl: f.healthUrl,
          ...(f.interval ? { intervalMs: f.interval } : {}),
          ...(f.unhealthyThreshold ? { unhealthyThreshold: f.unhealthyThreshold } : {}),
          lease: {
            tableName: target.tableName,
            address: f.address,
            port: f.port,
            capabilities: f.capability,
            ...(f.ttl ? { ttl: f.ttl } : {}),
            ...(f.agentId ? { agentId: f.agentId } : {}),
            ...(f.takeover ? { takeover: true } : {}),
            ...(target.local ? { allowLoopback: true } : {}),
            clientConfig,
          },
        });
      } catch (error) {
        // The SDK refuses a lease the servers would refuse; for a sidecar that is a flag problem.
        if (error instanceof InvalidLeaseError || error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
        throw error;
      }
      await checkTableAccess(target.tableName, clientConfig, sidecar.lease.target);
      const unrouted = target.routes ? f.capability.filter((c) => !target.routes!.includes(c)) : [];
      for (const c of unrouted) {
        process.stderr.write(
          `warning: capability "${c}" is not routed by this deployment (it routes ${target.routes!.join(', ') || 'nothing'}); the registry will not register this target for it\n`,
        );
      }
      sidecar.on('event', (e) => {
        const line = e.kind === 'probe' ? (e.ok ? undefined : `probe failed: ${e.detail}`) : `${e.kind} ${e.detail}`;
        if (line) process.stdout.write(`${new Date().toISOString()} ${line}\n`);
      });
      let signalled = false;
      let onSignal: () => void = () => undefined;
      const outcome = await new Promise<{ signal: true } | { fatal: Error }>((resolve) => {
        onSignal = () => {
          // `on`, not `once`: a repeated signal (supervisors re-send) must not kill the release half-way; it cuts the drain wait short.
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
        void sidecar.stop().catch(() => undefined);
        throw outcome.fatal;
      }
      try {
        await within(sidecar.stop(f.drainSeconds), f.drainSeconds * 1000 + RELEASE_DEADLINE_MS, 'releasing the lease');
        unlisten();
      } catch (cause) {
        unlisten();
        const expiresAt = sidecar.lease.expiresAt;
        throw new LeaseStoreError(
          `could not release the lease on ${sidecar.lease.target} (${rootMessage(cause)}); ` +
            (expiresAt ? `it expires by itself at ${new Date(expiresAt * 1000).toISOString()}` : 'it expires by itself within its ttl'),
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

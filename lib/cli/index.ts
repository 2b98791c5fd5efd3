import { Command, Option } from 'commander';
import { ConfigError, InvalidLeaseError, UsageError } from '../core/errors';
import { readStateFile, STATE_FILE_CREDENTIALS } from './deployment';
import { intOption, main as run } from './program';
import { registerLocal } from './local-command';
import { Sidecar } from './sidecar';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface SidecarFlags {
  table?: string;
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
  agentId?: string;
  takeover?: boolean;
}

function registerSidecar(program: Command): void {
  program
    .command('sidecar')
    .description('hold a lease for a local process while its health URL answers 2xx; drain on failures, release on SIGTERM')
    .addOption(new Option('--table <name>', 'lease table name').conflicts('stateFile'))
    .option('--state-file <path>', 'join a local-mode deployment')
    .option('--region <region>', 'AWS Region (default: AWS_REGION)')
    .option('--endpoint <url>', 'DynamoDB endpoint override')
    .requiredOption('--address <ip>', 'address the load balancer should send traffic to')
    .requiredOption('--port <port>', 'port of the process', intOption('--port', 1, 65535))
    .requiredOption('--capability <name>', 'capability served (repeatable)', collect)
    .requiredOption('--health-url <url>', 'local health URL; 2xx = healthy')
    .option('--ttl <seconds>', 'lease TTL', intOption('--ttl', 3, 3600))
    .option('--interval <ms>', 'probe interval (default ttl/3)', intOption('--interval', 100, 600_000))
    .option('--unhealthy-threshold <n>', 'failed probes before draining', intOption('--unhealthy-threshold', 1, 100), 3)
    .option('--agent-id <id>', 'human-readable id (default hostname:pid)')
    .option('--takeover', 'replace any existing lease on this address:port')
    .action(async (f: SidecarFlags) => {
      const state = f.stateFile ? readStateFile(f.stateFile) : undefined;
      const tableName = state?.tableName ?? f.table;
      if (!tableName) throw new UsageError('one of --table <name> or --state-file <path> is required');
      try {
        new URL(f.healthUrl);
      } catch {
        throw new UsageError(`--health-url must be an absolute URL, got "${f.healthUrl}"`);
      }
      const region = state?.region ?? f.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
      const endpoint = state?.dynamodbEndpoint ?? f.endpoint;
      let sidecar: Sidecar;
      try {
        sidecar = new Sidecar({
          healthUrl: f.healthUrl,
          ...(f.interval ? { intervalMs: f.interval } : {}),
          ...(f.unhealthyThreshold ? { unhealthyThreshold: f.unhealthyThreshold } : {}),
          lease: {
            tableName,
            address: f.address,
            port: f.port,
            capabilities: f.capability,
            ...(f.ttl ? { ttl: f.ttl } : {}),
            ...(f.agentId ? { agentId: f.agentId } : {}),
            ...(f.takeover ? { takeover: true } : {}),
            ...(state ? { allowLoopback: true } : {}),
            clientConfig: { ...(region ? { region } : {}), ...(endpoint ? { endpoint } : {}), ...(state ? { credentials: { ...STATE_FILE_CREDENTIALS } } : {}) },
          },
        });
      } catch (error) {
        // The SDK refuses a lease the servers would refuse; for a sidecar that is a flag problem.
        if (error instanceof InvalidLeaseError || error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
        throw error;
      }
      sidecar.on('event', (e) => {
        if (e.kind !== 'probe' || !e.ok) process.stdout.write(`${new Date().toISOString()} ${e.kind} ${e.detail}\n`);
      });
      await new Promise<void>((resolve) => {
        const shutdown = () => void sidecar.stop().finally(resolve);
        // `on`, not `once`: a repeated signal (tsx re-sends unacknowledged ones) must not kill the release half-way.
        process.on('SIGTERM', shutdown);
        process.on('SIGINT', shutdown);
        sidecar.start();
      });
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

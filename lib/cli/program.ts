import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment, routingFor, STATE_FILE_CREDENTIALS } from '../core/deployment';
import { AccessDeniedError, AgentLbError, AgentLbErrorCode, CredentialsError } from '../core/errors';
import { CAPABILITY_NAME } from '../core/lease-schema';
import { awsFailureKind, CREDENTIALS_HINT, rootMessage } from '../aws/aws-errors';
import { createElbClient } from '../aws/clients';
import { createDynamoClient } from '../aws/dynamo-client';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { targetTypesOf } from '../aws/target-groups';
import { canonicalAddress, formatTarget } from '../core/address-policy';
import { renderExplanation } from '../core/target-explain';
import { fleetStatus, listLeases, variantSources } from '../registry/fleet-status';
import { explainTargetIn } from '../registry/target-explain';
import { resolveDeployment, SourceOptions } from './deployment-source';
import { renderAgents, renderLeases, renderStatus } from './fleet-render';
import { HEALTH_FILTERS, HealthFilter, parseMetadataFilter } from '../core/agent-discovery';
import { ConfigError } from '../core/errors';
import { discoverAgents } from '../sdk/discover-agents';
import { UsageError } from './usage-error';

/** A capability name as the lease contract spells it; anything else can match no lease. */
export function capabilityOption(name: string) {
  return (value: string): string => {
    if (!CAPABILITY_NAME.test(value)) throw new InvalidArgumentError(`${name} "${value}" must match ${CAPABILITY_NAME.source} (lowercase letters, digits, "_" and "-")`);
    return value;
  };
}

export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}–${max}, got "${value}"`);
    return n;
  };
}

function withSourceOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--stack <name>', 'CloudFormation stack deployed by agent-lb').conflicts('stateFile'))
    .option('--state-file <path>', 'state file written by `agent-lb local --state-file`')
    .option('--region <region>', 'AWS Region (default: AWS_REGION)')
    .addOption(new Option('--endpoint <url>', 'AWS endpoint override (e.g. a local emulator)').conflicts('stateFile'));
}

async function sourcesFor(d: Deployment, fromStateFile: boolean) {
  const credentials = fromStateFile ? { credentials: { ...STATE_FILE_CREDENTIALS } } : {};
  const elbClient = createElbClient({ region: d.region, ...credentials, ...(d.elbv2Endpoint ? { endpoint: d.elbv2Endpoint } : {}) });
  const ddb = createDynamoClient({ region: d.region, ...credentials, ...(d.dynamodbEndpoint ? { endpoint: d.dynamodbEndpoint } : {}) });
  const types = await targetTypesOf(elbClient, Object.values(d.targetGroups));
  // A state file comes from local mode, whose demo agents listen on loopback.
  const routing = routingFor(d.targetGroups, types, d.dynamodbEndpoint !== undefined);
  return { elb: new ElbTargets(elbClient), elbClient, store: new LeaseStore(ddb, d.tableName), routing, ...(await variantSources(elbClient, d)) };
}

/** This package's version, from its package.json (next to lib/ from the sources, next to dist/ when built). */
function packageVersion(): string {
  for (const dir of [join(__dirname, '..', '..'), join(__dirname, '..', '..', '..')]) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'agent-lb' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

export function buildProgram(): Command {
  const program = new Command('agent-lb')
    .description('Server-side discovery for fleets of agents: DynamoDB leases drive ALB target groups.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError(false)
    .exitOverride();

  withSourceOptions(program.command('status').description('per capability: live leases, registered targets, ALB health and drift'))
    .option('--json', 'print JSON')
    .action(async (opts: SourceOptions & { json?: boolean }) => {
      const status = await fleetStatus(await sourcesFor(await resolveDeployment(opts), opts.stateFile !== undefined));
      process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : `${renderStatus(status)}\n`);
      process.exitCode = status.drift ? 3 : 0;
    });

  withSourceOptions(program.command('leases').description('list leases with their liveness and any validation problem'))
    .option('--capability <name>', 'only leases listing this capability', capabilityOption('--capability'))
    .option('--json', 'print JSON')
    .action(async (opts: SourceOptions & { json?: boolean; capability?: string }) => {
      const src = await sourcesFor(await resolveDeployment(opts), opts.stateFile !== undefined);
      if (opts.capability !== undefined && !Object.hasOwn(src.routing.capabilities, opts.capability)) {
        const routed = Object.keys(src.routing.capabilities).sort().join(', ') || 'nothing';
        process.stderr.write(`warning: capability "${opts.capability}" is not routed by this deployment (it routes ${routed}); leases listing it are shown, none is in a target group for it\n`);
      }
      const rows = await listLeases(src.store, src.routing, opts.capability);
      process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : `${renderLeases(rows)}\n`);
    });

  withSourceOptions(
    program
      .command('explain')
      .argument('<target>', 'the target as its lease key: <address>:<port>, [<ipv6>]:<port> or <instance-id>:<port>', targetArgument)
      .description('why a target is or is not in rotation, per capability: its lease, the registry\'s verdict, rotation, what ELB reports, the rules'),
  )
    .option('--json', 'print JSON')
    .action(async (target: string, opts: SourceOptions & { json?: boolean }) => {
      const deployment = await resolveDeployment(opts);
      const src = await sourcesFor(deployment, opts.stateFile !== undefined);
      const explanation = await explainTargetIn({ ...src, ...(deployment.listenerArn ? { listenerArn: deployment.listenerArn } : {}), ...(deployment.loadBalancerArn ? { loadBalancerArn: deployment.loadBalancerArn } : {}) }, target);
      process.stdout.write(opts.json ? `${JSON.stringify(explanation, null, 2)}\n` : `${renderExplanation(explanation)}\n`);
    });

  withSourceOptions(program.command('agents').description("a capability's agents with address, port, rotation state and metadata, from the registry's member index (one Query, IAM on the registry state table)"))
    .argument('<capability>', 'the capability (or a variant, e.g. vision-canary)', capabilityOption('capability'))
    .addOption(new Option('--health <filter>', 'healthy, all, or healthy-or-else-all (the healthy ones, or all when none is)').choices([...HEALTH_FILTERS]).default('healthy'))
    .option('--filter <key=value>', 'only agents whose metadata has this value (repeatable: all must hold)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--json', 'print JSON')
    .action(async (capability: string, opts: SourceOptions & { health: HealthFilter; filter?: string[]; json?: boolean }) => {
      let metadata: Record<string, string>;
      try {
        metadata = parseMetadataFilter(opts.filter ?? []);
      } catch (error) {
        throw new UsageError(`--filter: ${(error as ConfigError).message}`, { cause: error });
      }
      const d = await resolveDeployment(opts);
      if (d.registryTableName === undefined) throw new UsageError('this deployment has no registry state table: deploy it with the capability catalog on (catalog: true, the default)');
      const local = opts.stateFile !== undefined;
      const client = createDynamoClient({ region: d.region, ...(local ? { credentials: { ...STATE_FILE_CREDENTIALS } } : {}), ...(d.dynamodbEndpoint ? { endpoint: d.dynamodbEndpoint } : {}) });
      try {
        const agents = await discoverAgents(capability, { registryTableName: d.registryTableName, health: opts.health, filter: metadata, client });
        if (!Object.hasOwn(d.targetGroups, capability)) {
          process.stderr.write(`warning: capability "${capability}" is not routed by this deployment (it routes ${Object.keys(d.targetGroups).sort().join(', ') || 'nothing'})\n`);
        }
        process.stdout.write(opts.json ? `${JSON.stringify(agents, null, 2)}\n` : `${renderAgents(agents)}\n`);
      } finally {
        client.destroy();
      }
    });

  return program;
}

/** `10.0.3.17:8080`, `[fd00::5]:8080` or `i-…:8080`, in its canonical form (the lease key); anything else is a usage error. */
export function targetArgument(value: string): string {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const address = match ? canonicalAddress(match[1] ?? match[2]) : undefined;
  const port = match ? Number(match[3]) : NaN;
  if (!match || address === undefined || port < 1 || port > 65535 || (match[1] !== undefined) !== address.includes(':')) {
    throw new InvalidArgumentError(`target "${value}" must be <address>:<port> (an IPv4 address or instance id), or [<ipv6>]:<port>, port 1–65535`);
  }
  return formatTarget(address, port);
}

/** Messages quote files and SDK errors that may hold line breaks; the CLI promises one line. */
const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, ' ').trim();

/** Exit codes by error code: 2 when the command cannot run as invoked or set up, 1 for a failure while it runs. */
export const EXIT_CODES: Readonly<Partial<Record<AgentLbErrorCode, number>>> = {
  USAGE: 2,
  PORT_UNAVAILABLE: 2,
  INVALID_CONFIG: 2,
  NO_CREDENTIALS: 2,
  LOCAL_MODE_STOPPED: 2,
  MISSING_DEPENDENCY: 2,
  ADDRESS_NOT_FOUND: 2,
};

/**
 * What a failure means to an operator: AWS SDK failures about credentials or permissions become
 * agent-lb errors that say so, whichever command (and whichever client) met them.
 */
export function explain(error: unknown): unknown {
  switch (awsFailureKind(error)) {
    case 'no-credentials':
      return new CredentialsError(`no AWS credentials found (${rootMessage(error)}); ${CREDENTIALS_HINT}`, { cause: error });
    case 'bad-credentials':
      return new CredentialsError(`AWS refused the credentials (${rootMessage(error)}); ${CREDENTIALS_HINT}`, { cause: error });
    case 'access-denied':
      return new AccessDeniedError(`access denied: ${rootMessage(error)}`, { cause: error });
    default:
      return error;
  }
}

/** Prints one line for `error` and sets the exit code its error code maps to. */
export function reportFailure(error: unknown): void {
  const explained = explain(error);
  const message =
    explained instanceof AgentLbError ? explained.message : `${(explained as Error)?.name ?? 'Error'}: ${(explained as Error)?.message ?? String(explained)}`;
  process.stderr.write(`error: ${oneLine(message)}\n`);
  // For bug reports: the whole error, causes and stacks included.
  if (process.env.AGENT_LB_DEBUG) process.stderr.write(`${require('node:util').inspect(error, { depth: 6 })}\n`);
  process.exitCode = explained instanceof AgentLbError ? (EXIT_CODES[explained.code] ?? 1) : 1;
}

/** Runs the CLI; usage and set-up errors print one line and exit 2, other failures one line and exit 1. */
export async function main(argv: readonly string[], extend?: (program: Command) => void): Promise<void> {
  const program = buildProgram();
  extend?.(program);
  program.configureOutput({ writeErr: (s) => process.stderr.write(s.split('\n')[0] + '\n') });
  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s.split('\n')[0] + '\n') });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    reportFailure(error);
  }
}

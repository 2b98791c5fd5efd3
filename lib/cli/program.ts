import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AgentLbError, UsageError } from '../core/errors';
import { createElbClient } from '../aws/clients';
import { ElbTargets } from '../aws/elb-targets';
import { LeaseStore } from '../aws/lease-store';
import { Deployment, describeStack, readStateFile, STATE_FILE_CREDENTIALS } from './deployment';
import { fleetStatus, listLeases, renderLeases, renderStatus, routingFor, targetTypesOf } from './fleet-status';

export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}–${max}, got "${value}"`);
    return n;
  };
}

interface SourceOptions {
  stack?: string;
  stateFile?: string;
  region?: string;
  endpoint?: string;
}

function withSourceOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--stack <name>', 'CloudFormation stack deployed by agent-lb').conflicts('stateFile'))
    .option('--state-file <path>', 'state file written by `agent-lb local --state-file`')
    .option('--region <region>', 'AWS Region (default: AWS_REGION)')
    .option('--endpoint <url>', 'AWS endpoint override (e.g. a local emulator)');
}

async function resolveDeployment(opts: SourceOptions): Promise<Deployment> {
  if (opts.stateFile) return readStateFile(opts.stateFile);
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!opts.stack) throw new UsageError('one of --stack <name> or --state-file <path> is required');
  if (!region) throw new UsageError('--region (or AWS_REGION) is required with --stack');
  return describeStack(opts.stack, region, opts.endpoint);
}

async function sourcesFor(d: Deployment, fromStateFile: boolean) {
  const credentials = fromStateFile ? { credentials: { ...STATE_FILE_CREDENTIALS } } : {};
  const elbClient = createElbClient({ region: d.region, ...credentials, ...(d.elbv2Endpoint ? { endpoint: d.elbv2Endpoint } : {}) });
  const ddb = new DynamoDBClient({ region: d.region, ...credentials, ...(d.dynamodbEndpoint ? { endpoint: d.dynamodbEndpoint } : {}) });
  const types = await targetTypesOf(elbClient, Object.values(d.targetGroups));
  // A state file comes from local mode, whose demo agents listen on loopback.
  const routing = routingFor(d.targetGroups, types, d.dynamodbEndpoint !== undefined);
  return { elb: new ElbTargets(elbClient), store: new LeaseStore(ddb, d.tableName), routing };
}

export function buildProgram(): Command {
  const program = new Command('agent-lb')
    .description('Server-side discovery for fleets of agents: DynamoDB leases drive ALB target groups.')
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
    .option('--capability <name>', 'only leases listing this capability')
    .option('--json', 'print JSON')
    .action(async (opts: SourceOptions & { json?: boolean; capability?: string }) => {
      const src = await sourcesFor(await resolveDeployment(opts), opts.stateFile !== undefined);
      const rows = await listLeases(src.store, src.routing, opts.capability);
      process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : `${renderLeases(rows)}\n`);
    });

  return program;
}

/** Messages quote files and SDK errors that may hold line breaks; the CLI promises one line. */
const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, ' ').trim();

/** Runs the CLI; usage errors print one line and exit 2, other failures one line and exit 1. */
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
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${oneLine(error.message)}\n`);
      process.exitCode = 2;
      return;
    }
    const message = error instanceof AgentLbError ? error.message : `${(error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`;
    process.stderr.write(`error: ${oneLine(message)}\n`);
    process.exitCode = 1;
  }
}

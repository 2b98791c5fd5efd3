import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { awsFailureKind } from '../aws/aws-errors';
import { describeStack } from '../aws/stack-deployment';
import { Deployment, parseStateFile } from '../core/deployment';
import { ConfigError, LocalModeStoppedError } from '../core/errors';
import { UsageError } from './usage-error';

/** How a command names its deployment: `--stack` (with `--region`, `--endpoint`) or `--state-file`. */
export interface SourceOptions {
  stack?: string;
  stateFile?: string;
  region?: string;
  endpoint?: string;
}

/** Where the deployment a command looks at lives: a running local mode's state file, or a stack. */
export async function resolveDeployment(opts: SourceOptions): Promise<Deployment> {
  if (opts.stateFile) {
    const deployment = readStateFile(opts.stateFile);
    await assertLocalModeRunning(opts.stateFile, deployment);
    return deployment;
  }
  const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!opts.stack) throw new UsageError('one of --stack <name> or --state-file <path> is required');
  if (!region) throw new UsageError('--region (or AWS_REGION) is required with --stack');
  return describeStackOrExplain(opts.stack, region, opts.endpoint);
}

/**
 * The deployment a running local mode's state file describes (format: lib/core/deployment.ts).
 * @throws UsageError when the file cannot be read or is not JSON; ConfigError when it lacks a field
 */
export function readStateFile(path: string): Deployment {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new UsageError(`cannot read state file ${path}: ${(cause as Error).message}`, { cause });
  }
  try {
    return parseStateFile(text, path);
  } catch (error) {
    // Not JSON at all: most likely the wrong file was named on the command line.
    if (error instanceof ConfigError && error.cause instanceof SyntaxError) throw new UsageError(error.message, { cause: error.cause });
    throw error;
  }
}

/**
 * Finds the table and each capability's target group from the stack's resources; a stack that
 * does not exist is a usage error that names it and the region.
 */
export async function describeStackOrExplain(stackName: string, region: string, endpoint?: string): Promise<Deployment> {
  try {
    return await describeStack(stackName, region, endpoint);
  } catch (cause) {
    // Only a missing stack is named here; no credentials, access denied and the rest are the
    // CLI's to explain (lib/cli/program.ts), whichever command met them.
    if (awsFailureKind(cause) === 'not-found') throw new UsageError(`stack ${stackName} not found in ${region}`, { cause });
    throw cause;
  }
}

/** Whether something accepts TCP connections at `url`'s host and port (within `timeoutMs`). */
function accepts(url: string, timeoutMs: number): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A state file outlives a local mode that was killed: before any client retries against dead
 * endpoints, check that they still answer.
 * @throws LocalModeStoppedError naming the file and the endpoint that refuses
 */
export async function assertLocalModeRunning(stateFile: string, deployment: Deployment, timeoutMs = 2000): Promise<void> {
  for (const endpoint of [deployment.dynamodbEndpoint, deployment.elbv2Endpoint]) {
    if (endpoint !== undefined && !(await accepts(endpoint, timeoutMs))) throw new LocalModeStoppedError(stateFile, endpoint);
  }
}

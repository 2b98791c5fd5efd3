import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { LOCAL_REGION } from './dynamodb-local';
import { freePort, LOOPBACK } from './free-port';
import { ManagedProcess, spawnManaged } from './process-group';
import { sleep } from '../../core/concurrency';

export const MOTO_INSTALL_HINT = 'pip install "moto[server]"';

/** moto accepts any credentials; these are the ones its documentation uses. */
export const MOTO_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' } as const;

export interface MotoServerOptions {
  /** Fixed port. Default: a free port (retried on the rare "address in use" race). */
  readonly port?: number;
  /**
   * Run this executable as is (`<command> -H 127.0.0.1 -p <port>`). Default: moto's server
   * through `lib/local/python/moto_launcher.py` with the Python that has moto (`AGENT_LB_PYTHON`,
   * else `python3`), which keys ELBv2 targets by id and port as AWS does; `moto_server` on PATH
   * when no such Python is found.
   */
  readonly command?: string;
  /**
   * Give up (and kill the server) when not ready within this time. Default 60 s, as DynamoDB
   * Local's: both start side by side, and on a loaded two-core machine importing moto alone took
   * over 30 s (three B2 starts in four failed there at 30 s).
   */
  readonly startupTimeoutMs?: number;
  /**
   * A health reporter (a local data plane) is attached: with the launcher, every newly registered
   * target reads `initial` until a report says otherwise, never `healthy` before a check.
   * @default false (registered targets read `healthy` until a report)
   */
  readonly healthReporter?: boolean;
  /** Multiplies the launcher's deregistration delay, as the data plane's `timeScale` does its own. @default 1 */
  readonly timeScale?: number;
  /** Extra environment for the server (moto reads MOTO_* settings from it). */
  readonly env?: Readonly<Record<string, string>>;
  /** Every chunk of moto_server's output (it logs one line per request on stderr). */
  readonly onOutput?: (text: string, stream: 'stdout' | 'stderr') => void;
}

export interface MotoServer {
  /**
   * `http://localhost:<port>`. Deliberately "localhost", not 127.0.0.1: moto only parses
   * path-style S3 URLs (CloudFormation TemplateURL, CDK assets) for hosts containing "localhost".
   */
  readonly endpoint: string;
  readonly port: number;
  /** Pid (and process group id) of the managed process tree. */
  readonly pid: number;
  /** Milliseconds from spawn to the first answer. */
  readonly startupMs: number;
  /** True when targets are keyed by id and port as on AWS (see moto_launcher.py); false with plain moto_server. */
  readonly targetsKeyedByPort: boolean;
  readonly clientConfig: {
    readonly endpoint: string;
    readonly region: string;
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  };
  /**
   * Reports target health states into the launcher's ELB model (see moto_launcher.py), as a
   * data plane running ALB health checks would: DescribeTargetHealth then answers with them.
   * Only with the launcher (`targetsKeyedByPort`); registered targets only, the others come back
   * in `ignored` as `<id>:<port>`.
   */
  reportTargetHealth(targetGroupArn: string, reports: readonly TargetHealthReport[]): Promise<{ applied: string[]; ignored: string[] }>;
  /** Kill the whole process tree and wait until it is gone (port freed). Idempotent. */
  stop(): Promise<void>;
}

/**
 * One target's health as a health checker saw it; `reason` defaults to ELB's code for the state.
 * `unused` (`Target.NotRegistered`) of a draining target ends its draining now: the data plane
 * completed its deregistration early (nothing was in flight), as ALB does.
 */
export interface TargetHealthReport {
  readonly id: string;
  readonly port: number;
  readonly state: 'initial' | 'healthy' | 'unhealthy' | 'unavailable' | 'unused';
  readonly reason?: string;
  readonly description?: string;
}

/** POST to the launcher's control endpoint; resolves with its JSON answer, rejects on any status but 200. */
function postControl(port: number, path: string, body: unknown): Promise<unknown> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolvePost, reject) => {
    const req = request(
      { host: LOOPBACK, port, path, method: 'POST', timeout: 10_000, headers: { 'content-type': 'application/json', 'content-length': data.length } },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => {
          if (res.statusCode === 200) resolvePost(JSON.parse(text));
          else reject(new Error(`moto launcher ${path} answered ${res.statusCode}: ${text}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`moto launcher ${path} did not answer within 10 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

export class MotoServerNotFoundError extends Error {
  public constructor(command: string, detail?: string) {
    super(
      `${command} was not found. Local mode runs ELBv2/EC2 on Python moto's server: install it with \`${MOTO_INSTALL_HINT}\`` +
        ` and make sure moto_server is on PATH.${detail ? `\n${detail}` : ''}`,
    );
    this.name = 'MotoServerNotFoundError';
  }
}

/** The absolute path of an executable, like `command -v`; undefined when there is none. */
export function findExecutable(command: string): string | undefined {
  const candidates = isAbsolute(command) || command.includes('/') ? [command] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** One GET to moto's own API; true on any HTTP answer below 500. */
function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: LOOPBACK, port, path: '/moto-api/', method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 500);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

const ADDRESS_IN_USE = /Address already in use|EADDRINUSE|port \d+ is in use/i;
const NOT_INSTALLED = /command not found|No module named/i;

interface Launch {
  readonly command: string;
  readonly prefixArgs: readonly string[];
  readonly patched: boolean;
}

/** Next to this file in the sources; dist/ has no .py files, so a build looks back into lib/. */
export const MOTO_LAUNCHER =
  [resolve(__dirname, '..', 'python', 'moto_launcher.py'), resolve(__dirname, '..', '..', '..', '..', 'lib', 'local', 'python', 'moto_launcher.py')].find((p) => existsSync(p)) ??
  resolve(__dirname, '..', 'python', 'moto_launcher.py');

/** The patched launcher when a Python with moto is at hand, else the plain executable. */
function chooseLaunch(options: MotoServerOptions): Launch {
  if (options.command === undefined) {
    const python = process.env.AGENT_LB_PYTHON ?? 'python3';
    const check = spawnSync(python, ['-c', 'import moto.server, moto.elbv2.models'], { stdio: 'ignore', timeout: 30_000 });
    if (check.status === 0) return { command: python, prefixArgs: [MOTO_LAUNCHER], patched: true };
  }
  const name = options.command ?? 'moto_server';
  const command = findExecutable(name);
  if (command === undefined) throw new MotoServerNotFoundError(name);
  return { command, prefixArgs: [], patched: false };
}

async function startOnce(launch: Launch, port: number, options: MotoServerOptions, started: number): Promise<MotoServer | 'address-in-use'> {
  const timeoutMs = options.startupTimeoutMs ?? 60_000;
  const command = launch.command;
  const proc: ManagedProcess = spawnManaged(command, [...launch.prefixArgs, '-H', LOOPBACK, '-p', String(port)], {
    name: 'moto_server',
    env: {
      ...process.env,
      PYTHONUNBUFFERED: '1',
      ...(options.healthReporter ? { AGENT_LB_HEALTH_REPORTER: '1' } : {}),
      ...(options.timeScale !== undefined ? { AGENT_LB_TIME_SCALE: String(options.timeScale) } : {}),
      ...options.env,
    },
    ...(options.onOutput ? { onOutput: options.onOutput } : {}),
  });
  try {
    for (;;) {
      if (!proc.isRunning()) {
        const exit = await proc.exited;
        const output = proc.output();
        if (ADDRESS_IN_USE.test(output)) return 'address-in-use';
        if (exit.code === 127 || NOT_INSTALLED.test(output)) throw new MotoServerNotFoundError(command, output.trim());
        throw new Error(`moto_server exited during startup (code ${exit.code}, signal ${exit.signal})\n${output.trim()}`);
      }
      if (await probe(port)) break;
      if (Date.now() - started > timeoutMs) throw new Error(`moto_server not ready after ${timeoutMs} ms\n${proc.output().trim()}`);
      await sleep(50);
    }
  } catch (err) {
    await proc.stop(1000);
    throw err;
  }
  const endpoint = `http://localhost:${port}`;
  return {
    endpoint,
    port,
    pid: proc.pid,
    startupMs: Date.now() - started,
    targetsKeyedByPort: launch.patched,
    clientConfig: { endpoint, region: LOCAL_REGION, credentials: { ...MOTO_CREDENTIALS } },
    reportTargetHealth: async (targetGroupArn, reports) => {
      if (!launch.patched) throw new Error('target health can be reported only to moto started through moto_launcher.py');
      return (await postControl(port, '/_agent_lb/target-health', { targetGroupArn, targets: reports })) as { applied: string[]; ignored: string[] };
    },
    stop: async () => {
      await proc.stop();
    },
  };
}

/**
 * Starts moto's server on 127.0.0.1 and a free port and resolves once it answers. Throws
 * {@link MotoServerNotFoundError} when moto_server is not installed.
 */
export async function startMotoServer(options: MotoServerOptions = {}): Promise<MotoServer> {
  const started = Date.now();
  const launch = chooseLaunch(options);
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const result = await startOnce(launch, port, options, started);
    if (result !== 'address-in-use') return result;
    if (options.port !== undefined || attempt >= 5) throw new Error(`moto_server could not listen on ${LOOPBACK}:${port}: address in use`);
  }
}

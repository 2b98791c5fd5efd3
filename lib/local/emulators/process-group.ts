import { ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from '../../core/concurrency';

/**
 * Child processes that must never outlive us (DynamoDB Local's JVM, moto_server's Python).
 *
 * Each one runs in its own process group (`detached`, i.e. setsid), so stopping it signals the
 * whole tree: the JVM, a pyenv shim's exec chain, anything they fork. Three layers make sure
 * nothing is orphaned:
 *   1. `stop()` sends SIGTERM to the group, SIGKILL after a grace period, and resolves only
 *      when no live process is left in the group (ports are free by then);
 *   2. a synchronous `process.on('exit')` hook SIGKILLs every group still running, for a parent
 *      that exits (or calls `process.exit()` from its signal handlers) without stopping them;
 *   3. a parent-death watchdog (default on): the command runs under a tiny `sh` wrapper that
 *      keeps the read end of a stdin pipe whose write end only the parent holds. When the
 *      parent dies for any reason, SIGKILL included, the pipe reaches EOF and the wrapper
 *      terminates the group (TERM, then KILL after 3 s).
 *
 * Process groups make this POSIX-only, like the rest of local mode.
 */

export interface ManagedProcessOptions {
  /** Short name for errors and logs, e.g. "DynamoDB Local". */
  readonly name: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Terminate the process group when this Node process dies, even by SIGKILL. Default true. */
  readonly exitWithParent?: boolean;
  /** Characters of combined stdout/stderr kept for error messages. Default 16 KiB. */
  readonly outputLimit?: number;
  /** Every chunk of output, as it arrives (output is always drained so the child never blocks). */
  readonly onOutput?: (text: string, stream: 'stdout' | 'stderr') => void;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  /** Pid of the group leader, which is also the process group id. */
  readonly pid: number;
  /** Resolves when the group leader exits (descendants may still be shutting down). */
  readonly exited: Promise<ProcessExit>;
  isRunning(): boolean;
  /** The last `outputLimit` characters of stdout and stderr, interleaved as received. */
  output(): string;
  /**
   * SIGTERM to the group, SIGKILL to whatever is left after `graceMs` (default 5000), then wait
   * until no live process remains in the group. Idempotent.
   */
  stop(graceMs?: number): Promise<ProcessExit>;
}

/**
 * The parent-death watchdog. $0 is the name, "$@" the command. fd 3 keeps the stdin pipe for
 * the watcher; the command itself gets /dev/null as stdin and no fd 3. The watcher ignores TERM
 * so a group-wide TERM cannot stop it before it escalates; `stop()` SIGKILLs it. The leader
 * catches TERM/INT/HUP (after starting the command, so the command keeps default handlers) and
 * exits only once the command has, with its status: the leader's exit means the server is gone.
 */
const WATCHDOG_SCRIPT = [
  'exec 3<&0 0</dev/null',
  '"$@" 3<&- &',
  'child=$!',
  "( trap '' TERM; cat <&3 >/dev/null 2>&1; kill -TERM 0 2>/dev/null; sleep 3; kill -KILL 0 2>/dev/null ) &",
  'exec 3<&-',
  "trap ':' TERM INT HUP",
  'while :; do',
  '  wait "$child"; status=$?',
  '  kill -0 "$child" 2>/dev/null || break',
  'done',
  'exit "$status"',
].join('\n');

const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
    liveGroups.clear();
  });
}

/** Signals every process of a group; false when the group no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/**
 * Whether a process of the group is still alive. Zombies (dead, not yet reaped by an init that
 * may never reap them in a container) count as gone: they hold no sockets and no memory.
 */
export function processGroupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited while we looked
      }
      // "pid (comm) state ppid pgrp ..." — comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
    }
    return false;
  } catch {
    return true;
  }
}

async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processGroupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
  return true;
}

/**
 * Starts `command args` in its own process group. The child and its pipes are unref'd: a Node
 * process with nothing else to do may exit, and the exit hook then kills the group.
 */
export function spawnManaged(command: string, args: readonly string[], options: ManagedProcessOptions): ManagedProcess {
  if (process.platform === 'win32') throw new Error(`${options.name}: local mode needs a POSIX system (process groups)`);
  const watchParent = options.exitWithParent ?? true;
  const limit = options.outputLimit ?? 16 * 1024;
  const child: ChildProcess = watchParent
    ? spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, options.name, command, ...args], {
        cwd: options.cwd,
        env: options.env,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      })
    : spawn(command, [...args], { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });

  let tail = '';
  const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    tail = (tail + text).slice(-limit);
    options.onOutput?.(text, stream);
  };
  child.stdin?.on('error', () => undefined); // never written to; EPIPE once the wrapper is gone is expected
  child.stdout?.on('data', collect('stdout'));
  child.stderr?.on('data', collect('stderr'));

  let exitInfo: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      tail = (tail + `\n${err.message}`).slice(-limit);
      exitInfo = { code: null, signal: null };
      resolve(exitInfo);
    });
  });

  const pid = child.pid;
  if (pid === undefined) {
    // spawn failed synchronously-ish (ENOENT for /bin/sh or the command); 'error' follows.
    return {
      name: options.name,
      pid: -1,
      exited,
      isRunning: () => false,
      output: () => tail,
      stop: () => exited,
    };
  }

  liveGroups.add(pid);
  installExitHook();
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) {
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }

  let stopping: Promise<ProcessExit> | undefined;
  const stop = (graceMs = 5000): Promise<ProcessExit> => {
    stopping ??= (async () => {
      // The child is unref'd, so nothing else may keep Node alive while we wait for it: without
      // this, a caller awaiting stop() with nothing else pending sees the process exit mid-await.
      const keepAlive = setInterval(() => undefined, 1000);
      try {
        return await stopGroup(graceMs);
      } finally {
        clearInterval(keepAlive);
      }
    })();
    return stopping;
  };
  const stopGroup = async (graceMs: number): Promise<ProcessExit> => {
    if (exitInfo === undefined) {
      signalGroup(pid, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'grace-over'>((resolve) => (timer = setTimeout(resolve, graceMs, 'grace-over')));
      if ((await Promise.race([exited, graceOver])) === 'grace-over') signalGroup(pid, 'SIGKILL');
      clearTimeout(timer);
    }
    const result = await exited;
    // The leader has exited, so has the command (see WATCHDOG_SCRIPT); what is left is the
    // watchdog, which ignores TERM, or descendants of a command started without it.
    signalGroup(pid, 'SIGKILL');
    await waitGroupGone(pid, 2000);
    liveGroups.delete(pid);
    return result;
  };

  // A leader that dies on its own leaves at most the watchdog behind: clean it up.
  void exited.then(() => {
    if (stopping === undefined) void stop(0);
  });

  return {
    name: options.name,
    pid,
    exited,
    isRunning: () => exitInfo === undefined,
    output: () => tail,
    stop,
  };
}

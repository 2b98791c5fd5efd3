/**
 * Helpers for the real-server tier (DynamoDB Local + moto): waiting on conditions instead of
 * sleeping, reading target groups the way any ELBv2 client would, lease items in the contract's
 * format written with the raw AWS SDK, and checks that a process tree is really gone.
 */
import { ChildProcess, spawn, SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { DescribeTargetHealthCommand, ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';

export const REPO = resolve(__dirname, '../..');
/** The tsx binary `npx tsx` resolves to; called directly where npm's own stderr notices would get in the way. */
export const TSX = resolve(REPO, 'node_modules/.bin/tsx');
/** What `npx agent-lb` runs in this repository: the launcher, which runs the TypeScript sources through tsx. Start it with `process.execPath`. */
export const CLI = 'bin/agent-lb.cjs';

/**
 * Starts the CLI as one Node process, as `npx agent-lb` and the installed bin run it (the
 * launcher registers tsx's loader inside the process): a signal sent to it reaches the command's
 * own handlers. Under tsx's CLI wrapper a signal goes through a relay instead, which waits only
 * 2 × 30 ms for the child to acknowledge it and otherwise SIGKILLs the child and exits 143
 * itself — on a busy machine a graceful shutdown then looked like a crash.
 */
export function spawnCli(args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/**
 * Polls `predicate` until it returns true; resolves to the milliseconds waited. Throws with
 * `what` on timeout (a function: evaluated then, e.g. to show a child's output so far), so a
 * failed wait says which condition never held.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string) = 'condition',
  intervalMs = 100,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await predicate()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * `<id>:<port>` of every target in rotation in the group: registered and not draining. A
 * deregistered target stays listed as `draining` for the group's deregistration delay (ELB, and
 * the moto launcher's model of it); to a user it is already out.
 */
export async function targetKeys(elbv2: ElasticLoadBalancingV2Client, targetGroupArn: string): Promise<string[]> {
  const out = await elbv2.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }));
  return (out.TargetHealthDescriptions ?? [])
    .filter((d) => d.TargetHealth?.State !== 'draining' && d.TargetHealth?.Reason !== 'Target.NotRegistered')
    .map((d) => `${d.Target?.Id}:${d.Target?.Port}`)
    .sort();
}

/** Targets in rotation per capability. */
export async function groupTargets(elbv2: ElasticLoadBalancingV2Client, targetGroups: Readonly<Record<string, string>>): Promise<Record<string, string[]>> {
  const entries = await Promise.all(Object.entries(targetGroups).map(async ([c, arn]) => [c, await targetKeys(elbv2, arn)] as const));
  return Object.fromEntries(entries);
}

/** The capabilities whose group holds `key`. */
export async function groupsHolding(elbv2: ElasticLoadBalancingV2Client, targetGroups: Readonly<Record<string, string>>, key: string): Promise<string[]> {
  const all = await groupTargets(elbv2, targetGroups);
  return Object.keys(all)
    .filter((c) => all[c].includes(key))
    .sort();
}

export type Item = Record<string, AttributeValue>;

export interface ContractLease {
  readonly address: string;
  readonly port: number;
  readonly capabilities: readonly string[];
  /** Seconds from now. @default 60 */
  readonly ttlSeconds?: number;
  readonly status?: 'active' | 'draining';
  readonly agentId?: string;
}

/** A valid lease item exactly as the lease contract (docs/lease-contract.md) spells it, as an agent in any language writes it. */
export function contractItem(lease: ContractLease): Item {
  const nowMs = Date.now();
  return {
    target: { S: `${lease.address}:${lease.port}` },
    address: { S: lease.address },
    port: { N: String(lease.port) },
    capabilities: { SS: [...lease.capabilities] },
    expiresAt: { N: String(Math.floor(nowMs / 1000) + (lease.ttlSeconds ?? 60)) },
    leaseToken: { S: `token-${lease.address}-${lease.port}-${nowMs}` },
    agentId: { S: lease.agentId ?? `raw-${lease.address}:${lease.port}` },
    status: { S: lease.status ?? 'active' },
    renewedAt: { N: String(nowMs) },
    registeredAt: { N: String(nowMs) },
  };
}

/** Pids of `pid` and all its descendants, read from /proc (whatever process group they moved to). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** True while a process with this pid exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The command line of a process, or '' once it is gone. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Resolves to the connect error code ('ECONNREFUSED' for a freed port), or 'connected'. */
export function connectResult(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((res) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      res('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => res(error.code ?? error.message));
  });
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI to completion as `npx agent-lb` does (the launcher, without npm's own notices on stderr). */
export function runCli(args: readonly string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`agent-lb ${args.join(' ')} did not finish in ${timeoutMs} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', rej);
    child.once('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

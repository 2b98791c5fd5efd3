import { rmSync } from 'node:fs';
import { Command } from 'commander';
import { UsageError } from '../core/errors';
import { CAPABILITY_NAME } from '../core/lease-schema';
import { presenceOf } from '../core/reconcile-planner';
import { DemoFleet } from '../local/demo-agents';
import { LocalStack } from '../local/local-stack';
import { ChangeEvent, diffFrames, renderFrame, renderLines, ViewFrame } from '../local/live-view';
import { fleetStatus } from './fleet-status';
import { intOption } from './program';

interface LocalFlags {
  agents: number;
  stateFile?: string;
  reconcileInterval: number;
  ttl: number;
  capabilities?: string[];
  crashEvery: number;
  pollInterval: number;
  duration?: number;
}

function capabilityList(value: string): string[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new UsageError(`--capabilities needs at least one name, got "${value}"`);
  for (const n of names) if (!CAPABILITY_NAME.test(n)) throw new UsageError(`--capabilities: "${n}" must match ${CAPABILITY_NAME.source}`);
  if (new Set(names).size !== names.length) throw new UsageError(`--capabilities: duplicate names in "${value}"`);
  return names;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `agent-lb local`: the whole system on DynamoDB Local + moto, with demo agents and a live view. */
export function registerLocal(program: Command): void {
  program
    .command('local')
    .description('run agent-lb locally: DynamoDB Local + moto provisioned from the deployable stack, the real handlers, demo agents')
    .option('--agents <n>', 'demo agents to run (0 for none)', intOption('--agents', 0, 1000), 6)
    .option('--state-file <path>', 'write endpoints, table and target group ARNs here once ready, so other clients can join')
    .option('--reconcile-interval <seconds>', 'seconds between reconcile runs', intOption('--reconcile-interval', 1, 600), 5)
    .option('--ttl <seconds>', 'lease TTL of the demo agents', intOption('--ttl', 3, 3600), 10)
    .option('--capabilities <names>', "comma-separated capabilities (default: the cdk.json context's)", capabilityList)
    .option('--crash-every <n>', 'every n-th demo agent crashes and comes back (0: none)', intOption('--crash-every', 0, 1000), 3)
    .option('--poll-interval <ms>', 'stream poll interval', intOption('--poll-interval', 10, 10_000), 250)
    .option('--duration <seconds>', 'stop after this long (default: until Ctrl-C / SIGTERM)', intOption('--duration', 1, 86_400))
    .action((flags: LocalFlags) => runLocal(flags));
}

async function runLocal(flags: LocalFlags): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  let stopping: Promise<void> | undefined;
  let stack: LocalStack | undefined;
  let fleet: DemoFleet | undefined;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const shutdown = (why: string) => {
    stopping ??= (async () => {
      if (tty) process.stdout.write('\n');
      say(`stopping (${why}): releasing demo leases, stopping DynamoDB Local and moto_server`);
      await fleet?.stop().catch(() => undefined);
      await stack?.stop();
      if (flags.stateFile) rmSync(flags.stateFile, { force: true });
      say('stopped');
      wake();
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals) => void shutdown(signal);
  // `on`, not `once`: a second signal must not kill the shutdown half-way (orphaned state file).
  // Under tsx it always comes: tsx re-sends a signal its child has not acknowledged within
  // 30 ms, and with no listener left the child exits at once with 128+signal.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startErrors: string[] = [];
  try {
    stack = await LocalStack.start({
      ...(flags.capabilities ? { capabilities: flags.capabilities } : {}),
      reconcileIntervalMs: flags.reconcileInterval * 1000,
      pollIntervalMs: flags.pollInterval,
      ...(flags.stateFile ? { stateFile: flags.stateFile } : {}),
      onProgress: (step) => say(`· ${step}`),
      onError: (where, error) => startErrors.push(`${where}: ${(error as Error).message}`),
    });
  } catch (error) {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    throw error;
  }
  if (stopping) {
    // A signal came while starting: the shutdown above ran before the stack existed.
    await stopping;
    await stack.stop();
    if (flags.stateFile) rmSync(flags.stateFile, { force: true });
    return;
  }

  const s = stack.state;
  say(`DynamoDB Local ${s.dynamodbEndpoint} · moto ${s.elbv2Endpoint} · table ${s.tableName}`);
  for (const [c, arn] of Object.entries(s.targetGroups)) say(`  ${c.padEnd(12)} ${arn}`);
  if (flags.stateFile) say(`state file: ${flags.stateFile}`);

  const events: ChangeEvent[] = [];
  const capabilities = Object.keys(s.targetGroups);
  if (flags.agents > 0) {
    fleet = new DemoFleet({
      count: flags.agents,
      capabilities,
      tableName: s.tableName,
      dynamodb: stack.dynamodb,
      ttlSeconds: flags.ttl,
      crashEvery: flags.crashEvery,
    });
    fleet.on('event', (e) => {
      const text = `${e.kind === 'error' ? '!' : '*'} ${e.agent} ${e.kind} ${e.detail}`;
      events.push({ at: Date.now(), text });
      if (!tty) say(`${new Date().toISOString().slice(11, 19)} ${text}`);
    });
    await fleet.start();
  }
  if (flags.duration) setTimeout(() => void shutdown(`--duration ${flags.duration}s`), flags.duration * 1000).unref();

  const header = `agent-lb local · ${capabilities.length} capabilities · ${flags.agents} demo agents (ttl ${flags.ttl}s) · reconcile every ${flags.reconcileInterval}s`;
  let previous: ViewFrame | undefined;
  let lastSummary = '';
  const sources = { ...stack.sources(), routing: stack.runtimeConfig.routing };
  while (!stopping) {
    try {
      const status = await fleetStatus(sources);
      const counters = stack.counters;
      const frame: ViewFrame = {
        at: Date.now(),
        capabilities: status.capabilities.map((c) => ({
          capability: c.capability,
          liveLeases: c.liveLeases,
          registered: c.targets.filter((t) => presenceOf(t) === 'registered'),
          draining: c.targets.filter((t) => presenceOf(t) === 'draining'),
        })),
        ...(counters.lastSyncLagMs === undefined ? {} : { lastSyncLagMs: counters.lastSyncLagMs }),
        syncedRecords: counters.recordsSynced,
        elbCalls: counters.elbMutatingCalls,
        agents: fleet?.counts ?? { up: 0, down: 0 },
      };
      const changes = diffFrames(previous, frame);
      events.push(...changes);
      events.splice(0, Math.max(0, events.length - 50));
      previous = frame;
      for (const e of startErrors.splice(0)) events.push({ at: Date.now(), text: `! ${e}` });
      if (tty) process.stdout.write(`\x1b[H\x1b[2J${renderFrame(frame, events, header)}\n`);
      else {
        const lines = renderLines(frame, changes);
        const summary = lines[lines.length - 1].slice(9);
        // Pipes and logs get the changes, and the summary only when it moved.
        for (const l of lines.slice(0, -1)) say(l);
        if (summary !== lastSummary) say(lines[lines.length - 1]);
        lastSummary = summary;
      }
    } catch (error) {
      if (!stopping) say(`! view: ${(error as Error).message}`);
    }
    await Promise.race([sleep(1000), stopped]);
  }
  await stopping;
}

import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { presenceOf } from '../core/reconcile-planner';
import { DemoFleet } from '../local/demo-agents';
import { LocalStack } from '../local/local-stack';
import { ChangeEvent, diffFrames, renderFrame, renderLines, ViewFrame } from '../local/live-view';
import { fleetStatus } from '../registry/fleet-status';
import type { LocalFlags } from './local-command';
import { sleep } from '../core/concurrency';


/** `agent-lb local` once its flags are checked and its packages are known to be installed. */
export async function runLocal(flags: LocalFlags): Promise<void> {
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
    // The state file's directory is made now, so a bad path fails before anything starts.
    if (flags.stateFile) mkdirSync(dirname(flags.stateFile), { recursive: true });
    stack = await LocalStack.start({
      ...(flags.capabilities ? { capabilities: flags.capabilities } : {}),
      ...(flags.cdkJsonPath ? { cdkJsonPath: flags.cdkJsonPath } : {}),
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

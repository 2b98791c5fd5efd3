import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { presenceOf } from '../core/reconcile-planner';
import type { TargetHealthChange } from '../local/data-plane';
import { DemoClient } from '../local/demo-client';
import { DemoFleet } from '../local/demo-agents';
import { describeTiming } from '../local/local-data-plane';
import { LocalStack } from '../local/local-stack';
import { ChangeEvent, diffFrames, renderFrame, renderLines, renderTraffic, ViewFrame } from '../local/live-view';
import { fleetStatus } from '../registry/fleet-status';
import { RegistryStateStore } from '../aws/registry-state-store';
import { catalogPath } from '../core/catalog-document';
import type { LocalFlags } from './local-flags';
import { sleep } from '../core/concurrency';


/** `agent-lb local` once its flags are checked and its packages are known to be installed. */
export async function runLocal(flags: LocalFlags): Promise<void> {
  const tty = process.stdout.isTTY === true;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  let stopping: Promise<void> | undefined;
  let stack: LocalStack | undefined;
  let fleet: DemoFleet | undefined;
  let client: DemoClient | undefined;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const shutdown = (why: string) => {
    stopping ??= (async () => {
      if (tty) process.stdout.write('\n');
      say(`stopping (${why}): releasing demo leases, stopping the load balancer, DynamoDB Local and moto_server`);
      client?.stop();
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
  const events: ChangeEvent[] = [];
  // Health changes are the data plane's events; the names of the groups are known once started.
  let capabilityOf: (arn: string) => string = (arn) => arn;
  const onTargetHealth = (c: TargetHealthChange) => {
    const text = `~ ${capabilityOf(c.targetGroupArn).padEnd(10)} ${c.target.Id}:${c.target.Port} ${c.previous?.State ?? 'new'} → ${c.health.State}${c.health.Reason ? ` (${c.health.Reason})` : ''}`;
    events.push({ at: c.at, text });
    if (!tty && !stopping) say(`${new Date(c.at).toISOString().slice(11, 19)} ${text}`);
  };
  try {
    // The state file's directory is made now, so a bad path fails before anything starts.
    if (flags.stateFile) mkdirSync(dirname(flags.stateFile), { recursive: true });
    stack = await LocalStack.start({
      ...(flags.capabilities ? { capabilities: flags.capabilities } : {}),
      ...(flags.cdkJsonPath ? { cdkJsonPath: flags.cdkJsonPath } : {}),
      reconcileIntervalMs: flags.reconcileInterval * 1000,
      pollIntervalMs: flags.pollInterval,
      ...(flags.stateFile ? { stateFile: flags.stateFile } : {}),
      dataPlane: { port: flags.lbPort, timeScale: flags.timeScale, onTargetHealth },
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
  const byArn = new Map(Object.entries(s.targetGroups).map(([c, arn]) => [arn, c]));
  capabilityOf = (arn) => byArn.get(arn) ?? arn;
  const endpoint = s.loadBalancerEndpoint!;
  // Each capability (and variant) on its own load balancer's endpoint: with several, one per load balancer.
  const endpointOf = endpointsOf(stack);
  // Variant groups are reached by weight or by X-Agent-Variant, never by their own name: show the capabilities.
  const variantGroups = new Set(Object.keys(stack.deployment.variantWeights));
  const capabilities = Object.keys(s.targetGroups).filter((c) => !variantGroups.has(c));
  say(`DynamoDB Local ${s.dynamodbEndpoint} · moto ${s.elbv2Endpoint} · table ${s.tableName}`);
  for (const [c, arn] of Object.entries(s.targetGroups)) say(`  ${c.padEnd(12)} ${arn}`);
  const many = stack.dataPlanes.length > 1;
  stack.dataPlanes.forEach((dataPlane, i) => {
    const lb = stack!.deployment.loadBalancers[i];
    const served = lb.capabilities.filter((c) => !variantGroups.has(c));
    const which = many ? `load balancer ${i + 1} of ${stack!.dataPlanes.length}` : 'load balancer';
    say(`${which} ${dataPlane.endpoint}${many ? ` serves ${served.join(', ') || 'only the catalog'}` : ''} (ALB's timing × ${flags.timeScale}; --time-scale 1 for the configured timing):`);
    for (const line of describeTiming(dataPlane, Object.fromEntries(lb.capabilities.map((c) => [c, s.targetGroups[c]])))) say(`  ${line}`);
  });
  const first = capabilities[0];
  const last = capabilities[capabilities.length - 1];
  say(`  curl -s -H 'X-Agent-Capability: ${first}' ${endpointOf[first] ?? endpoint}/hello`);
  say(`  curl -s ${endpointOf[last] ?? endpoint}/agents/${last}/hello`);
  const catalogConfig = stack.runtimeConfig.catalog;
  if (catalogConfig) say(`  curl -s ${endpoint}${catalogPath(catalogConfig.pathPrefix)}    # the capability catalog: what the fleet can do now${many ? " (on any load balancer; each capability's route names its host and port)" : ''}`);
  if (flags.stateFile) say(`state file: ${flags.stateFile}`);

  if (flags.agents > 0) {
    fleet = new DemoFleet({
      count: flags.agents,
      capabilities,
      tableName: s.tableName,
      dynamodb: stack.dynamodb,
      ttlSeconds: flags.ttl,
      crashEvery: flags.crashEvery,
      sickEvery: flags.sickEvery,
      healthPaths: healthPaths(stack),
    });
    fleet.on('event', (e) => {
      const text = `${e.kind === 'error' ? '!' : '*'} ${e.agent} ${e.kind} ${e.detail}`;
      events.push({ at: Date.now(), text });
      if (!tty) say(`${new Date().toISOString().slice(11, 19)} ${text}`);
    });
    await fleet.start();
  }
  const load = flags.load ?? (flags.agents > 0 ? 10 : 0);
  if (load > 0) {
    client = new DemoClient({ endpoint, endpoints: endpointOf, capabilities, requestsPerSecond: load });
    client.start();
  }
  if (flags.duration) setTimeout(() => void shutdown(`--duration ${flags.duration}s`), flags.duration * 1000).unref();

  const header = `agent-lb local · ${capabilities.length} capabilities · ${flags.agents} demo agents (ttl ${flags.ttl}s) · ${load} req/s demo load · reconcile every ${flags.reconcileInterval}s · ALB timing × ${flags.timeScale}`;
  let previous: ViewFrame | undefined;
  let trafficFrom: ViewFrame | undefined;
  let lastSummary = '';
  const sources = { ...stack.sources(), routing: stack.runtimeConfig.routing };
  const catalogStore = catalogConfig ? new RegistryStateStore(stack.dynamodb, catalogConfig.tableName) : undefined;
  while (!stopping) {
    try {
      const [status, stored] = await Promise.all([fleetStatus(sources), catalogStore?.readCatalog()]);
      const counters = stack.counters;
      // Every load balancer's counters: each counts the groups it routes, and its own fixed responses.
      const all = stack.dataPlanes.map((d) => d.loadBalancer.metrics());
      const groups = new Map(all.flatMap((m) => m.targetGroups).map((g) => [g.targetGroupArn, g]));
      const fixedResponses = all.reduce((n, m) => n + m.fixedResponses, 0);
      const frame: ViewFrame = {
        at: Date.now(),
        capabilities: status.capabilities.map((c) => {
          const g = groups.get(c.targetGroupArn);
          return {
            capability: c.capability,
            liveLeases: c.liveLeases,
            registered: c.targets.filter((t) => presenceOf(t) === 'registered'),
            draining: c.targets.filter((t) => presenceOf(t) === 'draining'),
            ...(g ? { traffic: { requests: g.requests, target5xx: g.targetResponses['5xx'], loadBalancerErrors: g.loadBalancerErrors } } : {}),
          };
        }),
        loadBalancer: { endpoint, fixedResponses },
        ...(counters.lastSyncLagMs === undefined ? {} : { lastSyncLagMs: counters.lastSyncLagMs }),
        syncedRecords: counters.recordsSynced,
        elbCalls: counters.elbMutatingCalls,
        agents: fleet?.counts ?? { up: 0, down: 0 },
        // The live view makes every cell safe (tableCell) as it prints it.
        rejections: status.rejections.map((r) => ({ target: r.target, reason: r.reason, message: r.message, ...(r.capabilities ? { capabilities: r.capabilities } : {}) })),
        ...(stored && catalogConfig
          ? {
              catalog: {
                path: catalogPath(catalogConfig.pathPrefix),
                revision: stored.document.revision,
                routable: stored.document.capabilities.filter((c) => c.routable).length,
                capabilities: stored.document.capabilities.length,
              },
            }
          : {}),
      };
      const changes = diffFrames(previous, frame);
      events.push(...changes);
      events.sort((a, b) => a.at - b.at);
      events.splice(0, Math.max(0, events.length - 50));
      for (const e of startErrors.splice(0)) events.push({ at: Date.now(), text: `! ${e}` });
      if (tty) process.stdout.write(`\x1b[H\x1b[2J${renderFrame(frame, events, header, previous)}\n`);
      else {
        const lines = renderLines(frame, changes);
        const summary = lines[lines.length - 1].slice(9);
        // Pipes and logs get the changes, the summary only when it moved, and traffic every 10 s.
        for (const l of lines.slice(0, -1)) say(l);
        if (summary !== lastSummary) say(lines[lines.length - 1]);
        lastSummary = summary;
        trafficFrom ??= frame;
        if (frame.at - trafficFrom.at >= 10_000) {
          if (frame.capabilities.some((c) => (c.traffic?.requests ?? 0) > 0)) say(renderTraffic(trafficFrom, frame));
          trafficFrom = frame;
        }
      }
      previous = frame;
    } catch (error) {
      if (!stopping) say(`! view: ${(error as Error).message}`);
    }
    await Promise.race([sleep(1000), stopped]);
  }
  await stopping;
}

/** Each capability's health check path, as the load balancer read it from the target group, for the demo agents to serve. */
function healthPaths(stack: LocalStack): Record<string, string> {
  return Object.fromEntries(Object.entries(stack.state.targetGroups).map(([c, arn]) => [c, stack.dataPlaneOf(c)?.loadBalancer.engine.groups.get(arn)?.settings.path ?? '/']));
}

/** Each capability's (and variant's) local load balancer endpoint. */
function endpointsOf(stack: LocalStack): Record<string, string> {
  return Object.fromEntries(stack.deployment.loadBalancers.flatMap((lb, i) => (stack.dataPlanes[i] ? lb.capabilities.map((c) => [c, stack.dataPlanes[i].endpoint]) : [])));
}

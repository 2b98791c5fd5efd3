import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ChaosOptions, formatTable, LONG_RUN, runChaos } from './chaos-run';

/**
 * `npm run test:chaos -- [--agents 200] [--duration 210] [--seed N] [--ttl 15] [--reconcile-interval 5]
 *   [--throttle 0.05] [--server-error 0.03] [--timeout 0.02] [--reset 0.02] [--no-bucket]
 *   [--kill-rate 0.05] [--duplicate-rate 0.05] [--replay-every 40] [--replay-back 15]
 *   [--outage-every 60] [--outage 6] [--restarts 0.35,0.7] [--deregistration-delay 3] [--cpu-load N] [--json out.json] [--dump raw-logs.json]`
 *
 * Runs the long chaos scenario on loopback only and prints the figures; exits 1 when the
 * checker finds a violation.
 */

const USAGE = 'usage: npm run test:chaos -- [--agents N] [--duration S] [--seed N] [--ttl S] [--reconcile-interval S] [--throttle P] [--server-error P] [--timeout P] [--reset P] [--no-bucket] [--kill-rate P] [--duplicate-rate P] [--replay-every S] [--replay-back S] [--outage-every S] [--outage S] [--restarts F,F] [--deregistration-delay S] [--cpu-load N] [--json FILE] [--dump FILE]';

function num(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`--${name} must be a number in ${min}–${max}, got ${JSON.stringify(value)}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

function int(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  const n = num(name, value, fallback, min, max);
  if (!Number.isInteger(n)) {
    console.error(`--${name} must be a whole number in ${min}–${max}, got ${JSON.stringify(value)}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

function options(): { chaos: ChaosOptions; json?: string } {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        agents: { type: 'string' },
        duration: { type: 'string' },
        seed: { type: 'string' },
        ttl: { type: 'string' },
        'reconcile-interval': { type: 'string' },
        throttle: { type: 'string' },
        'server-error': { type: 'string' },
        timeout: { type: 'string' },
        reset: { type: 'string' },
        'no-bucket': { type: 'boolean' },
        'kill-rate': { type: 'string' },
        'duplicate-rate': { type: 'string' },
        'replay-every': { type: 'string' },
        'replay-back': { type: 'string' },
        'outage-every': { type: 'string' },
        outage: { type: 'string' },
        restarts: { type: 'string' },
        'deregistration-delay': { type: 'string' },
        'cpu-load': { type: 'string' },
        json: { type: 'string' },
        dump: { type: 'string' },
        help: { type: 'boolean' },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const d = LONG_RUN;
  const restarts = parsed.restarts === undefined ? d.dynamoRestartsAt : parsed.restarts === '' ? [] : parsed.restarts.split(',').map((f) => num('restarts', f, 0, 0, 1));
  const chaos: ChaosOptions = {
    ...d,
    agents: num('agents', parsed.agents, d.agents, 1, 2000),
    durationSeconds: num('duration', parsed.duration, d.durationSeconds, 10, 3600),
    seed: num('seed', parsed.seed, d.seed, 0, 2 ** 32 - 1),
    ttlSeconds: num('ttl', parsed.ttl, d.ttlSeconds, 3, 3600),
    reconcileIntervalMs: num('reconcile-interval', parsed['reconcile-interval'], d.reconcileIntervalMs / 1000, 1, 600) * 1000,
    faults: {
      throttle: num('throttle', parsed.throttle, d.faults.throttle, 0, 1),
      serverError: num('server-error', parsed['server-error'], d.faults.serverError, 0, 1),
      timeout: num('timeout', parsed.timeout, d.faults.timeout, 0, 1),
      reset: num('reset', parsed.reset, d.faults.reset, 0, 1),
    },
    awsBucket: !parsed['no-bucket'],
    killRate: num('kill-rate', parsed['kill-rate'], d.killRate, 0, 1),
    duplicateRate: num('duplicate-rate', parsed['duplicate-rate'], d.duplicateRate, 0, 1),
    replayEverySeconds: num('replay-every', parsed['replay-every'], d.replayEverySeconds, 0, 3600),
    replayBackSeconds: num('replay-back', parsed['replay-back'], d.replayBackSeconds, 1, 600),
    outageEverySeconds: num('outage-every', parsed['outage-every'], d.outageEverySeconds, 0, 3600),
    outageSeconds: num('outage', parsed.outage, d.outageSeconds, 0, 600),
    dynamoRestartsAt: restarts,
    deregistrationDelaySeconds: num('deregistration-delay', parsed['deregistration-delay'], d.deregistrationDelaySeconds, 0, 3600),
    cpuLoad: int('cpu-load', parsed['cpu-load'], d.cpuLoad, 0, 16),
    onProgress: (line) => console.log(`[chaos] ${line}`),
    ...(parsed.dump ? { dumpFile: parsed.dump } : {}),
  };
  const f = chaos.faults;
  if (f.throttle + f.serverError + f.timeout + f.reset > 1) {
    console.error('the fault rates add up to more than 1');
    process.exit(2);
  }
  return { chaos, ...(parsed.json ? { json: parsed.json } : {}) };
}

async function main(): Promise<void> {
  const { chaos, json } = options();
  const result = await runChaos(chaos);
  console.log(`\n${formatTable(result)}`);
  const v = result.verdict;
  for (const d of v.falseDeregistrations.slice(0, 20)) console.log(`false deregistration (${d.how}, ${d.origin}): ${d.target} from ${d.capability}`);
  for (const l of v.lostRegistrations.slice(0, 20)) console.log(`lost registration (${l.source}): ${l.target} in ${l.capability}`);
  for (const e of v.stalenessViolations.slice(0, 20)) console.log(`staleness violation: ${e.target} in ${e.capability} for ${((e.until - e.from) / 1000).toFixed(1)} s${e.neverLeased ? ' (never leased)' : ''}${e.stillRegisteredAtEnd ? ' (still registered at the end)' : ''}`);
  for (const e of v.reappearanceEpisodes.slice(0, 20)) console.log(`dead-lease re-registration: ${e.target} in ${e.capability} at ${new Date(e.from).toISOString()}, for ${((e.until - e.from) / 1000).toFixed(1)} s`);
  for (const u of v.unregisteredLiveSpells.slice(0, 20)) console.log(`live, never registered: ${u.target} in ${u.capability} for ${((u.end - u.start) / 1000).toFixed(1)} s`);
  if (json) {
    const { onProgress: _omit, ...opts } = result.options;
    writeFileSync(json, `${JSON.stringify({ options: opts, figures: result.figures, verdict: result.verdict, passed: result.passed }, null, 2)}\n`);
  }
  process.exitCode = result.passed ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { runAdmission } from './admission-cost';
import { runB1 } from './b1-handler-economy';
import { runProjection } from './b1-cold-start';
import { runB2 } from './b2-end-to-end';
import { runB3 } from './b3-reconcile-cost';
import { runB4 } from './b4-data-plane';
import { runB5 } from './b5-rolling-restart';
import { runB6 } from './b6-long-requests';
import { B7_CASES, B7Case, runB7 } from './b7-budget';
import { runCatalogBench } from './catalog';
import { measuredOn, MeasuredOn, staleness } from './provenance';
import { markdownTable, rowsOf, ScenarioResult, textTable } from './report';

const SCENARIOS = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'catalog', 'admission', 'projection'] as const;
type ScenarioId = (typeof SCENARIOS)[number];

const USAGE = `usage: npm run bench -- [--only=b1,b2,b3,b4,b5,b6,b7,catalog,admission,projection] [--agents=N] [--ttl=S] [--runs=N] [--b7-cases=GxC,...] [--write]
  --only    scenarios to run (default: all); results of the others are kept in bench/results.json
  --agents  B2 fleet size (default 500; a fifth crash, a fifth release)
  --ttl     B2 lease TTL in seconds (default 15; agents renew every ttl/3)
  --runs    B3 measured passes per case (default 5)
  --b7-cases  only these B7 cases, G groups at C changes/s (e.g. 40x50,100x10); a partial B7 is printed, not written to results.json
  --write   also rewrite the generated part of BENCHMARKS.md`;

interface Flags {
  readonly only: readonly ScenarioId[];
  readonly agents: number;
  readonly ttl: number;
  readonly runs: number;
  readonly write: boolean;
  readonly b7Cases?: readonly B7Case[];
}

function parseFlags(argv: readonly string[]): Flags {
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const positive = (name: string, fallback: number, min = 1) => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number ≥ ${min}, got "${raw}"`);
    return n;
  };
  for (const a of argv) {
    if (!/^--(only|agents|ttl|runs|b7-cases)=|^--write$/.test(a)) throw new UsageError(`unknown argument "${a}"`);
  }
  const only = (value('only') ?? SCENARIOS.join(',')).split(',').map((s) => s.trim().toLowerCase());
  for (const s of only) if (!SCENARIOS.includes(s as ScenarioId)) throw new UsageError(`--only: unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
  return {
    only: only as ScenarioId[],
    agents: positive('agents', 500, 5),
    ttl: positive('ttl', 15, 3),
    runs: positive('runs', 5),
    write: argv.includes('--write'),
    ...(value('b7-cases') !== undefined ? { b7Cases: b7CasesOf(value('b7-cases')!) } : {}),
  };
}

/** `--b7-cases=40x50,100x10`: the B7 cases of those groups and churns, each as long as the full run's case. */
function b7CasesOf(raw: string): B7Case[] {
  return raw.split(',').map((part) => {
    const m = /^(\d+)x(\d+)$/.exec(part.trim());
    if (!m) throw new UsageError(`--b7-cases: "${part}" is not GROUPSxCHANGES (e.g. 40x50)`);
    const [groups, churnPerSecond] = [Number(m[1]), Number(m[2])];
    if (groups < 1 || churnPerSecond < 1) throw new UsageError(`--b7-cases: "${part}" needs at least 1 group and 1 change/s`);
    return { groups, churnPerSecond, seconds: B7_CASES.find((c) => c.groups === groups)?.seconds ?? 60 };
  });
}

class UsageError extends Error {}

const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
const load = () => loadavg().map((l) => Math.round(l * 100) / 100);

/** Runs each wanted scenario; every result carries when it ran and how loaded the machine was. */
async function runScenarios(flags: Flags): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const timed = async (id: ScenarioId, run: () => Promise<ScenarioResult>) => {
    if (!flags.only.includes(id)) return;
    const before = load();
    const started = Date.now();
    const code = measuredOn(SCENARIO_NAMES[id]);
    log(`${id}: running on ${code.commit.slice(0, 7)}${code.dirty ? ' with uncommitted changes' : ''} (load average ${before.join(' ')})`);
    const result = await run();
    out.push({
      ...result,
      measuredAt: new Date(started).toISOString(),
      measuredOn: code,
      environment: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadAverageBefore: before, loadAverageAfter: load(), seconds: Math.round((Date.now() - started) / 1000) },
    });
    log(`${id}: done in ${Math.round((Date.now() - started) / 1000)} s`);
  };
  const mix = { records: 100_000, heartbeatShare: 0.85, registrationShare: 0.1, capabilities: 20, seed: 42 };
  await timed('b1', () => runB1(mix, [100, 1000]));
  await timed('projection', () => runProjection(1000, [100, 1000], 20));
  await timed('admission', () => runAdmission({ ...mix, records: 20_000 }, [100, 1000]));
  await timed('b2', () => runB2({ agents: flags.agents, ttlSeconds: flags.ttl, log }));
  await timed('b3', () => runB3({ runs: flags.runs, log }));
  await timed('b4', () => runB4({ log }));
  await timed('b5', () => runB5({ log }));
  await timed('b6', () => runB6({ log }));
  await timed('b7', () => runB7({ log, ...(flags.b7Cases ? { cases: flags.b7Cases } : {}) }));
  await timed('catalog', () => runCatalogBench({ log }));
  return out;
}

const ORDER = ['B1', 'projection', 'B2', 'B3', 'B4', 'B5-rolling-restart', 'B6-long-requests', 'B7', 'catalog', 'admission'];
/** The `scenario` each flag's result carries. */
const SCENARIO_NAMES: Record<ScenarioId, string> = { b1: 'B1', projection: 'projection', b2: 'B2', b3: 'B3', b4: 'B4', b5: 'B5-rolling-restart', b6: 'B6-long-requests', b7: 'B7', catalog: 'catalog', admission: 'admission' };

/** This run's scenarios, plus those of the previous results.json this run did not repeat. */
function merge(path: string, fresh: Record<string, unknown>[]): Record<string, unknown>[] {
  let previous: Record<string, unknown>[] = [];
  try {
    if (existsSync(path)) previous = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>[];
  } catch {
    previous = [];
  }
  const ran = new Set(fresh.map((r) => r.scenario));
  // Only results written by this version of the bench (they carry measuredAt) are kept.
  const kept = Array.isArray(previous) ? previous.filter((r) => r && typeof r === 'object' && r.measuredAt && ORDER.includes(String(r.scenario)) && !ran.has(r.scenario)) : [];
  return [...fresh, ...kept].sort((a, b) => ORDER.indexOf(String(a.scenario)) - ORDER.indexOf(String(b.scenario)));
}

const START = '<!-- bench:generated:start -->';
const END = '<!-- bench:generated:end -->';

/**
 * Replaces the generated block of BENCHMARKS.md (the table) and leaves the prose around it alone.
 * A scenario whose code changed after the commit it was measured on (or that was measured on
 * uncommitted code) is marked ⚠ in the table and explained under it.
 */
function writeBenchmarksMd(path: string, results: Record<string, unknown>[]): void {
  const stale = new Map(results.map((r) => [String(r.scenario), staleness(String(r.scenario), r.measuredOn as MeasuredOn | undefined)]));
  const rows = results.flatMap((r) =>
    rowsOf(r as unknown as ScenarioResult).map((row) => (stale.get(String(r.scenario)) ? { ...row, scenario: `⚠ ${row.scenario}` } : row)),
  );
  const when = results.map((r) => {
    const on = r.measuredOn as MeasuredOn | undefined;
    const commit = on ? ` on ${on.commit.slice(0, 7)}${on.dirty ? '+' : ''}` : '';
    return `${r.scenario} ${String(r.measuredAt).slice(0, 16).replace('T', ' ')} UTC${commit}, load ${(r.environment as { loadAverageBefore: number[] }).loadAverageBefore.join(' ')}`;
  });
  const flagOf = (scenario: string) => Object.entries(SCENARIO_NAMES).find(([, name]) => name === scenario)?.[0] ?? scenario;
  const notes = [...stale].filter(([, why]) => why !== undefined).map(([scenario, why]) => `- ⚠ ${scenario}: ${why}; \`npm run bench -- --only=${flagOf(scenario)} --write\` measures it again.`);
  const env = results[0]?.environment as { node: string; cpus: number; cpuModel?: string } | undefined;
  const block = [
    START,
    `_Generated by \`npm run bench -- --write\` from \`bench/results.json\`. Machine: ${env?.cpus ?? '?'} × ${env?.cpuModel ?? '?'}, Node ${env?.node ?? '?'}. Measured: ${when.join('; ')}._`,
    '',
    markdownTable(rows),
    ...(notes.length > 0 ? ['', '**Figures marked ⚠ do not describe the code as it is now:**', '', ...notes] : []),
    END,
  ].join('\n');
  const current = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const start = current.indexOf(START);
  const end = current.indexOf(END);
  const next = start >= 0 && end > start ? current.slice(0, start) + block + current.slice(end + END.length) : `${current.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, next);
}

/** `npm run bench [-- --only=b1,b2 --agents=N --write]`: runs the scenarios, prints one table, writes bench/results.json. */
async function main(): Promise<void> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  // Ctrl-C: exit, and the emulator launchers' exit hook kills DynamoDB Local and moto.
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));

  const fresh = await runScenarios(flags);
  console.log(`\n${textTable(fresh.flatMap((r) => rowsOf(r as unknown as ScenarioResult)))}`);
  if (flags.b7Cases) {
    console.log('\n--b7-cases: a partial B7; bench/results.json left as it was');
    return;
  }
  const resultsPath = join(__dirname, 'results.json');
  const all = merge(resultsPath, fresh);
  writeFileSync(resultsPath, `${JSON.stringify(all, null, 2)}\n`);
  console.log(`\nwrote ${resultsPath}`);
  if (flags.write) {
    const md = join(__dirname, '..', 'BENCHMARKS.md');
    writeBenchmarksMd(md, all);
    console.log(`updated ${md}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

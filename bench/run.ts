import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runB1 } from './b1-handler-economy';
import { runProjection } from './b1-cold-start';

type Row = [figure: string, ours: string, naive: string];

function printTable(title: string, rows: Row[]): void {
  const w = [Math.max(...rows.map((r) => r[0].length), 6), 14, 14];
  console.log(`\n${title}`);
  console.log(`${'figure'.padEnd(w[0])}  ${'agent-lb'.padStart(w[1])}  ${'per-event'.padStart(w[2])}`);
  for (const r of rows) console.log(`${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}`);
}

/** `npm run bench [-- --only=B1]`: runs the scenarios, prints tables, writes bench/results.json. */
async function main(): Promise<void> {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
  const want = (s: string) => !only || only.includes(s);
  const results: unknown[] = [];

  if (want('B1')) {
    for (const batchSize of [100, 1000]) {
      const b1 = await runB1({ records: 100_000, batchSize, heartbeatShare: 0.85, registrationShare: 0.1, capabilities: 20, seed: 42 });
      results.push(b1);
      printTable(`B1 handler economy — 100 000 records, batches of ${batchSize}, 85 % heartbeats / 10 % registrations / 5 % releases, 20 capabilities`, [
        ['ELB calls (Register+Deregister)', String(b1.ours.elbCalls), String(b1.naive.elbCalls)],
        ['call ratio per-event / agent-lb', `${b1.callRatio}×`, '1×'],
        ['records/s (one core)', String(b1.ours.recordsPerSecond), String(b1.naive.recordsPerSecond)],
        ['heap peak MiB', String(b1.ours.heapPeakMiB), '-'],
        ['max calls per touched group per batch', String(b1.ours.maxCallsPerTouchedGroupPerBatch), '-'],
        ['ELB calls in heartbeat-only batches', String(b1.ours.heartbeatBatchCalls), '-'],
        ['final target groups identical', String(b1.finalStateEqual), '-'],
      ]);
    }
  }
  if (want('projection')) {
    for (const batchSize of [100, 1000]) {
      const p = await runProjection(1000, batchSize);
      results.push(p);
      printTable(`Projection to AWS — 1 000 agents, 20 capabilities, batches of ${batchSize}; ${p.coldStart.formula}`, [
        ['cold start: ELB calls', String(p.coldStart.oursCalls), String(p.coldStart.naiveCalls)],
        ['cold start: seconds throttled', p.coldStart.oursSeconds.toFixed(1), p.coldStart.naiveSeconds.toFixed(1)],
        ['1 000 heartbeats/s: ELB calls per second', String(p.heartbeats.oursCallsPerSecond), String(p.heartbeats.naiveCallsPerSecond)],
        ['  backlog growth (calls/s over the 4/s refill)', String(p.heartbeats.oursBacklogGrowth), String(p.heartbeats.naiveBacklogGrowth)],
      ]);
    }
  }
  writeFileSync(join(__dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${join(__dirname, 'results.json')}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

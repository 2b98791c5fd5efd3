import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runB1 } from './b1-handler-economy';

/** `npm run bench [-- --write]`: runs every scenario, prints a table, writes bench/results.json. */
async function main(): Promise<void> {
  const results: unknown[] = [];
  const b1 = await runB1({ records: 100_000, batchSize: 100, heartbeatShare: 0.85, registrationShare: 0.1, capabilities: 20, seed: 42 });
  results.push(b1);
  const rows: [string, string, string][] = [
    ['B1 ELB calls (Register+Deregister)', String(b1.ours.elbCalls), String(b1.naive.elbCalls)],
    ['B1 call ratio naive/ours', `${b1.callRatio}×`, '1×'],
    ['B1 records/s (one core)', String(b1.ours.recordsPerSecond), String(b1.naive.recordsPerSecond)],
    ['B1 heap peak MiB', String(b1.ours.heapPeakMiB), '-'],
    ['B1 max calls per touched group per batch', String(b1.ours.maxCallsPerTouchedGroupPerBatch), '-'],
    ['B1 final target groups equal', String(b1.finalStateEqual), '-'],
  ];
  const w = [Math.max(...rows.map((r) => r[0].length)), 12, 12];
  console.log(`${'figure'.padEnd(w[0])}  ${'agent-lb'.padStart(w[1])}  ${'per-event'.padStart(w[2])}`);
  for (const r of rows) console.log(`${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}`);
  writeFileSync(join(__dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});

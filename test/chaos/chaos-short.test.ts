import { describe, expect, it } from 'vitest';
import { formatTable, runChaos, SHORT_RUN } from './chaos-run';

/**
 * The seeded short chaos run (about a minute of churn and faults, then quiescence) against
 * DynamoDB Local and moto with the real handlers. The long one is `npm run test:chaos`.
 */
describe('chaos (short, seeded)', () => {
  it(
    'keeps live agents in rotation and takes dead ones out within the bound, under ELB faults, handler kills, duplicates, replays and a DynamoDB Local restart',
    async () => {
      const result = await runChaos({ ...SHORT_RUN, ...(process.env.CHAOS_DUMP ? { dumpFile: process.env.CHAOS_DUMP } : {}) });
      const table = formatTable(result);
      console.log(`\n${table}`);
      const { figures: f, verdict: v } = result;

      // The scenario really happened.
      expect(f.fleet.acquires).toBeGreaterThanOrEqual(SHORT_RUN.agents);
      expect(f.fleet.crashes + f.fleet.releases + f.fleet.takeovers).toBeGreaterThan(0);
      expect(Object.values(f.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(f.handler.kills.before + f.handler.kills.mid + f.handler.kills.after).toBeGreaterThan(0);
      expect(f.handler.duplicates).toBeGreaterThan(0);
      expect(f.stack.recordsRedelivered).toBeGreaterThan(0);
      expect(f.restarts).toHaveLength(1);
      expect(v.deregistrationsChecked).toBeGreaterThan(0);

      // The promises.
      expect(v.falseDeregistrations).toEqual([]);
      expect(v.lostRegistrations).toEqual([]);
      expect(v.unregisteredLiveSpells).toEqual([]);
      expect(v.stalenessViolations).toEqual([]);
      expect(result.passed).toBe(true);
    },
    300_000,
  );
});

import { describe, expect, it } from 'vitest';
import { runB3 } from '../../bench/b3-reconcile-cost';
import { LocalStack } from '../../lib/local/local-stack';

/**
 * B3 end to end at a small size, so that `npm test` catches what once made `npm run bench` fail
 * only at full size (leases the deployment refused, and the registry's rejection writes feeding
 * the stream for ever: the setup's drain never finished). The same code path as the benchmark:
 * a LocalStack synthesized with the quota B3 picks, leases written with BatchWriteItem, the
 * stream sync registering every membership, then the warm-up, steady and drift passes.
 */
describe('B3 at a small size (bench/b3-reconcile-cost.ts)', () => {
  it('registers every membership through the stream sync, then repairs the injected drift', async () => {
    const log: string[] = [];
    const r = await runB3({ leases: 200, capabilities: 4, runs: 1, log: (line) => log.push(line) });
    // runB3 itself fails when the groups do not hold every membership after the drain.
    expect(r.setup.memberships).toBeGreaterThan(r.setup.leases);
    expect(r.setup.targetQuota).toBeGreaterThanOrEqual(r.setup.memberships);
    expect(log.some((line) => line.includes(`targetQuota ${r.setup.targetQuota}`))).toBe(true);
    // The sync was exact, and a pass with nothing to repair calls nothing.
    expect(r.warmUp).toMatchObject({ driftRegistered: 0, driftDeregistered: 0 });
    expect(r.steady.elbMutatingCallsPerPass).toBe(0);
    // Half the drift is memberships taken out behind the registrar's back, half stale targets: all repaired.
    const [pass] = r.drift.passes;
    expect(pass.driftRegistered + pass.driftDeregistered).toBe(r.setup.driftTargets);
  });

  it('LocalStack refuses a target quota the runtime configuration would refuse, before starting anything', async () => {
    await expect(LocalStack.start({ targetQuota: 0 })).rejects.toThrow(/targetQuota 0 must be an integer in 1–100000/);
    await expect(LocalStack.start({ targetQuota: 1.5 })).rejects.toThrow(/targetQuota 1.5 must be an integer/);
  });
});

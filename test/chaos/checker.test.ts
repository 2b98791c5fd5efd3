import { describe, expect, it } from 'vitest';
import { check, CheckerBounds } from './checker';
import { ProxyLogEntry } from './fault-proxy';
import { buildLeaseTruth } from './lease-truth';
import { Sample } from './sampler';
import { LeaseWrite } from './write-log';

/**
 * The chaos checker must not be vacuous: on synthetic logs (no servers) it flags each kind of
 * violation, and stays quiet when the target groups follow the leases.
 */

const T = 'vision';
const ARN = 'arn:tg/vision';
const K = '10.1.0.1:8000';
const bounds: CheckerBounds = { decisionWindowMs: 2000, ttlMs: 15_000, reconcileIntervalMs: 5000, retryBudgetMs: 10_000 };

/** Seconds → ms on a base far from zero, so epoch-second rounding is exercised. */
const at = (s: number) => 1_000_000_000 + s * 1000;
const sec = (s: number) => Math.floor(at(s) / 1000);

const writes: LeaseWrite[] = [
  { kind: 'put', target: K, token: 'a', t0: at(0), t1: at(0.01), outcome: 'ok', capabilities: [T], status: 'active', expiresAt: sec(15) },
  { kind: 'renew', target: K, token: 'a', t0: at(5), t1: at(5.01), outcome: 'ok', expiresAt: sec(20) },
  { kind: 'renew', target: K, token: 'a', t0: at(10), t1: at(10.01), outcome: 'ok', expiresAt: sec(25) },
  { kind: 'delete', target: K, token: 'a', t0: at(12), t1: at(12.01), outcome: 'ok' },
];

function sample(s: number, registered: boolean, lease?: { expiresAt: number }): Sample {
  return {
    startedAt: at(s),
    endedAt: at(s + 0.02),
    groups: new Map([[T, new Set(registered ? [K] : [])]]),
    leases: new Map(lease ? [[K, { capabilities: [T], status: 'active', expiresAt: lease.expiresAt }]] : []),
  };
}

function deregistration(sentS: number, landedS: number): ProxyLogEntry {
  return {
    action: 'DeregisterTargets',
    origin: 'sync',
    targetGroupArn: ARN,
    targets: [K],
    invocationId: `inv-${sentS}`,
    attempt: 1,
    receivedAt: at(sentS),
    forwardedAt: at(landedS),
    answeredAt: at(landedS + 0.005),
    status: 200,
  };
}

describe('lease truth from the agents\' write log', () => {
  it('is certainly live from the acquire acknowledged until the release was sent, possibly live until it was acknowledged', () => {
    const truth = buildLeaseTruth(writes);
    expect(truth.certainlyLive(K, T)).toEqual([[at(0.01), at(12)]]);
    expect(truth.possiblyLive(K, T)).toEqual([[at(0), at(12.01)]]);
    expect(truth.deadSince(K, T, at(20))).toBe(at(12.01));
    expect(truth.deadSince(K, T, at(11))).toBeUndefined();
  });

  it('a renewal with an unknown outcome extends only the possibly-live view', () => {
    const crashed: LeaseWrite[] = [writes[0], { kind: 'renew', target: K, token: 'a', t0: at(5), t1: at(6), outcome: 'error', expiresAt: sec(20) }];
    const truth = buildLeaseTruth(crashed);
    expect(truth.certainlyLive(K, T)).toEqual([[at(0.01), at(15) - 50]]);
    expect(truth.possiblyLive(K, T)).toEqual([[at(0), at(20)]]);
  });
});

describe('chaos checker', () => {
  const targetGroups = { [T]: ARN };

  it('passes when the group follows the lease', () => {
    const samples = [sample(1, true, { expiresAt: sec(15) }), sample(11, true, { expiresAt: sec(25) }), sample(13, false), sample(30, false)];
    const verdict = check({ truth: buildLeaseTruth(writes), samples, proxyLog: [deregistration(12.5, 12.6)], targetGroups, final: samples[3], bounds });
    expect(verdict.falseDeregistrations).toEqual([]);
    expect(verdict.lostRegistrations).toEqual([]);
    expect(verdict.stalenessViolations).toEqual([]);
    expect(verdict.deregistrationsChecked).toBe(1);
  });

  it('flags a deregistration that landed while the lease was live (exactly, and in the samples)', () => {
    const samples = [sample(6, true, { expiresAt: sec(20) }), sample(7, false, { expiresAt: sec(20) }), sample(13, false), sample(30, false)];
    const verdict = check({ truth: buildLeaseTruth(writes), samples, proxyLog: [deregistration(6.5, 6.6)], targetGroups, final: samples[3], bounds });
    expect(verdict.falseDeregistrations.map((f) => f.how).sort()).toEqual(['exact', 'sampled']);
  });

  it('counts a lease that became live within the decision window as racing, not false', () => {
    const verdict = check({ truth: buildLeaseTruth(writes), samples: [sample(30, false)], proxyLog: [deregistration(1, 1.1)], targetGroups, final: sample(30, false), bounds });
    expect(verdict.falseDeregistrations).toEqual([]);
    expect(verdict.racingDeregistrations).toBe(1);
  });

  it('flags a target left registered past the bound after its lease died', () => {
    const samples = [sample(11, true, { expiresAt: sec(25) }), sample(20, true), sample(40, true), sample(41, false)];
    const verdict = check({ truth: buildLeaseTruth(writes), samples, proxyLog: [], targetGroups, final: samples[3], bounds });
    expect(verdict.stalenessViolations).toHaveLength(1);
    expect(verdict.worstStaleness?.until).toBe(at(41.02));
  });

  it('flags a live lease missing from its group after quiescence', () => {
    const live: LeaseWrite[] = [{ ...writes[0], expiresAt: sec(100) }];
    const final = sample(30, false, { expiresAt: sec(100) });
    const verdict = check({ truth: buildLeaseTruth(live), samples: [sample(1, true), final], proxyLog: [], targetGroups, final, bounds });
    expect(verdict.lostRegistrations.map((l) => l.source).sort()).toEqual(['agents', 'scan']);
  });
});

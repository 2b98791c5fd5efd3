import { describe, expect, it } from 'vitest';
import { anomalyDetection, AnomalyState, evaluateWindow, recordOutcome } from '../../../lib/local/data-plane/anomaly-mitigation';

/** One window in which each target served `requests` with `errors` failures. */
function window(state: AnomalyState, load: Record<string, [requests: number, errors: number]>): AnomalyState {
  let s = state;
  for (const [key, [requests, errors]] of Object.entries(load)) {
    for (let i = 0; i < requests; i++) s = recordOutcome(s, key, i < errors);
  }
  return s;
}

const healthy = ['a', 'b', 'c'];

describe('anomaly detection and mitigation', () => {
  it('flags the one target with a disproportionate error rate and halves its weight per window', () => {
    let s: AnomalyState = new Map();
    const weights: number[] = [];
    for (let i = 0; i < 3; i++) {
      s = evaluateWindow(window(s, { a: [20, 0], b: [20, 1], c: [20, 10] }), healthy, true);
      weights.push(s.get('c')?.weight ?? NaN);
    }
    expect(weights).toEqual([0.5, 0.25, 0.125]);
    expect(anomalyDetection(s, 'c')).toEqual({ Result: 'anomalous', MitigationInEffect: 'yes' });
    expect(anomalyDetection(s, 'a')).toEqual({ Result: 'normal', MitigationInEffect: 'no' });
  });

  it('never cuts below the negligible floor, and gives weight back gradually once the target recovers', () => {
    let s: AnomalyState = new Map();
    for (let i = 0; i < 12; i++) s = evaluateWindow(window(s, { a: [20, 0], b: [20, 0], c: [20, 20] }), healthy, true);
    expect(s.get('c')?.weight).toBe(0.01);
    const recovery: number[] = [];
    for (let i = 0; i < 3; i++) {
      s = evaluateWindow(window(s, { a: [20, 0], b: [20, 0], c: [20, 0] }), healthy, true);
      recovery.push(Number(s.get('c')?.weight.toFixed(2)));
    }
    expect(recovery).toEqual([0.11, 0.21, 0.31]);
    expect(s.get('c')?.result).toBe('normal');
  });

  it.each<[string, string[], Record<string, [number, number]>]>([
    ['fewer than three healthy targets: nothing is judged', ['a', 'b'], { a: [20, 0], b: [20, 20] }],
    ['errors everywhere are not disproportionate', healthy, { a: [20, 10], b: [20, 10], c: [20, 12] }],
    ['too few requests to judge', healthy, { a: [20, 0], b: [20, 0], c: [4, 4] }],
    ['a low error rate is no anomaly', healthy, { a: [100, 0], b: [100, 0], c: [100, 5] }],
  ])('%s', (_why, keys, load) => {
    const s = evaluateWindow(window(new Map(), load), keys, true);
    for (const k of keys) expect(anomalyDetection(s, k)).toEqual({ Result: 'normal', MitigationInEffect: 'no' });
  });

  it('detects without mitigating when mitigation is off', () => {
    const s = evaluateWindow(window(new Map(), { a: [20, 0], b: [20, 0], c: [20, 15] }), healthy, false);
    expect(anomalyDetection(s, 'c')).toEqual({ Result: 'anomalous', MitigationInEffect: 'no' });
  });

  it('forgets targets that are no longer healthy', () => {
    const s = evaluateWindow(window(new Map(), { a: [20, 0], b: [20, 0], c: [20, 15] }), healthy, true);
    expect(evaluateWindow(s, ['a', 'b'], true).has('c')).toBe(false);
  });
});

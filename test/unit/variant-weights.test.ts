import { describe, expect, test } from 'vitest';
import { planVariantWeights, variantReady, VariantState, WeightedRule } from '../../lib/core/variant-weights';

const STABLE = 'tg/vision';
const CANARY = 'tg/vision-canary';
const NEXT = 'tg/vision-next';

const rule = (...weights: [string, number][]): WeightedRule => ({ ruleArn: 'rule/header', groups: weights.map(([targetGroupArn, weight]) => ({ targetGroupArn, weight })) });
const variants = (...v: [string, string, number, boolean | undefined][]): Map<string, VariantState> =>
  new Map(v.map(([arn, capability, weight, ready]) => [arn, { capability, weight, ready }]));

describe('variantReady: a group takes its share once one target is healthy', () => {
  test.each<[string, string[], boolean]>([
    ['no target', [], false],
    ['only initial (registered, not yet checked)', ['initial'], false],
    ['only unhealthy (ALB would fail open to them)', ['unhealthy', 'unhealthy'], false],
    ['only draining', ['draining'], false],
    ['one healthy among unhealthy', ['unhealthy', 'healthy'], true],
  ])('%s', (_, states, ready) => {
    expect(variantReady(states.map((state, i) => ({ id: `10.0.0.${i + 1}`, port: 8080, state })))).toBe(ready);
  });
});

describe('planVariantWeights', () => {
  test.each<[string, WeightedRule, Map<string, VariantState>, { groups?: [string, number][]; heldOut: string[] }]>([
    ['an empty canary as deployed: its 10 go to the stable group', rule([STABLE, 90], [CANARY, 10]), variants([CANARY, 'vision-canary', 10, false]), { groups: [[STABLE, 100], [CANARY, 0]], heldOut: ['vision-canary'] }],
    ['a held canary that became healthy: its weight back', rule([STABLE, 100], [CANARY, 0]), variants([CANARY, 'vision-canary', 10, true]), { groups: [[STABLE, 90], [CANARY, 10]], heldOut: [] }],
    ['a healthy canary at its weight: no change', rule([STABLE, 90], [CANARY, 10]), variants([CANARY, 'vision-canary', 10, true]), { heldOut: [] }],
    ['an empty canary already held: no change, still reported', rule([STABLE, 100], [CANARY, 0]), variants([CANARY, 'vision-canary', 10, false]), { heldOut: ['vision-canary'] }],
    [
      'two variants, one empty: only its share moves',
      rule([STABLE, 85], [CANARY, 10], [NEXT, 5]),
      variants([CANARY, 'vision-canary', 10, true], [NEXT, 'vision-next', 5, false]),
      { groups: [[STABLE, 90], [CANARY, 10], [NEXT, 0]], heldOut: ['vision-next'] },
    ],
    ['a variant taking everything, empty: the stable group takes it all', rule([STABLE, 0], [CANARY, 100]), variants([CANARY, 'vision-canary', 100, false]), { groups: [[STABLE, 100], [CANARY, 0]], heldOut: ['vision-canary'] }],
    ['a variant whose group was not read this pass: left alone', rule([STABLE, 90], [CANARY, 10]), variants([CANARY, 'vision-canary', 10, undefined]), { heldOut: [] }],
    ['a weighted rule of someone else (no variant of ours): left alone', rule(['tg/a', 50], ['tg/b', 50]), variants([CANARY, 'vision-canary', 10, false]), { heldOut: [] }],
    ['a rule with two groups that are not variants: left alone', rule([STABLE, 80], ['tg/other', 10], [CANARY, 10]), variants([CANARY, 'vision-canary', 10, false]), { heldOut: [] }],
    ['weights changed by a redeploy (20 now): the new weight is applied', rule([STABLE, 90], [CANARY, 10]), variants([CANARY, 'vision-canary', 20, true]), { groups: [[STABLE, 80], [CANARY, 20]], heldOut: [] }],
  ])('%s', (_, r, v, expected) => {
    const plan = planVariantWeights([r], v);
    expect(plan.heldOut).toEqual(expected.heldOut);
    expect(plan.changes).toEqual(
      expected.groups ? [{ ruleArn: 'rule/header', groups: expected.groups.map(([targetGroupArn, weight]) => ({ targetGroupArn, weight })), heldOut: expected.heldOut }] : [],
    );
  });

  test('changes the header and the path rule of a capability alike, and keeps the order of groups', () => {
    const rules = [rule([CANARY, 10], [STABLE, 90]), { ...rule([STABLE, 90], [CANARY, 10]), ruleArn: 'rule/path' }];
    const plan = planVariantWeights(rules, variants([CANARY, 'vision-canary', 10, false]));
    expect(plan.changes.map((c) => [c.ruleArn, c.groups.map((g) => `${g.targetGroupArn}=${g.weight}`)])).toEqual([
      ['rule/header', ['tg/vision-canary=0', 'tg/vision=100']],
      ['rule/path', ['tg/vision=100', 'tg/vision-canary=0']],
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import {
  attributeText,
  buildCatalogCapability,
  catalogEtag,
  catalogInfoFromTags,
  CatalogConfig,
  catalogOwners,
  formatCatalog,
  GroupSummary,
  MAX_ATTRIBUTE_VALUE_CHARS,
  MAX_ATTRIBUTE_VALUES,
  mergeCatalogCapabilities,
  namesItsAgent,
  nextCatalog,
  parseCatalog,
  summarizeGroup,
} from '../../lib/core/catalog-document';
import type { RotationState } from '../../lib/core/lease-schema';
import type { CatalogMember } from '../../lib/core/registry-state';

const member = (target: string, state: RotationState | undefined, metadata: Record<string, string> = {}, capability = 'vision'): CatalogMember => ({
  capability,
  target,
  address: target.split(':')[0],
  port: Number(target.split(':')[1]),
  agentId: `agent-${target}`,
  status: state === 'draining' ? 'draining' : 'active',
  registeredAt: 1,
  ...(state ? { state, since: 2 } : {}),
  ...(Object.keys(metadata).length > 0 ? { metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, { S: v }])) } : {}),
});

const config: CatalogConfig = {
  tableName: 'state',
  headerName: 'X-Agent-Capability',
  pathPrefix: 'agents',
  attributes: ['model'],
  capabilities: {
    vision: { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [{ name: 'canary', capability: 'vision-canary', weight: 10 }] },
    speech: { algorithm: 'round_robin', stickiness: 'lb_cookie', variants: [] },
  },
};

const summary = (targets: Partial<GroupSummary['targets']>, attributes: Record<string, string[]> = {}): GroupSummary => ({
  targets: { registered: 0, healthy: 0, initial: 0, unhealthy: 0, draining: 0, ...targets },
  attributes,
});

describe('summarizeGroup: a group counted by the state each lease reports', () => {
  it.each<[string, (RotationState | undefined)[], Partial<GroupSummary['targets']>]>([
    ['no members', [], {}],
    ['one of each state', ['initial', 'healthy', 'unhealthy', 'draining', 'absent', undefined], { registered: 3, healthy: 1, initial: 1, unhealthy: 1, draining: 1 }],
    ['unused and unavailable are registered, in no other bucket', ['unused', 'unavailable', 'healthy'], { registered: 3, healthy: 1 }],
    ['absent and unreported count nowhere', ['absent', undefined], {}],
  ])('%s', (_, states, expected) => {
    const members = states.map((s, i) => member(`10.0.0.${i + 1}:80`, s));
    expect(summarizeGroup(members, []).targets).toEqual(summary(expected).targets);
  });

  it('lists the distinct public metadata values of healthy agents, sorted; agents not (yet) healthy, draining ones and private keys are left out', () => {
    const members = [
      member('10.0.0.1:80', 'healthy', { model: 'large', secret: 's' }),
      member('10.0.0.2:80', 'initial', { model: 'small' }),
      member('10.0.0.3:80', 'healthy', { model: 'large' }),
      member('10.0.0.4:80', 'draining', { model: 'retired' }),
      member('10.0.0.5:80', 'healthy'),
      member('10.0.0.6:80', 'healthy', { model: 'medium' }),
    ];
    expect(summarizeGroup(members, ['model', 'zone']).attributes).toEqual({ model: ['large', 'medium'], zone: [] });
  });

  it('leases that answer no health check cannot crowd a real value out of the 20 a list keeps', () => {
    const junk = Array.from({ length: 25 }, (_, i) => member(`10.0.1.${i + 1}:80`, 'unhealthy', { model: `!${String.fromCharCode(97 + i)}` }));
    const summary = summarizeGroup([...junk, member('10.0.0.1:80', 'healthy', { model: 'large' })], ['model']);
    expect(summary.attributes.model).toEqual(['large']);
  });

  it(`keeps at most ${MAX_ATTRIBUTE_VALUES} values per key (the smallest) and cuts long ones to ${MAX_ATTRIBUTE_VALUE_CHARS} characters`, () => {
    const members = Array.from({ length: 30 }, (_, i) => member(`10.0.0.${i + 1}:80`, 'healthy', { model: `m${String(i).padStart(2, '0')}` }));
    expect(summarizeGroup(members, ['model']).attributes.model).toEqual(Array.from({ length: MAX_ATTRIBUTE_VALUES }, (_, i) => `m${String(i).padStart(2, '0')}`));
    expect(attributeText({ S: 'x'.repeat(500) })).toHaveLength(MAX_ATTRIBUTE_VALUE_CHARS);
  });

  it.each([
    [{ S: 'large' }, 'large'],
    [{ N: '7' }, '7'],
    [{ BOOL: false }, 'false'],
    [{ M: { a: { S: 'b' } } }, undefined],
    [{ L: [] }, undefined],
    [undefined, undefined],
  ])('shows metadata value %j as %j', (value, text) => {
    expect(attributeText(value)).toBe(text);
  });
});

describe('buildCatalogCapability: one entry from its groups, with variants and routability', () => {
  it.each<[string, Record<string, GroupSummary>, { routable: boolean; effective: number; healthy: number; registered: number }]>([
    ['no agents: not routable, the variant held at 0', {}, { routable: false, effective: 0, healthy: 0, registered: 0 }],
    ['a healthy stable agent: routable, an empty variant held at 0', { vision: summary({ registered: 1, healthy: 1 }) }, { routable: true, effective: 0, healthy: 1, registered: 1 }],
    ['an initial stable agent only: not routable yet', { vision: summary({ registered: 1, initial: 1 }) }, { routable: false, effective: 0, healthy: 0, registered: 1 }],
    [
      'a healthy canary only: routable through its 10%, at its configured weight',
      { 'vision-canary': summary({ registered: 1, healthy: 1 }) },
      { routable: true, effective: 10, healthy: 1, registered: 1 },
    ],
    [
      'both: counts add up over the groups',
      { vision: summary({ registered: 2, healthy: 1, unhealthy: 1, draining: 1 }), 'vision-canary': summary({ registered: 1, healthy: 1 }) },
      { routable: true, effective: 10, healthy: 2, registered: 3 },
    ],
  ])('%s', (_, groups, expected) => {
    const entry = buildCatalogCapability(config, 'vision', (g) => groups[g]);
    expect(entry.routable).toBe(expected.routable);
    expect(entry.variants).toEqual([{ name: 'canary', weight: 10, effectiveWeight: expected.effective, healthy: groups['vision-canary']?.targets.healthy ?? 0 }]);
    expect(entry.targets.healthy).toBe(expected.healthy);
    expect(entry.targets.registered).toBe(expected.registered);
  });

  it('says how to ask for the capability, its policy, and merges the groups\' attribute values', () => {
    const entry = buildCatalogCapability(config, 'vision', (g) => ({ vision: summary({}, { model: ['b', 'a'] }), 'vision-canary': summary({}, { model: ['c', 'a'] }) })[g]);
    expect(entry.route).toEqual({ header: 'X-Agent-Capability: vision', path: '/agents/vision/' });
    expect(entry.policy).toEqual({ algorithm: 'least_outstanding_requests', stickiness: 'off' });
    expect(entry.attributes).toEqual({ model: ['a', 'b', 'c'] });
    expect(buildCatalogCapability(config, 'speech', () => undefined).policy).toEqual({ algorithm: 'round_robin', stickiness: 'lb_cookie' });
  });

  it.each<[string, string, boolean]>([
    ['a model name', 'large', false],
    ['its address', '10.9.8.7', true],
    ['its address:port', '10.9.8.7:4321', true],
    ['a URL of it', 'http://10.9.8.7:4321/v1', true],
    ['its agent id', 'agent-10.9.8.7:4321', true],
    ['a text holding its agent id (8 characters or more)', 'host agent-10.9.8.7:4321 in rack 3', true],
    ['another address', '10.9.8.8', false],
  ])('leaves out a public value that names its agent: %s', (_, value, named) => {
    const members = [member('10.9.8.7:4321', 'healthy', { model: value })];
    expect(summarizeGroup(members, ['model']).attributes.model).toEqual(named ? [] : [value]);
  });

  it('compares a short agent id whole, so it does not hide values that merely contain it', () => {
    expect(namesItsAgent('a1-large', { address: '10.0.0.1', agentId: 'a1' })).toBe(false);
    expect(namesItsAgent('a1', { address: '10.0.0.1', agentId: 'a1' })).toBe(true);
  });

  it('never carries an address, a port, an agent id or a token', () => {
    const members = [member('10.9.8.7:4321', 'healthy', { model: 'large' })];
    const doc = formatCatalog({ revision: 1, generatedAt: 5, capabilities: [buildCatalogCapability(config, 'vision', (g) => (g === 'vision' ? summarizeGroup(members, config.attributes) : undefined))] });
    for (const secret of ['10.9.8.7', '4321', 'agent-', 'leaseToken']) expect(doc).not.toContain(secret);
    expect(doc).toContain('large');
    // Not even when an agent writes them into a public key.
    const leaky = [member('10.9.8.7:4321', 'healthy', { model: '10.9.8.7:4321' }), member('10.9.8.6:4321', 'healthy', { model: 'agent-10.9.8.6:4321' })];
    const leakyDoc = formatCatalog({ revision: 1, generatedAt: 5, capabilities: [buildCatalogCapability(config, 'vision', (g) => (g === 'vision' ? summarizeGroup(leaky, config.attributes) : undefined))] });
    for (const secret of ['10.9.8', '4321', 'agent-']) expect(leakyDoc).not.toContain(secret);
  });
});

describe('the revision', () => {
  const one = buildCatalogCapability(config, 'speech', () => summary({ registered: 1, healthy: 1 }));
  const other = buildCatalogCapability(config, 'speech', () => summary({ registered: 1, unhealthy: 1 }));

  it('starts at 1 and moves by one on a change, only then', () => {
    const first = nextCatalog(undefined, [one], 1000)!;
    expect(first).toEqual({ revision: 1, generatedAt: 1000, capabilities: [one] });
    expect(nextCatalog(first, [structuredClone(one)], 2000)).toBeUndefined();
    expect(nextCatalog(first, [other], 3000)).toEqual({ revision: 2, generatedAt: 3000, capabilities: [other] });
  });

  it('does not move when only the order of a map\'s keys differs', () => {
    const first = nextCatalog(undefined, [one], 1000)!;
    const reordered = { ...one, targets: { draining: 0, unhealthy: 0, initial: 0, healthy: 1, registered: 1 } };
    expect(nextCatalog(first, [reordered], 2000)).toBeUndefined();
  });

  it('gives each document its ETag from the revision and build time, so a rebuilt catalog never repeats one', () => {
    expect(catalogEtag({ revision: 3, generatedAt: 1_800_000_000_000 })).toBe(`"3-${(1_800_000_000_000).toString(36)}"`);
    expect(catalogEtag({ revision: 3, generatedAt: 1 })).not.toBe(catalogEtag({ revision: 3, generatedAt: 2 }));
  });

  it('reads back what it writes, and refuses what is not a document', () => {
    const doc = nextCatalog(undefined, [one], 1000)!;
    expect(parseCatalog(formatCatalog(doc))).toEqual(doc);
    expect(parseCatalog('{"revision":"1"}')).toBeUndefined();
    expect(parseCatalog('not json')).toBeUndefined();
  });
});

describe('mergeCatalogCapabilities', () => {
  const prior = [buildCatalogCapability(config, 'speech', () => summary({ registered: 4, healthy: 4 })), buildCatalogCapability({ ...config, capabilities: { gone: config.capabilities.speech } }, 'gone', () => undefined)];

  it('takes recounted entries, keeps the others as they were, adds configured ones as empty and drops the rest, by name', () => {
    const vision = buildCatalogCapability(config, 'vision', (g) => (g === 'vision' ? summary({ registered: 1, healthy: 1 }) : undefined));
    const merged = mergeCatalogCapabilities(config, prior, new Map([['vision', vision]]));
    expect(merged.map((c) => [c.name, c.targets.healthy])).toEqual([
      ['speech', 4],
      ['vision', 1],
    ]);
    expect(mergeCatalogCapabilities(config, undefined, new Map()).map((c) => [c.name, c.targets.registered])).toEqual([
      ['speech', 0],
      ['vision', 0],
    ]);
  });

  it('knows which entry each group belongs to', () => {
    expect([...catalogOwners(config)]).toEqual([
      ['vision', 'vision'],
      ['vision-canary', 'vision'],
      ['speech', 'speech'],
    ]);
  });
});

describe('catalogInfoFromTags: the policy and variants the groups carry', () => {
  it('reads algorithm, stickiness and variants; ignores unknown capabilities and malformed variant tags', () => {
    const info = catalogInfoFromTags(
      [
        { capability: 'vision', tags: { 'agent-lb:algorithm': 'round_robin', 'agent-lb:stickiness': 'lb_cookie' } },
        { capability: 'vision-next', tags: { 'agent-lb:variant-of': 'vision', 'agent-lb:variant-weight': '5' } },
        { capability: 'vision-canary', tags: { 'agent-lb:variant-of': 'vision', 'agent-lb:variant-weight': '10' } },
        { capability: 'vision-bad', tags: { 'agent-lb:variant-of': 'vision', 'agent-lb:variant-weight': 'ten' } },
        { capability: 'speech', tags: {} },
        { capability: 'other', tags: { 'agent-lb:algorithm': 'weighted_random' } },
      ],
      ['vision', 'vision-next', 'vision-canary', 'vision-bad', 'speech'],
    );
    expect(info).toEqual({
      vision: {
        algorithm: 'round_robin',
        stickiness: 'lb_cookie',
        variants: [
          { name: 'canary', capability: 'vision-canary', weight: 10 },
          { name: 'next', capability: 'vision-next', weight: 5 },
        ],
      },
      speech: { algorithm: 'least_outstanding_requests', stickiness: 'off', variants: [] },
    });
  });
});

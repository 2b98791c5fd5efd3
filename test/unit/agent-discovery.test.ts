import { describe, expect, it } from 'vitest';
import { discoverFrom, HealthFilter, parseHealthFilter, parseMetadataFilter, plainValue } from '../../lib/core/agent-discovery';
import type { RotationState } from '../../lib/core/lease-schema';
import type { CatalogMember } from '../../lib/core/registry-state';

const member = (n: number, state: RotationState | undefined, model?: string, status: 'active' | 'draining' = 'active'): CatalogMember => ({
  capability: 'vision',
  target: `10.0.0.${n}:8080`,
  address: `10.0.0.${n}`,
  port: 8080,
  agentId: `agent-${n}`,
  status,
  registeredAt: 1,
  ...(state ? { state, since: 2 } : {}),
  ...(model ? { metadata: { model: { S: model }, gpus: { N: String(n) } } } : {}),
});

describe('discoverFrom: health filters as Cloud Map has them, metadata equalities', () => {
  const healthyLarge = member(1, 'healthy', 'large');
  const healthySmall = member(2, 'healthy', 'small');
  const sick = member(3, 'unhealthy', 'large');
  const drainingHealthy = member(4, 'healthy', 'large', 'draining');
  const fresh = member(5, undefined, 'large');
  const all = [sick, healthySmall, healthyLarge, drainingHealthy, fresh];
  const targets = (agents: { target: string }[]) => agents.map((a) => a.target.split(':')[0].split('.')[3]);

  it.each<[HealthFilter, Record<string, string>, string[]]>([
    ['healthy', {}, ['1', '2']],
    ['all', {}, ['1', '2', '3', '4']],
    ['healthy-or-else-all', {}, ['1', '2']],
    ['healthy', { model: 'large' }, ['1']],
    ['all', { model: 'large' }, ['1', '3', '4']],
    ['healthy', { model: 'medium' }, []],
    ['healthy', { gpus: '2' }, ['2']],
    ['all', { model: 'large', gpus: '3' }, ['3']],
  ])('%s with %j', (health, metadata, expected) => {
    expect(targets(discoverFrom(all, { health, metadata }))).toEqual(expected);
  });

  it('healthy-or-else-all falls back to every match when none is healthy', () => {
    expect(targets(discoverFrom([sick, fresh, drainingHealthy], { health: 'healthy-or-else-all' }))).toEqual(['3', '4']);
    expect(targets(discoverFrom([sick, fresh], { health: 'healthy' }))).toEqual([]);
  });

  it('never lists a target the registry has not registered (no rotation state, or absent): a lease EC2 did not admit or past the quota', () => {
    const gone = member(6, 'absent', 'large');
    expect(targets(discoverFrom([fresh, gone], { health: 'all' }))).toEqual([]);
    expect(targets(discoverFrom([fresh, gone], { health: 'healthy-or-else-all' }))).toEqual([]);
  });

  it('returns address, port, state and plain metadata, never a token', () => {
    expect(discoverFrom([healthyLarge])).toEqual([
      { capability: 'vision', target: '10.0.0.1:8080', address: '10.0.0.1', port: 8080, agentId: 'agent-1', status: 'active', state: 'healthy', since: 2, metadata: { model: 'large', gpus: 1 } },
    ]);
  });

  it.each([
    [{ S: 'x' }, 'x'],
    [{ N: '1.5' }, 1.5],
    [{ BOOL: true }, true],
    [{ NULL: true }, null],
    [{ SS: ['a'] }, ['a']],
    [{ NS: ['1'] }, [1]],
    [{ L: [{ S: 'a' }, { N: '2' }] }, ['a', 2]],
    [{ M: { k: { S: 'v' } } }, { k: 'v' }],
  ])('plainValue(%j) = %j', (raw, plain) => {
    expect(plainValue(raw)).toEqual(plain);
  });

  it('parses the CLI forms and refuses bad ones in one line', () => {
    expect(parseHealthFilter('all')).toBe('all');
    expect(() => parseHealthFilter('HEALTHY')).toThrow('health filter "HEALTHY" must be one of healthy, all, healthy-or-else-all');
    expect(parseMetadataFilter(['model=large', 'note=a=b'])).toEqual({ model: 'large', note: 'a=b' });
    expect(() => parseMetadataFilter(['=x'])).toThrow('metadata filter "=x" must be key=value');
    expect(() => parseMetadataFilter(['model'])).toThrow('metadata filter "model" must be key=value');
  });
});

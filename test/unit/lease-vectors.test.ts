/**
 * The lease contract's language-neutral vectors (test/vectors/*.json, format in
 * test/vectors/README.md) against the Node side: the same files run against the Python package
 * (python/tests/test_vectors.py), so the two SDKs canonicalize, validate and read the registry's
 * feedback alike. Every file in the directory is run; a case of a kind this runner does not know
 * fails, so a new kind cannot be skipped silently.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AddressPolicy, canonicalAddress, DEFAULT_ALLOWED_CIDRS, formatTarget } from '../../lib/core/address-policy';
import { decodeLease, decodeRotation, isLive } from '../../lib/core/lease-codec';
import type { LeaseStatus } from '../../lib/core/lease-schema';
import { discoverFrom, HEALTH_FILTERS, HealthFilter } from '../../lib/core/agent-discovery';
import { decodeRejection, REJECTION_REASONS } from '../../lib/core/rejection';
import { CatalogMember, decodeMember, MEMBERS_PARTITION_PREFIX, membersPartition, REGISTRY_STATE_ATTR, REGISTRY_STATE_KEY, REGISTRY_TABLE_ENV } from '../../lib/core/registry-state';
import { outOfRotationProgress, servingProgress } from '../../lib/sdk/rotation-progress';

const DIR = resolve(__dirname, '..', 'vectors');
const KINDS = ['canonicalAddress', 'targetKey', 'validate', 'liveness', 'rotation', 'rejection', 'serving', 'outOfRotation', 'discover'] as const;
const META = ['$comment', 'format', 'validItem', 'rejectionReasons', 'registryState', 'members'];

interface VectorFile {
  readonly format: number;
  readonly validItem?: Record<string, unknown>;
  readonly [kind: string]: unknown;
}

type Case = Record<string, unknown> & { readonly name?: string };

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ file: f, doc: JSON.parse(readFileSync(join(DIR, f), 'utf8')) as VectorFile }));

/** `[file] name`: where a failing case lives. */
const label = (file: string, kind: string, c: Case, i: number) => `${file} ${kind}[${i}] ${c.name ?? JSON.stringify(c).slice(0, 80)}`;
const casesOf = (kind: string) => files.flatMap(({ file, doc }) => ((doc[kind] as Case[] | undefined) ?? []).map((c, i) => [label(file, kind, c, i), c, doc] as const));

/** The item of a `validate` case: `item` as given, or the file's `validItem` with `patch` applied (null deletes). */
function itemOf(c: Case, doc: VectorFile): unknown {
  if ('item' in c) return c.item;
  const item: Record<string, unknown> = { ...doc.validItem };
  for (const [k, v] of Object.entries((c.patch as Record<string, unknown>) ?? {})) {
    if (v === null) delete item[k];
    else item[k] = v;
  }
  return item;
}

describe('lease-contract vectors: the files', () => {
  it.each(files.map((f) => [f.file, f.doc] as const))('%s has format 1 and only known kinds', (_file, doc) => {
    expect(doc.format).toBe(1);
    expect(Object.keys(doc).filter((k) => !META.includes(k) && !(KINDS as readonly string[]).includes(k))).toEqual([]);
  });

  it('the reason codes the registry writes are the ones the files list', () => {
    const listed = files.filter((f) => f.doc.rejectionReasons !== undefined);
    expect(listed.length).toBeGreaterThan(0);
    for (const { doc } of listed) expect([...REJECTION_REASONS]).toEqual(doc.rejectionReasons);
  });

  it('the registry state names trusted discovery reads are the ones the files list', () => {
    const listed = files.filter((f) => f.doc.registryState !== undefined).map((f) => f.doc.registryState as Record<string, unknown>);
    expect(listed.length).toBeGreaterThan(0);
    const catalogOnly = ['revision', 'generatedAt', 'etag', 'body'];
    for (const names of listed) {
      expect({
        partitionKey: REGISTRY_STATE_KEY.partition,
        sortKey: REGISTRY_STATE_KEY.sort,
        membersPartitionPrefix: MEMBERS_PARTITION_PREFIX,
        tableEnv: REGISTRY_TABLE_ENV,
        memberAttributes: Object.values(REGISTRY_STATE_ATTR).filter((a) => !catalogOnly.includes(a)),
        healthFilters: [...HEALTH_FILTERS],
      }).toEqual(names);
      expect(membersPartition('vision')).toBe(`${MEMBERS_PARTITION_PREFIX}vision`);
    }
  });

  it('holds cases of every kind', () => {
    for (const kind of KINDS) expect(casesOf(kind).length, kind).toBeGreaterThan(0);
  });
});

describe('lease-contract vectors (Node)', () => {
  it.each(casesOf('canonicalAddress'))('%s', (_l, c) => {
    expect(canonicalAddress(c.input as string) ?? null).toBe(c.canonical);
  });

  it.each(casesOf('targetKey'))('%s', (_l, c) => {
    expect(formatTarget(c.address as string, c.port as number)).toBe(c.key);
  });

  it.each(casesOf('validate'))('%s', (_l, c, doc) => {
    const policy = (c.policy ?? {}) as { allowedCidrs?: string[]; allowLoopback?: boolean };
    const decoded = decodeLease(itemOf(c, doc), new AddressPolicy(policy.allowedCidrs ?? DEFAULT_ALLOWED_CIDRS, { allowLoopback: policy.allowLoopback === true }));
    const reasons = decoded.ok ? [] : [...new Set(decoded.rejections.map((r) => r.reason))].sort();
    expect(reasons).toEqual(c.reasons);
  });

  it.each(casesOf('liveness'))('%s', (_l, c) => {
    expect(isLive({ status: c.status as LeaseStatus, expiresAt: c.expiresAt as number }, c.now as number)).toBe(c.live);
  });

  it.each(casesOf('rotation'))('%s', (_l, c) => {
    expect(decodeRotation(c.raw).rotation ?? {}).toEqual(c.entries);
  });

  it.each(casesOf('rejection'))('%s', (_l, c) => {
    expect(decodeRejection(c.raw) ?? null).toEqual(c.decoded);
  });

  it.each(casesOf('serving'))('%s', (_l, c) => {
    const progress = servingProgress(decodeRotation(c.rotation).rotation, c.capabilities as string[], decodeRejection(c.rejection));
    expect(c.status === 'active' && progress.done).toBe(c.serving);
  });

  it.each(casesOf('outOfRotation'))('%s', (_l, c) => {
    const progress = outOfRotationProgress(decodeRotation(c.rotation).rotation, c.capabilities as string[], c.notBefore as number, decodeRejection(c.rejection));
    expect(progress.done).toBe(c.out);
  });
});

describe('lease-contract vectors: trusted discovery', () => {
  it.each(casesOf('discover'))('%s', (_l, c, doc) => {
    const members = ((c.members ?? doc.members) as Record<string, never>[]).map(decodeMember).filter((m): m is CatalogMember => m !== undefined);
    const agents = discoverFrom(members, { health: (c.health as HealthFilter | undefined) ?? 'healthy', metadata: (c.filter as Record<string, string> | undefined) ?? {} });
    expect(agents.map((a) => a.target)).toEqual(c.targets);
    if (c.agents !== undefined) expect(agents).toStrictEqual(c.agents);
  });
});

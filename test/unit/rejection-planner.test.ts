import { describe, expect, it } from 'vitest';
import { AddressPolicy } from '../../lib/core/address-policy';
import type { LeaseRejection } from '../../lib/core/errors';
import { currentVerdict, factDecisions, planRejection, planRejectionsFromRecords, planRejectionsFromScan, RejectionWrite, retryRejection } from '../../lib/core/rejection-planner';
import { planStreamBatch } from '../../lib/core/stream-planner';
import { planQuota } from '../../lib/core/target-quota';
import { decodeRejection, encodeRejection, MAX_REJECTION_MESSAGE_CHARS, rejectionVerdict, sameVerdict, StoredRejection } from '../../lib/core/rejection';
import { ALLOWED_CIDRS, Item, leaseItem, T0, testConfig, TG } from '../support/lease-fixtures';

const routing = testConfig().routing;
const policy = new AddressPolicy(ALLOWED_CIDRS);
const NOW_MS = T0 * 1000 + 500;
const KNOWN = 'known: ec2, speech, vision';

const withRejection = (item: Item, r: StoredRejection): Item => ({ ...item, rejection: encodeRejection(r) as Item[string] });
const unknownOcr: StoredRejection = {
  reason: 'unknown-capability',
  message: `capability "ocr" is not routed by this deployment (${KNOWN})`,
  since: T0 * 1000 - 60_000,
  capabilities: ['ocr'],
};

describe('rejectionVerdict', () => {
  it.each<[string, LeaseRejection[], ReturnType<typeof rejectionVerdict>]>([
    ['nothing found', [], undefined],
    [
      'a problem with the item refuses the whole lease, every message in one line',
      [
        { reason: 'WRONG_TYPE', message: 'attribute "port" must be Number (N), got S' },
        { reason: 'BAD_EXPIRY', message: 'expiresAt 1e12 is not a positive integer of epoch seconds' },
      ],
      { reason: 'invalid', message: 'attribute "port" must be Number (N), got S; expiresAt 1e12 is not a positive integer of epoch seconds' },
    ],
    [
      'capabilities refused alone, listed sorted; the reason of the first code in the declared order',
      [
        { reason: 'TARGET_TYPE_MISMATCH', capability: 'vision', message: 'vision takes ip targets' },
        { reason: 'UNKNOWN_CAPABILITY', capability: 'ocr', message: 'ocr is not routed' },
      ],
      { reason: 'unknown-capability', message: 'vision takes ip targets; ocr is not routed', capabilities: ['ocr', 'vision'] },
    ],
  ])('%s', (_name, found, verdict) => {
    expect(rejectionVerdict(found)).toEqual(verdict);
  });

  it('keeps the message to one line of at most MAX_REJECTION_MESSAGE_CHARS', () => {
    const verdict = rejectionVerdict([{ reason: 'BAD_STATUS', message: `status ${'x'.repeat(5000)}\nforged line` }])!;
    expect(verdict.message).toHaveLength(MAX_REJECTION_MESSAGE_CHARS);
    expect(verdict.message).not.toContain('\n');
    expect(verdict.message.endsWith('…')).toBe(true);
  });

  it('sameVerdict compares reason, message and capabilities, not since', () => {
    expect(sameVerdict(unknownOcr, { ...unknownOcr, since: 1 } as StoredRejection)).toBe(true);
    expect(sameVerdict(unknownOcr, { ...unknownOcr, capabilities: ['ocr', 'asr'] })).toBe(false);
    expect(sameVerdict(unknownOcr, { ...unknownOcr, capabilities: undefined })).toBe(false);
    expect(sameVerdict(undefined, undefined)).toBe(true);
  });

  it('decodes what it encodes', () => {
    expect(decodeRejection(encodeRejection(unknownOcr))).toEqual(unknownOcr);
  });
});

describe('planRejection', () => {
  const valid = leaseItem({ address: '10.0.0.1' });
  const unrouted = leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'] });
  const invalid = leaseItem({ address: '10.0.0.3' }, { port: { S: '8080' } });
  const noToken = (() => {
    const item = leaseItem({ address: '10.0.0.4' }, { status: { S: 'ACTIVE' } });
    delete item.leaseToken;
    return item;
  })();
  const expired = leaseItem({ address: '10.0.0.5', capabilities: ['ocr'], expiresAt: T0 - 1 });

  it.each<[string, Item, Omit<RejectionWrite, 'judged'> | undefined]>([
    ['a lease routed as written: nothing', valid, undefined],
    [
      'an unrouted capability: that capability, since now, on the token and renewedAt read',
      unrouted,
      { target: '10.0.0.2:8080', leaseToken: { S: 'token-10.0.0.2' }, renewedAt: { N: String(T0 * 1000) }, rejection: { ...unknownOcr, since: NOW_MS } },
    ],
    ['the same verdict already written: nothing (only on change)', withRejection(unrouted, unknownOcr), undefined],
    [
      'an invalid item: the whole lease',
      invalid,
      {
        target: '10.0.0.3:8080',
        leaseToken: { S: 'token-10.0.0.3' },
        renewedAt: { N: String(T0 * 1000) },
        rejection: { reason: 'invalid', message: 'attribute "port" must be Number (N), got S', since: NOW_MS },
      },
    ],
    [
      'an item without a token: conditional on its absence',
      noToken,
      {
        target: '10.0.0.4:8080',
        leaseToken: undefined,
        renewedAt: { N: String(T0 * 1000) },
        rejection: { reason: 'invalid', message: 'attribute "leaseToken" is missing; status "ACTIVE" must be "active" or "draining"', since: NOW_MS },
      },
    ],
    ['routed again (the deployment now routes it): the reason is removed', withRejection(valid, unknownOcr), { target: '10.0.0.1:8080', leaseToken: { S: 'token-10.0.0.1' }, renewedAt: { N: String(T0 * 1000) } }],
    ['an expired lease: nothing (its writer is gone)', expired, undefined],
    ['a token that is not a scalar: nothing to pin the write to', { ...unrouted, leaseToken: { M: {} } }, undefined],
  ])('%s', (_name, item, write) => {
    expect(planRejection(item, { policy, routing, nowMs: NOW_MS })).toEqual(write === undefined ? undefined : { ...write, judged: item });
  });

  it('a verdict an earlier image carried keeps its since (an acquire dropped it; the same verdict is written back)', () => {
    expect(planRejection(unrouted, { policy, routing, nowMs: NOW_MS, earlier: unknownOcr })?.rejection?.since).toBe(unknownOcr.since);
    expect(planRejection(unrouted, { policy, routing, nowMs: NOW_MS, earlier: { ...unknownOcr, reason: 'invalid' } })?.rejection?.since).toBe(NOW_MS);
  });
});

describe('planRejectionsFromRecords / FromScan', () => {
  it('judges each key by its last new image of the batch, keeping a since an older image had; a deletion plans nothing', () => {
    const held = withRejection(leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'] }), unknownOcr);
    const reacquired = leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'], leaseToken: 'token-2' });
    const gone = leaseItem({ address: '10.0.0.9', capabilities: ['ocr'] });
    const records = [
      { id: '1', oldImage: held, newImage: reacquired },
      { id: '2', newImage: gone },
      { id: '3', oldImage: gone },
    ];
    expect(planRejectionsFromRecords(records, policy, routing, NOW_MS)).toEqual([
      { target: '10.0.0.2:8080', leaseToken: { S: 'token-2' }, renewedAt: { N: String(T0 * 1000) }, rejection: unknownOcr, judged: reacquired },
    ]);
  });

  it('heartbeats are judged only when they could hold news: a refused lease, or expiresAt turned into milliseconds', () => {
    const valid = leaseItem({ address: '10.0.0.1' });
    const refused = withRejection(leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'] }), unknownOcr);
    const inMs = { ...valid, target: { S: '10.0.0.3:8080' }, address: { S: '10.0.0.3' }, expiresAt: { N: String((T0 + 30) * 1000) } };
    const records = [
      { id: '1', oldImage: valid, newImage: valid },
      { id: '2', oldImage: refused, newImage: refused },
      { id: '3', oldImage: { ...inMs, expiresAt: { N: String(T0 + 30) } }, newImage: inMs },
    ];
    const writes = planRejectionsFromRecords(records, policy, routing, NOW_MS, ['heartbeat', 'heartbeat', 'heartbeat']);
    expect(writes.map((w) => `${w.target} ${w.rejection?.reason}`)).toEqual(['10.0.0.3:8080 invalid']);
  });

  it('reconcile plans from every item of its scan', () => {
    const items = [leaseItem({ address: '10.0.0.1' }), leaseItem({ address: '10.0.0.2', capabilities: ['ocr'] })];
    expect(planRejectionsFromScan(items, policy, routing, NOW_MS).map((w) => `${w.target} ${w.rejection?.reason}`)).toEqual(['10.0.0.2:8080 unknown-capability']);
  });
});

describe('refusals from AWS facts (admission, the quota) ride the same planner', () => {
  const lease = leaseItem({ address: '10.0.0.6' });
  const notAdmitted: LeaseRejection = { reason: 'NOT_ADMITTED', target: '10.0.0.6:8080', capability: 'vision', message: 'address "10.0.0.6" is not admitted for capability "vision": eni-1 carries sg-other' };
  const overQuota: LeaseRejection = { reason: 'OVER_QUOTA', target: '10.0.0.7:8080', capability: 'vision', message: 'the load balancer holds 1000 of its 1000 targets' };
  const stored: StoredRejection = { reason: 'not-admitted', message: notAdmitted.message, capabilities: ['vision'], since: T0 * 1000 - 1_000 };

  it('factDecisions: refusals by key, and the keys every decision let through with none', () => {
    expect(Object.fromEntries(factDecisions([notAdmitted, overQuota], ['10.0.0.6:8080', '10.0.0.8:8080']))).toEqual({
      '10.0.0.6:8080': [notAdmitted],
      '10.0.0.7:8080': [overQuota],
      '10.0.0.8:8080': [],
    });
  });

  it.each<[string, Item, readonly LeaseRejection[] | undefined, string | undefined]>([
    ['decided not admitted: written into the lease', lease, [notAdmitted], 'not-admitted vision'],
    ['decided over the quota: written into the lease', leaseItem({ address: '10.0.0.7' }), [overQuota], 'over-quota vision'],
    ['the same refusal already written: nothing', withRejection(lease, stored), [notAdmitted], 'none'],
    ['not decided again (a heartbeat, a pass without its address): the stored refusal stands', withRejection(lease, stored), undefined, 'none'],
    ['decided again and let through: removed', withRejection(lease, stored), [], 'removed'],
    ['the item itself refused whole: that verdict replaces it', withRejection(leaseItem({ address: '10.0.0.6' }, { port: { S: '8080' } }), stored), undefined, 'invalid all'],
  ])('%s', (_name, item, facts, expected) => {
    const write = planRejection(item, { policy, routing, nowMs: NOW_MS, ...(facts ? { facts } : {}) });
    const got = write === undefined ? 'none' : write.rejection === undefined ? 'removed' : `${write.rejection.reason} ${write.rejection.capabilities?.join(',') ?? 'all'}`;
    expect(got).toBe(expected);
  });

  it('stream sync: a heartbeat of a lease refused from facts keeps its refusal; the batch that decided it writes it', () => {
    const refused = withRejection(lease, stored);
    expect(planRejectionsFromRecords([{ id: '1', oldImage: refused, newImage: refused }], policy, routing, NOW_MS, ['heartbeat'])).toEqual([]);
    const decided = planRejectionsFromRecords([{ id: '1', newImage: lease }], policy, routing, NOW_MS, ['registration'], undefined, factDecisions([notAdmitted], []));
    expect(decided.map((w) => w.rejection?.reason)).toEqual(['not-admitted']);
  });

  it('reconcile: from the pass\'s decisions; status shows a standing refusal as the current verdict', () => {
    const refused = withRejection(lease, stored);
    expect(planRejectionsFromScan([refused], policy, routing, NOW_MS)).toEqual([]);
    expect(planRejectionsFromScan([refused], policy, routing, NOW_MS, factDecisions([], ['10.0.0.6:8080'])).map((w) => w.rejection)).toEqual([undefined]);
    expect(currentVerdict(refused, policy, routing, T0)).toEqual({ reason: 'not-admitted', message: stored.message, capabilities: ['vision'] });
    expect(currentVerdict(lease, policy, routing, T0)).toBeUndefined();
  });

  it.each([
    ['port-not-allowed', 'port 9998 is not among the ports of capability "vision" (8080)', ['vision']],
    ['expiry-too-far', 'expiresAt 2000000000 is more than the maximum lease TTL (3600 s) ahead of the registry\'s clock', undefined],
  ] as const)('status and leases take a stored %s from the registry: they do not read the settings that decide it', (reason, message, capabilities) => {
    const stored: StoredRejection = { reason, message, since: NOW_MS - 5_000, ...(capabilities ? { capabilities: [...capabilities] } : {}) };
    const refused = withRejection(leaseItem({ address: '10.0.0.5', port: 9998 }), stored);
    const { since: _since, ...verdict } = stored;
    expect(currentVerdict(refused, policy, routing, T0)).toEqual(verdict);
    // What validation finds in the item itself comes first: a whole-item problem replaces it.
    expect(currentVerdict({ ...refused, port: { N: '0' } }, policy, routing, T0)?.reason).toBe('invalid');
  });

  it('a lease expiring beyond the maximum TTL is refused whole as expiry-too-far', () => {
    const far = leaseItem({ address: '10.0.0.9', expiresAt: T0 + 10 * 365 * 86_400 });
    const verdict = currentVerdict(far, policy, { ...routing, maxLeaseTtlSeconds: 3600 }, T0);
    expect(verdict?.reason).toBe('expiry-too-far');
    expect(verdict?.capabilities).toBeUndefined();
  });
});

describe('the registry\'s own rejection write coming back plans nothing: no write feeds itself', () => {
  const ttlRouting = { ...routing, maxLeaseTtlSeconds: 3600 };
  const quotaAt = (registered: number) => planQuota([{ capability: 'vision', targetGroupArn: TG.vision, target: { key: '10.0.0.7:8080', id: '10.0.0.7', port: 8080 } }], registered, 1000).over.map((o) => o.rejection);
  // Judged at NOW_MS, written; the record of that write is delivered and the lease scanned a minute later (and by then the load balancer holds more targets).
  const LATER_MS = NOW_MS + 61_000;
  // Still live then: an expired lease is never written into.
  const LIVE = T0 + 600;

  it.each<[string, Item, ((registered: number) => LeaseRejection[]) | undefined]>([
    ['an unrouted capability', leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'], expiresAt: LIVE }), undefined],
    ['an invalid item', leaseItem({ address: '10.0.0.3', expiresAt: LIVE }, { port: { S: '8080' } }), undefined],
    ['an expiry beyond the maximum TTL (its message once quoted the clock: rewritten every second, for ever)', leaseItem({ address: '10.0.0.9', expiresAt: T0 + 86_400 }), undefined],
    ['over the quota (its message once quoted the count)', leaseItem({ address: '10.0.0.7', expiresAt: LIVE }), quotaAt],
  ])('%s', (_name, item, facts) => {
    const [write] = planRejectionsFromRecords([{ id: '1', newImage: item }], policy, ttlRouting, NOW_MS, ['registration'], undefined, facts && factDecisions(facts(1000), []));
    expect(write?.rejection).toBeDefined();
    const written = withRejection(item, write.rejection!);
    const back = [{ id: '2', oldImage: item, newImage: written }];
    const { kinds } = planStreamBatch(back, policy, ttlRouting);
    expect(kinds).toEqual(['registry']);
    expect(planRejectionsFromRecords(back, policy, ttlRouting, LATER_MS, kinds)).toEqual([]);
    // Judged again from scratch (reconcile's scan, deciding the facts again): the same verdict, no write.
    expect(planRejectionsFromScan([written], policy, ttlRouting, LATER_MS, facts && factDecisions(facts(1200), []))).toEqual([]);
  });

  it('its own write is not judged again even when the verdict would now differ; reconcile\'s scan is what repairs that', () => {
    const item = leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'], expiresAt: LIVE });
    const written = withRejection(item, { ...unknownOcr, since: NOW_MS });
    // A new deployment routes ocr by the time the record comes back.
    const ocrRouted = { ...routing, capabilities: { ...routing.capabilities, ocr: { targetGroupArn: TG.vision.replace('vision', 'ocr'), targetType: 'ip' as const } } };
    expect(planRejectionsFromRecords([{ id: '4', oldImage: item, newImage: written }], policy, ocrRouted, LATER_MS, ['registry'])).toEqual([]);
    expect(planRejectionsFromScan([written], policy, ocrRouted, LATER_MS).map((w) => w.rejection)).toEqual([undefined]);
  });

  it('a heartbeat of a refused lease is still judged (it may move expiresAt into range)', () => {
    const far = leaseItem({ address: '10.0.0.9', expiresAt: T0 + 86_400 });
    const written = withRejection(far, planRejection(far, { policy, routing: ttlRouting, nowMs: NOW_MS })!.rejection!);
    const beat = { ...written, expiresAt: { N: String(T0 + 600) }, renewedAt: { N: String(T0 * 1000 + 30_000) } };
    const writes = planRejectionsFromRecords([{ id: '3', oldImage: written, newImage: beat }], policy, ttlRouting, LATER_MS, ['heartbeat']);
    expect(writes.map((w) => w.rejection)).toEqual([undefined]);
  });
});

describe('retryRejection: a rejection write whose condition failed, against the lease as DynamoDB returned it', () => {
  const judged = leaseItem({ address: '10.0.0.2', capabilities: ['ocr', 'vision'] });
  const write: RejectionWrite = { target: '10.0.0.2:8080', leaseToken: { S: 'token-10.0.0.2' }, renewedAt: judged.renewedAt, rejection: unknownOcr, judged };
  const removal: RejectionWrite = { target: '10.0.0.2:8080', leaseToken: { S: 'token-10.0.0.2' }, renewedAt: judged.renewedAt, judged };
  const beat = { ...judged, expiresAt: { N: String(T0 + 40) }, renewedAt: { N: String(T0 * 1000 + 10_000) } };

  it.each<[string, RejectionWrite, Item, RejectionWrite | 'superseded' | 'outdated']>([
    ['only a heartbeat landed in between: written again on the renewedAt read now', write, beat, { ...write, renewedAt: beat.renewedAt }],
    ['a heartbeat and the registry\'s rotation: the same', write, { ...beat, rotation: { M: {} } }, { ...write, renewedAt: beat.renewedAt }],
    ['the agent changed its capabilities: outdated (its own record is judged)', write, { ...beat, capabilities: { SS: ['vision'] } }, 'outdated'],
    ['a heartbeat that wrote expiresAt in milliseconds: outdated', write, { ...beat, expiresAt: { N: String((T0 + 40) * 1000) } }, 'outdated'],
    ['another writer told it already: superseded', write, withRejection(beat, { ...unknownOcr, since: 1_800_000_000_000 }), 'superseded'],
    ['a removal of a rejection already gone: superseded', removal, beat, 'superseded'],
    ['a removal, a heartbeat in between: written again', removal, withRejection(beat, unknownOcr), { ...removal, renewedAt: beat.renewedAt }],
  ])('%s', (_name, planned, current, expected) => {
    expect(retryRejection(planned, current)).toEqual(expected);
  });
});

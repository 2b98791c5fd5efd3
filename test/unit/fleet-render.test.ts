import { describe, expect, it } from 'vitest';
import { renderAgents, renderLeases, renderStatus } from '../../lib/cli/fleet-render';
import type { DiscoveredAgent } from '../../lib/core/agent-discovery';
import type { FleetStatus, LeaseRow } from '../../lib/registry/fleet-status';
import { diffFrames, renderFrame, renderLines, ViewFrame } from '../../lib/local/live-view';

/** Hostile values anyone holding the agent grant can put in a lease. */
const HOSTILE = {
  ansi: '\u001b[2J\u001b[H\u001b]0;owned\u0007agent',
  newline: 'agent\n10.0.9.9:80       forged-agent  vision  active  yes  30s',
  huge: 'A'.repeat(100_000),
  bidi: 'agent\u202eevil',
};

/** Nothing in the output can drive a terminal: no C0/C1 control but the newlines between rows. */
function assertInert(text: string): void {
  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u);
}

const row = (target: string, agentId: string, patch: Partial<LeaseRow> = {}): LeaseRow => ({
  target,
  agentId,
  capabilities: ['vision'],
  status: 'active',
  live: true,
  expiresInSeconds: 30,
  ...patch,
});

describe('agent-lb leases with hostile strings in every column', () => {
  const rows = [
    row('10.0.0.1:80', HOSTILE.ansi),
    row('10.0.0.2:80', HOSTILE.newline),
    row('10.0.0.3:80', HOSTILE.huge),
    row('10.0.0.4:80', HOSTILE.bidi, { capabilities: ['vision\u001b[31m'], status: 'invalid', problems: [`attribute "agentId" is ${HOSTILE.huge.length} characters \u001b[2J`] }),
    row(`10.0.0.5:80\u001b[1A`, 'ok'),
  ];
  const out = renderLeases(rows);

  it('escapes control sequences instead of sending them', () => {
    assertInert(out);
    expect(out).toContain('\\u001b[2J\\u001b[H\\u001b]0;owned\\u0007agent');
  });

  it('one line per lease (plus one per problem): a newline in agentId forges no row', () => {
    expect(out.split('\n')).toHaveLength(1 + rows.length + 1);
    expect(out).not.toMatch(/^10\.0\.9\.9/m);
  });

  it('a 100 KB agentId costs one bounded cell, not 100 KB on every row', () => {
    expect(out.length).toBeLessThan(3_000);
    for (const line of out.split('\n')) expect(line.length).toBeLessThan(400);
  });
});

describe('agent-lb status and the live view go through the same cells', () => {
  it('status: targets and states are escaped', () => {
    const status: FleetStatus = {
      at: '2027-01-15T08:00:00.000Z',
      capabilities: [{ capability: 'vision', targetGroupArn: 'tg', liveLeases: 1, registered: 1, draining: 0, health: { healthy: 1 }, targets: [], missing: ['10.0.0.1:80\u001b[2J'], stale: [] }],
      rotation: [{ target: '10.0.0.1:80\u001b]0;x\u0007', capability: 'vision', elbState: 'healthy\r' }],
      rejections: [{ target: '10.0.0.2:80\u001b[2J', reason: 'not-admitted', capabilities: ['vision'], message: 'address "10.0.0.2"\nforged row', told: true }],
      leases: { total: 1, live: 1, invalid: 0 },
      drift: true,
    };
    assertInert(renderStatus(status));
  });

  it('live view: frames, event lines and pipe lines are inert', () => {
    const frame = (targets: { id: string; port: number; state: string }[]): ViewFrame => ({
      at: 1_800_000_000_000,
      capabilities: [{ capability: 'vision', liveLeases: 1, registered: targets }],
      syncedRecords: 0,
      elbCalls: 0,
      agents: { up: 1, down: 0 },
    });
    const before = frame([]);
    const after = frame([{ id: '10.0.0.1\u001b[2J', port: 80, state: 'healthy\u001b]0;x\u0007' }]);
    const events = diffFrames(before, after);
    assertInert(renderFrame(after, events, 'agent-lb local'));
    for (const line of renderLines(after, events)) assertInert(line);
  });
});

describe('agent-lb agents with hostile strings in its id and metadata', () => {
  const agent = (agentId: string, metadata: Record<string, unknown>): DiscoveredAgent => ({
    capability: 'vision',
    target: '10.0.0.1:80',
    address: '10.0.0.1',
    port: 80,
    agentId,
    status: 'active',
    state: 'healthy',
    since: 1_800_000_000_000,
    metadata,
  });
  const agents = [
    agent(HOSTILE.ansi, { [HOSTILE.newline]: HOSTILE.bidi }),
    agent(HOSTILE.newline, { model: HOSTILE.ansi }),
    agent(HOSTILE.huge, { blob: HOSTILE.huge }),
  ];
  const out = renderAgents(agents, 1_800_000_060_000);

  it('is inert, one line per agent and bounded', () => {
    assertInert(out);
    expect(out.split('\n')).toHaveLength(1 + agents.length);
    for (const line of out.split('\n')) expect(line.length).toBeLessThan(400);
  });

  it('escapes once: a newline in an id shows as \\n, metadata as key=value', () => {
    const one = renderAgents([agent('a\nb', { model: 'm1', gpus: 2 })], 1_800_000_060_000);
    expect(one).toContain('a\\nb');
    expect(one).not.toContain('a\\\\nb');
    expect(one).toContain('model=m1 gpus=2');
  });
});

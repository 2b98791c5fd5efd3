import type { DiscoveredAgent } from '../core/agent-discovery';
import { MAX_QUOTED_CHARS, tableCell } from '../core/untrusted-text';
import type { CapabilityWeight, FleetStatus, LeaseRow } from '../registry/fleet-status';

/**
 * The tables `agent-lb status`, `agent-lb leases` and `agent-lb agents` print (their `--json` prints the query's
 * result as is). Every cell goes through `tableCell` (lib/core/untrusted-text.ts), which the live
 * view uses too: lease attributes are written by whoever holds the agent grant, and a cell must
 * neither drive the terminal nor forge a row nor widen the table without bound.
 */

/** Longest `!` line under `leases`: a message quotes its values already, this bounds the whole line. */
const MAX_PROBLEM_CHARS = 300;

/** `10% of vision`, `90%`, and when the rules route otherwise (a variant held out), `0% of vision (10% once healthy)`. */
function renderWeight(w: CapabilityWeight | undefined): string {
  if (!w) return '-';
  const routed = w.routed ?? w.configured;
  const of = w.variantOf ? ` of ${w.variantOf}` : '';
  if (routed === w.configured) return `${routed}%${of}`;
  return `${routed}%${of} (${w.configured}% ${w.variantOf ? 'once healthy' : 'with every variant healthy'})`;
}

export function renderStatus(status: FleetStatus): string {
  const weighted = status.capabilities.some((c) => c.weight);
  const rows = [['CAPABILITY', ...(weighted ? ['WEIGHT'] : []), 'LIVE', 'REGISTERED', 'HEALTH', 'DRIFT']];
  for (const c of status.capabilities) {
    const health = Object.entries(c.health).map(([s, n]) => `${s}=${n}`).join(' ') || '-';
    const drift = [...c.missing.map((k) => `+${k}`), ...c.stale.map((k) => `-${k}`)].join(' ') || 'none';
    rows.push([c.capability, ...(weighted ? [renderWeight(c.weight)] : []), String(c.liveLeases), String(c.registered), health, drift]);
  }
  const lines = columns(rows);
  lines.push('', `leases: ${status.leases.total} total, ${status.leases.live} live, ${status.leases.invalid} invalid — drift: ${status.drift ? 'YES (reconcile will repair: + missing, - stale)' : 'none'}`);
  if (status.rotation.length > 0) {
    // What each agent is told (the lease's `rotation`), beside what ELB says now.
    const targets = [['TARGET', 'CAPABILITY', 'ROTATION', 'FOR', 'ELB NOW']];
    for (const r of status.rotation) targets.push([r.target, r.capability, r.state ?? 'unreported', r.ageSeconds === undefined ? '-' : formatAge(r.ageSeconds), r.elbState]);
    lines.push('', ...columns(targets));
  }
  if (status.rejections.length > 0) {
    // Why the registry refuses what it refuses, as the lease's writer reads it in `rejection`.
    const refused = [['REFUSED', 'REASON', 'CAPABILITIES', 'TOLD', 'WHY']];
    for (const r of status.rejections) refused.push([r.target, r.reason, r.capabilities?.join(',') ?? '(all)', r.told ? 'yes' : 'not yet', r.message]);
    lines.push('', ...columns(refused));
  }
  return lines.join('\n');
}

/** Longest last cell (drift lists, health counts): it pads nothing, so only the line grows with it. */
const MAX_LAST_CELL_CHARS = 2000;

/** Rows as aligned columns, every cell made safe first (`tableCell`). */
export function columns(rows: readonly (readonly string[])[]): string[] {
  const safe = rows.map((r) => r.map((cell, i) => tableCell(cell, i === r.length - 1 ? MAX_LAST_CELL_CHARS : undefined)));
  const widths = safe[0].map((_, i) => Math.max(...safe.map((r) => [...r[i]].length)));
  return safe.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell + ' '.repeat(widths[i] - [...cell].length))).join('  ').trimEnd());
}

/** `42s`, `3m05s`, `2h07m`, `3d04h`: an age at a glance. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

export function renderLeases(rows: readonly LeaseRow[]): string {
  const table = [['TARGET', 'AGENT', 'CAPABILITIES', 'STATUS', 'LIVE', 'EXPIRES IN']];
  for (const r of rows) table.push([r.target, r.agentId, r.capabilities.join(','), r.status, r.live ? 'yes' : 'no', `${r.expiresInSeconds}s`]);
  const out = columns(table);
  for (const r of rows) for (const p of r.problems ?? []) out.push(`  ! ${tableCell(`${r.target}: ${p}`, MAX_PROBLEM_CHARS)}`);
  return out.join('\n');
}

/**
 * `agent-lb agents`: one line per agent. Its id and metadata are written by whoever holds its
 * lease: like every cell they go through `tableCell`, which escapes what could drive the terminal
 * once (a JSON quoting first would have shown a newline as `\\n`).
 */
/** `key=value` pairs, strings as they are (the cell escapes them), anything else as JSON. */
function metadataCell(metadata: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(metadata);
  if (entries.length === 0) return '-';
  const text = entries.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
  const chars = [...text];
  return chars.length <= MAX_QUOTED_CHARS ? text : `${chars.slice(0, MAX_QUOTED_CHARS).join('')}…(${chars.length} chars)`;
}

export function renderAgents(agents: readonly DiscoveredAgent[], now: number = Date.now()): string {
  if (agents.length === 0) return 'no agents match';
  const table = [['ADDRESS', 'PORT', 'STATE', 'FOR', 'STATUS', 'AGENT', 'METADATA']];
  for (const a of agents) {
    const age = a.since === undefined ? '-' : formatAge((now - a.since) / 1000);
    table.push([a.address, String(a.port), a.state ?? 'unreported', age, a.status, a.agentId, metadataCell(a.metadata)]);
  }
  return columns(table).join('\n');
}

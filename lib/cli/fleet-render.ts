import type { CapabilityWeight, FleetStatus, LeaseRow } from '../registry/fleet-status';

/** The tables `agent-lb status` and `agent-lb leases` print (their `--json` prints the query's result as is). */

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
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '));
  lines.push('', `leases: ${status.leases.total} total, ${status.leases.live} live, ${status.leases.invalid} invalid — drift: ${status.drift ? 'YES (reconcile will repair: + missing, - stale)' : 'none'}`);
  return lines.join('\n');
}

export function renderLeases(rows: readonly LeaseRow[]): string {
  const table = [['TARGET', 'AGENT', 'CAPABILITIES', 'STATUS', 'LIVE', 'EXPIRES IN']];
  for (const r of rows) table.push([r.target, r.agentId, r.capabilities.join(','), r.status, r.live ? 'yes' : 'no', `${r.expiresInSeconds}s`]);
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const out = table.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
  for (const r of rows) for (const p of r.problems ?? []) out.push(`  ! ${r.target}: ${p}`);
  return out.join('\n');
}

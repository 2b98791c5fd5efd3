import { ObservedTarget } from '../core/reconcile-planner';

export interface CapabilityView {
  readonly capability: string;
  readonly liveLeases: number;
  /** In rotation (registered, not draining). */
  readonly registered: readonly ObservedTarget[];
  /** Deregistered, waiting out the deregistration delay: out of rotation. */
  readonly draining?: readonly ObservedTarget[];
}

export interface ViewFrame {
  readonly at: number;
  readonly capabilities: readonly CapabilityView[];
  readonly lastSyncLagMs?: number;
  readonly syncedRecords: number;
  readonly elbCalls: number;
  readonly agents: { readonly up: number; readonly down: number };
}

export interface ChangeEvent {
  readonly at: number;
  readonly text: string;
}

/** The registration changes between two frames, as a person reads them. */
export function diffFrames(prev: ViewFrame | undefined, next: ViewFrame): ChangeEvent[] {
  if (!prev) return [];
  const events: ChangeEvent[] = [];
  for (const c of next.capabilities) {
    const before = new Set(prev.capabilities.find((p) => p.capability === c.capability)?.registered.map((t) => `${t.id}:${t.port}`) ?? []);
    const after = new Set(c.registered.map((t) => `${t.id}:${t.port}`));
    for (const k of after) if (!before.has(k)) events.push({ at: next.at, text: `+ ${c.capability.padEnd(10)} ${k} registered` });
    for (const k of before) if (!after.has(k)) events.push({ at: next.at, text: `- ${c.capability.padEnd(10)} ${k} deregistered` });
  }
  return events;
}

const time = (ms: number) => new Date(ms).toISOString().slice(11, 19);

/** A full-screen frame for a TTY. */
export function renderFrame(frame: ViewFrame, events: readonly ChangeEvent[], header: string): string {
  const lines = [header, ''];
  lines.push(`${'CAPABILITY'.padEnd(12)}${'LIVE LEASES'.padEnd(13)}${'REGISTERED'.padEnd(12)}TARGETS`);
  for (const c of frame.capabilities) {
    const targets = [...c.registered, ...(c.draining ?? [])].map((t) => `${t.id}:${t.port}(${t.state})`).join(' ');
    lines.push(`${c.capability.padEnd(12)}${String(c.liveLeases).padEnd(13)}${String(c.registered.length).padEnd(12)}${targets}`);
  }
  lines.push('');
  lines.push(
    `agents up ${frame.agents.up}, down ${frame.agents.down} · records synced ${frame.syncedRecords} · ELB calls ${frame.elbCalls} · last sync lag ${
      frame.lastSyncLagMs === undefined ? '-' : `${Math.round(frame.lastSyncLagMs)} ms`
    }`,
  );
  lines.push('', 'last changes:');
  for (const e of events.slice(-10)) lines.push(`  ${time(e.at)} ${e.text}`);
  lines.push('', 'Ctrl-C to stop');
  return lines.join('\n');
}

/** One line per change or summary, for logs and pipes. */
export function renderLines(frame: ViewFrame, events: readonly ChangeEvent[]): string[] {
  const summary = frame.capabilities.map((c) => `${c.capability}=${c.registered.length}/${c.liveLeases}`).join(' ');
  return [...events.map((e) => `${time(e.at)} ${e.text}`), `${time(frame.at)} registered/live ${summary}`];
}

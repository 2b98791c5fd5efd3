import { ObservedTarget } from '../core/reconcile-planner';
import { tableCell } from '../core/untrusted-text';

/** A cell at least `width` columns wide: made safe (`tableCell`, as every CLI table) and padded. */
function cell(value: unknown, width: number): string {
  return tableCell(value).padEnd(width);
}

/** A target as the view prints it, made safe. */
const targetText = (t: Pick<ObservedTarget, 'id' | 'port'>): string => tableCell(`${t.id}:${t.port}`);

/** What the load balancer counted for one capability's target group since start. */
export interface TrafficView {
  /** Requests a listener rule forwarded to the group. */
  readonly requests: number;
  /** 5xx responses the targets generated. */
  readonly target5xx: number;
  /** Responses the load balancer generated itself, by status code (502, 503, 504). */
  readonly loadBalancerErrors: Readonly<Record<string, number>>;
}

export interface CapabilityView {
  readonly capability: string;
  readonly liveLeases: number;
  /** In rotation (registered, not draining), with the health state DescribeTargetHealth gives. */
  readonly registered: readonly ObservedTarget[];
  /** Deregistered, waiting out the deregistration delay: out of rotation. */
  readonly draining?: readonly ObservedTarget[];
  /** With the local data plane. */
  readonly traffic?: TrafficView;
}

export interface ViewFrame {
  readonly at: number;
  readonly capabilities: readonly CapabilityView[];
  readonly lastSyncLagMs?: number;
  readonly syncedRecords: number;
  readonly elbCalls: number;
  readonly agents: { readonly up: number; readonly down: number };
  /** The load balancer's endpoint and its fixed responses (the 404 for an unknown capability), with the local data plane. */
  readonly loadBalancer?: { readonly endpoint: string; readonly fixedResponses: number };
  /** Leases the registry refuses in whole or in part, and why (what their `rejection` tells the writer). */
  readonly rejections?: readonly RejectionView[];
  /** The capability catalog (`GET /agents`) as the registry last wrote it, when the stack has one. */
  readonly catalog?: CatalogView;
}

/** The catalog's revision and how many of its capabilities are routable. */
export interface CatalogView {
  readonly path: string;
  readonly revision: number;
  readonly routable: number;
  readonly capabilities: number;
}

export interface RejectionView {
  readonly target: string;
  readonly reason: string;
  readonly message: string;
  /** Absent: the whole lease. */
  readonly capabilities?: readonly string[];
}

const rejectionLine = (r: RejectionView): string => `${r.reason}${r.capabilities ? ` (${r.capabilities.join(', ')})` : ''}: ${r.message}`;

export interface ChangeEvent {
  readonly at: number;
  readonly text: string;
}

/**
 * The changes between two frames, as a person reads them: registrations and deregistrations, and
 * each lease the registry starts refusing (or refuses otherwise, or stops refusing) with its
 * reason — from the first frame on, so a refusal that predates the view shows too.
 */
export function diffFrames(prev: ViewFrame | undefined, next: ViewFrame): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  const before = new Map((prev?.rejections ?? []).map((r) => [r.target, rejectionLine(r)]));
  const after = new Map((next.rejections ?? []).map((r) => [r.target, rejectionLine(r)]));
  for (const [target, line] of after) if (before.get(target) !== line) events.push({ at: next.at, text: `! ${target} rejected: ${line}` });
  for (const target of before.keys()) if (!after.has(target)) events.push({ at: next.at, text: `✓ ${target} no longer rejected` });
  if (!prev) return events;
  for (const c of next.capabilities) {
    const before = new Set(prev.capabilities.find((p) => p.capability === c.capability)?.registered.map((t) => `${t.id}:${t.port}`) ?? []);
    const after = new Set(c.registered.map((t) => `${t.id}:${t.port}`));
    for (const k of after) if (!before.has(k)) events.push({ at: next.at, text: `+ ${cell(c.capability, 10)} ${tableCell(k)} registered` });
    for (const k of before) if (!after.has(k)) events.push({ at: next.at, text: `- ${cell(c.capability, 10)} ${tableCell(k)} deregistered` });
  }
  return events;
}

/** Per capability between two frames: requests a second, and the 5xx each side generated in between. */
export interface TrafficRate {
  readonly capability: string;
  readonly requestsPerSecond: number;
  readonly target5xx: number;
  readonly loadBalancer5xx: number;
}

const lb5xx = (errors: Readonly<Record<string, number>>): number => Object.entries(errors).reduce((sum, [code, n]) => (Number(code) >= 500 ? sum + n : sum), 0);

/** The traffic between `prev` and `next` (since start when there is no `prev`). */
export function trafficRates(prev: ViewFrame | undefined, next: ViewFrame): TrafficRate[] {
  const seconds = prev ? Math.max(0.001, (next.at - prev.at) / 1000) : undefined;
  return next.capabilities.flatMap((c) => {
    if (c.traffic === undefined) return [];
    const before = prev?.capabilities.find((p) => p.capability === c.capability)?.traffic;
    const requests = c.traffic.requests - (before?.requests ?? 0);
    return [
      {
        capability: c.capability,
        requestsPerSecond: seconds === undefined ? 0 : requests / seconds,
        target5xx: c.traffic.target5xx - (before?.target5xx ?? 0),
        loadBalancer5xx: lb5xx(c.traffic.loadBalancerErrors) - (before ? lb5xx(before.loadBalancerErrors) : 0),
      },
    ];
  });
}

const time = (ms: number) => new Date(ms).toISOString().slice(11, 19);

/** `502:1 503:4`, or `0`. */
const byCode = (errors: Readonly<Record<string, number>>): string =>
  Object.entries(errors)
    .filter(([code]) => Number(code) >= 500)
    .map(([code, n]) => `${code}:${n}`)
    .join(' ') || '0';

/** A full-screen frame for a TTY; `prev` (about a second earlier) gives the request rates. */
export function renderFrame(frame: ViewFrame, events: readonly ChangeEvent[], header: string, prev?: ViewFrame): string {
  const lines = [header, ''];
  const rates = new Map(trafficRates(prev, frame).map((r) => [r.capability, r]));
  const traffic = frame.loadBalancer !== undefined;
  const head: [string, number][] = [['CAPABILITY', 12], ['LIVE LEASES', 13], ['REGISTERED', 12], ...(traffic ? ([['REQ/S', 8], ['TARGET 5XX', 12], ['LB 5XX', 14]] as [string, number][]) : [])];
  lines.push(`${head.map(([name, width]) => name.padEnd(width)).join('')}TARGETS (health)`);
  for (const c of frame.capabilities) {
    const targets = [...c.registered, ...(c.draining ?? [])].map((t) => `${targetText(t)}(${tableCell(t.state, 20)})`).join(' ');
    const cells = [cell(c.capability, 12), cell(c.liveLeases, 13), cell(c.registered.length, 12)];
    if (traffic) {
      const rate = rates.get(c.capability);
      cells.push(cell(rate ? rate.requestsPerSecond.toFixed(1) : '-', 8), cell(c.traffic?.target5xx ?? 0, 12), cell(byCode(c.traffic?.loadBalancerErrors ?? {}), 14));
    }
    lines.push(`${cells.join('')}${targets}`);
  }
  lines.push('');
  if (frame.loadBalancer) {
    lines.push(`load balancer ${frame.loadBalancer.endpoint} · 5xx counts since start (TARGET: the agent answered it; LB: the load balancer did) · unknown capability 404s ${frame.loadBalancer.fixedResponses}`);
  }
  if (frame.catalog) {
    const c = frame.catalog;
    lines.push(`catalog GET ${c.path} revision ${c.revision} · ${c.routable} of ${c.capabilities} capabilities routable`);
  }
  lines.push(
    `agents up ${frame.agents.up}, down ${frame.agents.down} · records synced ${frame.syncedRecords} · ELB calls ${frame.elbCalls} · last sync lag ${
      frame.lastSyncLagMs === undefined ? '-' : `${Math.round(frame.lastSyncLagMs)} ms`
    }`,
  );
  lines.push('', 'last changes:');
  for (const e of events.slice(-10)) lines.push(`  ${time(e.at)} ${tableCell(e.text, 200)}`);
  lines.push('', 'Ctrl-C to stop');
  return lines.join('\n');
}

/** `healthy/registered/live` per capability (`registered/live` without health states), for logs and pipes. */
export function summaryLine(frame: ViewFrame): string {
  const withHealth = frame.loadBalancer !== undefined;
  const summary = frame.capabilities
    .map((c) => `${tableCell(c.capability)}=${withHealth ? `${c.registered.filter((t) => t.state === 'healthy').length}/` : ''}${c.registered.length}/${c.liveLeases}`)
    .join(' ');
  const catalog = frame.catalog ? ` · catalog revision ${frame.catalog.revision}` : '';
  return `${time(frame.at)} ${withHealth ? 'healthy/registered/live' : 'registered/live'} ${summary}${catalog}`;
}

/** One line per change or summary, for logs and pipes. */
export function renderLines(frame: ViewFrame, events: readonly ChangeEvent[]): string[] {
  return [...events.map((e) => `${time(e.at)} ${tableCell(e.text, 200)}`), summaryLine(frame)];
}

/** One line of traffic between two frames, for logs and pipes: `vision 4.9 req/s 5xx target 0 lb 0 · …`. */
export function renderTraffic(prev: ViewFrame, frame: ViewFrame): string {
  const rates = trafficRates(prev, frame)
    .map((r) => `${tableCell(r.capability)} ${r.requestsPerSecond.toFixed(1)} req/s 5xx target ${r.target5xx} lb ${r.loadBalancer5xx}`)
    .join(' · ');
  return `${time(frame.at)} traffic over ${Math.round((frame.at - prev.at) / 1000)} s: ${rates}`;
}

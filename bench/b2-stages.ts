/**
 * Profiling aid (not part of `npm run bench`): where B2's registration time goes, stage by stage,
 * for one arm of ours — PutItem → acked → record read from the stream → confirming read →
 * RegisterTargets sent → returned → seen by the observer — with every DynamoDB, Streams and ELB
 * call of the join timed by kind (registry UpdateItems by writer and state), the CPU each process
 * used and the event loop's delay. Run it under the heavy lock:
 *
 *   flock /work/.heavy.lock env B2_CONF=deployed B2_WARM=10 npx tsx bench/b2-stages.ts
 *
 * B2_CONF: deployed | local | short (the batching); B2_WARM: DynamoDB Local warm-up seconds;
 * B2_AGENTS (500); B2_NOREGW=1: the registry's writes into leases become no-ops (what they cost
 * is the difference); B2_PROF=<file>: a CPU profile of this process over the join.
 * Measured with it (issue 17): the registry's `healthy` writes, not the rotation poll's reads nor
 * the records they cause in the sync handler, were what slowed registrations.
 */
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DEPLOYED_BATCHING, LOCAL_BATCHING, runOnce, SHORT_WINDOW } from './b2-end-to-end';
import { TargetObserver } from './target-observer';
const backlog: number[] = [];
const origPoll = (TargetObserver.prototype as any).poll;
(TargetObserver.prototype as any).poll = function (arn: string, group: Map<string, unknown>) {
  backlog.push(group.size);
  return origPoll.call(this, arn, group);
};
const seenAt = new Map<string, number>();
const origWait = (TargetObserver.prototype as any).waitFor;
(TargetObserver.prototype as any).waitFor = function (arn: string, id: string, port: number, want: string) {
  const p: Promise<number> = origWait.call(this, arn, id, port, want);
  if (want === 'present') void p.then((t) => setFirst(seenAt, `${arn}|${id}:${port}`, t));
  return p;
};
import * as leaseStoreModule from '../lib/aws/lease-store';
if (process.env.B2_NOREGW) {
  const proto = (leaseStoreModule as any).LeaseStore?.prototype;
  if (proto?.writeEntries) proto.writeEntries = async (w: any) => ({ written: 0, superseded: w.entries.length, gone: 0, updates: 0, changed: 0 });
}

type Call = { cmd: string; start: number; end: number; ok: boolean; n?: number };
const calls: Record<string, Call[]> = { ddb: [], streams: [], elb: [] };
const putIssued = new Map<string, number>();
const putAcked = new Map<string, number>();
const streamSeen = new Map<string, number>();
const confirmStart = new Map<string, number>();
const confirmEnd = new Map<string, number>();
const regStart = new Map<string, number>();
const regEnd = new Map<string, number>();
let streamRecords = 0;
let streamModify = 0;

function patch(cls: any, label: string, onReq?: (cmd: string, input: any, t: number) => void, onRes?: (cmd: string, input: any, out: any, t: number) => void) {
  const orig = cls.prototype.send;
  cls.prototype.send = async function (command: any, ...rest: any[]) {
    let cmd = command.constructor.name.replace(/Command$/, '');
    if (cmd === 'UpdateItem') cmd += String(command.input.UpdateExpression).includes('#expiresAt') ? '.heartbeat' : String(command.input.UpdateExpression).includes('#status') ? '.status' : '.registry';
    if (cmd === 'UpdateItem.registry') {
      const st = new Error().stack ?? '';
      const who = st.includes('pollOnce') ? 'poll' : st.includes('reconcileOnce') ? 'reconcile' : st.includes('syncStreamBatch') ? 'sync' : 'other';
      const states = JSON.stringify(command.input.ExpressionAttributeValues).match(/"state":\{"S":"(\w+)"\}/g)?.map((x: string) => x.slice(14, -2)).sort().join('+') ?? '?';
      cmd += `.${who}.${states}.${command.input.UpdateExpression.includes(' = :w') ? 'whole' : 'inplace'}`;
    }
    const start = performance.now();
    onReq?.(cmd, command.input, start);
    try {
      const out = await orig.call(this, command, ...rest);
      const end = performance.now();
      calls[label].push({ cmd, start, end, ok: true });
      onRes?.(cmd, command.input, out, end);
      return out;
    } catch (e) {
      calls[label].push({ cmd, start, end: performance.now(), ok: false });
      throw e;
    }
  };
}
const setFirst = (m: Map<string, number>, k: string, t: number) => {
  if (!m.has(k)) m.set(k, t);
};
patch(
  DynamoDBClient,
  'ddb',
  (cmd, input, t) => {
    if (cmd === 'PutItem') setFirst(putIssued, input.Item.target.S, t);
    if (cmd === 'BatchGetItem') for (const tbl of Object.values<any>(input.RequestItems)) for (const k of tbl.Keys) if (putIssued.has(k.target.S) && !confirmStart.has(k.target.S)) confirmStart.set(k.target.S, t);
  },
  (cmd, input, _out, t) => {
    if (cmd === 'PutItem') setFirst(putAcked, input.Item.target.S, t);
    if (cmd === 'BatchGetItem') for (const tbl of Object.values<any>(input.RequestItems)) for (const k of tbl.Keys) if (confirmStart.has(k.target.S)) setFirst(confirmEnd, k.target.S, t);
  },
);
patch(DynamoDBStreamsClient, 'streams', undefined, (cmd, _input, out, t) => {
  if (cmd !== 'GetRecords') return;
  for (const r of out.Records ?? []) {
    streamRecords++;
    if (r.eventName === 'MODIFY') streamModify++;
    const k = r.dynamodb?.Keys?.target?.S;
    if (k && r.eventName === 'INSERT' && putIssued.has(k)) setFirst(streamSeen, k, t);
  }
});
patch(
  ElasticLoadBalancingV2Client,
  'elb',
  (cmd, input, t) => {
    if (cmd === 'RegisterTargets') for (const x of input.Targets) setFirst(regStart, `${input.TargetGroupArn}|${x.Id}:${x.Port}`, t);
  },
  (cmd, input, _out, t) => {
    if (cmd === 'RegisterTargets') for (const x of input.Targets) setFirst(regEnd, `${input.TargetGroupArn}|${x.Id}:${x.Port}`, t);
  },
);

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]);
};
const dist = (xs: number[]) => `n=${xs.length} p50=${pct(xs, 50)} p90=${pct(xs, 90)} p99=${pct(xs, 99)} max=${pct(xs, 100)}`;

function cpuOf(pattern: string): number {
  try {
    const out = execSync(`ps -eo pid,ppid,time,args | grep -E '${pattern}' | grep -v grep`, { encoding: 'utf8' });
    return out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[2])
      .map((t) => {
        const [h, m, s] = t.replace(/^(\d+)-/, '').split(':').map(Number);
        return h * 3600 + m * 60 + s;
      })
      .reduce((a, b) => a + b, 0);
  } catch {
    return 0;
  }
}

async function main() {
  const which = (process.env.B2_CONF ?? 'deployed') as 'deployed' | 'local' | 'short';
  const batching = which === 'deployed' ? DEPLOYED_BATCHING : which === 'local' ? LOCAL_BATCHING : SHORT_WINDOW;
  const agents = Number(process.env.B2_AGENTS ?? 500);
  const elDelay = monitorEventLoopDelay({ resolution: 10 });
  const log = (l: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${l}`);
  let joinStart = 0;
  let joinEnd = 0;
  const cpu0: Record<string, number> = {};
  const cpu1: Record<string, number> = {};
  const prof = process.env.B2_PROF ? new Session() : undefined;
  if (prof) { prof.connect(); prof.post('Profiler.enable'); prof.post('Profiler.setSamplingInterval', { interval: 500 }); }
  const samples = () => ({ java: cpuOf('DynamoDBLocal'), moto: cpuOf('moto_launcher'), node: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 });
  const res = await runOnce(
    'ours',
    {
      agents,
      ttlSeconds: 15,
      pollIntervalMs: 250,
      reconcileIntervalMs: 5000,
      joinRatePerSecond: 100,
      observerIntervalMs: 50,
      warmUpSeconds: Number(process.env.B2_WARM ?? 10),
      seed: 5,
      crashes: Math.round(agents / 5),
      releases: Math.round(agents / 5),
      steadySeconds: 15,
      log: (l: string) => {
        log(l);
        if (l.includes('join…')) {
          if (prof) prof.post('Profiler.start');
          joinStart = performance.now();
          elDelay.enable();
          Object.assign(cpu0, samples());
        }
        if (l.includes('steady…')) {
          if (prof) prof.post('Profiler.stop', (err, out: any) => { if (!err) writeFileSync(process.env.B2_PROF!, JSON.stringify(out.profile)); });
          joinEnd = performance.now();
          elDelay.disable();
          Object.assign(cpu1, samples());
        }
      },
    },
    batching,
  );
  const f = res.figures;
  console.log(`conf ${which} ${JSON.stringify(batching)}`);
  console.log('registrationElbAckMs', JSON.stringify(f.registrationElbAckMs));
  console.log('registrationMs', JSON.stringify(f.registrationMs));
  console.log('pollerLag', JSON.stringify(f.pollerLagMs), 'confirmRead', JSON.stringify(f.confirmReadMs), 'batches', f.batches, 'maxCalls', f.maxCallsToOneGroupPerBatch);
  console.log('observer', JSON.stringify(f.observer));
  console.log(`join ${Math.round(joinEnd - joinStart)} ms; event loop delay ms p50 ${(elDelay.percentile(50) / 1e6).toFixed(1)} p99 ${(elDelay.percentile(99) / 1e6).toFixed(1)} max ${(elDelay.max / 1e6).toFixed(1)}`);
  const secs = (joinEnd - joinStart) / 1000;
  for (const k of Object.keys(cpu0)) console.log(`cpu ${k}: ${((cpu1[k] - cpu0[k]) / secs).toFixed(2)} cores over join`);
  // per-key timeline (agent key), register keyed by group|key: take each key's first group
  const stages: Record<string, number[]> = { 'put→ack': [], 'put→streamSeen': [], 'seen→confirmStart': [], 'confirmRead': [], 'confirmEnd→regStart': [], 'regCall': [], 'put→regEnd': [] };
  for (const [gk, end] of regEnd) {
    const key = gk.slice(gk.indexOf('|') + 1);
    const p = putIssued.get(key);
    if (p === undefined || end < joinStart || p > joinEnd) continue;
    const a = putAcked.get(key)!;
    const seen = streamSeen.get(key);
    const cs = confirmStart.get(key);
    const ce = confirmEnd.get(key);
    const rs = regStart.get(gk)!;
    stages['put→ack'].push(a - p);
    if (seen) stages['put→streamSeen'].push(seen - p);
    if (seen && cs) stages['seen→confirmStart'].push(cs - seen);
    if (cs && ce) stages['confirmRead'].push(ce - cs);
    if (ce) stages['confirmEnd→regStart'].push(rs - ce);
    stages['regCall'].push(end - rs);
    stages['put→regEnd'].push(end - p);
  }
  for (const [k, v] of Object.entries(stages)) console.log(`stage ${k.padEnd(22)} ${dist(v)}`);
  const inJoin = (c: Call) => c.start >= joinStart && c.start <= joinEnd;
  for (const [label, list] of Object.entries(calls)) {
    const by: Record<string, number[]> = {};
    const fails: Record<string, number> = {};
    for (const c of list.filter(inJoin)) {
      (by[c.cmd] ??= []).push(c.end - c.start);
      if (!c.ok) fails[c.cmd] = (fails[c.cmd] ?? 0) + 1;
    }
    for (const [cmd, d] of Object.entries(by)) console.log(`calls ${label}.${cmd.padEnd(22)} ${(d.length / secs).toFixed(1)}/s ${dist(d)} failed ${fails[cmd] ?? 0}`);
    const all: Record<string, number> = {};
    for (const c of list) all[c.cmd] = (all[c.cmd] ?? 0) + 1;
    console.log(`whole run ${label}: ${JSON.stringify(all)}`);
  }
  const gaps: number[] = [];
  for (const [k, end] of regEnd) { const t = seenAt.get(k); if (t !== undefined && end >= joinStart && end <= joinEnd + 5000) gaps.push(t - end); }
  console.log(`observer regEnd→seen ${dist(gaps)}`);
  console.log(`observer backlog per call ${dist(backlog)}`);
  console.log(`stream records read ${streamRecords} (MODIFY ${streamModify})`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);

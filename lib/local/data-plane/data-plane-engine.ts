import { ConfigError } from '../../core/errors';
import type { Rule, TargetHealth, TargetHealthDescription } from '@aws-sdk/client-elastic-load-balancing-v2';
import { anomalyDetection, evaluateWindow, recordOutcome } from './anomaly-mitigation';
import { DataPlaneMetrics, ResponseTally, TargetGroupMetrics } from './data-plane-metrics';
import {
  HealthCheckFailure,
  healthCheckSettings,
  isChecked,
  nextCheckAt,
  nextTargetHealth,
  registeredTarget,
  TargetHealthEvent,
  TargetHealthRecord,
} from './health-checks';
import { ListenerRequest, unsupportedRuleFeatures } from './listener-rules';
import { LoadBalancerSnapshot, readRegisteredTarget, TargetAddressResolver, TargetHealthChange, targetIdIsAddress, targetKey } from './snapshot';
import { targetGroupPolicy } from './target-group-attributes';
import { CandidateTarget, entersSlowStart, routableTargets, slowStartWeight } from './target-selection';
import { routeRequest, RoutingDecision } from './request-routing';
import { RoutingView, TrackedGroup, TrackedTarget } from './tracked-state';

export type { TrackedGroup, TrackedTarget } from './tracked-state';

/**
 * The data plane's state and decisions, without I/O: it takes snapshots of the ELB state,
 * health check results, the passing of time and finished requests, and answers which target a
 * request goes to, which checks are due, and what changed in target health. The HTTP runtime
 * ({@link LoadBalancer}) drives it with a real clock, sockets and timers; tests drive it with
 * numbers.
 */

export interface EngineOptions {
  /** Signs stickiness cookies. */
  readonly stickinessKey: Buffer;
  /** Multiplies health check interval and timeout, deregistration delay and slow start. @default 1 */
  readonly timeScale?: number;
  /** Uniform in [0, 1). @default Math.random */
  readonly random?: () => number;
  readonly resolveTarget?: TargetAddressResolver;
  /** Length of an anomaly detection window. @default 5000 × timeScale */
  readonly anomalyWindowMs?: number;
}

/** A health check to run now. */
export interface HealthCheckJob {
  readonly targetGroupArn: string;
  readonly targetKey: string;
  readonly protocol: 'HTTP' | 'HTTPS';
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly timeoutMs: number;
  readonly isHealthyCode: (statusCode: number) => boolean;
  /** Which registration of the target the check belongs to (a late result of an earlier one is dropped). */
  readonly generation: number;
}

export type HealthCheckOutcome = { readonly passed: true } | { readonly passed: false; readonly failure: HealthCheckFailure };

/** How a forwarded request ended. */
export type ForwardOutcome = { readonly by: 'target'; readonly statusCode: number } | { readonly by: 'load-balancer'; readonly statusCode: 502 | 504 };

export class DataPlaneEngine implements RoutingView {
  public rules: readonly Rule[] = [];
  public listenerPort?: number;
  public readonly groups = new Map<string, TrackedGroup>();
  private readonly listenerTally = new ResponseTally();
  private fixedResponses = 0;
  private readonly reportedProblems = new Set<string>();
  public readonly timeScale: number;
  public readonly random: () => number;
  public readonly stickinessKey: Buffer;
  private readonly resolveTarget: TargetAddressResolver;
  private readonly anomalyWindowMs: number;
  private generations = 0;

  public constructor(options: EngineOptions) {
    this.timeScale = options.timeScale ?? 1;
    if (!(this.timeScale > 0)) throw new ConfigError(`timeScale must be a positive factor, got ${JSON.stringify(options.timeScale)}`);
    this.random = options.random ?? Math.random;
    this.stickinessKey = options.stickinessKey;
    this.resolveTarget = options.resolveTarget ?? targetIdIsAddress;
    this.anomalyWindowMs = options.anomalyWindowMs ?? 5000 * this.timeScale;
  }

  /** Takes a new snapshot: targets that appeared register, targets that left start draining. */
  public applySnapshot(snapshot: LoadBalancerSnapshot, now: number): { changes: TargetHealthChange[]; problems: string[] } {
    const changes: TargetHealthChange[] = [];
    const problems: string[] = [...unsupportedRuleFeatures(snapshot.rules)];
    this.rules = snapshot.rules;
    this.listenerPort = snapshot.listenerPort;
    const used = usedTargetGroups(snapshot.rules);
    const seen = new Set<string>();
    for (const entry of snapshot.targetGroups) {
      const arn = entry.targetGroup.TargetGroupArn;
      if (arn === undefined) continue;
      seen.add(arn);
      const health = healthCheckSettings(entry.targetGroup, this.timeScale);
      const policy = targetGroupPolicy(arn, entry.attributes ?? [], this.timeScale);
      problems.push(...health.problems, ...policy.problems);
      let group = this.groups.get(arn);
      const lambda = lambdaTargetsOf(entry);
      if (group === undefined) {
        group = { arn, group: entry.targetGroup, settings: health.settings, policy: policy.policy, inUse: used.has(arn), targets: new Map(), roundRobin: new Map(), anomaly: new Map(), tally: new ResponseTally(), ...lambda };
        this.groups.set(arn, group);
      } else if (lambda.lambda !== undefined) {
        Object.assign(group, { group: entry.targetGroup, inUse: used.has(arn), ...lambda });
      } else {
        const wasEnabled = group.settings.enabled;
        const wasInUse = group.inUse;
        Object.assign(group, { group: entry.targetGroup, settings: health.settings, policy: policy.policy, inUse: used.has(arn) });
        for (const target of [...group.targets.values()]) {
          if (wasInUse !== group.inUse) this.transition(group, target, { type: group.inUse ? 'group-in-use' : 'group-unused', at: now }, changes);
          if (wasEnabled !== group.settings.enabled) this.transition(group, target, { type: group.settings.enabled ? 'health-checks-enabled' : 'health-checks-disabled', at: now }, changes);
        }
      }
      // A Lambda target group has no addresses to check or drain: its function is invoked per request.
      if (lambda.lambda === undefined) this.reconcileTargets(group, entry.targets, now, changes);
    }
    for (const arn of [...this.groups.keys()]) if (!seen.has(arn)) this.groups.delete(arn);
    const fresh = problems.filter((p) => !this.reportedProblems.has(p));
    for (const p of fresh) this.reportedProblems.add(p);
    return { changes, problems: fresh };
  }

  private reconcileTargets(group: TrackedGroup, entries: LoadBalancerSnapshot['targetGroups'][number]['targets'], now: number, changes: TargetHealthChange[]): void {
    const wanted = new Map<string, { Id: string; Port: number }>();
    for (const entry of entries) {
      const { description, deregistered } = readRegisteredTarget(entry);
      const port = description?.Port ?? group.group.Port;
      if (description === undefined || deregistered || port === undefined) continue;
      wanted.set(targetKey(description.Id as string, port), { Id: description.Id as string, Port: port });
    }
    for (const [key, t] of wanted) {
      const tracked = group.targets.get(key);
      if (tracked === undefined) {
        const { host, port } = this.resolveTarget(group.group, t);
        const record = group.inUse ? registeredTarget(now, group.settings) : nextTargetHealth(registeredTarget(now, group.settings), { type: 'group-unused', at: now }, group.settings);
        const target: TrackedTarget = { id: t.Id, port: t.Port, key, host, trafficPort: port, record, generation: ++this.generations, registeredAt: now, outstanding: 0, tally: new ResponseTally() };
        group.targets.set(key, target);
        changes.push(change(group.arn, target, record, undefined, now));
      } else if (tracked.record.state === 'draining') {
        tracked.generation = ++this.generations;
        tracked.registeredAt = now;
        tracked.checkStartedAt = undefined;
        tracked.checkEndedAt = undefined;
        this.transition(group, tracked, { type: 'registered', at: now }, changes);
      }
    }
    for (const target of [...group.targets.values()]) {
      if (wanted.has(target.key) || target.record.state === 'draining') continue;
      this.transition(group, target, { type: 'deregistered', at: now, delayMs: group.policy.deregistrationDelayMs }, changes);
      // Nothing in flight: ALB completes the deregistration at once.
      if (target.outstanding === 0) this.transition(group, target, { type: 'drained', at: now }, changes);
    }
  }

  /** A request on `target` ended: a draining target with nothing left in flight completes its deregistration now. */
  private completeIfDrained(group: TrackedGroup, target: TrackedTarget, now: number): TargetHealthChange[] {
    const changes: TargetHealthChange[] = [];
    if (target.record.state === 'draining' && target.outstanding === 0) this.transition(group, target, { type: 'drained', at: now }, changes);
    return changes;
  }

  /** Applies one event to a target; records the change and its consequences for routing. */
  private transition(group: TrackedGroup, target: TrackedTarget, event: TargetHealthEvent, changes: TargetHealthChange[]): void {
    const before = target.record;
    const after = nextTargetHealth(before, event, group.settings);
    if (after === before) return;
    target.record = after;
    if (after.state === before.state && after.reason === before.reason && after.description === before.description) return;
    const routable = (s: string) => s === 'healthy' || s === 'unavailable';
    if (routable(after.state) && !routable(before.state)) {
      const others = [...group.targets.values()].filter((t) => t !== target).map((t) => this.candidate(t));
      target.slowStartSince = entersSlowStart(others, event.at, group.policy.slowStartMs) ? event.at : undefined;
    } else if (!routable(after.state)) {
      target.slowStartSince = undefined;
    }
    changes.push(change(group.arn, target, after, before, event.at));
    if (after.state === 'unused' && after.reason === 'Target.NotRegistered') group.targets.delete(target.key);
  }

  private candidate(t: TrackedTarget, group?: TrackedGroup): CandidateTarget {
    const mitigation = group?.policy.anomalyMitigation ? group.anomaly.get(t.key)?.weight : undefined;
    return {
      key: t.key,
      state: t.record.state,
      outstanding: t.outstanding,
      ...(t.slowStartSince !== undefined ? { slowStartSince: t.slowStartSince } : {}),
      ...(mitigation !== undefined ? { mitigationWeight: mitigation } : {}),
    };
  }

  /** The candidates of a group for target selection. */
  public candidates(group: TrackedGroup): CandidateTarget[] {
    return [...group.targets.values()].map((t) => this.candidate(t, group));
  }

  /**
   * Decides where a request goes. A `forward` decision counts the request as outstanding on its
   * target until {@link finished} is called with it.
   */
  public route(request: ListenerRequest, now: number): RoutingDecision {
    this.listenerTally.requests++;
    const decision = routeRequest(this, request, now);
    switch (decision.kind) {
      case 'forward': {
        const group = this.groups.get(decision.targetGroupArn);
        const target = group?.targets.get(decision.targetKey);
        if (group !== undefined && target !== undefined) {
          group.tally.requests++;
          target.tally.requests++;
          target.outstanding++;
        }
        break;
      }
      case 'fixed-response':
        this.fixedResponses++;
        break;
      case 'invoke': {
        const group = this.groups.get(decision.targetGroupArn);
        if (group !== undefined) group.tally.requests++;
        break;
      }
      case 'load-balancer-error':
        this.listenerTally.countLoadBalancer(decision.statusCode);
        if (decision.targetGroupArn !== undefined) {
          const group = this.groups.get(decision.targetGroupArn);
          if (group !== undefined) {
            group.tally.requests++;
            group.tally.countLoadBalancer(decision.statusCode);
          }
        }
        break;
    }
    return decision;
  }

  /**
   * A forwarded request ended (response sent, or the load balancer answered 502/504 for it).
   * Returns the health changes it causes: a draining target whose last request this was completes its deregistration.
   */
  public finished(decision: Extract<RoutingDecision, { kind: 'forward' }>, outcome: ForwardOutcome, now: number): TargetHealthChange[] {
    const group = this.groups.get(decision.targetGroupArn);
    // The target may be gone already: its draining ended while the request was in flight.
    const target = group?.targets.get(decision.targetKey);
    for (const tally of [this.listenerTally, group?.tally, target?.tally]) {
      if (tally === undefined) continue;
      if (outcome.by === 'target') tally.countTarget(outcome.statusCode);
      else tally.countLoadBalancer(outcome.statusCode);
    }
    if (group === undefined || target === undefined) return [];
    target.outstanding = Math.max(0, target.outstanding - 1);
    const failed = outcome.by === 'load-balancer' || outcome.statusCode >= 500;
    if (group.policy.algorithm === 'weighted_random') group.anomaly = recordOutcome(group.anomaly, target.key, failed);
    return this.completeIfDrained(group, target, now);
  }

  /** An invoked Lambda function's request ended: counted as the target's answer, or the load balancer's 502/413. */
  public invoked(decision: Extract<RoutingDecision, { kind: 'invoke' }>, outcome: ForwardOutcome | { readonly by: 'load-balancer'; readonly statusCode: 413 }): void {
    for (const tally of [this.listenerTally, this.groups.get(decision.targetGroupArn)?.tally]) {
      if (tally === undefined) continue;
      if (outcome.by === 'target') tally.countTarget(outcome.statusCode);
      else tally.countLoadBalancer(outcome.statusCode);
    }
  }

  /** A forwarded request ended without an answer because the client left (ALB logs 460): it no longer counts as outstanding. */
  public abandoned(decision: Extract<RoutingDecision, { kind: 'forward' }>, now: number): TargetHealthChange[] {
    this.listenerTally.countLoadBalancer(460);
    const group = this.groups.get(decision.targetGroupArn);
    const target = group?.targets.get(decision.targetKey);
    if (group === undefined || target === undefined) return [];
    target.outstanding = Math.max(0, target.outstanding - 1);
    return this.completeIfDrained(group, target, now);
  }

  /** The checks due now; each is marked running until {@link recordCheck}. */
  public dueChecks(now: number): HealthCheckJob[] {
    const jobs: HealthCheckJob[] = [];
    for (const group of this.groups.values()) {
      if (!group.settings.enabled || !group.inUse) continue;
      for (const t of group.targets.values()) {
        if (!isChecked(t.record) || nextCheckAt(t.checkStartedAt, t.checkEndedAt, t.registeredAt, group.settings) > now) continue;
        t.checkStartedAt = now;
        const s = group.settings;
        jobs.push({
          targetGroupArn: group.arn,
          targetKey: t.key,
          protocol: s.protocol,
          host: t.host,
          port: s.port === 'traffic-port' ? t.trafficPort : s.port,
          path: s.path,
          timeoutMs: s.timeoutMs,
          isHealthyCode: s.isHealthyCode,
          generation: t.generation,
        });
      }
    }
    return jobs;
  }

  /** The result of a check; dropped when the target left or registered again since. */
  public recordCheck(job: HealthCheckJob, outcome: HealthCheckOutcome, now: number): TargetHealthChange[] {
    const group = this.groups.get(job.targetGroupArn);
    const target = group?.targets.get(job.targetKey);
    if (group === undefined || target === undefined || target.generation !== job.generation) return [];
    target.checkEndedAt = now;
    const changes: TargetHealthChange[] = [];
    this.transition(group, target, outcome.passed ? { type: 'check-passed', at: now } : { type: 'check-failed', at: now, failure: outcome.failure }, changes);
    return changes;
  }

  /** Lets time pass: ends draining that is over and closes anomaly detection windows. */
  public tick(now: number): TargetHealthChange[] {
    const changes: TargetHealthChange[] = [];
    for (const group of this.groups.values()) {
      for (const t of [...group.targets.values()]) if (t.record.state === 'draining') this.transition(group, t, { type: 'tick', at: now }, changes);
      if (group.policy.algorithm !== 'weighted_random') continue;
      if (group.anomalyWindowEndsAt === undefined) group.anomalyWindowEndsAt = now + this.anomalyWindowMs;
      else if (now >= group.anomalyWindowEndsAt) {
        const healthy = [...group.targets.values()].filter((t) => t.record.state === 'healthy').map((t) => t.key);
        group.anomaly = evaluateWindow(group.anomaly, healthy, group.policy.anomalyMitigation);
        group.anomalyWindowEndsAt = now + this.anomalyWindowMs;
      }
    }
    return changes;
  }

  /** When something is next due (a check, the end of a draining, an anomaly window); `undefined` when nothing is. */
  public nextWakeAt(): number | undefined {
    let next = Number.POSITIVE_INFINITY;
    for (const group of this.groups.values()) {
      if (group.anomalyWindowEndsAt !== undefined) next = Math.min(next, group.anomalyWindowEndsAt);
      for (const t of group.targets.values()) {
        if (t.record.state === 'draining' && t.record.drainingUntil !== undefined) next = Math.min(next, t.record.drainingUntil);
        if (group.settings.enabled && group.inUse && isChecked(t.record)) next = Math.min(next, nextCheckAt(t.checkStartedAt, t.checkEndedAt, t.registeredAt, group.settings));
      }
    }
    return Number.isFinite(next) ? next : undefined;
  }

  /** DescribeTargetHealth for one group as the data plane sees it. */
  public describeTargetHealth(targetGroupArn: string): TargetHealthDescription[] {
    const group = this.groups.get(targetGroupArn);
    if (group === undefined) return [];
    return [...group.targets.values()].map((t) => ({
      Target: { Id: t.id, Port: t.port },
      HealthCheckPort: String(group.settings.port === 'traffic-port' ? t.trafficPort : group.settings.port),
      TargetHealth: health(t.record),
      ...(group.policy.algorithm === 'weighted_random' ? { AnomalyDetection: anomalyDetection(group.anomaly, t.key) } : {}),
    }));
  }

  public metrics(now: number): DataPlaneMetrics {
    const groups: TargetGroupMetrics[] = [...this.groups.values()].map((g) => {
      const candidates = this.candidates(g);
      const healthy = candidates.filter((c) => c.state === 'healthy' || c.state === 'unavailable').length;
      const unhealthy = candidates.filter((c) => c.state === 'unhealthy').length;
      const failOpen = routableTargets(candidates, g.policy).failOpen;
      return {
        targetGroupArn: g.arn,
        ...(g.group.TargetGroupName !== undefined ? { targetGroupName: g.group.TargetGroupName } : {}),
        algorithm: g.policy.algorithm,
        requests: g.tally.requests,
        targetResponses: g.tally.targetCounts(),
        loadBalancerErrors: g.tally.loadBalancerCounts(),
        healthyHostCount: healthy,
        unhealthyHostCount: unhealthy,
        failOpen,
        targets: [...g.targets.values()].map((t) => ({
          id: t.id,
          port: t.port,
          state: t.record.state,
          ...(t.record.reason !== undefined ? { reason: t.record.reason, description: t.record.description } : {}),
          outstanding: t.outstanding,
          requests: t.tally.requests,
          targetResponses: t.tally.targetCounts(),
          loadBalancerErrors: t.tally.loadBalancerCounts(),
          slowStartWeight: slowStartWeight(t, now, g.policy.slowStartMs),
          ...(g.policy.algorithm === 'weighted_random' ? { anomalyDetection: anomalyDetection(g.anomaly, t.key) } : {}),
        })),
      };
    });
    return {
      requests: this.listenerTally.requests,
      fixedResponses: this.fixedResponses,
      loadBalancerErrors: this.listenerTally.loadBalancerCounts(),
      targetResponses: this.listenerTally.targetCounts(),
      targetGroups: groups,
    };
  }
}

function health(record: TargetHealthRecord): TargetHealth {
  return { State: record.state, ...(record.reason !== undefined ? { Reason: record.reason, Description: record.description } : {}) };
}

function change(arn: string, target: TrackedTarget, after: TargetHealthRecord, before: TargetHealthRecord | undefined, at: number): TargetHealthChange {
  return { targetGroupArn: arn, target: { Id: target.id, Port: target.port }, health: health(after), ...(before ? { previous: health(before) } : {}), at };
}

/** A Lambda target group's functions (its registered targets' ids) and whether it sends multi-value headers; `{}` for any other group. */
function lambdaTargetsOf(entry: LoadBalancerSnapshot['targetGroups'][number]): Pick<TrackedGroup, 'lambda'> {
  if (entry.targetGroup.TargetType !== 'lambda') return {};
  const functions = entry.targets.flatMap((t) => {
    const { description, deregistered } = readRegisteredTarget(t);
    return description?.Id !== undefined && !deregistered ? [description.Id] : [];
  });
  const multiValueHeaders = entry.attributes?.find((a) => a.Key === 'lambda.multi_value_headers.enabled')?.Value === 'true';
  return { lambda: { functions, multiValueHeaders } };
}

/** Target groups some rule forwards to ("specified in a listener rule"), weight 0 included. */
function usedTargetGroups(rules: readonly Rule[]): Set<string> {
  const used = new Set<string>();
  for (const rule of rules) {
    for (const action of rule.Actions ?? []) {
      if (action.TargetGroupArn) used.add(action.TargetGroupArn);
      for (const t of action.ForwardConfig?.TargetGroups ?? []) if (t.TargetGroupArn) used.add(t.TargetGroupArn);
    }
  }
  return used;
}

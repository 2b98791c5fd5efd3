import { Duration, Token } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { CAPABILITY_NAME } from '../core/lease-schema';
import { portRangeProblem } from '../core/port-ranges';

/** Ports or ranges one capability may list: each becomes security group rules, and a group holds 60. */
export const MAX_PORT_ENTRIES = 10;
import { maxRequestDurationProblem } from '../core/request-duration';
import type { CapabilityProps } from './capability-props';
import { AgentLbValidationError } from './validation-error';
import type { IConstruct } from 'constructs';

function seconds(d: Duration): number | undefined {
  const s = d.toSeconds({ integral: false });
  return Token.isUnresolved(s) ? undefined : s;
}

function known(n: number | undefined): n is number {
  return n !== undefined && !Token.isUnresolved(n);
}

/**
 * Checks one capability's props against ELB's limits; throws at the first problem, quoting the
 * value and the allowed range. Tokens are skipped. `slots` bounds a pinned priority.
 */
export function validateCapability(scope: IConstruct, c: CapabilityProps, index: number, slots: number): void {
  if (typeof c.name !== 'string' || !CAPABILITY_NAME.test(c.name)) {
    throw new AgentLbValidationError(scope,
      `Capability name ${JSON.stringify(c.name)} (capabilities[${index}]) must match ${CAPABILITY_NAME.source}: ` +
        '1–63 lowercase letters, digits, "_" or "-", starting with a letter or digit',
    );
  }
  const where = `Capability "${c.name}"`;
  if (c.targetType !== undefined && c.targetType !== 'ip' && c.targetType !== 'instance') {
    throw new AgentLbValidationError(scope, `${where}: targetType ${JSON.stringify(c.targetType)} must be "ip" or "instance"`);
  }
  if (c.protocol !== undefined && c.protocol !== elbv2.ApplicationProtocol.HTTP && c.protocol !== elbv2.ApplicationProtocol.HTTPS) {
    throw new AgentLbValidationError(scope, `${where}: protocol ${JSON.stringify(c.protocol)} must be "HTTP" or "HTTPS"`);
  }
  if (known(c.port) && !(Number.isInteger(c.port) && c.port >= 1 && c.port <= 65535)) {
    throw new AgentLbValidationError(scope, `${where}: port ${c.port} is out of range 1–65535`);
  }
  if (c.ports !== undefined) {
    if (!Array.isArray(c.ports) || c.ports.length === 0 || c.ports.length > MAX_PORT_ENTRIES) {
      throw new AgentLbValidationError(scope, `${where}: ports must list 1–${MAX_PORT_ENTRIES} ports or ranges, got ${JSON.stringify(c.ports)}`);
    }
    for (const p of c.ports as readonly unknown[]) {
      // A JavaScript app (or a typo) can pass anything: "9000-9099" as a string is not a range here.
      if (typeof p !== 'number' && (typeof p !== 'object' || p === null || !('from' in p) || !('to' in p))) {
        throw new AgentLbValidationError(scope, `${where}: ports entry ${JSON.stringify(p)} must be a port number or { from, to } (e.g. 8080 or { from: 9000, to: 9099 })`);
      }
      const range = typeof p === 'number' ? { from: p, to: p } : (p as { from: number; to: number });
      if (!known(range.from) || !known(range.to)) continue;
      const problem = portRangeProblem(range);
      if (problem) throw new AgentLbValidationError(scope, `${where}: ${problem}`);
    }
  }
  if (c.admittedSecurityGroups !== undefined && c.admittedSecurityGroups.length === 0) {
    throw new AgentLbValidationError(scope, `${where}: admittedSecurityGroups must name at least one security group (leave it out to admit the agents' security group)`);
  }
  if (known(c.priority) && !(Number.isInteger(c.priority) && c.priority >= 1 && c.priority <= slots)) {
    throw new AgentLbValidationError(scope, `${where}: priority ${c.priority} is out of range 1–${slots}`);
  }
  const dereg = c.deregistrationDelay && seconds(c.deregistrationDelay);
  if (dereg !== undefined && !(Number.isInteger(dereg) && dereg >= 0 && dereg <= 3600)) {
    throw new AgentLbValidationError(scope, `${where}: deregistration delay ${dereg} seconds is out of range 0–3600 seconds`);
  }
  const maxRequest = c.maxRequestDuration && seconds(c.maxRequestDuration);
  const maxRequestProblem = maxRequest !== undefined ? maxRequestDurationProblem(maxRequest) : undefined;
  if (maxRequestProblem !== undefined) throw new AgentLbValidationError(scope, `${where}: maxRequestDuration ${maxRequestProblem}`);
  const slow = c.slowStart && seconds(c.slowStart);
  if (slow !== undefined && slow !== 0 && !(Number.isInteger(slow) && slow >= 30 && slow <= 900)) {
    throw new AgentLbValidationError(scope, `${where}: slow start ${slow} seconds must be 0 (off) or in 30–900 seconds`);
  }
  const hc = c.healthCheck;
  if (!hc) return;
  if (hc.path !== undefined && !Token.isUnresolved(hc.path) && !(hc.path.startsWith('/') && hc.path.length <= 1024)) {
    throw new AgentLbValidationError(scope, `${where}: health check path ${JSON.stringify(hc.path)} must start with "/" and be at most 1024 characters`);
  }
  if (known(hc.port) && !(Number.isInteger(hc.port) && hc.port >= 1 && hc.port <= 65535)) {
    throw new AgentLbValidationError(scope, `${where}: health check port ${hc.port} is out of range 1–65535`);
  }
  for (const key of ['healthyThresholdCount', 'unhealthyThresholdCount'] as const) {
    const v = hc[key];
    if (known(v) && !(Number.isInteger(v) && v >= 2 && v <= 10)) {
      throw new AgentLbValidationError(scope, `${where}: health check ${key} ${v} is out of range 2–10`);
    }
  }
  const interval = hc.interval && seconds(hc.interval);
  if (interval !== undefined && !(Number.isInteger(interval) && interval >= 5 && interval <= 300)) {
    throw new AgentLbValidationError(scope, `${where}: health check interval ${interval} seconds is out of range 5–300 seconds`);
  }
  const timeout = hc.timeout && seconds(hc.timeout);
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 2 && timeout <= 120)) {
    throw new AgentLbValidationError(scope, `${where}: health check timeout ${timeout} seconds is out of range 2–120 seconds`);
  }
  const effectiveInterval = interval ?? (hc.interval ? undefined : 10);
  const effectiveTimeout = timeout ?? (hc.timeout ? undefined : 5);
  if (effectiveInterval !== undefined && effectiveTimeout !== undefined && effectiveTimeout >= effectiveInterval) {
    throw new AgentLbValidationError(scope, `${where}: health check timeout ${effectiveTimeout} seconds must be less than the interval ${effectiveInterval} seconds`);
  }
  if (hc.healthyHttpCodes !== undefined && !Token.isUnresolved(hc.healthyHttpCodes) && !/^\d{3}(?:-\d{3})?(?:,\d{3}(?:-\d{3})?)*$/.test(hc.healthyHttpCodes)) {
    throw new AgentLbValidationError(scope, `${where}: health check healthyHttpCodes ${JSON.stringify(hc.healthyHttpCodes)} must be codes or ranges like "200" or "200-299,302"`);
  }
}


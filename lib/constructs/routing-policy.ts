import { Duration, Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { CAPABILITY_NAME } from '../core/lease-schema';
import type { CapabilityProps, CapabilityStickiness, LoadBalancingAlgorithm } from './capability-props';
import { AgentLbValidationError } from './validation-error';

/**
 * A capability's routing policy as the router builds it: its algorithm and stickiness with their
 * defaults applied, its variants with the stable group's share, and ALB's incompatible
 * combinations refused (see {@link CapabilityProps} for the documentation they quote).
 */

/** One ALB forward action takes at most 5 target groups (not adjustable): the stable group and 4 variants. */
export const MAX_VARIANTS = 4;
/** ALB's stickiness durations: 1 second to 7 days. */
export const MAX_STICKINESS_SECONDS = 604_800;
/** ALB's default stickiness duration: one day. */
export const DEFAULT_STICKINESS = Duration.days(1);
/** Application cookie names ALB keeps for itself. */
const RESERVED_COOKIE_PREFIXES = ['AWSALB', 'AWSALBAPP', 'AWSALBTG'];
/** A cookie name is an HTTP token (RFC 6265 § 4.1.1). */
const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const VARIANT_NAME = /^[a-z0-9][a-z0-9_-]*$/;
const ALGORITHMS: readonly LoadBalancingAlgorithm[] = ['round_robin', 'least_outstanding_requests', 'weighted_random'];

/** A variant as the router builds it. */
export interface ResolvedVariant {
  /** The variant's own name (`canary`). */
  readonly name: string;
  /** The capability its agents list, `<capability>-<name>`. */
  readonly capability: string;
  /** Percent of the capability's requests, 0–100. */
  readonly weight: number;
}

/** What the target groups and rules of one capability are built from. */
export interface RoutingPolicy {
  readonly algorithm: LoadBalancingAlgorithm;
  /** Whether `algorithm` was the default rather than chosen. */
  readonly algorithmDefaulted: boolean;
  /** `on`/`off` with `weighted_random`; absent otherwise (the attribute exists only there). */
  readonly anomalyMitigation?: boolean;
  /** Absent = off. */
  readonly slowStart?: Duration;
  /** With its duration defaulted. */
  readonly stickiness?: Required<CapabilityStickiness>;
  readonly variants: readonly ResolvedVariant[];
  /** The stable group's weight: 100 − the variants' weights. */
  readonly stableWeight: number;
  /** Target group stickiness of the weighted forward actions; absent = off. */
  readonly variantStickiness?: Duration;
}

function secondsOf(d: Duration): number | undefined {
  const s = d.toSeconds({ integral: false });
  return Token.isUnresolved(s) ? undefined : s;
}

const quote = (v: unknown) => JSON.stringify(v);

/**
 * The policy of capability `c` (already checked by `validateCapability`), or an
 * {@link AgentLbValidationError} of `scope` naming both settings of an incompatible pair.
 */
export function resolveRoutingPolicy(scope: IConstruct, c: CapabilityProps): RoutingPolicy {
  const where = `Capability "${c.name}"`;
  const fail = (message: string): never => {
    throw new AgentLbValidationError(scope, `${where}: ${message}`);
  };

  const slowStartSeconds = c.slowStart && secondsOf(c.slowStart);
  const slowStart = c.slowStart && slowStartSeconds !== 0 ? c.slowStart : undefined;
  if (c.algorithm !== undefined && !ALGORITHMS.includes(c.algorithm)) {
    fail(`algorithm ${quote(c.algorithm)} must be ${ALGORITHMS.map(quote).join(', ').replace(/, ([^,]*)$/, ' or $1')}`);
  }
  const algorithm: LoadBalancingAlgorithm = c.algorithm ?? (slowStart ? 'round_robin' : 'least_outstanding_requests');
  const algorithmText = `algorithm ${quote(algorithm)}${c.algorithm === undefined ? ' (the default)' : ''}`;
  if (slowStart && algorithm === 'least_outstanding_requests') {
    fail(`slowStart ${slowStartSeconds ?? '(token)'} seconds cannot be used with ${algorithmText} (ALB: "The least outstanding requests routing algorithm can not be used with slow start mode"); use algorithm "round_robin" or drop slowStart`);
  }
  if (slowStart && algorithm === 'weighted_random') {
    fail(`slowStart ${slowStartSeconds ?? '(token)'} seconds cannot be used with ${algorithmText} (ALB: "The weighted random routing algorithm can not be used with slow start mode"); use algorithm "round_robin" or drop slowStart`);
  }
  if (c.anomalyMitigation !== undefined && typeof c.anomalyMitigation !== 'boolean') fail(`anomalyMitigation ${quote(c.anomalyMitigation)} must be true or false`);
  if (c.anomalyMitigation && algorithm !== 'weighted_random') {
    fail(`anomalyMitigation cannot be used with ${algorithmText} (ALB: "The anomaly mitigation function of ATW is only available when using the Weighted random routing algorithm"); set algorithm "weighted_random" or drop anomalyMitigation`);
  }

  const stickiness = c.stickiness === undefined ? undefined : resolveStickiness(c.stickiness, fail);
  if (stickiness && algorithm === 'weighted_random') {
    fail(`stickiness ${quote(stickiness.type)} cannot be used with ${algorithmText} (ALB: "The weighted random routing algorithm can not be used with sticky sessions"); choose another algorithm or drop stickiness`);
  }

  const variants = resolveVariants(c, fail);
  if (variants.length > 0 && stickiness?.type === 'app_cookie') {
    fail(`stickiness "app_cookie" cannot be used with variants (ALB: "Application-based stickiness does not work with weighted target groups"); use stickiness "lb_cookie"`);
  }
  let variantStickiness: Duration | undefined;
  if (c.variantStickiness !== undefined) {
    const s = secondsOf(c.variantStickiness);
    if (variants.length === 0) fail(`variantStickiness applies to the weighted forward action of variants; the capability has none`);
    if (s !== undefined && !(Number.isInteger(s) && s >= 0 && s <= MAX_STICKINESS_SECONDS)) {
      fail(`variantStickiness ${s} seconds must be 0 (off) or in 1–${MAX_STICKINESS_SECONDS} seconds (7 days)`);
    }
    if (s === 0 && stickiness) {
      fail(
        `variantStickiness 0 (off) cannot be used with stickiness ${quote(stickiness.type)} (ALB: "If you have a forward action with multiple target groups, and sticky sessions are enabled for one or more of the target groups, you must enable stickiness at the target group level")`,
      );
    }
    variantStickiness = s === 0 ? undefined : c.variantStickiness;
  } else if (variants.length > 0 && stickiness) {
    variantStickiness = stickiness.duration;
  }

  return {
    algorithm,
    algorithmDefaulted: c.algorithm === undefined,
    ...(algorithm === 'weighted_random' ? { anomalyMitigation: c.anomalyMitigation ?? false } : {}),
    ...(slowStart ? { slowStart } : {}),
    ...(stickiness ? { stickiness } : {}),
    variants,
    stableWeight: 100 - variants.reduce((sum, v) => sum + v.weight, 0),
    ...(variantStickiness ? { variantStickiness } : {}),
  };
}

function resolveStickiness(s: CapabilityStickiness, fail: (message: string) => never): Required<CapabilityStickiness> {
  if (typeof s !== 'object' || s === null || (s.type !== 'lb_cookie' && s.type !== 'app_cookie')) {
    fail(`stickiness type ${quote((s as { type?: unknown } | null)?.type)} must be "lb_cookie" or "app_cookie"`);
  }
  const duration = s.duration ?? DEFAULT_STICKINESS;
  const seconds = secondsOf(duration);
  if (seconds !== undefined && !(Number.isInteger(seconds) && seconds >= 1 && seconds <= MAX_STICKINESS_SECONDS)) {
    fail(`stickiness duration ${seconds} seconds is out of range 1–${MAX_STICKINESS_SECONDS} seconds (7 days)`);
  }
  if (s.type === 'lb_cookie') return { type: 'lb_cookie', duration };
  const name = s.cookieName;
  if (name === undefined) fail('stickiness "app_cookie" needs cookieName: the name of the cookie the agents set');
  if (typeof name !== 'string' || (!Token.isUnresolved(name) && !COOKIE_NAME.test(name))) {
    fail(`stickiness cookieName ${quote(name)} must be a cookie name: letters, digits and !#$%&'*+.^_\`|~-`);
  }
  const reserved = Token.isUnresolved(name) ? undefined : RESERVED_COOKIE_PREFIXES.find((p) => name.startsWith(p));
  if (reserved !== undefined) fail(`stickiness cookieName ${quote(name)} starts with ${quote(reserved)}, which ALB reserves (AWSALB, AWSALBAPP, AWSALBTG)`);
  return { type: 'app_cookie', cookieName: name, duration };
}

function resolveVariants(c: CapabilityProps, fail: (message: string) => never): ResolvedVariant[] {
  const variants = c.variants ?? [];
  if (!Array.isArray(variants)) fail(`variants must be a list of { name, weight }`);
  if (variants.length > MAX_VARIANTS) {
    fail(`${variants.length} variants and the stable group make ${variants.length + 1} target groups in one forward action; ALB allows at most 5 (${MAX_VARIANTS} variants)`);
  }
  const seen = new Set<string>();
  const out: ResolvedVariant[] = [];
  for (const [i, v] of variants.entries()) {
    if (typeof v?.name !== 'string' || !VARIANT_NAME.test(v.name)) {
      fail(`variant name ${quote(v?.name)} (variants[${i}]) must be lowercase letters, digits, "_" or "-", starting with a letter or digit`);
    }
    const capability = `${c.name}-${v.name}`;
    if (!CAPABILITY_NAME.test(capability)) fail(`variant "${v.name}" makes capability name "${capability}" of ${capability.length} characters; at most 63`);
    if (seen.has(v.name)) fail(`variant name "${v.name}" appears twice`);
    seen.add(v.name);
    if (typeof v.weight === 'number' && Token.isUnresolved(v.weight)) {
      fail(`variant "${v.name}" weight must be a plain number, not a token: the stable group's share (100 − the variants' weights) is computed at synth`);
    }
    if (typeof v.weight !== 'number' || !(Number.isInteger(v.weight) && v.weight >= 0 && v.weight <= 100)) {
      fail(`variant "${v.name}" weight ${quote(v.weight)} must be a whole percent, 0–100`);
    }
    out.push({ name: v.name, capability, weight: v.weight });
  }
  const total = out.reduce((sum, v) => sum + v.weight, 0);
  if (total > 100) fail(`variant weights add up to ${total} percent (${out.map((v) => `${v.name} ${v.weight}`).join(', ')}); at most 100, the stable group gets the rest`);
  return out;
}

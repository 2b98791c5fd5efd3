import { AddressPolicy, isLoopbackAddress } from './address-policy';
import { LeaseRejection } from './errors';
import { admittedAsLoopback } from './lease-routing';
import { RoutingConfig, TargetRef } from './lease-schema';
import { memberKey } from './reconcile-planner';
import type { AdmissionConfig } from './runtime-config';
import { quoteUntrusted } from './untrusted-text';

/**
 * Admission by AWS facts: a lease says which address serves a capability, EC2 says who holds
 * that address. A target joins a group only when the network interface holding its address (an
 * instance target: the instance) is in the deployment's VPC and carries the agents' security
 * group, or, for a capability with its own list, one of that capability's admitted groups. Pure:
 * the facts are the caller's (lib/aws/ec2-interfaces.ts asks EC2, lib/registry/admission-lookup.ts
 * caches the answers per container).
 */

/** Who holds an address (or what an instance is), as EC2 reports it. */
export interface HolderFacts {
  /** The network interface (`eni-…`) or instance (`i-…`). */
  readonly holder: string;
  readonly vpcId?: string;
  /** Every security group the interface (or any of the instance's interfaces) carries. */
  readonly securityGroupIds: readonly string[];
}

/**
 * EC2's answers by address or instance id: the holder, or `null` when EC2 showed nothing in the
 * VPC holding it. An address without an entry was not answered (the lookup failed or was not made).
 */
export type AdmissionFacts = ReadonlyMap<string, HolderFacts | null>;

/** What admission needs besides the facts. */
export interface AdmissionContext {
  /** Absent: nothing is checked (a hand-written configuration). */
  readonly admission?: AdmissionConfig;
  readonly routing: RoutingConfig;
  readonly policy: AddressPolicy;
}

/** One target a lease wants in one capability's group. */
export interface AdmissionCandidate {
  readonly capability: string;
  readonly targetGroupArn: string;
  readonly target: TargetRef;
}

export type AdmissionDecision =
  | { readonly kind: 'admitted' }
  | { readonly kind: 'not-admitted'; readonly rejection: LeaseRejection }
  /** EC2 gave no answer for the address: decide later, never on a guess. */
  | { readonly kind: 'unknown' };

/** The security groups that admit `capability`'s targets: its own list, else the agents' groups. */
export function admittedGroupsFor(capability: string, admission: AdmissionConfig): readonly string[] {
  return Object.hasOwn(admission.byCapability, capability) ? admission.byCapability[capability] : admission.securityGroups;
}

/**
 * Whether EC2 must vouch for `address` before it joins a group. Not when no admission is
 * configured; not for local mode's loopback agents (admitted as local processes, unless that is
 * turned off); not for an IP outside the VPC, which only a range named explicitly
 * (`allowedCidrs`) lets through and no interface of the VPC could vouch for.
 */
export function needsAdmission(address: string, ctx: AdmissionContext): boolean {
  if (ctx.admission === undefined || admittedAsLoopback(address, ctx.routing)) return false;
  // Loopback is outside any VPC, but only local mode lets it through, and without its loopback admission it is checked like an agent's address.
  if (address.startsWith('i-') || isLoopbackAddress(address)) return true;
  return ctx.policy.inVpc(address) !== false;
}

/** The decision for one candidate, from EC2's facts about its address (`undefined`: no answer). */
export function decideAdmission(candidate: AdmissionCandidate, facts: HolderFacts | null | undefined, ctx: AdmissionContext): AdmissionDecision {
  if (!needsAdmission(candidate.target.id, ctx)) return { kind: 'admitted' };
  if (facts === undefined) return { kind: 'unknown' };
  const admission = ctx.admission!;
  const groups = admittedGroupsFor(candidate.capability, admission);
  const what = candidate.target.id.startsWith('i-') ? 'instance' : 'address';
  const reject = (why: string): AdmissionDecision => ({
    kind: 'not-admitted',
    rejection: {
      reason: 'NOT_ADMITTED',
      target: candidate.target.key,
      capability: candidate.capability,
      message: `${what} ${quoteUntrusted(candidate.target.id)} is not admitted for capability "${candidate.capability}": ${why}`,
    },
  });
  if (facts === null) {
    return reject(what === 'instance' ? `EC2 shows no such instance in ${admission.vpcId}` : `EC2 shows no network interface in ${admission.vpcId} holding it`);
  }
  if (facts.vpcId !== admission.vpcId) return reject(`${facts.holder} is in ${facts.vpcId ?? 'no VPC'}, not ${admission.vpcId}`);
  if (!facts.securityGroupIds.some((g) => groups.includes(g))) {
    return reject(`${facts.holder} carries ${facts.securityGroupIds.length === 0 ? 'no security group' : facts.securityGroupIds.join(', ')}, none of the admitted ${groups.join(', ')}`);
  }
  return { kind: 'admitted' };
}

/** Addresses of `candidates` EC2 must be asked about (each once), in first-seen order. */
export function addressesToLookUp(candidates: readonly AdmissionCandidate[], ctx: AdmissionContext): string[] {
  return [...new Set(candidates.filter((c) => needsAdmission(c.target.id, ctx)).map((c) => c.target.id))];
}

export interface AdmissionSplit<C extends AdmissionCandidate> {
  readonly admitted: C[];
  readonly notAdmitted: { readonly candidate: C; readonly rejection: LeaseRejection }[];
  /** No answer from EC2: registrations wait (the batch is retried, or the next pass decides). */
  readonly unknown: C[];
}

/** Splits candidates by their decisions. */
export function splitByAdmission<C extends AdmissionCandidate>(candidates: readonly C[], facts: AdmissionFacts, ctx: AdmissionContext): AdmissionSplit<C> {
  const split: { admitted: C[]; notAdmitted: { candidate: C; rejection: LeaseRejection }[]; unknown: C[] } = { admitted: [], notAdmitted: [], unknown: [] };
  for (const candidate of candidates) {
    const decision = decideAdmission(candidate, facts.get(candidate.target.id), ctx);
    if (decision.kind === 'admitted') split.admitted.push(candidate);
    else if (decision.kind === 'unknown') split.unknown.push(candidate);
    else split.notAdmitted.push({ candidate, rejection: decision.rejection });
  }
  return split;
}

export interface AdmissionRemovalPlan<C extends AdmissionCandidate> {
  /** Registered targets two passes in a row found not admitted: deregister them now. */
  readonly remove: { readonly candidate: C; readonly rejection: LeaseRejection }[];
  /** Found not admitted for the first time: removed only if the next pass agrees. */
  readonly suspect: { readonly candidate: C; readonly rejection: LeaseRejection }[];
  /**
   * {@link memberKey}s to remember for the next pass: this pass's suspects and removals, and the
   * suspects of the last pass whose address got no answer this time (an EC2 error proves nothing
   * either way, so it neither removes a target nor clears a suspicion).
   */
  readonly suspectsNow: ReadonlySet<string>;
}

/**
 * For targets already registered whose lease still wants them: which ones admission now refuses
 * and may be removed. Two passes must agree, as for targets whose lease is absent: a target goes
 * only when it was refused last pass as well, so one odd answer removes nothing. No answer never
 * removes anything.
 */
export function planAdmissionRemovals<C extends AdmissionCandidate>(
  registered: readonly C[],
  facts: AdmissionFacts,
  ctx: AdmissionContext,
  suspectsLastPass: ReadonlySet<string>,
): AdmissionRemovalPlan<C> {
  const remove: AdmissionRemovalPlan<C>['remove'] = [];
  const suspect: AdmissionRemovalPlan<C>['suspect'] = [];
  const suspectsNow = new Set<string>();
  for (const candidate of registered) {
    const key = memberKey(candidate.targetGroupArn, candidate.target.key);
    const decision = decideAdmission(candidate, facts.get(candidate.target.id), ctx);
    if (decision.kind === 'unknown') {
      if (suspectsLastPass.has(key)) suspectsNow.add(key);
    } else if (decision.kind === 'not-admitted') {
      suspectsNow.add(key);
      (suspectsLastPass.has(key) ? remove : suspect).push({ candidate, rejection: decision.rejection });
    }
  }
  return { remove, suspect, suspectsNow };
}

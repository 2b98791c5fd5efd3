import type { AdmissionFacts, HolderFacts } from '../core/admission';
import { Ec2LookupError } from '../core/errors';
import type { AdmissionConfig } from '../core/runtime-config';
import type { Ec2Holders } from '../aws/ec2-holders';
import { AdmissionCache } from './container-memory';

/**
 * EC2's facts about the addresses a batch or a pass is about to act on: from the container's
 * cache where it has a recent answer, else from one lookup for all the others together (one
 * DescribeNetworkInterfaces per 200 addresses). Only addresses about to be registered (and, in
 * reconcile, registered ones) are asked about: a heartbeat asks nothing.
 */

/** What admission needs at run time; absent when the deployment checks nothing. */
export interface AdmissionDeps {
  readonly holders: Ec2Holders;
  readonly admission: AdmissionConfig;
  readonly cache: AdmissionCache;
}

export interface HolderLookup {
  /** An entry for every id answered, from the cache or from EC2; none for ids the failed lookup was for. */
  readonly facts: AdmissionFacts;
  /** EC2 calls made (0 when the cache answered everything). */
  readonly calls: number;
  /** Ids EC2 was asked about. */
  readonly asked: number;
  readonly error?: Ec2LookupError;
}

/**
 * Facts about `ids` at `now`. Ids in `fresh` are asked about even when the cache has an answer
 * (reconcile's second look before removing a target). A failed lookup answers nothing for the
 * ids it was for; the cache keeps only what EC2 answered.
 */
export async function lookUpHolders(deps: AdmissionDeps | undefined, ids: readonly string[], now: number, fresh: ReadonlySet<string> = new Set()): Promise<HolderLookup> {
  const facts = new Map<string, HolderFacts | null>();
  if (deps === undefined || ids.length === 0) return { facts, calls: 0, asked: 0 };
  const ask: string[] = [];
  for (const id of new Set(ids)) {
    const cached = fresh.has(id) ? undefined : deps.cache.get(id, now);
    if (cached === undefined) ask.push(id);
    else facts.set(id, cached);
  }
  if (ask.length === 0) return { facts, calls: 0, asked: 0 };
  const before = deps.holders.calls;
  try {
    const answers = await deps.holders.lookUp(deps.admission.vpcId, ask);
    for (const [id, answer] of answers) {
      facts.set(id, answer);
      deps.cache.set(id, answer, now);
    }
    return { facts, calls: deps.holders.calls - before, asked: ask.length };
  } catch (error) {
    const lookupError = error instanceof Ec2LookupError ? error : new Ec2LookupError(true, `EC2 lookup failed: ${String(error)}`, { cause: error });
    return { facts, calls: deps.holders.calls - before, asked: ask.length, error: lookupError };
  }
}

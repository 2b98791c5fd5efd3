import { AsyncLocalStorage } from 'node:async_hooks';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { chance, Random } from '../support/prng';

/**
 * Process-level faults of the sync "Lambda", applied around the real handler:
 * - **killed** invocations: before it starts, in the middle (right after its k-th ELB
 *   Register/Deregister call came back, while other calls may be in flight), or after it
 *   finished but before it could return (the work is done, the acknowledgement lost). A killed
 *   invocation makes no further ELB call: the kill switch below fails every later attempt of it,
 *   as a dead process would. The poller sees a failed invocation and retries (bisecting).
 * - **duplicate** deliveries: the same event handled twice in a row (an invocation whose
 *   checkpoint was lost), the second result returned.
 */

export type KillPoint = 'before' | 'mid' | 'after';

export interface HandlerChaosOptions {
  readonly random: Random;
  /** Share of invocations killed. */
  readonly killRate: number;
  /** Share of invocations delivered twice. */
  readonly duplicateRate: number;
}

export interface HandlerChaosCounters {
  invocations: number;
  kills: Record<KillPoint, number>;
  duplicates: number;
  /** Records in all invocations. */
  recordsDelivered: number;
}

interface Invocation {
  killed: boolean;
  /** Mutating ELB calls still allowed to complete before the kill. */
  callsLeft: number;
  onKill?: () => void;
}

export class HandlerKilledError extends Error {
  public constructor(point: KillPoint) {
    super(`sync handler killed (${point})`);
    this.name = 'HandlerKilledError';
  }
}

const invocations = new AsyncLocalStorage<Invocation>();

/**
 * Per attempt (inside the SDK's retry loop): fails any attempt of a killed invocation, and
 * triggers a mid-batch kill once the planned number of mutating calls came back. Also tags
 * every request with its origin for the proxy's log.
 */
export function instrumentElbClient(client: ElasticLoadBalancingV2Client, origin: 'sync' | 'reconcile'): ElasticLoadBalancingV2Client {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-chaos-origin'] = origin;
      return next(args);
    },
    { step: 'build', name: 'chaosOriginHeader' },
  );
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const invocation = invocations.getStore();
      if (invocation?.killed) throw new HandlerKilledError('mid');
      const out = await next(args);
      const mutating = context.commandName === 'RegisterTargetsCommand' || context.commandName === 'DeregisterTargetsCommand';
      if (invocation && mutating && --invocation.callsLeft === 0) invocation.onKill?.();
      return out;
    },
    { step: 'finalizeRequest', name: 'chaosKillSwitch' },
  );
  return client;
}

type Handler = (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse>;

const FORCED_KILLS: ReadonlyMap<number, KillPoint> = new Map([
  [3, 'before'],
  [6, 'mid'],
  [9, 'after'],
]);
const FORCED_DUPLICATES: ReadonlySet<number> = new Set([12]);

export function withHandlerChaos(handler: Handler, options: HandlerChaosOptions): { handler: Handler; counters: HandlerChaosCounters; enabled: { value: boolean } } {
  const counters: HandlerChaosCounters = { invocations: 0, kills: { before: 0, mid: 0, after: 0 }, duplicates: 0, recordsDelivered: 0 };
  const enabled = { value: true };
  const r = options.random;

  const killMidway = (event: DynamoDBStreamEvent, callsLeft: number): Promise<DynamoDBBatchResponse> =>
    new Promise((_resolve, reject) => {
      const invocation: Invocation = { killed: false, callsLeft };
      invocation.onKill = () => {
        if (invocation.killed) return;
        invocation.killed = true;
        counters.kills.mid++;
        reject(new HandlerKilledError('mid'));
      };
      invocations.run(invocation, () => handler(event)).then(
        () => {
          // Fewer ELB calls than planned: the process dies after its work, before answering.
          if (invocation.killed) return;
          invocation.killed = true;
          counters.kills.after++;
          reject(new HandlerKilledError('after'));
        },
        (error: unknown) => {
          if (!invocation.killed) reject(error);
        },
      );
    });

  const wrapped: Handler = async (event) => {
    counters.invocations++;
    counters.recordsDelivered += event.Records.length;
    // Every run kills at each point at least once (invocations 3, 6 and 9) and delivers a batch twice
    // (invocation 12), whatever the draws: at their rates a run with few invocations saw none of one.
    const forced = enabled.value ? FORCED_KILLS.get(counters.invocations) : undefined;
    if (forced || (enabled.value && chance(r, options.killRate))) {
      const point = forced ?? (r() < 0.25 ? 'before' : r() < 0.67 ? 'mid' : 'after');
      if (point === 'before') {
        counters.kills.before++;
        throw new HandlerKilledError('before');
      }
      if (point === 'after') {
        await handler(event);
        counters.kills.after++;
        throw new HandlerKilledError('after');
      }
      return killMidway(event, 1 + Math.floor(r() * 2));
    }
    if (enabled.value && (FORCED_DUPLICATES.has(counters.invocations) || chance(r, options.duplicateRate))) {
      counters.duplicates++;
      counters.recordsDelivered += event.Records.length;
      await handler(event);
    }
    return handler(event);
  };
  return { handler: wrapped, counters, enabled };
}

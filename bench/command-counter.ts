import type { MiddlewareStack } from '@smithy/types';

/** Counts per command name, as the service sees them. */
export type CommandCounts = Record<string, number>;

export interface CommandCounter {
  /** Requests sent, per command name; every retry attempt counts, as AWS's throttle counts it. */
  readonly sent: CommandCounts;
  /** Error responses, per `<command>:<error name>`. */
  readonly errors: CommandCounts;
  /** Sum of ConsumedCapacity.CapacityUnits returned, per command name (DynamoDB only). */
  readonly capacityUnits: CommandCounts;
  /** RegisterTargets + DeregisterTargets requests per TargetGroupArn. */
  readonly mutatingByGroup: CommandCounts;
  /** A copy of `sent`, for phase deltas. */
  snapshot(): CommandCounts;
}

interface CountableClient {
  // The service input/output types do not matter to a counter.
  readonly middlewareStack: MiddlewareStack<any, any>;
}

/**
 * Adds counting middleware to an SDK v3 client and returns the client itself (and its counter,
 * or `into`). With
 * `askConsumedCapacity`, DynamoDB reads that do not already ask for it get
 * `ReturnConsumedCapacity: TOTAL`, so a benchmark sees the read units of every request (this
 * changes only what the response reports, not what the request does).
 */
export function countCommands<C extends CountableClient>(
  client: C,
  options: { askConsumedCapacity?: boolean; into?: CommandCounter; /** To count one client into two counters (middleware names are unique per client). @default benchCountCommands */ name?: string } = {},
): { client: C; counter: CommandCounter } {
  // With `into`, this client's requests add to an existing counter (the handlers of one stack, each with its own client).
  const sent: CommandCounts = options.into?.sent ?? {};
  const errors: CommandCounts = options.into?.errors ?? {};
  const capacityUnits: CommandCounts = options.into?.capacityUnits ?? {};
  const mutatingByGroup: CommandCounts = options.into?.mutatingByGroup ?? {};
  const bump = (map: CommandCounts, key: string, by = 1) => (map[key] = (map[key] ?? 0) + by);

  if (options.askConsumedCapacity) {
    client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { ReturnConsumedCapacity?: string };
        if (input && typeof input === 'object' && input.ReturnConsumedCapacity === undefined) input.ReturnConsumedCapacity = 'TOTAL';
        return next(args);
      },
      { step: 'initialize', name: 'benchAskConsumedCapacity' },
    );
  }
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName ?? 'unknown').replace(/Command$/, '');
      bump(sent, name);
      const group = (args.input as { TargetGroupArn?: string } | undefined)?.TargetGroupArn;
      if (group && (name === 'RegisterTargets' || name === 'DeregisterTargets')) bump(mutatingByGroup, group);
      try {
        const result = await next(args);
        const consumed = (result.output as { ConsumedCapacity?: { CapacityUnits?: number } | { CapacityUnits?: number }[] }).ConsumedCapacity;
        for (const c of Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) bump(capacityUnits, name, c.CapacityUnits ?? 0);
        return result;
      } catch (error) {
        bump(errors, `${name}:${(error as { name?: string })?.name ?? 'Error'}`);
        throw error;
      }
    },
    // finalizeRequest runs inside the retry middleware: one count per attempt on the wire.
    { step: 'finalizeRequest', name: options.name ?? 'benchCountCommands' },
  );
  return { client, counter: options.into ?? { sent, errors, capacityUnits, mutatingByGroup, snapshot: () => ({ ...sent }) } };
}

/** b − a, per key, keeping only keys that changed. */
export function countsDelta(a: CommandCounts, b: CommandCounts): CommandCounts {
  const out: CommandCounts = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const d = (b[k] ?? 0) - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** RegisterTargets + DeregisterTargets: the calls that share the account's throttle bucket. */
export const mutatingCalls = (c: CommandCounts) => (c.RegisterTargets ?? 0) + (c.DeregisterTargets ?? 0);

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * The agents' own log: every lease write they send, with the time it was sent (`t0`), the time
 * its outcome was known (`t1`) and the outcome. It is recorded by a middleware on the agents'
 * DynamoDB client, outside the SDK's retries, so one entry is one logical write. The checker
 * derives the truth (when a lease was certainly live, when it may have been) from this log
 * alone, not from the lease table or from anything the handlers report.
 */

export type WriteKind = 'put' | 'renew' | 'status' | 'delete';
/** `condition`: the condition failed, so the write certainly did not land; `error`: unknown, it may have landed. */
export type WriteOutcome = 'ok' | 'condition' | 'error';

export interface LeaseWrite {
  readonly kind: WriteKind;
  readonly target: string;
  /** The writer's lease token (the item's for a put, `:mine` for the conditional writes). */
  readonly token: string;
  readonly t0: number;
  readonly t1: number;
  readonly outcome: WriteOutcome;
  /** put: the capabilities written. */
  readonly capabilities?: readonly string[];
  /** put and status: the status written. */
  readonly status?: 'active' | 'draining';
  /** put and renew: the expiry written, epoch seconds. */
  readonly expiresAt?: number;
  /** put: written without the acquire condition. */
  readonly takeover?: boolean;
}

type Attr = { S?: string; N?: string; SS?: string[] };
type Input = {
  Item?: Record<string, Attr>;
  Key?: Record<string, Attr>;
  ExpressionAttributeValues?: Record<string, Attr>;
  ConditionExpression?: string;
};

function describe(command: string, input: Input): Omit<LeaseWrite, 't0' | 't1' | 'outcome'> | undefined {
  const values = input.ExpressionAttributeValues ?? {};
  if (command === 'PutItemCommand' && input.Item) {
    const item = input.Item;
    return {
      kind: 'put',
      target: item.target?.S ?? '',
      token: item.leaseToken?.S ?? '',
      capabilities: item.capabilities?.SS ?? [],
      status: item.status?.S === 'draining' ? 'draining' : 'active',
      expiresAt: Number(item.expiresAt?.N),
      takeover: input.ConditionExpression === undefined,
    };
  }
  const target = input.Key?.target?.S ?? '';
  const token = values[':mine']?.S ?? '';
  if (command === 'UpdateItemCommand' && values[':exp']) return { kind: 'renew', target, token, expiresAt: Number(values[':exp'].N) };
  if (command === 'UpdateItemCommand' && values[':status']) {
    return { kind: 'status', target, token, status: values[':status'].S === 'draining' ? 'draining' : 'active' };
  }
  if (command === 'DeleteItemCommand') return { kind: 'delete', target, token };
  return undefined;
}

/** Adds the logging middleware to `client` and returns the log it fills. */
export function recordLeaseWrites(client: DynamoDBClient, clock: () => number = Date.now): LeaseWrite[] {
  const log: LeaseWrite[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const write = describe(context.commandName ?? '', args.input as Input);
      if (write === undefined) return next(args);
      const t0 = clock();
      let outcome: WriteOutcome = 'error';
      try {
        const out = await next(args);
        outcome = 'ok';
        return out;
      } catch (error) {
        if ((error as { name?: string })?.name === 'ConditionalCheckFailedException') outcome = 'condition';
        throw error;
      } finally {
        log.push({ ...write, t0, t1: clock(), outcome });
      }
    },
    { step: 'initialize', name: 'chaosLeaseWriteLog' },
  );
  return log;
}

import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
  TargetDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { ElbTargetsError } from '../core/errors';
import { ObservedTarget } from '../core/reconcile-planner';
import { TargetRef } from '../core/lease-schema';
import { sleep as defaultSleep } from '../core/concurrency';
import { ElbCallGate, ElbCallPermit, MAX_TARGETS_PER_ELB_CALL } from '../core/elb-call-budget';

export interface SendOptions {
  /**
   * Gives up on the call (the SDK's retries included) when this fires; the targets count as
   * transient failures. A deregistration confirmed by a read must land soon after that read.
   */
  readonly abortSignal?: AbortSignal;
  /**
   * A token the caller already reserved at the gate (before its confirming read, so the wait for
   * the budget does not age the read): the first Register/DeregisterTargets call spends it as it leaves;
   * further calls (more than 200 targets, a refused call split) take their own.
   */
  readonly permit?: ElbCallPermit;
}

/**
 * Settles with `call`, or rejects as soon as `signal` aborts. The SDK looks at the signal only
 * when it sends an attempt, not while it sleeps between retries (up to 20 s after throttling):
 * without this, a caller waits out the backoff. The call left behind sends nothing more (its
 * next attempt sees the aborted signal); only an attempt already on the wire may still land.
 */
export function untilAborted<T>(sent: Promise<T>, signal: AbortSignal): Promise<T> {
  const call = Promise.resolve(sent); // test doubles may answer with a plain value
  const aborted = () => Object.assign(new Error('the call was abandoned: its deadline passed'), { name: 'AbortError' });
  if (signal.aborted) {
    call.catch(() => undefined);
    return Promise.reject(aborted());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      call.catch(() => undefined);
      reject(aborted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    call.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Every attempt ELB sees takes a token: the SDK's retries of a throttled or failed call (standard
 * mode, up to 6 attempts) are calls too, and without this each would reach ELB on its first
 * attempt's token. The middleware sits inside the retry middleware (same step, lower priority),
 * so it runs once per attempt: the first attempt spent the caller's token, each later one waits
 * for its own (giving up when `signal` aborts, so an abandoned call sends nothing more).
 */
export function budgetEachRetry(command: { middlewareStack: { add: (...args: never[]) => void } }, gate: ElbCallGate, signal?: AbortSignal): void {
  let attempts = 0;
  const middleware =
    (next: (args: unknown) => Promise<unknown>) =>
    async (args: unknown): Promise<unknown> => {
      if (attempts++ > 0) (await gate.acquire(signal)).spend();
      return next(args);
    };
  (command.middlewareStack.add as (m: typeof middleware, o: object) => void)(middleware, { step: 'finalizeRequest', priority: 'low', name: 'agentLbElbCallBudget' });
}

/** ELBv2 takes at most this many targets per Register/DeregisterTargets call (the controller uses the same). */
export const MAX_TARGETS_PER_CALL = MAX_TARGETS_PER_ELB_CALL;

export interface TargetsOutcome {
  /** Keys ELB accepted. */
  readonly applied: string[];
  /** Keys whose call failed with a transient error after the SDK's retries: retry the records later. */
  readonly transientFailures: string[];
  /** Keys ELB refused for good (e.g. an invalid target): dropped, logged, never retried. */
  readonly rejected: { key: string; error: ElbTargetsError }[];
  readonly calls: number;
  readonly firstTransientError?: ElbTargetsError;
}

const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeoutException',
  'ServiceUnavailable',
  'InternalFailure',
  'InternalError',
  'TimeoutError',
]);
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND']);

/** Transient: throttling, 5xx, timeouts, connection failures. Everything else is the request's fault. */
export function isTransient(error: unknown): boolean {
  const e = error as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (status === 429) return true;
  if (e?.$retryable) return true;
  if (e?.name && TRANSIENT_NAMES.has(e.name)) return true;
  if (e?.code && TRANSIENT_CODES.has(e.code)) return true;
  return status === undefined && !e?.name?.endsWith('Exception');
}

function toElb(target: TargetRef): TargetDescription {
  return { Id: target.id, Port: target.port, ...(target.availabilityZone ? { AvailabilityZone: target.availabilityZone } : {}) };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The only place agent-lb calls ELBv2 target APIs: chunking, error mapping, and isolation of
 * a bad target so one refused target never blocks the others. Retries of throttling and 5xx
 * are the SDK's (standard retry mode on the client, see createElbClient).
 */
export class ElbTargets {
  /** Register+Deregister calls sent so far, for metrics and benchmarks. */
  public mutatingCalls = 0;
  public describeCalls = 0;

  /**
   * @param gate every Register/DeregisterTargets call takes a token from it first (the registry's
   *   ELB call budget); without one, calls go as fast as they come
   */
  public constructor(
    private readonly client: ElasticLoadBalancingV2Client,
    public readonly gate?: ElbCallGate,
  ) {}

  public register(targetGroupArn: string, targets: readonly TargetRef[], options: SendOptions = {}): Promise<TargetsOutcome> {
    return this.apply('register', targetGroupArn, targets, options);
  }

  public deregister(targetGroupArn: string, targets: readonly TargetRef[], options: SendOptions = {}): Promise<TargetsOutcome> {
    return this.apply('deregister', targetGroupArn, targets, options);
  }

  /** Every target of the group with its state and reason, draining ones included (as ELB lists them). */
  public async describe(targetGroupArn: string, options: SendOptions = {}): Promise<ObservedTarget[]> {
    this.describeCalls++;
    try {
      const command = new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn });
      const out = options.abortSignal
        ? await untilAborted(this.client.send(command, { abortSignal: options.abortSignal }), options.abortSignal)
        : await this.client.send(command);
      return (out.TargetHealthDescriptions ?? []).flatMap((d) =>
        d.Target?.Id && d.Target.Port !== undefined
          ? [
              {
                id: d.Target.Id,
                port: d.Target.Port,
                state: d.TargetHealth?.State ?? 'unavailable',
                ...(d.TargetHealth?.Reason ? { reason: d.TargetHealth.Reason } : {}),
                ...(d.Target.AvailabilityZone ? { availabilityZone: d.Target.AvailabilityZone } : {}),
              },
            ]
          : [],
      );
    } catch (error) {
      throw this.mapError('describe', targetGroupArn, error);
    }
  }

  /**
   * {@link describe}, tried again after transient errors (with jittered backoff) until `deadlineMs`
   * from now: the SDK's own retries stop once its retry quota is spent, which a long brown-out
   * does, and one failed read of a group would cost a whole reconcile pass. Throws the last error.
   */
  public async describeWithin(targetGroupArn: string, deadlineMs: number, sleep: (ms: number) => Promise<void> = defaultSleep): Promise<ObservedTarget[]> {
    const end = Date.now() + deadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.describe(targetGroupArn, { abortSignal: AbortSignal.timeout(Math.max(1, end - Date.now())) });
      } catch (error) {
        const wait = Math.random() * 100 * 2 ** Math.min(attempt, 5);
        if (!(error instanceof ElbTargetsError) || !error.transient || Date.now() + wait >= end) throw error;
        await sleep(wait);
      }
    }
  }

  private async send(
    action: 'register' | 'deregister',
    targetGroupArn: string,
    batch: readonly TargetRef[],
    outcome: { calls: number },
    options: SendOptions,
    permit: { unused?: ElbCallPermit },
  ): Promise<void> {
    const taken = permit.unused ?? (this.gate ? await this.gate.acquire(options.abortSignal) : undefined);
    permit.unused = undefined;
    this.mutatingCalls++;
    outcome.calls++;
    const input = { TargetGroupArn: targetGroupArn, Targets: batch.map(toElb) };
    const command = action === 'register' ? new RegisterTargetsCommand(input) : new DeregisterTargetsCommand(input);
    if (this.gate) budgetEachRetry(command, this.gate, options.abortSignal);
    // Charged as the call leaves, not when its token was granted (see reserveToken): ELB counts arrivals.
    taken?.spend();
    if (options.abortSignal) await untilAborted(this.client.send(command, { abortSignal: options.abortSignal }), options.abortSignal);
    else await this.client.send(command);
  }

  private async apply(action: 'register' | 'deregister', targetGroupArn: string, targets: readonly TargetRef[], options: SendOptions): Promise<TargetsOutcome> {
    const outcome = { applied: [] as string[], transientFailures: [] as string[], rejected: [] as TargetsOutcome['rejected'], calls: 0 };
    const permit = { unused: options.permit };
    let firstTransientError: ElbTargetsError | undefined;
    // A permanent error names no target, and ELB applies none of a refused call: split the call
    // in halves until every refused target is alone, so k bad targets among n cost about
    // 2·k·log2(n) calls instead of n, and the good ones still land.
    const send = async (batch: readonly TargetRef[]): Promise<void> => {
      try {
        await this.send(action, targetGroupArn, batch, outcome, options, permit);
        outcome.applied.push(...batch.map((t) => t.key));
      } catch (error) {
        const mapped = this.mapError(action, targetGroupArn, error);
        if (mapped.transient) {
          firstTransientError ??= mapped;
          outcome.transientFailures.push(...batch.map((t) => t.key));
        } else if (batch.length === 1) {
          outcome.rejected.push({ key: batch[0].key, error: mapped });
        } else {
          const half = Math.ceil(batch.length / 2);
          await send(batch.slice(0, half));
          await send(batch.slice(half));
        }
      }
    };
    for (const batch of chunks(targets, MAX_TARGETS_PER_CALL)) await send(batch);
    permit.unused?.giveBack(); // no target to send after all
    return { ...outcome, ...(firstTransientError ? { firstTransientError } : {}) };
  }

  private mapError(action: string, targetGroupArn: string, error: unknown): ElbTargetsError {
    const name = (error as { name?: string })?.name ?? 'Error';
    const message = (error as Error)?.message ?? String(error);
    return new ElbTargetsError(targetGroupArn, isTransient(error), `${action} on ${targetGroupArn} failed: ${name}: ${message}`, {
      cause: error,
      awsErrorName: name,
    });
  }
}

/**
 * How long a capability's requests may run, and the load balancer settings that follow from it.
 * Agents answer slowly (a model call, a tool chain: seconds to minutes, often streamed), and
 * three settings decide whether such a request survives a scale-in, a deploy or a restart:
 *
 * - the target group's **deregistration delay**: a deregistered target keeps serving its
 *   requests in flight this long, then ALB cuts them (0–3 600 s);
 * - the load balancer's **idle timeout** (`idle_timeout.timeout_seconds`, 1–4 000 s, 60 by
 *   default): a response silent longer than it gets a 504, one that goes silent mid-stream is
 *   cut;
 * - the agent's **leave deadline**: how long its SDK or sidecar waits, on SIGTERM, for its
 *   requests in flight before it releases its lease and exits (see `leaveDeadlineMs` in the SDK).
 *
 * agent-lb derives all three from one number per capability, `maxRequestDuration`, so they
 * cannot disagree. Pure: the constructs, local mode, the SDK and the sidecar import it.
 */

/**
 * The default longest request of a capability: 5 minutes. Agents' requests are model calls and
 * tool chains, from seconds to minutes, not web pages: a default of seconds (ALB's idle timeout
 * is 60 s, agent-lb's deregistration delay used to be 30 s) cuts every longer answer on every
 * scale-in and deploy. Five minutes covers model calls with tool use and most tool chains, and
 * is what ALB itself picked as its default deregistration delay for in-flight requests to
 * finish. Longer requests need the setting raised; a platform that kills a stopping container
 * sooner (Fargate allows at most 120 s between SIGTERM and SIGKILL) needs it lowered or its
 * stop timeout raised: see the README.
 */
export const DEFAULT_MAX_REQUEST_DURATION_SECONDS = 300;

/**
 * Added to the longest request to get the deregistration delay and the idle timeout: a request
 * that arrives in the seconds ALB nodes take to stop sending to a deregistered target (about 5 s)
 * still has its whole duration, and one of exactly `maxRequestDuration` is not cut at the edge.
 */
export const REQUEST_DURATION_MARGIN_SECONDS = 10;

/** ALB's longest deregistration delay. */
export const MAX_DEREGISTRATION_DELAY_SECONDS = 3600;
/** ALB's default and longest idle timeout. */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 60;
export const MAX_IDLE_TIMEOUT_SECONDS = 4000;
/** The longest request agent-lb accepts: its deregistration delay (duration + margin) must fit ALB's 3 600 s. */
export const MIN_MAX_REQUEST_DURATION_SECONDS = 1;
export const MAX_MAX_REQUEST_DURATION_SECONDS = MAX_DEREGISTRATION_DELAY_SECONDS - REQUEST_DURATION_MARGIN_SECONDS;
/** ECS on Fargate gives a container at most this long between SIGTERM and SIGKILL (`stopTimeout`). */
export const FARGATE_MAX_STOP_TIMEOUT_SECONDS = 120;

/** Why `seconds` is not a longest request duration agent-lb accepts (`4000 seconds is out of range …`), or undefined when it is. */
export function maxRequestDurationProblem(seconds: number): string | undefined {
  if (Number.isInteger(seconds) && seconds >= MIN_MAX_REQUEST_DURATION_SECONDS && seconds <= MAX_MAX_REQUEST_DURATION_SECONDS) return undefined;
  return (
    `${seconds} seconds is out of range ${MIN_MAX_REQUEST_DURATION_SECONDS}–${MAX_MAX_REQUEST_DURATION_SECONDS} whole seconds ` +
    `(the deregistration delay it implies, ${REQUEST_DURATION_MARGIN_SECONDS} s more, must fit ALB's ${MAX_DEREGISTRATION_DELAY_SECONDS} s)`
  );
}

/** The deregistration delay a capability whose requests last at most `maxRequestSeconds` needs: duration + margin, at most ALB's 3 600 s. */
export function deregistrationDelayFor(maxRequestSeconds: number): number {
  return Math.min(MAX_DEREGISTRATION_DELAY_SECONDS, Math.ceil(maxRequestSeconds) + REQUEST_DURATION_MARGIN_SECONDS);
}

/**
 * The idle timeout of a load balancer serving capabilities whose requests last at most
 * `maxRequestSeconds` each: the longest + margin, never below ALB's default 60 s, at most its 4 000 s.
 * A response that streams bytes resets the timer; one that stays silent for its whole length needs all of it.
 */
export function idleTimeoutFor(maxRequestSeconds: readonly number[]): number {
  const longest = Math.max(0, ...maxRequestSeconds.map((s) => Math.ceil(s)));
  return Math.min(MAX_IDLE_TIMEOUT_SECONDS, Math.max(DEFAULT_IDLE_TIMEOUT_SECONDS, longest + REQUEST_DURATION_MARGIN_SECONDS));
}

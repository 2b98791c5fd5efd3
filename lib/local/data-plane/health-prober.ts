import * as http from 'node:http';
import * as https from 'node:https';
import type { HealthCheckJob, HealthCheckOutcome } from './data-plane-engine';

/**
 * Sends one ALB-style health check: an HTTP(S) `GET` of the group's health check path to the
 * target, on a connection of its own that is closed afterwards ("After each health check is
 * completed, the load balancer node closes the connection that was established for the health
 * check"), with ALB's user agent. The outcome, in the terms of the ELB reason codes:
 * - a status code the matcher accepts: passed;
 * - another status code: `response-code-mismatch` (`Target.ResponseCodeMismatch`);
 * - no response within the timeout: `timeout` (`Target.Timeout`);
 * - connection refused or reset, or a malformed response: `connection-error`
 *   (`Target.FailedHealthChecks`).
 * Certificates of HTTPS targets are not verified, as ALB does not verify them.
 */

export const HEALTH_CHECK_USER_AGENT = 'ELB-HealthChecker/2.0';

/** A running check; `cancel()` ends it at once with no outcome (`undefined`): the data plane is stopping. */
export interface RunningCheck {
  readonly outcome: Promise<HealthCheckOutcome | undefined>;
  cancel(): void;
}

export function probeTarget(job: Pick<HealthCheckJob, 'protocol' | 'host' | 'port' | 'path' | 'timeoutMs' | 'isHealthyCode'>): RunningCheck {
  let request: http.ClientRequest | undefined;
  let settled = false;
  let finish: (result: HealthCheckOutcome | undefined) => void = () => undefined;
  const outcome = new Promise<HealthCheckOutcome | undefined>((resolve) => {
    const done = (result: HealthCheckOutcome | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request?.destroy();
      resolve(result);
    };
    finish = done;
    const timer = setTimeout(() => done({ passed: false, failure: { kind: 'timeout' } }), job.timeoutMs);
    const module = job.protocol === 'HTTPS' ? https : http;
    const hostHeader = job.host.includes(':') ? `[${job.host}]:${job.port}` : `${job.host}:${job.port}`;
    request = module.request({
      host: job.host,
      port: job.port,
      path: job.path,
      method: 'GET',
      agent: false,
      headers: { Host: hostHeader, 'User-Agent': HEALTH_CHECK_USER_AGENT, Connection: 'close' },
      ...(job.protocol === 'HTTPS' ? { rejectUnauthorized: false } : {}),
    });
    request.on('response', (response) => {
      const statusCode = response.statusCode ?? 0;
      // The body is not needed; closing the connection may cut it short, which is no error here.
      response.on('error', () => undefined);
      response.resume();
      done(job.isHealthyCode(statusCode) ? { passed: true } : { passed: false, failure: { kind: 'response-code-mismatch', statusCode } });
    });
    request.on('error', (error: NodeJS.ErrnoException) => done({ passed: false, failure: { kind: 'connection-error', detail: error.code ?? error.message } }));
    request.end();
  });
  return {
    outcome,
    cancel: () => finish(undefined),
  };
}

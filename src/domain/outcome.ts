import { plannedDelay, withRetryAfter } from './retry-schedule.js';

/** What one attempt gave: an HTTP status, or an error before a status arrived. */
export interface AttemptResult {
  statusCode: number | null;
  error: string | null;
  /** The receiver's `Retry-After` header, if any. */
  retryAfter?: string | undefined;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed' | 'cancelled';

export type Decision =
  | { status: 'succeeded' }
  | { status: 'pending'; nextAttemptAt: number }
  | { status: 'failed'; deactivateWebhook?: string };

export const isSuccess = (result: AttemptResult) =>
  result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;

/**
 * Whether a failure says the endpoint is down rather than that it refuses this one event: no
 * answer (timeout, connection or TLS error), 408, 429 or 5xx.
 */
export const isRetryableFailure = (statusCode: number | null) =>
  statusCode === null || statusCode === 408 || statusCode === 429 || statusCode >= 500;

/**
 * After attempt number `attempt` (1-based) of a delivery whose webhook allows `retryCount`
 * retries: done, try again at a time, or give up. 2xx succeeds; 410 Gone gives up at once and
 * switches the webhook off; anything else is retried on the schedule, honouring `Retry-After`
 * on 429 and 503.
 */
export function decide(
  result: AttemptResult,
  attempt: number,
  retryCount: number,
  schedule: readonly number[],
  now: number,
  random: number = Math.random(),
): Decision {
  if (isSuccess(result)) return { status: 'succeeded' };
  if (result.statusCode === 410) {
    return { status: 'failed', deactivateWebhook: 'The endpoint answered 410 Gone.' };
  }
  if (attempt > retryCount) return { status: 'failed' };
  const planned = plannedDelay(schedule, attempt, random);
  const wait =
    result.statusCode === 429 || result.statusCode === 503
      ? withRetryAfter(planned, result.retryAfter, now)
      : planned;
  return { status: 'pending', nextAttemptAt: now + wait };
}

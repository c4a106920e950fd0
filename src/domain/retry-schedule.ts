/**
 * When to try a failed delivery again. The schedule lists the waits after the 1st, 2nd, ...
 * failed attempt; past its end the last wait repeats. Each wait gets +-20 % jitter so that
 * retries of many deliveries do not arrive together.
 */

export const DEFAULT_RETRY_SCHEDULE = '10s,1m,5m,30m,2h,5h,10h';

export const DAY_MS = 86_400_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS };

/** `1500ms`, `10s`, `5m`, `2h`, `5d` -> milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * (UNITS[match[2] as string] as number));
}

/** Milliseconds -> the largest unit that divides them: 259200000 -> `3d`, 1500 -> `1500ms`. */
export function formatDuration(ms: number): string {
  const [unit, size] = Object.entries(UNITS).findLast(([, size]) => ms % size === 0) ?? ['ms', 1];
  return `${ms / size}${unit}`;
}

/** `10s,1m,5m` -> [10000, 60000, 300000]; undefined when an entry is not a duration. */
export function parseSchedule(text: string): number[] | undefined {
  const waits = text.split(',').map(parseDuration);
  if (waits.length === 0 || waits.some((w) => w === undefined)) return undefined;
  return waits as number[];
}

export const JITTER = 0.2;
/** A `Retry-After` longer than this is not waited for beyond the planned delay. */
export const RETRY_AFTER_CAP_MS = 3_600_000;

/** The wait after the `attempt`-th failed attempt (1-based), with jitter from `random` in [0, 1). */
export function plannedDelay(
  schedule: readonly number[],
  attempt: number,
  random: number = Math.random(),
): number {
  const base = schedule[Math.min(attempt, schedule.length) - 1] ?? 0;
  return Math.round(base * (1 - JITTER + 2 * JITTER * random));
}

/**
 * A receiver's `Retry-After` (seconds or an HTTP date) is honoured within bounds: never sooner
 * than planned, never later than an hour unless the plan says later.
 */
export function withRetryAfter(planned: number, retryAfter: string | undefined, now: number): number {
  if (!retryAfter) return planned;
  const asked = /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) * 1000 : Date.parse(retryAfter) - now;
  if (!Number.isFinite(asked) || asked <= 0) return planned;
  return Math.max(planned, Math.min(asked, RETRY_AFTER_CAP_MS));
}

/**
 * A webhook's statistics over a window: the window's time buckets (whole UTC hours or days, the
 * last one the current, partial one) and percentiles of attempt durations.
 */

export const STATS_WINDOWS = ['24h', '7d', '30d'] as const;
export type StatsWindow = (typeof STATS_WINDOWS)[number];

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const SHAPES: Record<StatsWindow, { bucket: 'hour' | 'day'; size: number; count: number }> = {
  '24h': { bucket: 'hour', size: HOUR, count: 24 },
  '7d': { bucket: 'day', size: DAY, count: 7 },
  '30d': { bucket: 'day', size: DAY, count: 30 },
};

export interface Buckets {
  bucket: 'hour' | 'day';
  /** Milliseconds in one bucket. */
  size: number;
  count: number;
  /** Start of the first bucket: the window begins here. */
  start: number;
}

/** The buckets of a window ending at `now`: `count` whole hours or days, the last holding `now`. */
export function statsBuckets(window: StatsWindow, now: number): Buckets {
  const { bucket, size, count } = SHAPES[window];
  return { bucket, size, count, start: Math.floor(now / size) * size - (count - 1) * size };
}

/** The start of each bucket, in order: bucket `i` holds [starts[i], starts[i] + size). */
export function bucketStarts({ start, size, count }: Buckets): number[] {
  return Array.from({ length: count }, (_, i) => start + i * size);
}

/**
 * The nearest-rank percentile (`p` between 0 and 1) of values given as [value, count] pairs;
 * null when there are none.
 */
export function percentile(histogram: readonly (readonly [number, number])[], p: number): number | null {
  const sorted = [...histogram].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const [value, n] of sorted) {
    seen += n;
    if (seen >= rank) return value;
  }
  return sorted[sorted.length - 1]?.[0] ?? null;
}

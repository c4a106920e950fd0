import { type RawBuilder, sql } from 'kysely';
import { firstIdAt } from '../domain/ids.js';
import type { DeliveryStatus } from '../domain/outcome.js';
import { type Buckets, bucketStarts, percentile } from '../domain/stats.js';
import type { Store } from './db.js';

export interface StatsBucket {
  start: number;
  /**
   * Deliveries created in this bucket, each counted once, by its current status: what it is now,
   * however many attempts, retries by hand or recoveries it took to get there.
   */
  succeeded: number;
  failed: number;
  pending: number;
  cancelled: number;
  /** Attempts started in this bucket, and their duration percentiles (null when none). */
  attempts: number;
  p50_duration_ms: number | null;
  p95_duration_ms: number | null;
}

export interface WebhookStats {
  /** Deliveries created in the window, by current status: the sums of the buckets' counts. */
  counts: Record<DeliveryStatus, number>;
  series: StatsBucket[];
}

const STATUSES: readonly DeliveryStatus[] = ['pending', 'succeeded', 'failed', 'cancelled'];

/**
 * Attempt durations are counted per bin rather than one by one, so that a busy webhook's
 * percentiles come from a few thousand rows at most: exact below 1 s, to 10 ms below 10 s, to
 * 100 ms above (the longest attempt is the 60 s timeout). A bin is named by its lower bound.
 */
const durationBin = sql`case when a.duration_ms < 1000 then a.duration_ms
  when a.duration_ms < 10000 then a.duration_ms / 10 * 10 else a.duration_ms / 100 * 100 end`;

/**
 * The bucket of a delivery, from its id (ids begin with their creation time, so a bucket is a
 * range of ids): a balanced tree of comparisons with the first id of each bucket, a handful per
 * row however many buckets, and nothing read but the id. `firstIds[i]` starts bucket `i`.
 */
function bucketOfId(firstIds: readonly string[], lo = 0, hi = firstIds.length - 1): RawBuilder<number> {
  if (lo >= hi) return sql<number>`${sql.lit(lo)}`;
  const mid = (lo + hi + 1) >> 1;
  return sql<number>`case when d.id < ${firstIds[mid]} then ${bucketOfId(firstIds, lo, mid - 1)}
    else ${bucketOfId(firstIds, mid, hi)} end`;
}

/**
 * A webhook's deliveries and attempts over the buckets, every bucket present, in order.
 *
 * Deliveries are counted once each, by their current status, in the bucket they were created in;
 * `counts` are the buckets' sums, so the two always agree. Both come from one read of the
 * (webhook_id, status, id) index: a range of ids per status. Attempts are counted by the bucket
 * they started in, from the (webhook_id, started_at, duration_ms, ...) index alone.
 */
export async function webhookStats(store: Store, webhookId: number, buckets: Buckets): Promise<WebhookStats> {
  const { start, size, count } = buckets;
  const end = start + size * count;
  const bigint = (value: number) => sql`cast(${value} as bigint)`;
  const firstIds = bucketStarts(buckets).map((at) => firstIdAt('dlv', at));

  const [deliveries, attempts] = await Promise.all([
    sql<{ status: string; bucket: number; n: number }>`
      select d.status as status, ${bucketOfId(firstIds)} as bucket, count(*) as n
      from deliveries d
      where d.webhook_id = ${webhookId} and d.status in (${sql.join(STATUSES)})
        and d.id >= ${firstIdAt('dlv', start)} and d.id < ${firstIdAt('dlv', end)}
      group by 1, 2`.execute(store.db),
    sql<{ bucket: number; ms: number; n: number }>`
      select (a.started_at - ${bigint(start)}) / ${bigint(size)} as bucket, ${durationBin} as ms,
        count(*) as n
      from attempts a
      where a.webhook_id = ${webhookId} and a.started_at >= ${bigint(start)} and a.started_at < ${bigint(end)}
      group by 1, 2`.execute(store.db),
  ]);

  const series = bucketStarts(buckets).map((at) => ({
    start: at,
    succeeded: 0,
    failed: 0,
    pending: 0,
    cancelled: 0,
    histogram: [] as [number, number][],
  }));
  for (const row of deliveries.rows) {
    const bucket = series[Number(row.bucket)];
    if (bucket && (STATUSES as readonly string[]).includes(row.status))
      bucket[row.status as DeliveryStatus] += Number(row.n);
  }
  for (const row of attempts.rows) {
    series[Number(row.bucket)]?.histogram.push([Number(row.ms), Number(row.n)]);
  }
  const counts: Record<DeliveryStatus, number> = { pending: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const bucket of series) for (const status of STATUSES) counts[status] += bucket[status];
  return {
    counts,
    series: series.map(({ histogram, ...bucket }) => ({
      ...bucket,
      attempts: histogram.reduce((sum, [, n]) => sum + n, 0),
      p50_duration_ms: percentile(histogram, 0.5),
      p95_duration_ms: percentile(histogram, 0.95),
    })),
  };
}

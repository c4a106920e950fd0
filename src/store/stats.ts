import { sql } from 'kysely';
import { firstIdAt } from '../domain/ids.js';
import type { DeliveryStatus } from '../domain/outcome.js';
import { type Buckets, percentile } from '../domain/stats.js';
import type { Store } from './db.js';

export interface StatsBucket {
  start: number;
  /** Deliveries settled by an attempt that started in this bucket (their last attempt). */
  succeeded: number;
  failed: number;
  /** Attempts started in this bucket, and their duration percentiles (null when none). */
  attempts: number;
  p50_duration_ms: number | null;
  p95_duration_ms: number | null;
}

export interface WebhookStats {
  /** Deliveries created in the window, by status. */
  counts: Record<DeliveryStatus, number>;
  series: StatsBucket[];
}

/**
 * Attempt durations are counted per bin rather than one by one, so that a busy webhook's
 * percentiles come from a few thousand rows at most: exact below 1 s, to 10 ms below 10 s, to
 * 100 ms above (the longest attempt is the 60 s timeout). A bin is named by its lower bound.
 */
const durationBin = sql`case when a.duration_ms < 1000 then a.duration_ms
  when a.duration_ms < 10000 then a.duration_ms / 10 * 10 else a.duration_ms / 100 * 100 end`;

/** A webhook's deliveries and attempts over the buckets, every bucket present, in order. */
export async function webhookStats(store: Store, webhookId: number, buckets: Buckets): Promise<WebhookStats> {
  const { start, size, count } = buckets;
  const end = start + size * count;
  const bigint = (value: number) => sql`cast(${value} as bigint)`;

  const [byStatus, attempts] = await Promise.all([
    store.db
      .selectFrom('deliveries')
      .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
      .where('webhook_id', '=', webhookId)
      // Delivery ids begin with their creation time: the (webhook, status, id) index alone answers.
      .where('id', '>=', firstIdAt('dlv', start))
      .groupBy('status')
      .execute(),
    // Read from the attempts index alone: bucket, duration bin, and the attempts that settled
    // their delivery (the last one of a succeeded or failed delivery).
    sql<{ bucket: number; ms: number; n: number; succeeded: number; failed: number }>`
      select (a.started_at - ${bigint(start)}) / ${bigint(size)} as bucket, ${durationBin} as ms,
        count(*) as n,
        sum(case when a.delivery_status = 'succeeded' then 1 else 0 end) as succeeded,
        sum(case when a.delivery_status = 'failed' then 1 else 0 end) as failed
      from attempts a
      where a.webhook_id = ${webhookId} and a.started_at >= ${bigint(start)} and a.started_at < ${bigint(end)}
      group by 1, 2`.execute(store.db),
  ]);

  const counts: Record<DeliveryStatus, number> = { pending: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const row of byStatus) {
    if (row.status in counts) counts[row.status as DeliveryStatus] = Number(row.n);
  }
  const series = Array.from({ length: count }, (_, i) => ({
    start: start + i * size,
    succeeded: 0,
    failed: 0,
    histogram: [] as [number, number][],
  }));
  for (const row of attempts.rows) {
    const bucket = series[Number(row.bucket)];
    if (!bucket) continue;
    bucket.succeeded += Number(row.succeeded);
    bucket.failed += Number(row.failed);
    bucket.histogram.push([Number(row.ms), Number(row.n)]);
  }
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

import { expect, it } from 'vitest';
import { timeOrderedId } from '../../src/domain/ids.js';
import { newDeliveryRow } from '../../src/store/events.js';
import { describeContract, type Harness, storeEvent, webhookBody } from '../helpers/harness.js';
import { withinOneHour } from '../helpers/wait.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

type Status = 'pending' | 'succeeded' | 'failed' | 'cancelled';

interface Stored {
  at: number;
  status: Status;
  /** Durations of its attempts, the last one settling it (unless pending or cancelled). */
  durations: number[];
  /**
   * When each attempt started, and what it made of the delivery (by default a second apart from
   * `at`, the last one leading to `status`): a delivery retried by hand or recovered has several
   * attempts that settled it, one after each time it was queued again.
   */
  attempts?: { at: number; led_to: Status }[];
}

/** Deliveries and attempts written straight into the database, at times in the past. */
async function store(h: Harness, tenantId: number, webhookId: number, deliveries: Stored[]): Promise<void> {
  const eventId = await storeEvent(h.store, tenantId, 0, timeOrderedId('evt'));
  for (const d of deliveries) {
    const row = newDeliveryRow(
      { tenant_id: tenantId, webhook_id: webhookId, event_id: eventId, event_type: 'invoice.paid' },
      d.at,
    );
    const id = row.id;
    await h.store.db
      .insertInto('deliveries')
      .values({ ...row, status: d.status, attempts: d.durations.length, next_attempt_at: null })
      .execute();
    for (const [i, duration] of d.durations.entries()) {
      const last = i === d.durations.length - 1;
      const given = d.attempts?.[i];
      await h.store.db
        .insertInto('attempts')
        .values({
          delivery_id: id,
          webhook_id: webhookId,
          number: i + 1,
          delivery_status: given?.led_to ?? (last && d.status !== 'cancelled' ? d.status : 'pending'),
          started_at: given?.at ?? d.at + i * 1000,
          duration_ms: duration,
          request_headers: '{}',
          response_status: last && d.status === 'succeeded' ? 200 : 500,
          response_headers: null,
          response_body: null,
          error: null,
        })
        .execute();
    }
  }
}

async function webhook(h: Harness) {
  const tenant = await h.tenant();
  const created = (await h.api('POST', '/api/v1/webhooks', { key: tenant.key, body: webhookBody() })).json()
    .data;
  return { ...tenant, webhookId: created.id as number };
}

type Counts = Record<Status, number>;

/** The series' deliveries summed by status: what `counts` must say. */
const sums = (series: Counts[]): Counts =>
  series.reduce(
    (sum, b) => ({
      pending: sum.pending + b.pending,
      succeeded: sum.succeeded + b.succeeded,
      failed: sum.failed + b.failed,
      cancelled: sum.cancelled + b.cancelled,
    }),
    { pending: 0, succeeded: 0, failed: 0, cancelled: 0 },
  );

describeContract('webhook statistics', (h) => {
  it.each([
    ['24h', 24, HOUR, 'hour'],
    ['7d', 7, DAY, 'day'],
    ['30d', 30, DAY, 'day'],
  ] as const)(
    'window %s: %i buckets, whole UTC units in order, zero-filled for a quiet webhook',
    async (window, count, size, unit) => {
      const { key, webhookId } = await webhook(h());
      const before = Date.now();
      const res = await h().api('GET', `/api/v1/webhooks/${webhookId}/stats?window=${window}`, { key });
      expect(res.statusCode).toBe(200);
      const { data } = res.json();
      expect(data).toMatchObject({
        window,
        bucket: unit,
        counts: { pending: 0, succeeded: 0, failed: 0, cancelled: 0 },
      });
      expect(data.series).toHaveLength(count);
      const starts = data.series.map((b: { start: string }) => Date.parse(b.start));
      expect(data.since).toBe(data.series[0].start);
      for (const [i, start] of starts.entries()) {
        expect(start % size).toBe(0);
        if (i > 0) expect(start - starts[i - 1]).toBe(size);
      }
      const last = starts[count - 1];
      expect(last).toBeLessThanOrEqual(Date.parse(data.until));
      expect(last + size).toBeGreaterThan(before);
      for (const bucket of data.series) {
        expect(bucket).toEqual({
          start: bucket.start,
          succeeded: 0,
          failed: 0,
          pending: 0,
          cancelled: 0,
          attempts: 0,
          p50_duration_ms: null,
          p95_duration_ms: null,
        });
      }
    },
  );

  it('defaults to 24h', async () => {
    const { key, webhookId } = await webhook(h());
    const data = (await h().api('GET', `/api/v1/webhooks/${webhookId}/stats`, { key })).json().data;
    expect(data.window).toBe('24h');
    expect(data.series).toHaveLength(24);
  });

  it('counts deliveries created in the window once each by current status, in the bucket they were created in; attempts by when they started', async () => {
    const { id: tenantId, key, webhookId } = await webhook(h());
    // The rows are laid down in this hour and the ones before: the hour must not turn meanwhile.
    await withinOneHour();
    const now = Date.now();
    const thisHour = Math.floor(now / HOUR) * HOUR;
    const today = Math.floor(now / DAY) * DAY;
    await store(h(), tenantId, webhookId, [
      // This hour (a minute into it, so that its attempts stay in it)
      { at: thisHour + 1, status: 'succeeded', durations: [100] },
      { at: thisHour + 2, status: 'succeeded', durations: [500, 300] },
      { at: thisHour + 3, status: 'failed', durations: [20, 40, 60] },
      { at: thisHour + 4, status: 'pending', durations: [1500] },
      { at: thisHour + 5, status: 'cancelled', durations: [] },
      // Five hours ago
      { at: thisHour - 5 * HOUR, status: 'failed', durations: [12_345] },
      // Three days ago: in 7d and 30d only
      { at: today - 3 * DAY + HOUR, status: 'succeeded', durations: [70] },
      // Twenty days ago: in 30d only
      { at: today - 20 * DAY + HOUR, status: 'succeeded', durations: [80] },
      // Forty days ago: in none
      { at: today - 40 * DAY, status: 'failed', durations: [90] },
    ]);
    const stats = async (window: string) =>
      (await h().api('GET', `/api/v1/webhooks/${webhookId}/stats?window=${window}`, { key })).json().data;

    const day = await stats('24h');
    expect(day.counts).toEqual({ pending: 1, succeeded: 2, failed: 2, cancelled: 1 });
    expect(day.series[23]).toEqual({
      start: new Date(thisHour).toISOString(),
      succeeded: 2,
      failed: 1,
      pending: 1,
      cancelled: 1,
      attempts: 7,
      // 20 40 60 100 300 500 1500: the 4th and the 7th by nearest rank
      p50_duration_ms: 100,
      p95_duration_ms: 1500,
    });
    // 12,345 ms is counted to 100 ms.
    expect(day.series[18]).toMatchObject({ succeeded: 0, failed: 1, attempts: 1, p50_duration_ms: 12_300 });
    expect(day.series.filter((b: { attempts: number }) => b.attempts > 0)).toHaveLength(2);
    expect(sums(day.series)).toEqual(day.counts);

    const week = await stats('7d');
    expect(week.counts).toEqual({ pending: 1, succeeded: 3, failed: 2, cancelled: 1 });
    expect(week.series[3]).toMatchObject({ succeeded: 1, failed: 0, attempts: 1, p50_duration_ms: 70 });
    expect(sums(week.series)).toEqual(week.counts);

    const month = await stats('30d');
    expect(month.counts).toEqual({ pending: 1, succeeded: 4, failed: 2, cancelled: 1 });
    expect(month.series[9]).toMatchObject({ succeeded: 1, attempts: 1, p95_duration_ms: 80 });
    expect(sums(month.series)).toEqual(month.counts);
  });

  it('counts a delivery retried by hand or recovered once, in its current state, in the bucket it was created in', async () => {
    const { id: tenantId, key, webhookId } = await webhook(h());
    const thisHour = Math.floor(Date.now() / HOUR) * HOUR;
    const hoursAgo = (n: number) => thisHour - n * HOUR + 60_000;
    await store(h(), tenantId, webhookId, [
      // Failed, failed again when retried by hand, then recovered: succeeded.
      {
        at: hoursAgo(5),
        status: 'succeeded',
        durations: [10, 20, 30],
        attempts: [
          { at: hoursAgo(5), led_to: 'failed' },
          { at: hoursAgo(3), led_to: 'failed' },
          { at: hoursAgo(0), led_to: 'succeeded' },
        ],
      },
      // Failed three times: first by itself, then retried by hand, then recovered.
      {
        at: hoursAgo(2),
        status: 'failed',
        durations: [40, 50, 60],
        attempts: [
          { at: hoursAgo(2), led_to: 'failed' },
          { at: hoursAgo(1), led_to: 'failed' },
          { at: hoursAgo(0), led_to: 'failed' },
        ],
      },
      // Failed, and retried by hand: waiting for its attempt.
      {
        at: hoursAgo(1),
        status: 'pending',
        durations: [70],
        attempts: [{ at: hoursAgo(1), led_to: 'failed' }],
      },
    ]);
    const data = (await h().api('GET', `/api/v1/webhooks/${webhookId}/stats`, { key })).json().data;
    expect(data.counts).toEqual({ pending: 1, succeeded: 1, failed: 1, cancelled: 0 });
    expect(sums(data.series)).toEqual(data.counts);
    const at = (hours: number) => data.series[23 - hours];
    expect(at(5)).toMatchObject({ succeeded: 1, failed: 0, pending: 0, attempts: 1 });
    expect(at(3)).toMatchObject({ succeeded: 0, failed: 0, pending: 0, attempts: 1 });
    expect(at(2)).toMatchObject({ succeeded: 0, failed: 1, pending: 0, attempts: 1 });
    expect(at(1)).toMatchObject({ succeeded: 0, failed: 0, pending: 1, attempts: 2 });
    expect(at(0)).toMatchObject({ succeeded: 0, failed: 0, pending: 0, attempts: 2, p50_duration_ms: 30 });
    expect(data.series.reduce((n: number, b: { attempts: number }) => n + b.attempts, 0)).toBe(7);
  });

  it.each([
    ['24h', 24, HOUR],
    ['30d', 30, DAY],
  ] as const)(
    'window %s: puts a delivery made in each bucket, at its first and last millisecond, in that bucket',
    async (window, count, size) => {
      const { id: tenantId, key, webhookId } = await webhook(h());
      const first = Date.parse(
        (await h().api('GET', `/api/v1/webhooks/${webhookId}/stats?window=${window}`, { key })).json().data
          .since,
      );
      // Bucket i gets i % 3 + 1 deliveries: its first millisecond, its last, and one between.
      const statuses: Status[] = ['succeeded', 'failed', 'pending', 'cancelled'];
      const deliveries: Stored[] = [];
      for (let i = 0; i < count; i++) {
        const start = first + i * size;
        const times = [start, start + size - 1, start + size / 2].slice(0, (i % 3) + 1);
        for (const at of times) {
          if (at <= Date.now()) deliveries.push({ at, status: statuses[i % 4] as Status, durations: [] });
        }
      }
      // Just before the window: in no bucket.
      deliveries.push({ at: first - 1, status: 'succeeded', durations: [] });
      await store(h(), tenantId, webhookId, deliveries);

      const data = (
        await h().api('GET', `/api/v1/webhooks/${webhookId}/stats?window=${window}`, { key })
      ).json().data;
      expect(Date.parse(data.since)).toBe(first);
      for (const [i, bucket] of data.series.entries()) {
        const start = first + i * size;
        const expected = deliveries.filter((d) => d.at >= start && d.at < start + size).length;
        const status = statuses[i % 4] as Status;
        expect(bucket[status], `bucket ${i}`).toBe(expected);
        expect(bucket.succeeded + bucket.failed + bucket.pending + bucket.cancelled, `bucket ${i}`).toBe(
          expected,
        );
      }
      expect(sums(data.series)).toEqual(data.counts);
      expect(Object.values(data.counts).reduce((a: number, b) => a + (b as number), 0)).toBe(
        deliveries.length - 1,
      );
    },
  );

  it('counts nothing of another webhook', async () => {
    const { id: tenantId, key, webhookId } = await webhook(h());
    const other = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    await store(h(), tenantId, other.id, [{ at: Date.now() - 1000, status: 'succeeded', durations: [10] }]);
    const data = (await h().api('GET', `/api/v1/webhooks/${webhookId}/stats`, { key })).json().data;
    expect(data.counts.succeeded).toBe(0);
    expect(data.series.every((b: { attempts: number }) => b.attempts === 0)).toBe(true);
  });

  it.each(['1h', '24H', '', '7d,30d'])('refuses window=%j with 422 naming the field', async (window) => {
    const { key, webhookId } = await webhook(h());
    const res = await h().api(
      'GET',
      `/api/v1/webhooks/${webhookId}/stats?window=${encodeURIComponent(window)}`,
      {
        key,
      },
    );
    expect(res.statusCode).toBe(422);
    expect(res.json().errors.window).toEqual(['The window must be one of: 24h, 7d, 30d.']);
  });

  it("answers 404 for another tenant's webhook and a missing one", async () => {
    const { webhookId } = await webhook(h());
    const other = await h().tenant();
    const res = await h().api('GET', `/api/v1/webhooks/${webhookId}/stats`, { key: other.key });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe(`Webhook ${webhookId} not found.`);
    expect((await h().api('GET', '/api/v1/webhooks/987654/stats', { key: other.key })).statusCode).toBe(404);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await h().api('GET', '/api/v1/openapi.json')).json();
    const stats = doc.paths['/api/v1/webhooks/{id}/stats'].get;
    expect(stats.parameters.find((p: { name: string }) => p.name === 'window').schema).toMatchObject({
      enum: ['24h', '7d', '30d'],
      default: '24h',
    });
    // What each number counts, said in the document (wherever its schemas are kept).
    const text = JSON.stringify(doc);
    expect(stats.description).toContain('each counted once by its current status');
    expect(text).toContain(
      'Deliveries created in the window, by current status: each delivery is counted once',
    );
    expect(text).toContain('Deliveries created in this bucket whose current status is `failed`');
    expect(text).toContain('Attempts started in this bucket');
  });
});

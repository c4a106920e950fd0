import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

interface Bucket {
  start: string;
  succeeded: number;
  failed: number;
  pending: number;
  cancelled: number;
  attempts: number;
  p50_duration_ms: number | null;
  p95_duration_ms: number | null;
}

/** Durations as the statistics count them: exact below 1 s, to 10 ms below 10 s, to 100 ms above. */
const bin = (ms: number) =>
  ms < 1000 ? ms : ms < 10_000 ? Math.floor(ms / 10) * 10 : Math.floor(ms / 100) * 100;
/** Nearest-rank percentile. */
const nearestRank = (values: number[], p: number) =>
  [...values].map(bin).sort((a, b) => a - b)[Math.max(1, Math.ceil(p * values.length)) - 1];

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`webhook statistics from real deliveries [${database.name}]`, () => {
    let h: DeliveryHarness;
    beforeAll(async () => {
      h = await createDeliveryHarness(database);
    });
    afterAll(async () => {
      await h?.close();
    });

    it('counts what the receiver made of the deliveries: 200 succeeded, 422 failed, retries pending', async () => {
      h.receiver.on('/ok', () => ({ status: 200 }));
      // A refusal: a 5xx would say the endpoint is down, make the webhook failing after the first
      // exhausted delivery and hold the others (src/store/breaker.ts).
      h.receiver.on('/broken', () => ({ status: 422 }));
      const ok = await h.webhook({ url: h.receiver.url('/ok'), events: ['invoice.paid'], retry_count: 0 });
      const broken = await h.webhook({
        url: h.receiver.url('/broken'),
        events: ['invoice.paid', 'invoice.created'],
        retry_count: 1,
      });
      for (let i = 0; i < 4; i++) await h.publish('invoice.paid', { i });
      await waitFor(
        async () =>
          (await h.deliveries()).filter((d) => d.status === 'succeeded' || d.status === 'failed').length ===
          8,
        undefined,
        'eight settled deliveries',
      );

      const stats = async (id: number, window: string) =>
        (await h.tenantApi('GET', `/api/v1/webhooks/${id}/stats?window=${window}`)).body.data;
      const settled = (series: Bucket[]) =>
        series.reduce(
          (sum, b) => ({
            succeeded: sum.succeeded + b.succeeded,
            failed: sum.failed + b.failed,
            attempts: sum.attempts + b.attempts,
          }),
          { succeeded: 0, failed: 0, attempts: 0 },
        );

      for (const window of ['24h', '7d', '30d']) {
        const good = await stats(ok.id, window);
        expect(good.counts).toEqual({ pending: 0, succeeded: 4, failed: 0, cancelled: 0 });
        expect(settled(good.series)).toEqual({ succeeded: 4, failed: 0, attempts: 4 });
        const bad = await stats(broken.id, window);
        expect(bad.counts).toEqual({ pending: 0, succeeded: 0, failed: 4, cancelled: 0 });
        // Each failed delivery had two attempts (one retry); the second settled it.
        expect(settled(bad.series)).toEqual({ succeeded: 0, failed: 4, attempts: 8 });
      }

      // Each bucket's percentiles are those of the durations recorded for its attempts.
      const attempts = (await Promise.all((await h.deliveries(ok.id)).map((d) => h.attempts(d.id)))).flat();
      const byHour = new Map<string, number[]>();
      for (const a of attempts) {
        const hour = new Date(Math.floor(Number(a.started_at) / 3_600_000) * 3_600_000).toISOString();
        byHour.set(hour, [...(byHour.get(hour) ?? []), Number(a.duration_ms)]);
      }
      const good = await stats(ok.id, '24h');
      for (const bucket of good.series as Bucket[]) {
        const durations = byHour.get(bucket.start) ?? [];
        expect(bucket.attempts).toBe(durations.length);
        expect(bucket.p50_duration_ms).toBe(durations.length ? nearestRank(durations, 0.5) : null);
        expect(bucket.p95_duration_ms).toBe(durations.length ? nearestRank(durations, 0.95) : null);
      }

      // A retry still to come (in an hour, as the endpoint asks) is pending.
      h.receiver.on('/later', () => ({ status: 503, headers: { 'retry-after': '3600' } }));
      const later = await h.webhook({
        url: h.receiver.url('/later'),
        events: ['invoice.created'],
        retry_count: 10,
      });
      await h.publish('invoice.created');
      // Its first attempt written (the receiver has the request a moment before).
      await waitFor(async () => (await h.deliveries(later.id))[0]?.attempts >= 1, 10_000, 'a first attempt');
      const pending = await stats(later.id, '24h');
      expect(pending.counts).toEqual({ pending: 1, succeeded: 0, failed: 0, cancelled: 0 });
      expect(settled(pending.series).succeeded + settled(pending.series).failed).toBe(0);
      expect(settled(pending.series).attempts).toBeGreaterThanOrEqual(1);
      await h.tenantApi('DELETE', `/api/v1/webhooks/${later.id}`);
    });

    it("counts a delivery once, as it is now, however often it was retried by hand or recovered: the cards are the series' sums", async () => {
      const start = Date.now();
      // A refusal (not a 5xx, which would open the circuit breaker) until told otherwise.
      const receiver = { ok: false };
      h.receiver.on('/again', () => (receiver.ok ? { status: 200 } : { status: 422 }));
      const hook = await h.webhook({
        url: h.receiver.url('/again'),
        events: ['booth.assigned'],
        retry_count: 0,
      });
      type Row = { id: string; status: string; attempts: number; locked_by: string | null };
      /** Waits until the webhook's deliveries (oldest first) are as `check` wants them, none in flight. */
      const until = (what: string, check: (rows: Row[]) => boolean) =>
        waitFor(
          async () => {
            const rows = (await h.deliveries(hook.id)) as Row[];
            return rows.every((d) => d.locked_by === null) && check(rows) && rows;
          },
          15_000,
          what,
        );
      const shape = (rows: Row[]) => rows.map((d) => `${d.status} ${d.attempts}`);

      for (let i = 0; i < 5; i++) await h.publish('booth.assigned', { booth: `B${i}` });
      const [first, second] = await until(
        'five failed deliveries',
        (rows) => rows.length === 5 && rows.every((d) => d.status === 'failed' && d.attempts === 1),
      );
      if (!first || !second) throw new Error('no deliveries');

      // Retried by hand, and failed again.
      const retry = (id: string) => h.tenantApi('POST', `/api/v1/webhooks/${hook.id}/deliveries/${id}/retry`);
      expect((await retry(first.id)).status).toBe(202);
      await until(
        'the retry by hand to fail',
        (rows) => rows[0]?.status === 'failed' && rows[0].attempts === 2,
      );

      // All five recovered, and failed again.
      const recovered = await h.tenantApi('POST', `/api/v1/webhooks/${hook.id}/recover`, {
        since: new Date(start - 60_000).toISOString(),
      });
      expect(recovered.body.data).toMatchObject({ queued: 5, failed: 5 });
      await until('the recovered deliveries to fail', (rows) =>
        rows.every((d, i) => d.status === 'failed' && d.attempts === (i === 0 ? 3 : 2)),
      );

      // The receiver fixed: the second retried by hand succeeds, and a new event goes through.
      receiver.ok = true;
      expect((await retry(second.id)).status).toBe(202);
      await h.publish('booth.assigned', { booth: 'B5' });
      const rows = await until(
        'the retry and the new delivery to succeed',
        (rows) => rows.length === 6 && rows.filter((d) => d.status === 'succeeded').length === 2,
      );
      expect(shape(rows)).toEqual([
        'failed 3',
        'succeeded 3',
        'failed 2',
        'failed 2',
        'failed 2',
        'succeeded 1',
      ]);
      expect(h.receiver.at('/again')).toHaveLength(13);

      for (const window of ['24h', '7d', '30d']) {
        const data = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/stats?window=${window}`)).body
          .data;
        // Counted by attempts that settled a delivery, the failed would be 5 + 1 + 5 = 11.
        expect(data.counts, window).toEqual({ pending: 0, succeeded: 2, failed: 4, cancelled: 0 });
        const sum = (key: keyof Bucket) =>
          (data.series as Bucket[]).reduce((n, b) => n + (b[key] as number), 0);
        expect(
          {
            pending: sum('pending'),
            succeeded: sum('succeeded'),
            failed: sum('failed'),
            cancelled: sum('cancelled'),
          },
          window,
        ).toEqual(data.counts);
        expect(sum('attempts'), window).toBe(13);
      }
    });
  });
}

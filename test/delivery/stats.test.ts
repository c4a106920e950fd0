import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

interface Bucket {
  start: string;
  succeeded: number;
  failed: number;
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
      // The attempt counts once its outcome is written, after the receiver answered.
      const pending = await waitFor(async () => {
        const data = await stats(later.id, '24h');
        return settled(data.series).attempts >= 1 && data;
      });
      expect(pending.counts).toEqual({ pending: 1, succeeded: 0, failed: 0, cancelled: 0 });
      expect(settled(pending.series).succeeded + settled(pending.series).failed).toBe(0);
      expect(settled(pending.series).attempts).toBeGreaterThanOrEqual(1);
      await h.tenantApi('DELETE', `/api/v1/webhooks/${later.id}`);
    });
  });
}

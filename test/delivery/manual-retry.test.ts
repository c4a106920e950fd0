import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clockPast,
  createDeliveryHarness,
  type DeliveryHarness,
  waitFor,
} from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

/** Retries by hand, recovering failed deliveries, and test events, with real deliveries. */

const DAY_MS = 86_400_000;

/** Waits until the webhook has `count` deliveries, all in `status`; returns them oldest first. */
const settled = (h: DeliveryHarness, webhookId: number, count: number, status: string) =>
  waitFor(
    async () => {
      const rows = await h.deliveries(webhookId);
      return rows.length === count && rows.every((r) => r.status === status) && rows;
    },
    undefined,
    `${count} deliveries of webhook ${webhookId} to be ${status}`,
  );

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`retries by hand, recovery and test events [${database.name}]`, () => {
    let h: DeliveryHarness;
    beforeAll(async () => {
      h = await createDeliveryHarness(database, { RETRY_SCHEDULE: '50ms' });
    });
    afterAll(async () => {
      await h?.close();
    });

    /**
     * A receiver path that fails while `down` says so, with 500 (the endpoint is down) or another
     * status: a refusal (4xx) exhausts deliveries without making the webhook failing, whose circuit
     * breaker would hold the rest.
     */
    const switchable = (path: string, status = 500) => {
      const state = { down: true };
      h.receiver.on(path, () => (state.down ? { status, body: 'down' } : { status: 200 }));
      return state;
    };
    const retry = (webhookId: number, deliveryId: string) =>
      h.tenantApi('POST', `/api/v1/webhooks/${webhookId}/deliveries/${deliveryId}/retry`);

    it('retries a failed delivery now: a new attempt on the same delivery, same body and id', async () => {
      const state = switchable('/retry-failed');
      const hook = await h.webhook({
        url: h.receiver.url('/retry-failed'),
        events: ['invoice.paid'],
        retry_count: 1,
      });
      await h.publish('invoice.paid', { invoice_id: 7 });
      const [failed] = await settled(h, hook.id, 1, 'failed');
      expect(failed.attempts).toBe(2);

      state.down = false;
      const res = await retry(hook.id, failed.id);
      expect(res.status).toBe(202);
      expect(res.body.data).toMatchObject({ id: failed.id, status: 'pending', attempts: 2, is_test: false });
      expect(res.body.data.next_attempt_at).toEqual(expect.any(String));
      const [done] = await settled(h, hook.id, 1, 'succeeded');
      expect(done.attempts).toBe(3);

      const received = h.receiver.at('/retry-failed');
      expect(received).toHaveLength(3);
      expect(new Set(received.map((r) => r.headers['x-webhook-delivery']))).toEqual(new Set([failed.id]));
      expect(new Set(received.map((r) => r.body)).size).toBe(1);
      const view = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/deliveries/${failed.id}`)).body
        .data;
      expect(view.attempt_history.map((a: { number: number }) => a.number)).toEqual([1, 2, 3]);
      expect(view.attempt_history.map((a: { response_status: number }) => a.response_status)).toEqual([
        500, 500, 200,
      ]);
    });

    it('retries a succeeded delivery: the receiver gets it once more', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/retry-succeeded'), events: ['invoice.paid'] });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 1, 'succeeded');
      const res = await retry(hook.id, delivery.id);
      expect(res.status).toBe(202);
      await waitFor(async () => (await h.deliveries(hook.id))[0]?.attempts === 2);
      const [again] = await settled(h, hook.id, 1, 'succeeded');
      expect(again.attempts).toBe(2);
      expect(h.receiver.at('/retry-succeeded')).toHaveLength(2);
    });

    it('makes one attempt per retry by hand: a failing one is failed again, not retried on the schedule', async () => {
      h.receiver.on('/retry-still-down', () => ({ status: 500 }));
      const hook = await h.webhook({
        url: h.receiver.url('/retry-still-down'),
        events: ['invoice.paid'],
        retry_count: 2,
      });
      await h.publish('invoice.paid');
      const [failed] = await settled(h, hook.id, 1, 'failed');
      expect(failed.attempts).toBe(3);
      expect((await retry(hook.id, failed.id)).status).toBe(202);
      // The attempt's outcome is written with the delivery's status: failed, with no retry to come.
      const [after] = await waitFor(async () => {
        const rows = await h.deliveries(hook.id);
        return rows[0]?.attempts === 4 && rows;
      });
      expect(after).toMatchObject({ status: 'failed', attempts: 4, next_attempt_at: null });
      expect(h.receiver.at('/retry-still-down')).toHaveLength(4);
    });

    it('sends a retry by hand even while the webhook is paused; paused deliveries otherwise wait', async () => {
      const state = switchable('/retry-paused');
      const hook = await h.webhook({
        url: h.receiver.url('/retry-paused'),
        events: ['invoice.paid'],
        retry_count: 0,
      });
      await h.publish('invoice.paid');
      const [failed] = await settled(h, hook.id, 1, 'failed');
      await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, { is_active: false });
      state.down = false;
      expect((await retry(hook.id, failed.id)).status).toBe(202);
      const [done] = await settled(h, hook.id, 1, 'succeeded');
      expect(done.attempts).toBe(2);
    });

    it('brings a pending delivery waiting for its next retry forward, and answers 409 while one is in flight', async () => {
      // 503 with Retry-After: one hour: the next attempt waits that long.
      const state = { mode: 'later' as 'later' | 'hang' | 'ok' };
      let answer = () => {};
      const answered = new Promise<void>((resolve) => {
        answer = resolve;
      });
      h.receiver.on('/retry-pending', () =>
        state.mode === 'later'
          ? { status: 503, headers: { 'retry-after': '3600' } }
          : state.mode === 'hang'
            ? { after: answered, status: 200 }
            : { status: 200 },
      );
      const hook = await h.webhook({
        url: h.receiver.url('/retry-pending'),
        events: ['invoice.paid'],
        retry_count: 3,
        timeout_seconds: 10,
      });
      await h.publish('invoice.paid');
      const [waiting] = await waitFor(async () => {
        const rows = await h.deliveries(hook.id);
        return rows[0]?.attempts === 1 && rows[0].locked_by === null && rows;
      });
      expect(waiting.status).toBe('pending');
      expect(waiting.next_attempt_at - Date.now()).toBeGreaterThan(3_000_000);

      state.mode = 'hang';
      const res = await retry(hook.id, waiting.id);
      expect(res.status).toBe(202);
      expect(Date.parse(res.body.data.next_attempt_at)).toBeLessThanOrEqual(Date.now());
      // Now a worker is sending it (the receiver answers when the test lets it).
      await waitFor(() => h.receiver.at('/retry-pending').length === 2);
      const busy = await retry(hook.id, waiting.id);
      expect(busy.status).toBe(409);
      expect(busy.body.error).toMatch(/being sent right now/);
      answer();
      const [done] = await settled(h, hook.id, 1, 'succeeded');
      expect(done.attempts).toBe(2);
    });

    it('recovers the failed deliveries of a window, and only those', async () => {
      const state = switchable('/recover', 400);
      const hook = await h.webhook({ url: h.receiver.url('/recover'), events: ['*'], retry_count: 0 });
      h.receiver.on('/recover-sibling', () => ({ status: 400 }));
      const sibling = await h.webhook({
        url: h.receiver.url('/recover-sibling'),
        events: ['*'],
        retry_count: 0,
      });
      const start = Date.now();
      await clockPast(start);
      await h.publish('invoice.paid', { n: 1 });
      await h.publish('contact.created', { n: 2 });
      await clockPast();
      const middle = Date.now();
      await clockPast(middle);
      await h.publish('booth.assigned', { n: 3 });
      const failed = await settled(h, hook.id, 3, 'failed');
      await settled(h, sibling.id, 3, 'failed');
      state.down = false;

      const recover = (body: unknown) => h.tenantApi('POST', `/api/v1/webhooks/${hook.id}/recover`, body);
      const first = await recover({
        since: new Date(start).toISOString(),
        until: new Date(middle).toISOString(),
      });
      expect(first.status).toBe(202);
      expect(first.body.data).toEqual({ queued: 2, failed: 2, missing: 0 });
      await waitFor(
        async () => (await h.deliveries(hook.id)).filter((d) => d.status === 'succeeded').length === 2,
      );

      const rest = await recover({ since: new Date(start).toISOString() });
      expect(rest.body.data).toEqual({ queued: 1, failed: 1, missing: 0 });
      const done = await settled(h, hook.id, 3, 'succeeded');
      expect(done.map((d) => d.id)).toEqual(failed.map((d) => d.id));
      expect(done.every((d) => d.attempts === 2)).toBe(true);

      // Nothing failed is left in the window; the sibling webhook's failures were not touched (a
      // recovery queues in its own request: touched, they would be pending or sent again by now).
      expect((await recover({ since: new Date(start).toISOString() })).body.data).toEqual({
        queued: 0,
        failed: 0,
        missing: 0,
      });
      expect((await h.deliveries(sibling.id)).map((d) => [d.status, d.attempts])).toEqual([
        ['failed', 1],
        ['failed', 1],
        ['failed', 1],
      ]);
    });

    it('refuses a recovery window that is too old, reversed or malformed, with 422 per field', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/recover-bad'), events: ['invoice.paid'] });
      const recover = (body: unknown) => h.tenantApi('POST', `/api/v1/webhooks/${hook.id}/recover`, body);
      const iso = (ms: number) => new Date(ms).toISOString();
      const now = Date.now();
      const cases: [unknown, string][] = [
        [{ since: iso(now - 15 * DAY_MS) }, 'since'],
        [{ since: iso(now - 14 * DAY_MS - 60_000) }, 'since'],
        [{ since: iso(now - DAY_MS), until: iso(now - 2 * DAY_MS) }, 'until'],
        [{ since: 'last week' }, 'since'],
        [{ since: iso(now), until: 'now' }, 'until'],
        [{}, 'since'],
        [{ since: iso(now), extra: 1 }, 'extra'],
        [{ since: 1_700_000_000 }, 'since'],
      ];
      for (const [body, field] of cases) {
        const res = await recover(body);
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.body.errors[field], `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`).toEqual([
          expect.any(String),
        ]);
      }
      const ok = await recover({ since: iso(now - 14 * DAY_MS + 60_000) });
      expect(ok.status).toBe(202);
      expect(ok.body.data).toEqual({ queued: 0, failed: 0, missing: 0 });
    });

    it('sends a webhook.test event to this webhook only, also while it is paused, marked as a test', async () => {
      const hook = await h.webhook({
        url: h.receiver.url('/test-paused'),
        events: ['invoice.paid'],
        is_active: false,
      });
      const everything = await h.webhook({ url: h.receiver.url('/test-everything'), events: ['*'] });
      const res = await h.tenantApi('POST', `/api/v1/webhooks/${hook.id}/test`);
      expect(res.status).toBe(202);
      const delivery = res.body.data;
      expect(delivery).toMatchObject({
        id: expect.stringMatching(/^dlv_/),
        event_id: expect.stringMatching(/^evt_/),
        event_type: 'webhook.test',
        status: 'pending',
        attempts: 0,
        is_test: true,
      });

      const [received] = await waitFor(
        () => h.receiver.at('/test-paused').length === 1 && h.receiver.at('/test-paused'),
      );
      const body = JSON.parse(received?.body as string);
      expect(Object.keys(body)).toEqual(['id', 'type', 'created_at', 'tenant', 'data']);
      expect(body).toMatchObject({ id: delivery.event_id, type: 'webhook.test', tenant: h.slug });
      expect(body.data.webhook_id).toBe(hook.id);
      expect(received?.headers['x-webhook-event']).toBe('webhook.test');
      expect(received?.headers['x-webhook-delivery']).toBe(delivery.id);

      // Its outcome is written after the receiver answered.
      const [logged] = await waitFor(async () => {
        const data = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/deliveries`)).body.data;
        return data[0]?.status !== 'pending' && data;
      });
      expect(logged).toMatchObject({ id: delivery.id, status: 'succeeded', is_test: true, attempts: 1 });
      const tests = await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/deliveries?event=webhook.test`);
      expect(tests.body.data.map((d: { id: string }) => d.id)).toEqual([delivery.id]);
      // The webhook stays paused, and a subscriber of "*" got nothing: no delivery was made for it.
      expect((await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data.is_active).toBe(false);
      expect(await h.deliveries(everything.id)).toHaveLength(0);
      expect(h.receiver.at('/test-everything')).toHaveLength(0);
      // Paused means paused for real events: none is made for it.
      await h.publish('invoice.paid');
      expect(await h.deliveries(hook.id)).toHaveLength(1);
      expect(h.receiver.at('/test-paused')).toHaveLength(1);
    });

    it('gives operators the same actions under the tenant slug', async () => {
      const state = switchable('/operator-actions');
      const hook = await h.webhook({
        url: h.receiver.url('/operator-actions'),
        events: ['invoice.paid'],
        retry_count: 0,
      });
      const base = `/internal/v1/tenants/${h.slug}/webhooks/${hook.id}`;
      const sent = await h.operator('POST', `${base}/test`);
      expect(sent.status).toBe(202);
      const [failed] = await settled(h, hook.id, 1, 'failed');
      expect(failed.id).toBe(sent.body.data.id);
      state.down = false;
      expect((await h.operator('POST', `${base}/deliveries/${failed.id}/retry`)).status).toBe(202);
      await settled(h, hook.id, 1, 'succeeded');
      const recovered = await h.operator('POST', `${base}/recover`, {
        since: new Date(Date.now() - DAY_MS).toISOString(),
      });
      expect(recovered.body.data).toEqual({ queued: 0, failed: 0, missing: 0 });
    });
  });
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clockPast,
  createDeliveryHarness,
  type DeliveryHarness,
  waitFor,
} from '../helpers/delivery-harness.js';
import { ADMIN_TOKEN, DATABASES } from '../helpers/harness.js';
import type { Answer } from '../helpers/receiver.js';

/** The delivery log and the Payload View, with real deliveries to the test HTTPS receiver. */

const ITEM_FIELDS = [
  'id',
  'event_id',
  'event_type',
  'status',
  'attempts',
  'next_attempt_at',
  'last_status_code',
  'last_error',
  'created_at',
  'updated_at',
  'is_test',
];

/** Waits until every delivery of the webhook is in a final state; returns them oldest first. */
const settled = (h: DeliveryHarness, webhookId: number, count: number) =>
  waitFor(
    async () => {
      const rows = await h.deliveries(webhookId);
      return rows.length === count && rows.every((r) => r.status !== 'pending') && rows;
    },
    undefined,
    `${count} deliveries of webhook ${webhookId} to settle`,
  );

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`delivery log [${database.name}]`, () => {
    let h: DeliveryHarness;
    /** Another tenant, with a key and a webhook of its own. */
    let other: { slug: string; key: string; webhookId: number; deliveryId: string };
    const log = (webhookId: number, query = '') =>
      h.tenantApi('GET', `/api/v1/webhooks/${webhookId}/deliveries${query}`);

    beforeAll(async () => {
      h = await createDeliveryHarness(database, { RETRY_SCHEDULE: '50ms' });
      const slug = `other-${Date.now().toString(36)}`;
      await h.operator('POST', '/internal/v1/tenants', {
        slug,
        name: 'Other',
        plan: 'business',
        features: ['webhooks'],
      });
      const key = (
        await h.operator('POST', `/internal/v1/tenants/${slug}/api-keys`, { name: 'k', scopes: ['webhooks'] })
      ).body.data.key;
      const app = h.service.app;
      if (!app) throw new Error('no app');
      const created = await app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        headers: { authorization: `Bearer ${key}` },
        payload: { url: h.receiver.url('/other-tenant'), events: ['invoice.paid'] },
      });
      const webhookId = created.json().data.id;
      await h.operator('POST', '/internal/v1/events', { tenant: slug, type: 'invoice.paid', data: {} });
      const [delivery] = await settled(h, webhookId, 1);
      other = { slug, key, webhookId, deliveryId: delivery.id };
    });
    afterAll(async () => {
      await h?.close();
    });

    it('lists the deliveries of one webhook newest first, with every field', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/log-order'), events: ['*'] });
      const noise = await h.webhook({ url: h.receiver.url('/log-noise'), events: ['*'] });
      const types = ['invoice.paid', 'contact.created', 'booth.assigned'];
      const events = [];
      // A millisecond apart at least: ids made in the same millisecond have no order among them.
      for (const type of types) {
        events.push(await h.publish(type, { n: events.length }));
        await clockPast();
      }
      await settled(h, hook.id, 3);
      await settled(h, noise.id, 3);

      const res = await log(hook.id);
      expect(res.status).toBe(200);
      const { data, meta } = res.body;
      expect(meta).toEqual({ request_id: expect.stringMatching(/^req_/), limit: 25, next_cursor: null });
      expect(data).toHaveLength(3);
      expect(data.map((d: { event_type: string }) => d.event_type)).toEqual([...types].reverse());
      expect(data.map((d: { event_id: string }) => d.event_id)).toEqual(events.map((e) => e.id).reverse());
      const [newest] = data;
      expect(Object.keys(newest)).toEqual(ITEM_FIELDS);
      expect(newest).toMatchObject({
        id: expect.stringMatching(/^dlv_/),
        status: 'succeeded',
        attempts: 1,
        next_attempt_at: null,
        last_status_code: 200,
        last_error: null,
        is_test: false,
      });
      expect(new Date(newest.created_at).toISOString()).toBe(newest.created_at);
      const received = h.receiver.at('/log-order').map((r) => r.headers['x-webhook-delivery']);
      expect(new Set(received)).toEqual(new Set(data.map((d: { id: string }) => d.id)));
    });

    it('pages with a cursor that stays stable while new deliveries arrive', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/log-pages'), events: ['invoice.paid'] });
      for (let i = 0; i < 5; i++) await h.publish('invoice.paid', { n: i });
      const all = await settled(h, hook.id, 5);
      const newestFirst = all.map((d) => d.id).reverse();

      const first = (await log(hook.id, '?limit=2')).body;
      expect(first.data.map((d: { id: string }) => d.id)).toEqual(newestFirst.slice(0, 2));
      expect(first.meta.next_cursor).toEqual(expect.any(String));
      expect(first.meta.next_cursor).not.toContain('dlv_');

      // New deliveries arrive between pages: they are newer, so the pages already begun do not move.
      for (let i = 0; i < 3; i++) await h.publish('invoice.paid', { late: i });
      await settled(h, hook.id, 8);

      const second = (await log(hook.id, `?limit=2&cursor=${first.meta.next_cursor}`)).body;
      expect(second.data.map((d: { id: string }) => d.id)).toEqual(newestFirst.slice(2, 4));
      const third = (await log(hook.id, `?limit=2&cursor=${second.meta.next_cursor}`)).body;
      expect(third.data.map((d: { id: string }) => d.id)).toEqual(newestFirst.slice(4, 5));
      expect(third.meta.next_cursor).toBeNull();

      const fresh = (await log(hook.id, '?limit=100')).body;
      expect(fresh.data).toHaveLength(8);
      expect(fresh.data.slice(3).map((d: { id: string }) => d.id)).toEqual(newestFirst);
    });

    it('filters by status (failed: the Failed Deliveries view), event type, since and until', async () => {
      // 422: the endpoint refuses these events. A 5xx would say it is down, make the webhook
      // failing and hold the other deliveries (src/store/breaker.ts), unless one succeeded first.
      h.receiver.on('/log-filters', (r) =>
        JSON.parse(r.body).data.fail ? { status: 422, body: 'refused' } : { status: 200 },
      );
      const hook = await h.webhook({
        url: h.receiver.url('/log-filters'),
        events: ['*'],
        retry_count: 0,
      });
      const t0 = Date.now();
      await clockPast(t0);
      const a = await h.publish('invoice.paid', { fail: true });
      await clockPast();
      const b = await h.publish('invoice.paid', {});
      await clockPast();
      const t1 = Date.now();
      await clockPast(t1);
      const c = await h.publish('contact.created', { fail: true });
      await clockPast();
      const d = await h.publish('contact.created', {});
      await clockPast();
      const t2 = Date.now();
      await settled(h, hook.id, 4);

      const events = async (query: string) => {
        const res = await log(hook.id, query);
        expect(res.status, `${query}: ${JSON.stringify(res.body)}`).toBe(200);
        return res.body.data.map((x: { event_id: string }) => x.event_id);
      };
      const iso = (ms: number) => new Date(ms).toISOString();
      expect(await events('?status=failed')).toEqual([c.id, a.id]);
      expect(await events('?status=succeeded')).toEqual([d.id, b.id]);
      expect(await events('?status=pending')).toEqual([]);
      expect(await events('?status=cancelled')).toEqual([]);
      expect(await events('?event=invoice.paid')).toEqual([b.id, a.id]);
      expect(await events('?event=contact.created&status=failed')).toEqual([c.id]);
      expect(await events('?event=webhook.test')).toEqual([]);
      expect(await events(`?since=${iso(t1)}`)).toEqual([d.id, c.id]);
      expect(await events(`?until=${iso(t1)}`)).toEqual([b.id, a.id]);
      expect(await events(`?since=${iso(t0)}&until=${iso(t2)}`)).toEqual([d.id, c.id, b.id, a.id]);
      expect(await events(`?since=${iso(t2)}`)).toEqual([]);
      // Offsets other than Z name the same instant.
      const plusTwo = new Date(t1 + 2 * 3600_000).toISOString().replace('Z', '+02:00');
      expect(await events(`?since=${encodeURIComponent(plusTwo)}&status=failed`)).toEqual([c.id]);

      const failed = (await log(hook.id, '?status=failed&limit=1')).body.data[0];
      expect(failed).toMatchObject({ status: 'failed', last_status_code: 422, attempts: 1 });
    });

    it('shows the exact body the receiver got and every attempt (Payload View)', async () => {
      h.receiver.on(
        '/payload',
        (_r, n): Answer =>
          n === 1
            ? { status: 500, headers: { 'x-reason': 'warming up' }, body: 'try again' }
            : { status: 200, headers: { 'content-type': 'text/plain' }, body: 'thanks' },
      );
      const hook = await h.webhook({
        url: h.receiver.url('/payload'),
        events: ['invoice.paid'],
        headers: {
          Authorization: 'Bearer receiver-credential',
          'X-Api-Key': 'k-123',
          'X-Tenant-Ref': 'erp-7',
        },
      });
      await h.publish('invoice.paid', { invoice_id: 42, amount: '119.00', note: 'Grüße "quoted" \u2028' });
      const [row] = await waitFor(async () => {
        const rows = await h.deliveries(hook.id);
        return rows[0]?.status === 'succeeded' && rows;
      });
      const res = await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/deliveries/${row.id}`);
      expect(res.status).toBe(200);
      const view = res.body.data;
      const received = h.receiver.at('/payload');
      expect(received).toHaveLength(2);
      expect(view.payload).toBe(received[0]?.body);
      expect(view.payload).toBe(received[1]?.body);
      expect(view).toMatchObject({ id: row.id, status: 'succeeded', attempts: 2, is_test: false });
      expect(view.attempt_history).toHaveLength(2);
      const [first, second] = view.attempt_history;
      expect(Object.keys(first)).toEqual([
        'number',
        'started_at',
        'duration_ms',
        'request_headers',
        'response_status',
        'response_headers',
        'response_body',
        'error',
      ]);
      expect(first).toMatchObject({
        number: 1,
        response_status: 500,
        response_body: 'try again',
        error: null,
      });
      expect(first.response_headers['x-reason']).toBe('warming up');
      expect(second).toMatchObject({ number: 2, response_status: 200, response_body: 'thanks' });
      expect(Date.parse(second.started_at)).toBeGreaterThanOrEqual(Date.parse(first.started_at));
      expect(first.duration_ms).toBeGreaterThanOrEqual(0);

      // Request headers as sent: signatures shown, credential-looking custom headers masked.
      for (const [i, attempt] of view.attempt_history.entries()) {
        const sent = received[i]?.headers as Record<string, string>;
        const headers = Object.fromEntries(
          Object.entries(attempt.request_headers as Record<string, string>).map(([k, v]) => [
            k.toLowerCase(),
            v,
          ]),
        );
        expect(headers['x-webhook-signature']).toBe(sent['x-webhook-signature']);
        expect(headers['webhook-signature']).toBe(sent['webhook-signature']);
        expect(headers['x-webhook-timestamp']).toBe(sent['x-webhook-timestamp']);
        expect(headers['x-webhook-delivery']).toBe(row.id);
        expect(headers['x-tenant-ref']).toBe('erp-7');
        expect(headers.authorization).toBe('********');
        expect(headers['x-api-key']).toBe('********');
        expect(sent.authorization).toBe('Bearer receiver-credential');
      }
      expect(JSON.stringify(res.body)).not.toContain('receiver-credential');
      expect(JSON.stringify(res.body)).not.toContain('k-123');
    });

    it('shows a failed attempt with its error reason', async () => {
      const hook = await h.webhook({
        url: 'https://receiver.test:9/closed',
        events: ['invoice.paid'],
        retry_count: 0,
      });
      await h.publish('invoice.paid');
      const [row] = await settled(h, hook.id, 1);
      const view = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/deliveries/${row.id}`)).body.data;
      expect(view.status).toBe('failed');
      expect(view.last_error).toBe('Connection refused');
      expect(view.attempt_history[0]).toMatchObject({
        response_status: null,
        response_headers: null,
        response_body: null,
        error: 'Connection refused',
      });
    });

    it('answers 422 with field errors on bad input', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/log-bad'), events: ['invoice.paid'] });
      const cases: [string, string][] = [
        ['limit=0', 'limit'],
        ['limit=101', 'limit'],
        ['limit=abc', 'limit'],
        ['limit=2.5', 'limit'],
        ['cursor=nonsense', 'cursor'],
        [`cursor=${Buffer.from('dlv_x').toString('base64url')}`, 'cursor'],
        ['status=done', 'status'],
        ['event=invoice.unknown', 'event'],
        ['since=yesterday', 'since'],
        ['since=2026-01-01', 'since'],
        ['until=2026-13-01T00:00:00Z', 'until'],
        ['since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z', 'until'],
      ];
      for (const [query, field] of cases) {
        const res = await log(hook.id, `?${query}`);
        expect(res.status, query).toBe(422);
        expect(res.body.error, query).toBe('Validation failed');
        expect(res.body.errors[field], `${query}: ${JSON.stringify(res.body)}`).toEqual([expect.any(String)]);
      }
      const both = await log(hook.id, '?limit=0&since=bad');
      expect(Object.keys(both.body.errors).sort()).toEqual(['limit', 'since']);
    });

    it("answers 404 for another tenant's webhook or delivery, and for another webhook's delivery", async () => {
      const mine = await h.webhook({ url: h.receiver.url('/mine'), events: ['invoice.paid'] });
      const sibling = await h.webhook({ url: h.receiver.url('/sibling'), events: ['booth.assigned'] });
      await h.publish('booth.assigned');
      const [siblingDelivery] = await settled(h, sibling.id, 1);
      const paths = (webhookId: number, deliveryId: string) => [
        ['GET', `/api/v1/webhooks/${webhookId}/deliveries`],
        ['GET', `/api/v1/webhooks/${webhookId}/deliveries/${deliveryId}`],
        ['POST', `/api/v1/webhooks/${webhookId}/deliveries/${deliveryId}/retry`],
        ['POST', `/api/v1/webhooks/${webhookId}/recover`],
        ['POST', `/api/v1/webhooks/${webhookId}/test`],
      ];
      const body = (method: string, path: string) =>
        method === 'POST' && path.endsWith('/recover') ? { since: new Date().toISOString() } : undefined;
      // Another tenant's webhook, with its delivery id.
      for (const [method, path] of paths(other.webhookId, other.deliveryId)) {
        const res = await h.tenantApi(
          method as 'GET',
          path as string,
          body(method as string, path as string),
        );
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(res.body.error).toBe(`Webhook ${other.webhookId} not found.`);
      }
      // Another tenant's delivery id under my own webhook; my sibling webhook's delivery under mine.
      for (const deliveryId of [other.deliveryId, siblingDelivery.id, 'dlv_nope', 'x']) {
        for (const [method, path] of paths(mine.id, deliveryId).slice(1, 3)) {
          const res = await h.tenantApi(method as 'GET', path as string);
          expect(res.status, `${method} ${path}`).toBe(404);
          expect(res.body.error).toBe(`Delivery ${deliveryId} not found.`);
        }
      }
      // Nothing was sent or queued by the refused requests.
      const otherRows = await h.deliveries(other.webhookId);
      expect(otherRows).toHaveLength(1);
      expect(otherRows[0].status).toBe('succeeded');
      expect(await h.deliveries(mine.id)).toHaveLength(0);
      // The other tenant sees its own log; the owner of the key, not the id, decides.
      const app = h.service.app;
      const theirs = await app?.inject({
        method: 'GET',
        url: `/api/v1/webhooks/${other.webhookId}/deliveries`,
        headers: { authorization: `Bearer ${other.key}` },
      });
      expect(theirs?.json().data.map((d: { id: string }) => d.id)).toEqual([other.deliveryId]);
    });

    it('needs a key with the webhooks scope, and counts against the rate limit', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/auth'), events: ['invoice.paid'] });
      const app = h.service.app;
      const anonymous = await app?.inject({ method: 'GET', url: `/api/v1/webhooks/${hook.id}/deliveries` });
      expect(anonymous?.statusCode).toBe(401);
      const res = await log(hook.id);
      expect(res.status).toBe(200);
      const withHeaders = await app?.inject({
        method: 'GET',
        url: `/api/v1/webhooks/${hook.id}/deliveries`,
        headers: { authorization: `Bearer ${other.key}` },
      });
      expect(withHeaders?.headers['x-ratelimit-limit']).toBeDefined();
      const wrongMethod = await h.tenantApi('DELETE', `/api/v1/webhooks/${hook.id}/deliveries`);
      expect(wrongMethod.status).toBe(405);
    });

    it('serves the same log to operators under the tenant slug', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/operator-log'), events: ['invoice.paid'] });
      await h.publish('invoice.paid');
      const [row] = await settled(h, hook.id, 1);
      const base = `/internal/v1/tenants/${h.slug}/webhooks/${hook.id}`;
      const list = await h.operator('GET', `${base}/deliveries?status=succeeded`);
      expect(list.status).toBe(200);
      expect(list.body.data).toEqual((await log(hook.id, '?status=succeeded')).body.data);
      const shown = await h.operator('GET', `${base}/deliveries/${row.id}`);
      expect(shown.body.data.payload).toBe(h.receiver.at('/operator-log')[0]?.body);
      expect(
        (await h.operator('GET', `/internal/v1/tenants/${other.slug}/webhooks/${hook.id}/deliveries`)).status,
      ).toBe(404);
      expect(
        (await h.operator('GET', `/internal/v1/tenants/nobody/webhooks/${hook.id}/deliveries`)).status,
      ).toBe(404);
      const app = h.service.app;
      const withTenantKey = await app?.inject({
        method: 'GET',
        url: `${base}/deliveries`,
        headers: { authorization: `Bearer ${other.key}` },
      });
      expect(withTenantKey?.statusCode).toBe(401);
      expect(ADMIN_TOKEN).not.toBe(other.key);
    });

    it('documents the public routes in the OpenAPI document, and not the operator ones', async () => {
      const app = h.service.app;
      const doc = (await app?.inject({ method: 'GET', url: '/api/v1/openapi.json' }))?.json();
      const paths = Object.keys(doc.paths);
      expect(paths).toEqual(
        expect.arrayContaining([
          '/api/v1/webhooks/{id}/deliveries',
          '/api/v1/webhooks/{id}/deliveries/{delivery_id}',
          '/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry',
          '/api/v1/webhooks/{id}/recover',
          '/api/v1/webhooks/{id}/test',
        ]),
      );
      expect(paths.some((p) => p.startsWith('/internal/'))).toBe(false);
      const list = doc.paths['/api/v1/webhooks/{id}/deliveries'].get;
      expect(list.parameters.map((p: { name: string }) => p.name)).toEqual(
        expect.arrayContaining(['id', 'limit', 'cursor', 'status', 'event', 'since', 'until']),
      );
    });
  });
}

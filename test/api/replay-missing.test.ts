import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newEventId } from '../../src/domain/ids.js';
import type { Store } from '../../src/store/db.js';
import { queueMissedEvents, RECOVER_BATCH, type RecoverProgress } from '../../src/store/delivery-log.js';
import { eventBody, newDeliveryRow } from '../../src/store/events.js';
import { findWebhook, type Webhook } from '../../src/store/webhooks.js';
import {
  clockPast,
  createDeliveryHarness,
  type DeliveryHarness,
  waitFor,
} from '../helpers/delivery-harness.js';
import { DATABASES, describeContract, webhookBody } from '../helpers/harness.js';

/**
 * Recovering with `missing: true`: besides the failed deliveries of the window, the events the
 * webhook missed while it was paused or switched off are sent, once each; with real deliveries to
 * the test HTTPS receiver, then in batches below the API.
 */

const HOUR_MS = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

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

/** The ids of the events a receiver path got, in any order, each as often as it came. */
const receivedEvents = (h: DeliveryHarness, path: string) =>
  h.receiver
    .at(path)
    .map((r) => JSON.parse(r.body).id as string)
    .sort();

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`recovering the events a webhook missed [${database.name}]`, () => {
    let h: DeliveryHarness;
    let otherSlug: string;
    beforeAll(async () => {
      h = await createDeliveryHarness(database, { RETRY_SCHEDULE: '50ms' });
      otherSlug = `other-${Date.now().toString(36)}`;
      const created = await h.operator('POST', '/internal/v1/tenants', {
        slug: otherSlug,
        name: 'Other',
        plan: 'business',
        features: ['webhooks'],
      });
      expect(created.status).toBe(201);
    });
    afterAll(async () => {
      await h?.close();
    });

    const recover = (webhookId: number, body: unknown) =>
      h.tenantApi('POST', `/api/v1/webhooks/${webhookId}/recover`, body);
    const setActive = async (webhookId: number, isActive: boolean) => {
      const res = await h.tenantApi('PATCH', `/api/v1/webhooks/${webhookId}`, { is_active: isActive });
      expect(res.status).toBe(200);
    };

    it('queues the failed deliveries and the events missed while paused, which arrive, once each', async () => {
      const state = { down: true };
      h.receiver.on('/replay', () => (state.down ? { status: 500 } : { status: 200 }));
      const start = Date.now();
      await h.publish('invoice.paid', { before: 'the webhook' });
      await clockPast();
      const hook = await h.webhook({
        url: h.receiver.url('/replay'),
        events: ['invoice.paid', 'contact.created'],
        retry_count: 0,
      });
      const failedEvent = await h.publish('invoice.paid', { n: 1 });
      await settled(h, hook.id, 1, 'failed');
      state.down = false;

      await setActive(hook.id, false);
      const missed = [
        await h.publish('invoice.paid', { n: 2 }),
        await h.publish('contact.created', { n: 3 }),
        await h.publish('invoice.paid', { n: 4 }),
      ];
      // Neither a type it does not receive nor another tenant's event is its to miss.
      await h.publish('booth.assigned', { n: 5 });
      const theirs = await h.operator('POST', '/internal/v1/events', {
        tenant: otherSlug,
        type: 'invoice.paid',
        data: { n: 6 },
      });
      expect(theirs.status).toBe(202);
      await setActive(hook.id, true);
      expect(await h.deliveries(hook.id)).toHaveLength(1);

      const first = await recover(hook.id, { since: iso(start), missing: true });
      expect(first.status).toBe(202);
      expect(first.body.data).toEqual({ queued: 4, failed: 1, missing: 3 });
      const done = await settled(h, hook.id, 4, 'succeeded');
      const expected = [failedEvent.id, ...missed.map((e) => e.id)].sort();
      expect(done.map((d) => d.event_id).sort()).toEqual(expected);
      expect(
        done.every((d) => d.manual === 1 && d.attempts === (d.event_id === failedEvent.id ? 2 : 1)),
      ).toBe(true);
      // The failed event came twice (failed, then recovered), each missed one once.
      expect(receivedEvents(h, '/replay')).toEqual([...expected, failedEvent.id].sort());
      const log = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}/deliveries?event=contact.created`))
        .body.data;
      expect(log).toEqual([expect.objectContaining({ event_id: missed[1]?.id, status: 'succeeded' })]);

      // They have deliveries now: nothing is missing any more, nothing failed is left.
      const second = await recover(hook.id, { since: iso(start), missing: true });
      expect(second.body.data).toEqual({ queued: 0, failed: 0, missing: 0 });
      expect(await h.deliveries(hook.id)).toHaveLength(4);
    });

    it('for a subscriber of "*": every type it receives, never another webhook\'s test event', async () => {
      const start = Date.now();
      const everything = await h.webhook({
        url: h.receiver.url('/replay-all'),
        events: ['*'],
        is_active: false,
      });
      const sibling = await h.webhook({ url: h.receiver.url('/replay-sibling'), events: ['invoice.paid'] });
      expect((await h.tenantApi('POST', `/api/v1/webhooks/${sibling.id}/test`)).status).toBe(202);
      const missed = [await h.publish('booth.assigned'), await h.publish('participant.added')];
      await settled(h, sibling.id, 1, 'succeeded');

      const res = await recover(everything.id, { since: iso(start), missing: true });
      expect(res.body.data).toEqual({ queued: 2, failed: 0, missing: 2 });
      // Sent although the webhook is still paused: one attempt by hand each, as a recovery is.
      const done = await settled(h, everything.id, 2, 'succeeded');
      expect(done.map((d) => d.event_type).sort()).toEqual(['booth.assigned', 'participant.added']);
      expect(receivedEvents(h, '/replay-all')).toEqual(missed.map((e) => e.id).sort());
      expect((await h.tenantApi('GET', `/api/v1/webhooks/${everything.id}`)).body.data.is_active).toBe(false);
    });

    it('sends what a webhook switched off by the service missed, through the operator route too', async () => {
      const state = { gone: true };
      h.receiver.on('/replay-gone', () => (state.gone ? { status: 410 } : { status: 200 }));
      const start = Date.now();
      const hook = await h.webhook({ url: h.receiver.url('/replay-gone'), events: ['invoice.paid'] });
      await h.publish('invoice.paid', { n: 1 });
      await waitFor(
        async () => (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data.health === 'disabled',
        undefined,
        'the webhook to be switched off',
      );
      const missed = [await h.publish('invoice.paid', { n: 2 }), await h.publish('invoice.paid', { n: 3 })];
      expect(await h.deliveries(hook.id)).toHaveLength(1);
      state.gone = false;
      await setActive(hook.id, true);

      const res = await h.operator('POST', `/internal/v1/tenants/${h.slug}/webhooks/${hook.id}/recover`, {
        since: iso(start),
        missing: true,
      });
      expect(res.status).toBe(202);
      expect(res.body.data).toEqual({ queued: 3, failed: 1, missing: 2 });
      const done = await settled(h, hook.id, 3, 'succeeded');
      expect(done.filter((d) => missed.some((e) => e.id === d.event_id))).toHaveLength(2);
    });

    it('queues missed events only when asked, and only those of the window', async () => {
      const start = Date.now();
      const hook = await h.webhook({
        url: h.receiver.url('/replay-window'),
        events: ['invoice.paid'],
        is_active: false,
      });
      const early = await h.publish('invoice.paid', { n: 1 });
      await clockPast();
      const middle = Date.now();
      await clockPast(middle);
      const late = await h.publish('invoice.paid', { n: 2 });

      for (const body of [{ since: iso(start) }, { since: iso(start), missing: false }]) {
        expect((await recover(hook.id, body)).body.data).toEqual({ queued: 0, failed: 0, missing: 0 });
      }
      expect(await h.deliveries(hook.id)).toHaveLength(0);
      const windowed = await recover(hook.id, { since: iso(start), until: iso(middle), missing: true });
      expect(windowed.body.data).toEqual({ queued: 1, failed: 0, missing: 1 });
      expect((await h.deliveries(hook.id)).map((d) => d.event_id)).toEqual([early.id]);
      const rest = await recover(hook.id, { since: iso(start), missing: true });
      expect(rest.body.data).toEqual({ queued: 1, failed: 0, missing: 1 });
      const done = await settled(h, hook.id, 2, 'succeeded');
      expect(done.map((d) => d.event_id).sort()).toEqual([early.id, late.id].sort());
    });

    it('takes missing as a boolean only (422), and answers 404 for a deleted webhook', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/replay-bad'), events: ['invoice.paid'] });
      const since = iso(Date.now() - HOUR_MS);
      for (const missing of ['yes', 'true', 1, null, {}]) {
        const res = await recover(hook.id, { since, missing });
        expect(res.status, JSON.stringify(missing)).toBe(422);
        expect(Object.keys(res.body.errors)).toEqual(['missing']);
      }
      expect((await h.tenantApi('DELETE', `/api/v1/webhooks/${hook.id}`)).status).toBe(204);
      expect((await recover(hook.id, { since, missing: true })).status).toBe(404);
      const byOperator = await h.operator(
        'POST',
        `/internal/v1/tenants/${h.slug}/webhooks/${hook.id}/recover`,
        {
          since,
          missing: true,
        },
      );
      expect(byOperator.status).toBe(404);
    });

    it('documents missing and the counts in the OpenAPI document', async () => {
      const doc = (await h.service.app?.inject({ method: 'GET', url: '/api/v1/openapi.json' }))?.json();
      const route = doc.paths['/api/v1/webhooks/{id}/recover'].post;
      const body = route.requestBody.content['application/json'].schema;
      expect(body.properties.missing).toMatchObject({ type: 'boolean', description: expect.any(String) });
      const answer = route.responses['202'].content['application/json'].schema.properties.data;
      expect(Object.keys(answer.properties)).toEqual(['queued', 'failed', 'missing']);
      expect(answer.required).toEqual(['queued', 'failed', 'missing']);
    });
  });
}

/** Events written straight into the database, `at` each. */
async function storeEvents(store: Store, events: { tenantId: number; type: string; at: number }[]) {
  const rows = events.map((e) => {
    const id = newEventId(e.at);
    return { id, tenant_id: e.tenantId, type: e.type, client_id: null, payload: '{}', created_at: e.at };
  });
  for (let i = 0; i < rows.length; i += 500) {
    await store.db
      .insertInto('events')
      .values(rows.slice(i, i + 500))
      .execute();
  }
  return rows.map((r) => r.id);
}

describeContract('queueing missed events in batches', (h) => {
  it("walks a large window among other tenants' events, queues each missed one once, reporting progress", async () => {
    const store = h().store;
    const tenant = await h().tenant();
    const other = await h().tenant();
    const created = Date.now() - HOUR_MS;
    const webhooks: Webhook[] = [];
    for (let n = 0; n < 3; n++) {
      const res = await h().api('POST', '/api/v1/webhooks', {
        key: tenant.key,
        body: webhookBody({ is_active: false, events: ['invoice.paid'] }),
      });
      const id = res.json().data.id as number;
      await store.db.updateTable('webhooks').set({ created_at: created }).where('id', '=', id).execute();
      webhooks.push((await findWebhook(store, tenant.id, id)) as Webhook);
    }
    const [first, second, third] = webhooks as [Webhook, Webhook, Webhook];

    // Over the hour since the webhooks were made, the tenant's events mixed with another's, of a
    // type they receive and of another; and some from before they were made.
    const count = RECOVER_BATCH * 2 + 500;
    const laid: { tenantId: number; type: string; at: number }[] = [];
    for (let i = 0; i < count; i++) {
      const at = created + Math.floor((i * (HOUR_MS - 60_000)) / count);
      laid.push({ tenantId: tenant.id, type: 'invoice.paid', at });
      laid.push({ tenantId: other.id, type: 'invoice.paid', at });
      if (i % 10 === 0) laid.push({ tenantId: tenant.id, type: 'booth.assigned', at });
    }
    const ids = await storeEvents(store, laid);
    await storeEvents(
      store,
      Array.from({ length: 50 }, (_, i) => ({
        tenantId: tenant.id,
        type: 'invoice.paid',
        at: created - 1 - i,
      })),
    );
    const receives = ids.filter(
      (_, i) => laid[i]?.tenantId === tenant.id && laid[i]?.type === 'invoice.paid',
    );
    // One in ten was delivered to the first webhook while it was active.
    const delivered = receives.filter((_, i) => i % 10 === 0);
    await store.db
      .insertInto('deliveries')
      .values(
        delivered.map((eventId) => ({
          ...newDeliveryRow(
            { tenant_id: tenant.id, webhook_id: first.id, event_id: eventId, event_type: 'invoice.paid' },
            Date.now(),
          ),
          status: 'succeeded',
          next_attempt_at: null,
        })),
      )
      .execute();

    const window = { since: created - HOUR_MS, until: Date.now() };
    const steps: RecoverProgress[] = [];
    const queued = await queueMissedEvents(store, tenant.id, first, window, (p) => steps.push({ ...p }));
    expect(queued).toBe(count - delivered.length);
    const inWindow = laid.length;
    expect(steps[0]).toEqual({ kind: 'missing', queued: 0, scanned: 0, total: inWindow });
    expect(steps.at(-1)).toEqual({ kind: 'missing', queued, scanned: inWindow, total: inWindow });
    expect(steps).toHaveLength(1 + Math.ceil(inWindow / RECOVER_BATCH));

    const rows = await store.db
      .selectFrom('deliveries')
      .innerJoin('events', 'events.id', 'deliveries.event_id')
      .select([
        'deliveries.event_id',
        'deliveries.status',
        'deliveries.manual',
        'deliveries.next_attempt_at',
        'events.created_at',
      ])
      .where('deliveries.webhook_id', '=', first.id)
      .execute();
    expect(rows.map((r) => r.event_id).sort()).toEqual([...receives].sort());
    const queuedRows = rows.filter((r) => r.status === 'pending');
    expect(queuedRows).toHaveLength(queued);
    // Due since their events, so that they go out in the order they were published.
    expect(
      queuedRows.every((r) => r.manual === 1 && Number(r.next_attempt_at) === Number(r.created_at)),
    ).toBe(true);

    // Two recoveries of one webhook at once queue each event once.
    const [a, b] = await Promise.all([
      queueMissedEvents(store, tenant.id, second, window),
      queueMissedEvents(store, tenant.id, second, window),
    ]);
    expect(a + b).toBe(count);
    const perEvent = await store.db
      .selectFrom('deliveries')
      .select((eb) => ['event_id', eb.fn.countAll<number>().as('n')])
      .where('webhook_id', '=', second.id)
      .groupBy('event_id')
      .execute();
    expect(perEvent).toHaveLength(count);
    expect(perEvent.every((r) => Number(r.n) === 1)).toBe(true);
    expect(await queueMissedEvents(store, tenant.id, second, window)).toBe(0);

    // A webhook deleted meanwhile gets nothing.
    await h().api('DELETE', `/api/v1/webhooks/${third.id}`, { key: tenant.key });
    expect(await queueMissedEvents(store, tenant.id, third, window)).toBe(0);
  }, 60_000);

  it('sends missed operational events only to a webhook subscribed by name, never one about itself', async () => {
    const store = h().store;
    const tenant = await h().tenant();
    const make = async (events: string[]) => {
      const res = await h().api('POST', '/api/v1/webhooks', {
        key: tenant.key,
        body: webhookBody({ is_active: false, events }),
      });
      expect(res.statusCode, res.body).toBe(201);
      return (await findWebhook(store, tenant.id, res.json().data.id)) as Webhook;
    };
    const named = await make(['webhook.failing', 'invoice.paid']);
    const everything = await make(['*']);
    const at = Date.now();
    const operational = (about: number) => {
      const id = newEventId(at);
      return {
        id,
        tenant_id: tenant.id,
        type: 'webhook.failing',
        client_id: null,
        payload: eventBody(id, 'webhook.failing', at, tenant.slug, { webhook_id: about }),
        created_at: at,
      };
    };
    const [aboutOther, aboutItself] = [operational(everything.id), operational(named.id)];
    await store.db.insertInto('events').values([aboutOther, aboutItself]).execute();
    const [paid] = await storeEvents(store, [{ tenantId: tenant.id, type: 'invoice.paid', at }]);

    const window = { since: at - HOUR_MS, until: Date.now() };
    expect(await queueMissedEvents(store, tenant.id, named, window)).toBe(2);
    expect(await queueMissedEvents(store, tenant.id, everything, window)).toBe(1);
    const sent = await store.db
      .selectFrom('deliveries')
      .select(['webhook_id', 'event_id'])
      .where('webhook_id', 'in', [named.id, everything.id])
      .execute();
    expect(
      sent
        .filter((d) => d.webhook_id === named.id)
        .map((d) => d.event_id)
        .sort(),
    ).toEqual([aboutOther.id, paid].sort());
    expect(sent.filter((d) => d.webhook_id === everything.id).map((d) => d.event_id)).toEqual([paid]);
  });
});

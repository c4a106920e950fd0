import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliveryWorker } from '../../src/delivery/worker.js';
import { Metrics } from '../../src/metrics.js';
import type { Store } from '../../src/store/db.js';
import { newDeliveryRow } from '../../src/store/events.js';
import { pruneOldDeliveries } from '../../src/store/retention.js';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES, describeContract, storeEvent, webhookBody } from '../helpers/harness.js';

/**
 * Retention: deliveries that are over and untouched for RETENTION_DAYS go, with their attempts and
 * the events nothing needs any more; pending work is never pruned.
 */

const DAY_MS = 86_400_000;

interface Seeded {
  eventId: string;
  deliveryIds: string[];
}

/**
 * An event made `ageDays` ago with one delivery per entry of `deliveries` (its status and how
 * many days ago it last changed), each with one attempt.
 */
async function seed(
  store: Store,
  tenantId: number,
  webhookId: number,
  ageDays: number,
  deliveries: { status: string; updatedDaysAgo?: number }[],
): Promise<Seeded> {
  const created = Date.now() - ageDays * DAY_MS;
  const eventId = await storeEvent(store, tenantId, created);
  const deliveryIds: string[] = [];
  for (const d of deliveries) {
    const row = newDeliveryRow(
      { tenant_id: tenantId, webhook_id: webhookId, event_id: eventId, event_type: 'invoice.paid' },
      created,
    );
    const id = row.id;
    const updated = Date.now() - (d.updatedDaysAgo ?? ageDays) * DAY_MS;
    await store.db
      .insertInto('deliveries')
      .values({
        ...row,
        status: d.status,
        attempts: 1,
        next_attempt_at: d.status === 'pending' ? updated + DAY_MS * 1000 : null,
        last_status_code: 500,
        updated_at: updated,
      })
      .execute();
    await store.db
      .insertInto('attempts')
      .values({
        delivery_id: id,
        webhook_id: webhookId,
        delivery_status: d.status,
        number: 1,
        started_at: created,
        duration_ms: 5,
        request_headers: '{}',
        response_status: 500,
        response_headers: '{}',
        response_body: '',
        error: null,
      })
      .execute();
    deliveryIds.push(id);
  }
  return { eventId, deliveryIds };
}

async function remaining(store: Store) {
  const deliveries = (await store.db.selectFrom('deliveries').select('id').execute()).map((r) => r.id);
  const events = (await store.db.selectFrom('events').select('id').execute()).map((r) => r.id);
  const attempts = (await store.db.selectFrom('attempts').select('delivery_id').execute()).map(
    (r) => r.delivery_id,
  );
  return { deliveries: new Set(deliveries), events: new Set(events), attempts: new Set(attempts) };
}

describeContract('retention', (h) => {
  it('prunes old finished deliveries, their attempts and orphaned events, never pending work', async () => {
    const { id: tenantId, key } = await h().tenant();
    const webhookId = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data
      .id;
    const store = h().store;
    const s = (age: number, deliveries: { status: string; updatedDaysAgo?: number }[]) =>
      seed(store, tenantId, webhookId, age, deliveries);

    const oldDone = await s(40, [{ status: 'succeeded' }, { status: 'failed' }, { status: 'cancelled' }]);
    const oldPending = await s(40, [{ status: 'pending' }]);
    const mixed = await s(40, [{ status: 'succeeded' }, { status: 'pending' }]);
    const retriedLately = await s(40, [{ status: 'failed', updatedDaysAgo: 1 }]);
    const recent = await s(5, [{ status: 'succeeded' }]);
    const orphan = await s(40, []);
    const recentOrphan = await s(1, []);

    const res = await h().operator('POST', '/internal/v1/prune');
    expect(res.statusCode).toBe(200);
    expect(res.json().data).toEqual({ deliveries: 4, events: 2 });

    const left = await remaining(store);
    for (const id of [...oldDone.deliveryIds, mixed.deliveryIds[0] as string]) {
      expect(left.deliveries.has(id), id).toBe(false);
      expect(left.attempts.has(id), id).toBe(false);
    }
    for (const id of [
      ...oldPending.deliveryIds,
      mixed.deliveryIds[1] as string,
      ...retriedLately.deliveryIds,
      ...recent.deliveryIds,
    ]) {
      expect(left.deliveries.has(id), id).toBe(true);
      expect(left.attempts.has(id), id).toBe(true);
    }
    expect(left.events.has(oldDone.eventId)).toBe(false);
    expect(left.events.has(orphan.eventId)).toBe(false);
    for (const id of [
      oldPending.eventId,
      mixed.eventId,
      retriedLately.eventId,
      recent.eventId,
      recentOrphan.eventId,
    ]) {
      expect(left.events.has(id), id).toBe(true);
    }
    // Again: nothing more to do.
    expect((await h().operator('POST', '/internal/v1/prune')).json().data).toEqual({
      deliveries: 0,
      events: 0,
    });
  });

  it('works in small batches, stepping over pending deliveries', async () => {
    const { id: tenantId, key } = await h().tenant();
    const webhookId = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data
      .id;
    const store = h().store;
    const pending: string[] = [];
    for (let i = 0; i < 30; i++) {
      const seeded = await seed(store, tenantId, webhookId, 60 - i, [
        { status: i % 6 === 0 ? 'pending' : 'failed' },
      ]);
      if (i % 6 === 0) pending.push(...seeded.deliveryIds);
    }
    const batches: number[] = [];
    const pruned = await pruneOldDeliveries(store, Date.now() - 30 * DAY_MS, {
      batchSize: 4,
      onBatch: (p) => batches.push(p.deliveries),
    });
    expect(pruned).toEqual({ deliveries: 25, events: 25 });
    expect(batches.length).toBeGreaterThanOrEqual(7);
    const rows = await store.db
      .selectFrom('deliveries')
      .select(['id', 'status'])
      .where('webhook_id', '=', webhookId)
      .execute();
    expect(rows.map((r) => r.id).sort()).toEqual([...pending].sort());
    expect(rows.every((r) => r.status === 'pending')).toBe(true);
  });

  it('stops between batches when told to', async () => {
    const { id: tenantId, key } = await h().tenant();
    const webhookId = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data
      .id;
    for (let i = 0; i < 10; i++) await seed(h().store, tenantId, webhookId, 90, [{ status: 'succeeded' }]);
    const pruned = await pruneOldDeliveries(h().store, Date.now() - 30 * DAY_MS, {
      batchSize: 3,
      keepGoing: () => false,
    });
    expect(pruned).toEqual({ deliveries: 3, events: 0 });
    expect((await pruneOldDeliveries(h().store, Date.now() - 30 * DAY_MS)).deliveries).toBe(7);
  });
});

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`retention by the worker [${database.name}]`, () => {
    let h: DeliveryHarness;
    beforeAll(async () => {
      h = await createDeliveryHarness(database, { RETENTION_DAYS: '10' });
    });
    afterAll(async () => {
      await h?.close();
    });

    it('prunes at start and keeps pending deliveries of a paused webhook, however old', async () => {
      const live = await h.webhook({ url: h.receiver.url('/retention-live'), events: ['invoice.paid'] });
      const paused = await h.webhook({
        url: h.receiver.url('/retention-paused'),
        events: ['invoice.paid'],
        is_active: false,
      });
      await h.publish('invoice.paid');
      const [fresh] = await waitFor(async () => {
        const rows = await h.deliveries(live.id);
        return rows[0]?.status === 'succeeded' && rows;
      });
      await h.service.worker?.stop();
      const store = h.service.store;
      const tenant = await store.db
        .selectFrom('tenants')
        .select('id')
        .where('slug', '=', h.slug)
        .executeTakeFirstOrThrow();
      const old = await seed(store, tenant.id, live.id, 11, [{ status: 'succeeded' }, { status: 'failed' }]);
      const held = await seed(store, tenant.id, paused.id, 100, [{ status: 'pending', updatedDaysAgo: 100 }]);

      const worker = new DeliveryWorker({
        config: h.config,
        store,
        metrics: new Metrics(store),
        log: { info() {}, warn() {}, error() {} },
      });
      worker.start();
      try {
        await waitFor(async () => (await h.deliveries(live.id)).length === 1, undefined, 'pruning');
      } finally {
        await worker.stop();
      }
      const left = await remaining(store);
      expect(left.deliveries.has(fresh.id)).toBe(true);
      for (const id of old.deliveryIds) expect(left.deliveries.has(id)).toBe(false);
      expect(left.events.has(old.eventId)).toBe(false);
      expect(left.deliveries.has(held.deliveryIds[0] as string)).toBe(true);
      expect(left.attempts.has(held.deliveryIds[0] as string)).toBe(true);
      expect(left.events.has(held.eventId)).toBe(true);
      const [row] = await h.deliveries(paused.id);
      expect(row.status).toBe('pending');
    });
  });
}

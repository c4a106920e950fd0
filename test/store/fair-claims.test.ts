import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import { type ClaimOptions, claimDeliveries } from '../../src/store/deliveries.js';
import { newDeliveryRow } from '../../src/store/events.js';
import { createTenant } from '../../src/store/tenants.js';
import { createWebhook } from '../../src/store/webhooks.js';
import { freshDatabaseUrl } from '../helpers/delivery-harness.js';
import { DATABASES, storedWebhook, storeEvent } from '../helpers/harness.js';

/** A tenant with `webhooks` webhooks; returns their ids. */
async function tenantWith(store: Store, slug: string, webhooks: number) {
  const tenant = await createTenant(store, { slug, name: slug, plan: 'enterprise', features: ['webhooks'] });
  if (!tenant) throw new Error('no tenant');
  const ids: number[] = [];
  for (let i = 0; i < webhooks; i++)
    ids.push((await createWebhook(store, tenant.id, storedWebhook(i), Number.MAX_SAFE_INTEGER)).id);
  return { id: tenant.id, webhooks: ids };
}

/** `count` deliveries to each of the webhooks, due at `dueAt`, `dueAt + 1`, ... */
async function queue(store: Store, tenantId: number, webhookIds: number[], count: number, dueAt: number) {
  const eventId = await storeEvent(store, tenantId, dueAt);
  const rows = webhookIds.flatMap((webhookId) =>
    Array.from({ length: count }, (_, i) =>
      newDeliveryRow(
        { tenant_id: tenantId, webhook_id: webhookId, event_id: eventId, event_type: 'invoice.paid' },
        dueAt + i,
      ),
    ),
  );
  for (let i = 0; i < rows.length; i += 500)
    await store.db
      .insertInto('deliveries')
      .values(rows.slice(i, i + 500))
      .execute();
}

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`claims serve tenants in turn [${database.name}]`, () => {
    let store: Store;
    let drop: () => Promise<void>;
    let now: number;
    let noisy: { id: number; webhooks: number[] };
    let quiet: { id: number; webhooks: number[] };
    let third: { id: number; webhooks: number[] };
    const claim = (options: Partial<ClaimOptions>) =>
      claimDeliveries(store, {
        workerId: `worker-${Math.random()}`,
        now,
        limit: 10,
        perWebhook: 25,
        perTenant: 100,
        busyWebhooks: new Map(),
        busyTenants: new Map(),
        leaseMarginMs: 60_000,
        ...options,
      });

    beforeAll(async () => {
      const fresh = await freshDatabaseUrl(database);
      store = await openStore({ databaseUrl: fresh.url });
      await migrate(store);
      drop = async () => {
        await store.close();
        await fresh.drop();
      };
      now = Date.now();
      noisy = await tenantWith(store, 'noisy', 30);
      quiet = await tenantWith(store, 'quiet', 1);
      third = await tenantWith(store, 'third', 1);
      // 3,000 deliveries of the noisy tenant, all due before the others' first.
      await queue(store, noisy.id, noisy.webhooks, 100, now - 60_000);
      await queue(store, quiet.id, quiet.webhooks, 2, now - 1_000);
      await queue(store, third.id, third.webhooks, 1, now);
    });
    afterAll(async () => {
      await drop?.();
    });
    // Each test claims from the same queue as it was.
    afterEach(async () => {
      await store.db.updateTable('deliveries').set({ locked_by: null, locked_until: null }).execute();
    });

    it("puts another tenant's fresh delivery beside a deep backlog's oldest", async () => {
      const claimed = await claim({ limit: 10 });
      const byTenant = (id: number) => claimed.filter((d) => d.tenant_id === id).length;
      expect(claimed).toHaveLength(10);
      // One turn each first: the quiet tenants' deliveries are not left behind the 3,000.
      expect(byTenant(quiet.id)).toBe(2);
      expect(byTenant(third.id)).toBe(1);
      expect(byTenant(noisy.id)).toBe(7);
      // The noisy tenant's are its oldest, as before.
      const noisyDue = claimed.filter((d) => d.tenant_id === noisy.id).map((d) => d.event_id);
      expect(new Set(noisyDue).size).toBe(1);
    });

    it("leaves a tenant at its cap out of the claim, and counts what's in flight against it", async () => {
      const atCap = await claim({ limit: 20, busyTenants: new Map([[noisy.id, 100]]) });
      expect(atCap.map((d) => d.tenant_id).sort()).toEqual([quiet.id, quiet.id, third.id].sort());

      const partly = await claim({ limit: 100, perTenant: 10, busyTenants: new Map([[noisy.id, 6]]) });
      expect(partly.filter((d) => d.tenant_id === noisy.id)).toHaveLength(4);
    });

    it('keeps to the cap per webhook within a tenant', async () => {
      const [first] = noisy.webhooks as [number];
      const claimed = await claim({
        limit: 100,
        perWebhook: 2,
        busyWebhooks: new Map([[first, 2]]),
      });
      const perWebhook = new Map<number, number>();
      for (const d of claimed) perWebhook.set(d.webhook_id, (perWebhook.get(d.webhook_id) ?? 0) + 1);
      expect(perWebhook.get(first)).toBeUndefined();
      expect(Math.max(...perWebhook.values())).toBeLessThanOrEqual(2);
    });
  });
}

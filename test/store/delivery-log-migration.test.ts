import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../../src/store/db.js';
import { storeMigratedTo } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

/** The delivery log's migration over deliveries made by the schema before it. */
for (const database of DATABASES) {
  describe.skipIf(database.skip)(`delivery log migration on ${database.name}`, () => {
    let drop = async () => {};
    afterEach(() => drop());

    it('0003 copies each delivery its event type; old deliveries are neither tests nor queued by hand', async () => {
      const migrated = await storeMigratedTo(database, '0002_events_deliveries_attempts');
      drop = migrated.drop;
      const { store } = migrated;
      const db = store.db;
      const now = Date.now();
      const { rows } = await sql<{
        id: number;
      }>`insert into tenants (slug, name, plan, features, created_at, updated_at)
        values ('acme', 'Acme', 'business', '["webhooks"]', ${now}, ${now}) returning id`.execute(db);
      const tenantId = rows[0]?.id;
      const hook = await sql<{ id: number }>`insert into webhooks (tenant_id, name, url, is_active, headers,
        retry_count, timeout_seconds, secret_ciphertext, created_at, updated_at)
        values (${tenantId}, 'w', 'https://hooks.test/', 1, '{}', 3, 30, 'x', ${now}, ${now}) returning id`.execute(
        db,
      );
      const webhookId = hook.rows[0]?.id;
      for (const [event, type] of [
        ['evt_1', 'invoice.paid'],
        ['evt_2', 'booth.assigned'],
      ]) {
        await sql`insert into events (id, tenant_id, type, client_id, payload, created_at)
          values (${event}, ${tenantId}, ${type}, null, '{}', ${now})`.execute(db);
        await sql`insert into deliveries (id, tenant_id, webhook_id, event_id, status, attempts, created_at, updated_at)
          values (${`dlv_${event}`}, ${tenantId}, ${webhookId}, ${event}, 'succeeded', 1, ${now}, ${now})`.execute(
          db,
        );
      }

      expect(await migrate(store)).toContain('0003_delivery_log');
      const deliveries = await db
        .selectFrom('deliveries')
        .select(['id', 'event_type', 'is_test', 'manual'])
        .orderBy('id')
        .execute();
      expect(deliveries).toEqual([
        { id: 'dlv_evt_1', event_type: 'invoice.paid', is_test: 0, manual: 0 },
        { id: 'dlv_evt_2', event_type: 'booth.assigned', is_test: 0, manual: 0 },
      ]);
    });
  });
}

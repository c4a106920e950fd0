import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, openStore } from '../../src/store/db.js';
import { storeMigratedTo } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

/** Migrations that move data are run over data made by the schema before them. */
for (const database of DATABASES) {
  describe.skipIf(database.skip)(`migrations on ${database.name}`, () => {
    let drop = async () => {};
    afterEach(() => drop());

    it('0005 copies each webhook subscribed types, in order, into its event list', async () => {
      const migrated = await storeMigratedTo(database, '0002_events_deliveries_attempts');
      drop = migrated.drop;
      const { store } = migrated;
      const db = store.db;
      const now = Date.now();
      const tenant = await sql<{
        id: number;
      }>`insert into tenants (slug, name, plan, features, created_at, updated_at)
        values ('acme', 'Acme', 'business', '["webhooks"]', ${now}, ${now}) returning id`.execute(store.db);
      const tenantId = tenant.rows[0]?.id;
      const webhook = (types: string[]) =>
        sql<{ id: number }>`insert into webhooks (tenant_id, name, url, is_active, headers, retry_count,
          timeout_seconds, secret_ciphertext, created_at, updated_at)
          values (${tenantId}, 'w', 'https://hooks.test/', 1, '{}', 3, 30, 'x', ${now}, ${now}) returning id`
          .execute(db)
          .then(async ({ rows }) => {
            const id = rows[0]?.id as number;
            for (const [position, type] of types.entries()) {
              await sql`insert into webhook_events (webhook_id, event_type, position)
                values (${id}, ${type}, ${position})`.execute(db);
            }
            return id;
          });
      const two = await webhook(['invoice.paid', 'booth.assigned']);
      const all = await webhook(['*']);
      const none = await webhook([]);

      expect(await migrate(store)).toContain('0005_webhook_event_list');
      const rows = await sql<{
        id: number;
        events: string;
      }>`select id, events from webhooks order by id`.execute(store.db);
      const lists = new Map(rows.rows.map((r) => [r.id, JSON.parse(r.events)]));
      expect(lists.get(two)).toEqual(['invoice.paid', 'booth.assigned']);
      expect(lists.get(all)).toEqual(['*']);
      expect(lists.get(none)).toEqual([]);
    });
  });
}

describe('statements kept across a migration (sqlite)', () => {
  it('read the columns a migration adds', async () => {
    const store = await openStore({});
    try {
      await migrate(store, '0004_secret_rotation');
      const before = await store.db.selectFrom('webhooks').selectAll().compile();
      await store.db.executeQuery(before);
      await migrate(store);
      await sql`insert into tenants (slug, name, plan, features, created_at, updated_at)
        values ('acme', 'Acme', 'business', '[]', 1, 1)`.execute(store.db);
      await sql`insert into webhooks (tenant_id, name, url, is_active, headers, retry_count,
        timeout_seconds, secret_ciphertext, created_at, updated_at, events)
        values (1, 'w', 'https://hooks.test/', 1, '{}', 3, 30, 'x', 1, 1, '["*"]')`.execute(store.db);
      // The same SQL text as before the migration, now with the new column in its rows.
      const { rows } = await store.db.executeQuery<Record<string, unknown>>(before);
      expect(rows[0]?.events).toBe('["*"]');
      expect(rows[0]?.url).toBe('https://hooks.test/');
    } finally {
      await store.close();
    }
  });
});

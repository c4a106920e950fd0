import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../src/store/db.js';
import { storeMigratedTo } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`migrations [${database.name}]`, () => {
    it('0004_secret_rotation fills in what existing rows need: attempts by webhook, disabled_at', async () => {
      const { store, drop } = await storeMigratedTo(database, '0002_events_deliveries_attempts');
      try {
        // Rows as the service wrote them before: a webhook switched off on 410, a paused one, a
        // delivery that failed once then succeeded.
        await sql`insert into tenants (slug, name, plan, features, created_at, updated_at)
          values ('acme', 'Acme', 'business', '[]', 1, 1)`.execute(store.db);
        const webhook = (gone: boolean, paused: boolean) => sql`insert into webhooks (tenant_id, name, url,
          is_active, headers, retry_count, timeout_seconds, secret_ciphertext, failure_count, disabled_reason,
          created_at, updated_at)
          values (1, 'w', 'https://example.com', ${paused || gone ? 0 : 1}, '{}', 3, 30, 'v1.x.y.z', 0,
            ${gone ? 'The endpoint answered 410 Gone.' : null}, 1, 5000)`;
        await webhook(true, false).execute(store.db);
        await webhook(false, true).execute(store.db);
        await sql`insert into events (id, tenant_id, type, payload, created_at)
          values ('evt_1', 1, 'invoice.paid', '{}', 1)`.execute(store.db);
        await sql`insert into deliveries (id, tenant_id, webhook_id, event_id, status, attempts, created_at, updated_at)
          values ('dlv_1', 1, 2, 'evt_1', 'succeeded', 2, 1, 1)`.execute(store.db);
        for (const n of [1, 2]) {
          await sql`insert into attempts (delivery_id, number, started_at, duration_ms, request_headers)
            values ('dlv_1', ${n}, ${n * 1000}, 10, '{}')`.execute(store.db);
        }

        await migrate(store);

        const webhooks = await store.db
          .selectFrom('webhooks')
          .select(['id', 'disabled_at', 'previous_secret_ciphertext', 'previous_secret_expires_at'])
          .orderBy('id')
          .execute();
        expect(webhooks.map((w) => ({ ...w, disabled_at: w.disabled_at && Number(w.disabled_at) }))).toEqual([
          { id: 1, disabled_at: 5000, previous_secret_ciphertext: null, previous_secret_expires_at: null },
          { id: 2, disabled_at: null, previous_secret_ciphertext: null, previous_secret_expires_at: null },
        ]);
        const attempts = await store.db
          .selectFrom('attempts')
          .select(['number', 'webhook_id', 'delivery_status'])
          .orderBy('number')
          .execute();
        expect(attempts).toEqual([
          { number: 1, webhook_id: 2, delivery_status: 'pending' },
          { number: 2, webhook_id: 2, delivery_status: 'succeeded' },
        ]);
      } finally {
        await drop();
      }
    });
  });
}

import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../src/store/db.js';
import { storeMigratedTo } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`migrations [${database.name}]`, () => {
    it('0007_unique_attempt_numbers keeps the first of each duplicated attempt, then allows no more', async () => {
      const { store, drop } = await storeMigratedTo(database, '0006_portal_links');
      try {
        // Rows as a worker that wrote an outcome batch twice left them: attempt 1 of dlv_1 twice,
        // attempt 1 of dlv_2 three times, and dlv_1's attempt 2 once.
        await sql`insert into tenants (slug, name, plan, features, created_at, updated_at)
          values ('acme', 'Acme', 'business', '[]', 1, 1)`.execute(store.db);
        await sql`insert into webhooks (tenant_id, name, url, is_active, headers, retry_count, timeout_seconds,
          secret_ciphertext, failure_count, created_at, updated_at)
          values (1, 'w', 'https://example.com', 1, '{}', 3, 30, 'v1.x.y.z', 0, 1, 1)`.execute(store.db);
        await sql`insert into events (id, tenant_id, type, payload, created_at)
          values ('evt_1', 1, 'invoice.paid', '{}', 1)`.execute(store.db);
        for (const [id, status, attempts] of [
          ['dlv_1', 'succeeded', 2],
          ['dlv_2', 'failed', 1],
        ] as const) {
          await sql`insert into deliveries (id, tenant_id, webhook_id, event_id, event_type, status, attempts,
            created_at, updated_at)
            values (${id}, 1, 1, 'evt_1', 'invoice.paid', ${status}, ${attempts}, 1, 1)`.execute(store.db);
        }
        const laidDown: [string, number, number][] = [
          ['dlv_1', 1, 1000],
          ['dlv_2', 1, 2000],
          ['dlv_1', 1, 1001],
          ['dlv_1', 2, 3000],
          ['dlv_2', 1, 2001],
          ['dlv_2', 1, 2002],
        ];
        for (const [delivery, number, startedAt] of laidDown) {
          await sql`insert into attempts (delivery_id, webhook_id, number, delivery_status, started_at, duration_ms,
            request_headers)
            values (${delivery}, 1, ${number}, 'pending', ${startedAt}, 10, '{}')`.execute(store.db);
        }

        expect(await migrate(store, '0007_unique_attempt_numbers')).toEqual(['0007_unique_attempt_numbers']);

        const attempts = await store.db
          .selectFrom('attempts')
          .select(['id', 'delivery_id', 'number', 'started_at'])
          .orderBy('id')
          .execute();
        expect(attempts.map((a) => ({ ...a, started_at: Number(a.started_at) }))).toEqual([
          { id: 1, delivery_id: 'dlv_1', number: 1, started_at: 1000 },
          { id: 2, delivery_id: 'dlv_2', number: 1, started_at: 2000 },
          { id: 4, delivery_id: 'dlv_1', number: 2, started_at: 3000 },
        ]);
        await expect(
          sql`insert into attempts (delivery_id, webhook_id, number, delivery_status, started_at, duration_ms,
            request_headers)
            values ('dlv_1', 1, 2, 'pending', 4000, 10, '{}')`.execute(store.db),
        ).rejects.toThrow(/unique/i);
      } finally {
        await drop();
      }
    });
  });
}

import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import { claimCandidates, refreshQueueStatistics } from '../../src/store/deliveries.js';
import { newDeliveryRow } from '../../src/store/events.js';
import { createTenant } from '../../src/store/tenants.js';
import { createWebhook } from '../../src/store/webhooks.js';
import { freshDatabaseUrl, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES, storedWebhook, storeEvent } from '../helpers/harness.js';

const postgres = DATABASES.find((d) => d.name === 'postgres');

describe.skipIf(!postgres || postgres.skip)('queue maintenance on postgres', () => {
  let store: Store;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const fresh = await freshDatabaseUrl(postgres as NonNullable<typeof postgres>);
    drop = fresh.drop;
    store = await openStore({ databaseUrl: fresh.url });
    await migrate(store);
  });
  afterAll(async () => {
    await store.close();
    await drop();
  });

  // The worker refreshes the queue's statistics (deliveries only). The webhooks table may have
  // none at all (a new install with autovacuum off): the claim must still walk the queue's index
  // to the first due rows, not read and sort every pending delivery (80 ms at 50,000 pending).
  it('claims from the queue index whatever the statistics of the webhooks table', async () => {
    const tenant = await createTenant(store, {
      slug: 'queue',
      name: 'Q',
      plan: 'enterprise',
      features: ['webhooks'],
    });
    if (!tenant) throw new Error('no tenant');
    const webhook = await createWebhook(store, tenant.id, storedWebhook(), Number.MAX_SAFE_INTEGER);
    const now = Date.now();
    const eventId = await storeEvent(store, tenant.id, now);
    const rows = Array.from({ length: 20_000 }, (_, i) =>
      newDeliveryRow(
        { tenant_id: tenant.id, webhook_id: webhook.id, event_id: eventId, event_type: 'invoice.paid' },
        now - 20_000 + i,
      ),
    );
    for (let i = 0; i < rows.length; i += 1000)
      await store.db
        .insertInto('deliveries')
        .values(rows.slice(i, i + 1000))
        .execute();

    await refreshQueueStatistics(store);
    const candidates = claimCandidates('postgres', {
      now,
      limit: 100,
      perWebhook: 25,
      perTenant: 100,
      busyWebhooks: new Map([[webhook.id, 13]]),
      busyTenants: new Map([[tenant.id, 13]]),
    });
    const { rows: explained } = await sql<{ 'QUERY PLAN': string }>`explain ${candidates}`.execute(store.db);
    const plan = explained.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index Scan using deliveries_tenant_due on deliveries d/);
    expect(plan).not.toMatch(/Seq Scan on deliveries/);
  });

  it('analyzes the queue, and vacuums it too when the server does not', async () => {
    const setting = (await sql<{ on: string }>`select current_setting('autovacuum') as on`.execute(store.db))
      .rows[0]?.on;
    const { vacuumed } = await refreshQueueStatistics(store);
    expect(vacuumed).toBe(setting === 'off');
    // The statistics views lag a little behind the work itself.
    const stats = await waitFor(
      async () => {
        await sql`select pg_stat_clear_snapshot()`.execute(store.db);
        const row = (
          await sql<{ last_vacuum: Date | null; last_analyze: Date | null }>`
            select last_vacuum, last_analyze from pg_stat_user_tables
            where relname = 'deliveries' and schemaname = current_schema()`.execute(store.db)
        ).rows[0];
        return row?.last_analyze && row;
      },
      undefined,
      'the statistics views to show the analyze',
    );
    expect(stats.last_analyze).toBeInstanceOf(Date);
    expect(stats.last_vacuum !== null).toBe(vacuumed);
  });
});

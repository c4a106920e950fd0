import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import { refreshQueueStatistics } from '../../src/store/deliveries.js';
import { freshDatabaseUrl } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

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

  it('analyzes the queue, and vacuums it too when the server does not', async () => {
    const setting = (await sql<{ on: string }>`select current_setting('autovacuum') as on`.execute(store.db))
      .rows[0]?.on;
    const { vacuumed } = await refreshQueueStatistics(store);
    expect(vacuumed).toBe(setting === 'off');
    // The statistics views lag a little behind the work itself.
    let stats: { last_vacuum: Date | null; last_analyze: Date | null } | undefined;
    for (let i = 0; i < 50 && !stats?.last_analyze; i++) {
      await sql`select pg_stat_clear_snapshot()`.execute(store.db);
      stats = (
        await sql<{ last_vacuum: Date | null; last_analyze: Date | null }>`
          select last_vacuum, last_analyze from pg_stat_user_tables
          where relname = 'deliveries' and schemaname = current_schema()`.execute(store.db)
      ).rows[0];
      if (!stats?.last_analyze) await new Promise((r) => setTimeout(r, 100));
    }
    expect(stats?.last_analyze).toBeInstanceOf(Date);
    expect(stats?.last_vacuum !== null).toBe(vacuumed);
  });
});

import { sql } from 'kysely';
import type { Store } from './db.js';

/**
 * Counts one request of a tenant in the hourly window that starts at `windowStart` (Unix
 * seconds) and returns the count so far. One upsert, so that all API processes share the count.
 */
export async function countRequest(store: Store, tenantId: number, windowStart: number): Promise<number> {
  const row = await store.db
    .insertInto('rate_limit_windows')
    .values({ tenant_id: tenantId, window_start: windowStart, count: 1 })
    .onConflict((oc) =>
      oc
        .columns(['tenant_id', 'window_start'])
        .doUpdateSet({ count: sql<number>`rate_limit_windows.count + 1` }),
    )
    .returning('count')
    .executeTakeFirstOrThrow();
  if (row.count === 1) {
    // A new window began: the tenant's older windows are of no further use.
    await store.db
      .deleteFrom('rate_limit_windows')
      .where('tenant_id', '=', tenantId)
      .where('window_start', '<', windowStart)
      .execute();
  }
  return row.count;
}

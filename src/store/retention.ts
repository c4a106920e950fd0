import { sql } from 'kysely';
import { firstIdAt } from '../domain/ids.js';
import type { Store } from './db.js';

/**
 * Retention: deliveries that are over (succeeded, failed, cancelled) and untouched since the
 * cutoff go, with their attempts (by cascade); then events older than the cutoff that no delivery
 * needs any more. Pending deliveries are never pruned, nor the events they send.
 *
 * The work walks the old ids in order, `PRUNE_BATCH` rows at a time, each batch one short
 * transaction: a large backlog never holds the write lock for long (SQLite) and never scans the
 * same pending rows twice in one run.
 */
export const PRUNE_BATCH = 1000;

/** SQLite: the longest pause between two batches (see `pause`). */
const MAX_PAUSE_MS = 1_000;

/** PostgreSQL: one process prunes at a time; the others skip their turn. */
const PRUNE_LOCK = 0x706c_6e64;

export interface Pruned {
  deliveries: number;
  events: number;
}

const FINAL = ['succeeded', 'failed', 'cancelled'] as const;

export async function pruneOldDeliveries(
  store: Store,
  cutoff: number,
  options: {
    batchSize?: number;
    onBatch?: (pruned: Pruned) => void;
    /** Asked between batches; false stops the run (a worker shutting down). */
    keepGoing?: () => boolean;
  } = {},
): Promise<Pruned> {
  const size = options.batchSize ?? PRUNE_BATCH;
  const pruned: Pruned = { deliveries: 0, events: 0 };

  /** Runs one batch in a transaction; false when another process holds the pruning lock. */
  const batch = (work: (trx: typeof store.db) => Promise<void>) =>
    store.db.transaction().execute(async (trx) => {
      if (store.dialect === 'postgres') {
        const { rows } = await sql<{
          locked: boolean;
        }>`select pg_try_advisory_xact_lock(${PRUNE_LOCK}) as locked`.execute(trx);
        if (!rows[0]?.locked) return false;
      }
      await work(trx);
      return true;
    });
  const keepGoing = options.keepGoing ?? (() => true);
  // SQLite works in this thread: a batch holds the event loop (tens of milliseconds on a large
  // table), so after each the loop is left free as long, and requests are answered meanwhile (a
  // restarted worker prunes at once). PostgreSQL works elsewhere: one turn of the loop will do.
  const pause = (began: number) =>
    new Promise((resolve) =>
      store.dialect === 'sqlite'
        ? setTimeout(resolve, Math.min(MAX_PAUSE_MS, performance.now() - began))
        : setImmediate(resolve),
    );

  let after = '';
  for (;;) {
    const began = performance.now();
    const scanned = await store.db
      .selectFrom('deliveries')
      .select(['id', 'status', 'updated_at'])
      .where('id', '<', firstIdAt('dlv', cutoff))
      .where('id', '>', after)
      .orderBy('id')
      .limit(size)
      .execute();
    if (scanned.length === 0) break;
    after = scanned[scanned.length - 1]?.id as string;
    const old = scanned.filter((d) => d.status !== 'pending' && d.updated_at < cutoff).map((d) => d.id);
    if (old.length > 0) {
      const done = await batch(async (trx) => {
        // Checked again here: a delivery retried since the scan is pending now and stays.
        const result = await trx
          .deleteFrom('deliveries')
          .where('id', 'in', old)
          .where('status', 'in', FINAL)
          .where('updated_at', '<', cutoff)
          .executeTakeFirst();
        pruned.deliveries += Number(result.numDeletedRows);
      });
      if (!done) return pruned;
      options.onBatch?.(pruned);
    }
    if (scanned.length < size || !keepGoing()) break;
    await pause(began);
  }

  if (!keepGoing()) return pruned;
  after = '';
  for (;;) {
    const began = performance.now();
    const scanned = await store.db
      .selectFrom('events')
      .select('id')
      .where('id', '<', firstIdAt('evt', cutoff))
      .where('id', '>', after)
      .orderBy('id')
      .limit(size)
      .execute();
    if (scanned.length === 0) break;
    after = scanned[scanned.length - 1]?.id as string;
    const done = await batch(async (trx) => {
      const result = await trx
        .deleteFrom('events')
        .where(
          'id',
          'in',
          scanned.map((e) => e.id),
        )
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('deliveries')
                .select('deliveries.id')
                .whereRef('deliveries.event_id', '=', 'events.id'),
            ),
          ),
        )
        .executeTakeFirst();
      pruned.events += Number(result.numDeletedRows);
    });
    if (!done) return pruned;
    options.onBatch?.(pruned);
    if (scanned.length < size || !keepGoing()) break;
    await pause(began);
  }
  return pruned;
}

import pg from 'pg';
import type { Store } from './db.js';
import { DELIVERIES_CHANNEL } from './events.js';

export interface ListenLog {
  warn(obj: object, msg: string): void;
  info(msg: string): void;
}

/**
 * Calls `onWake` whenever deliveries are queued: from this process (SQLite and PostgreSQL) and,
 * on PostgreSQL, from any process through LISTEN/NOTIFY on a connection of its own, which is
 * opened again by itself after the server drops it. Returns a function that stops listening.
 */
export function listenForDeliveries(store: Store, onWake: () => void, log: ListenLog): () => Promise<void> {
  store.wakeups.on('wake', onWake);
  const connection = store.connection;
  if (!connection) return async () => void store.wakeups.off('wake', onWake);

  let client: pg.Client | undefined;
  let stopped = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;

  const connect = async () => {
    if (stopped) return;
    const next = new pg.Client(connection);
    next.on('notification', onWake);
    next.on('error', () => {}); // followed by 'end', handled there
    next.on('end', () => {
      if (client === next) client = undefined;
      if (!stopped) retry();
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${DELIVERIES_CHANNEL}`);
      client = next;
      if (failures > 0) log.info('listening for deliveries again');
      failures = 0;
      onWake(); // notifications sent while away are lost: look for due work now
    } catch (error) {
      next.removeAllListeners('end');
      await next.end().catch(() => {});
      log.warn({ err: error }, 'cannot listen for deliveries; retrying');
      retry();
    }
  };
  const retry = () => {
    if (stopped || retryTimer) return;
    failures += 1;
    retryTimer = setTimeout(
      () => {
        retryTimer = undefined;
        void connect();
      },
      Math.min(30_000, 250 * 2 ** Math.min(failures, 7)),
    );
  };
  void connect();

  return async () => {
    stopped = true;
    store.wakeups.off('wake', onWake);
    if (retryTimer) clearTimeout(retryTimer);
    await client?.end().catch(() => {});
  };
}

import { sql } from 'kysely';
import pg from 'pg';
import { settledWithin } from '../deadline.js';
import type { Store } from './db.js';

/**
 * Waking the workers when deliveries are queued: in process through the store's emitter, and on
 * PostgreSQL across processes through NOTIFY on this channel.
 */
export const DELIVERIES_CHANNEL = 'plandocket_deliveries';

const notifying = new WeakMap<Store, { sending: boolean; again: boolean }>();

/**
 * Tells every worker to look for due deliveries now. On PostgreSQL the NOTIFY is sent after the
 * publishing transaction, not in it (a NOTIFY takes a lock that serialises commits), and
 * coalesced: while one is on its way, later calls add at most one more. A NOTIFY that is lost
 * (a crash, the database away) only delays work until the workers' next poll.
 */
export async function wakeWorkers(store: Store): Promise<void> {
  store.wakeups.emit('wake');
  if (store.dialect !== 'postgres') return;
  const state = notifying.get(store) ?? { sending: false, again: false };
  notifying.set(store, state);
  if (state.sending) {
    state.again = true;
    return;
  }
  state.sending = true;
  try {
    do {
      state.again = false;
      await sql`select pg_notify(${DELIVERIES_CHANNEL}, '')`.execute(store.db);
    } while (state.again);
  } catch {
    // The poll finds the work.
  } finally {
    state.sending = false;
  }
}

/**
 * The LISTEN connection is asked this often whether it still answers: a connection silenced by a
 * partition (nothing forwarded, nothing closed) would otherwise wait for notifications forever.
 */
export const LISTEN_CHECK_MS = 10_000;
/** How long the check waits for its answer. */
const LISTEN_ANSWER_MS = 5_000;

export interface ListenLog {
  warn(obj: object, msg: string): void;
  info(msg: string): void;
}

/**
 * Calls `onWake` whenever deliveries are queued: from this process (SQLite and PostgreSQL) and,
 * on PostgreSQL, from any process through LISTEN/NOTIFY on a connection of its own, which is
 * opened again by itself after the server drops it or stops answering (asked every
 * LISTEN_CHECK_MS). Returns a function that stops listening.
 */
export function listenForDeliveries(store: Store, onWake: () => void, log: ListenLog): () => Promise<void> {
  store.wakeups.on('wake', onWake);
  const connection = store.connection;
  if (!connection) return async () => void store.wakeups.off('wake', onWake);

  let client: pg.Client | undefined;
  let stopped = false;
  let failures = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let checking = false;

  // A client that did not answer has a query still active: pg's end() then destroys the socket
  // instead of saying goodbye to a server that cannot hear it.
  const check = async () => {
    const current = client;
    if (!current || checking || stopped) return;
    checking = true;
    try {
      await current.query({ text: 'select 1', query_timeout: LISTEN_ANSWER_MS } as pg.QueryConfig);
    } catch (error) {
      if (client === current) {
        log.warn({ err: error }, 'the connection listening for deliveries does not answer; reconnecting');
        client = undefined;
        void current.end().catch(() => {});
      }
    } finally {
      checking = false;
    }
  };
  const checkTimer = setInterval(() => void check(), LISTEN_CHECK_MS).unref();

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
    clearInterval(checkTimer);
    if (client) await settledWithin(client.end(), 1_000);
  };
}

/** PostgreSQL: connections whose every wait is bounded, and the pool that Kysely uses. */
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import type { DatabaseConfig } from '../config.js';
import type { Database } from './schema.js';
import type { WriteFailure } from './write-failure.js';

// PostgreSQL returns BIGINT (our millisecond times, counts) as strings by default; they fit a double.
const INT8_OID = 20;
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * The client gives up on an answer this long after the server's own statement timeout: by then
 * the server has cancelled the statement and said so, unless it cannot be reached at all.
 */
const ANSWER_MARGIN_MS = 2_000;
/** TCP keep-alive probes start after a connection was idle this long. */
const KEEP_ALIVE_AFTER_MS = 10_000;
/** Closing the pool waits this long at most: a connection to a silent server never says goodbye. */
export const CLOSE_WITHIN_MS = 2_000;

/** How long a client waits for any answer before it takes the connection for lost. */
export function answerTimeoutMs(timeouts: DatabaseConfig): number {
  return timeouts.statementTimeoutMs + ANSWER_MARGIN_MS;
}

/**
 * A connection's settings. Every wait is bounded: opening it (and waiting for a free one in the
 * pool), each statement (cancelled by the server), each answer (the client gives up when the
 * server cannot be reached), a transaction left open, and an idle socket (TCP keep-alive).
 * `unbounded` leaves statements without a time limit (migrations: an index on a large table).
 */
export function pgConfig(
  url: string,
  schema: string | undefined,
  timeouts: DatabaseConfig,
  unbounded = false,
): pg.ClientConfig {
  // Short statements on indexes, planned for tables whose size the planner may overestimate:
  // compiling them (JIT) costs more than running them, 50 to 150 ms a claim. The URL's own
  // `options` come after, so that a setting there wins; the connection string's options replace
  // the config's in pg, hence both go into the URL.
  const connection = new URL(url);
  const options = [
    '-c jit=off',
    connection.searchParams.get('options'),
    schema && `-c search_path=${schema}`,
  ];
  connection.searchParams.set('options', options.filter(Boolean).join(' '));
  return {
    connectionString: connection.href,
    types: pgTypes,
    application_name: 'plandocket-webhooks',
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEP_ALIVE_AFTER_MS,
    idle_in_transaction_session_timeout: timeouts.idleInTransactionTimeoutMs,
    ...(!unbounded && {
      statement_timeout: timeouts.statementTimeoutMs,
      query_timeout: answerTimeoutMs(timeouts),
    }),
  };
}

/** pg's error when no answer came within `query_timeout`. */
function isNoAnswer(error: unknown): boolean {
  return (error as Error | undefined)?.message === 'Query read timeout';
}

/**
 * The pool as Kysely uses it. A connection whose answer did not come is closed instead of going
 * back to the pool, where the next query would queue behind the one still waiting (pg keeps it
 * active) and time out in turn; a query on it after that fails at once. The idle connections go
 * too: the partition that silenced one most likely silenced them all, and each would cost another
 * answer timeout after the network heals.
 */
function boundedPool(pool: pg.Pool, writeFailure?: WriteFailure): PostgresPool {
  const opened = new Set<pg.Client>();
  const inUse = new Set<pg.PoolClient>();
  pool.on('connect', (client) => opened.add(client as pg.Client));
  pool.on('remove', (client) => opened.delete(client as pg.Client));
  const dropIdle = () => {
    for (const client of opened) {
      if (inUse.has(client as unknown as pg.PoolClient)) continue;
      opened.delete(client);
      // The pool hears the error and removes the connection; no goodbye to a silent server.
      client.connection.stream.destroy(new Error('closed after a query on another connection got no answer'));
    }
  };
  return {
    async connect() {
      const client = await pool.connect();
      inUse.add(client);
      let lost: Error | undefined;
      const query = async (text: string, parameters: unknown[]) => {
        if (lost) throw lost;
        try {
          const result = await client.query(text, parameters);
          if (writeFailure && result.command === 'INSERT' && (result.rowCount ?? 0) > 0)
            writeFailure.cleared();
          return result;
        } catch (error) {
          if (isNoAnswer(error)) {
            lost = error as Error;
            dropIdle();
          }
          writeFailure?.note(error);
          throw error;
        }
      };
      return {
        query,
        release: (destroy?: boolean) => {
          inUse.delete(client);
          client.release(lost ?? destroy);
        },
      } as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/** Storage failures are noted in `writeFailure`; an insert that added rows clears it. */
export function openPostgres(connection: pg.ClientConfig, writeFailure?: WriteFailure): Kysely<Database> {
  const pool = new pg.Pool({ ...connection, max: 10 });
  // A connection the server dropped must not take the process down: the query on it fails (and is
  // retried by its caller) and the pool opens a new one. Without these listeners pg would throw.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: boundedPool(pool, writeFailure) }) });
}

import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import {
  type DatabaseConnection,
  Kysely,
  Migrator,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  type SqliteStatement,
  sql,
} from 'kysely';
import pg from 'pg';
import { type DatabaseConfig, DEFAULT_DATABASE_TIMEOUTS } from '../config.js';
import { settledWithin } from '../deadline.js';
import { migrations } from './migrations.js';
import type { Database } from './schema.js';
import { storageFailure, WriteFailure } from './write-failure.js';

export { storageFailure, WriteFailure };

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** PostgreSQL: how to open a connection of one's own (for LISTEN). */
  connection?: pg.ClientConfig;
  /** PostgreSQL: the same, with no time limit on statements (migrations). */
  unboundedConnection?: pg.ClientConfig;
  /** PostgreSQL: how long a query waits for an answer before its connection is taken for lost. */
  answerTimeoutMs?: number;
  /** Wakes this process's worker at once when deliveries are queued (SQLite's way; PostgreSQL adds NOTIFY). */
  wakeups: EventEmitter;
  /** Whether writes fail for lack of storage (disk full, I/O errors, read-only), for readiness. */
  writeFailure: WriteFailure;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** `postgres://...`; absent for SQLite. */
  databaseUrl?: string | undefined;
  sqlitePath?: string;
  /** PostgreSQL only: the schema to work in (created when missing), for isolated test runs. */
  pgSchema?: string;
  /** PostgreSQL: bounds on every wait (defaults: the configuration's defaults). */
  timeouts?: DatabaseConfig;
}

// PostgreSQL returns BIGINT (our millisecond times, counts) as strings by default; they fit a double.
const INT8_OID = 20;
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * Reads rows as arrays and makes the row objects in JavaScript: better-sqlite3 builds each object
 * property by property in native code, which costs two to three times as much on rows of ten
 * columns or more (a page of webhooks). Same objects: the later of two equal names wins.
 * Storage failures are noted in `writeFailure`; an insert that added rows clears it (a statement
 * that changed nothing proves nothing).
 */
function objectRows(statement: SQLite.Statement, adds: boolean, writeFailure: WriteFailure): SqliteStatement {
  const noted = <T>(work: () => T): T => {
    try {
      return work();
    } catch (error) {
      writeFailure.note(error);
      throw error;
    }
  };
  if (!statement.reader) {
    return {
      reader: false,
      all: (parameters) => noted(() => statement.all(parameters)),
      run: (parameters) => {
        const result = noted(() => statement.run(parameters));
        if (adds && Number(result.changes) > 0) writeFailure.cleared();
        return result;
      },
      iterate: (parameters) => noted(() => statement.iterate(parameters)),
    };
  }
  const columns = statement.columns().map((c) => c.name);
  statement.raw(true);
  const toObject = (values: unknown[]) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) row[columns[i] as string] = values[i];
    return row;
  };
  return {
    reader: true,
    all: (parameters) => {
      const rows = noted(() => statement.all(parameters) as unknown[][]);
      // `insert ... returning` is a reader: a row back is a row added.
      if (adds && rows.length > 0) writeFailure.cleared();
      return rows.map(toObject);
    },
    run: (parameters) => noted(() => statement.run(parameters)),
    *iterate(parameters) {
      try {
        for (const values of statement.iterate(parameters) as IterableIterator<unknown[]>)
          yield toObject(values);
      } catch (error) {
        writeFailure.note(error);
        throw error;
      }
    },
  };
}

/**
 * Kysely's SQLite driver undoes a failed transaction with `rollback`. On some errors (SQLITE_FULL,
 * SQLITE_IOERR, SQLITE_NOMEM) SQLite has rolled the transaction back by itself already, `rollback`
 * then fails with "cannot rollback - no transaction is active", and Kysely throws that in place of
 * the error that failed the transaction. This driver rolls back only what is still open.
 */
class SqliteDriverKeepingErrors extends SqliteDriver {
  constructor(
    config: SqliteDialectConfig,
    private readonly database: SQLite.Database,
  ) {
    super(config);
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (!this.database.inTransaction) return;
    try {
      await super.rollbackTransaction(connection);
    } catch (error) {
      // Failed, yet nothing is open any more: the transaction is undone; the first error counts.
      if (this.database.inTransaction) throw error;
    }
  }
}

class SqliteDialectKeepingErrors extends SqliteDialect {
  constructor(
    private readonly config: SqliteDialectConfig,
    private readonly database: SQLite.Database,
  ) {
    super(config);
  }

  override createDriver(): SqliteDriver {
    return new SqliteDriverKeepingErrors(this.config, this.database);
  }
}

const SCHEMA_CHANGE = /^\s*(create|alter|drop)\s/i;
const INSERT = /^\s*insert\s/i;

function openSqlite(file: string, writeFailure: WriteFailure): Kysely<Database> {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
  const database = new SQLite(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma('busy_timeout = 5000');
  database.pragma('foreign_keys = ON');
  // Kysely prepares each query anew; preparing costs more than running most of ours, so the
  // statements are kept (the same SQL text is the same statement). A schema change (a migration)
  // drops them: their row shapes were read when they were prepared.
  const statements = new Map<string, SqliteStatement>();
  const cached = {
    close: () => database.close(),
    prepare(text: string) {
      if (SCHEMA_CHANGE.test(text)) statements.clear();
      let statement = statements.get(text);
      if (!statement) {
        if (statements.size >= 1000) statements.clear();
        let prepared: SQLite.Statement;
        try {
          prepared = database.prepare(text);
        } catch (error) {
          writeFailure.note(error);
          throw error;
        }
        statement = objectRows(prepared, INSERT.test(text), writeFailure);
        statements.set(text, statement);
      }
      return statement;
    },
  };
  return new Kysely<Database>({ dialect: new SqliteDialectKeepingErrors({ database: cached }, database) });
}

/**
 * The client gives up on an answer this long after the server's own statement timeout: by then
 * the server has cancelled the statement and said so, unless it cannot be reached at all.
 */
const ANSWER_MARGIN_MS = 2_000;
/** TCP keep-alive probes start after a connection was idle this long. */
const KEEP_ALIVE_AFTER_MS = 10_000;
/** Closing the pool waits this long at most: a connection to a silent server never says goodbye. */
const CLOSE_WITHIN_MS = 2_000;

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
function pgConfig(
  url: string,
  schema: string | undefined,
  timeouts: DatabaseConfig,
  unbounded = false,
): pg.ClientConfig {
  return {
    connectionString: url,
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
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  };
}

/** pg's error when no answer came within `query_timeout`. */
export function isNoAnswer(error: unknown): boolean {
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
function openPostgres(connection: pg.ClientConfig, writeFailure?: WriteFailure): Kysely<Database> {
  const pool = new pg.Pool({ ...connection, max: 10 });
  // A connection the server dropped must not take the process down: the query on it fails (and is
  // retried by its caller) and the pool opens a new one. Without these listeners pg would throw.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: boundedPool(pool, writeFailure) }) });
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const timeouts = options.timeouts ?? DEFAULT_DATABASE_TIMEOUTS;
    if (options.pgSchema) {
      if (!/^[a-z_][a-z0-9_]*$/.test(options.pgSchema)) throw new Error('invalid schema name');
      const admin = openPostgres(pgConfig(options.databaseUrl, undefined, timeouts));
      try {
        await sql`create schema if not exists ${sql.id(options.pgSchema)}`.execute(admin);
      } finally {
        await settledWithin(admin.destroy(), CLOSE_WITHIN_MS);
      }
    }
    const connection = pgConfig(options.databaseUrl, options.pgSchema, timeouts);
    const writeFailure = new WriteFailure();
    const db = openPostgres(connection, writeFailure);
    return {
      db,
      dialect: 'postgres',
      connection,
      unboundedConnection: pgConfig(options.databaseUrl, options.pgSchema, timeouts, true),
      answerTimeoutMs: answerTimeoutMs(timeouts),
      wakeups: new EventEmitter(),
      writeFailure,
      close: () => settledWithin(db.destroy(), CLOSE_WITHIN_MS).then(() => {}),
    };
  }
  const writeFailure = new WriteFailure();
  const db = openSqlite(options.sqlitePath ?? ':memory:', writeFailure);
  return { db, dialect: 'sqlite', wakeups: new EventEmitter(), writeFailure, close: () => db.destroy() };
}

/**
 * Applies every pending migration (up to and including `upTo` when given); safe to run from
 * several processes at once on PostgreSQL.
 */
export async function migrate(store: Store, upTo?: string): Promise<string[]> {
  // Migrations run without a statement time limit: an index on a large table may take minutes.
  const db = store.unboundedConnection ? openPostgres(store.unboundedConnection) : store.db;
  try {
    // Kysely looks for its own tables in every schema; name ours, so that another schema's
    // migrations (another app, another test run) are not taken for these.
    const schema =
      store.dialect === 'postgres'
        ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema
        : undefined;
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => migrations(store.dialect) },
      ...(schema && { migrationTableSchema: schema }),
    });
    const { error, results } = await (upTo ? migrator.migrateTo(upTo) : migrator.migrateToLatest());
    if (error) throw error;
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  } finally {
    if (db !== store.db) await settledWithin(db.destroy(), CLOSE_WITHIN_MS);
  }
}

/** True when the database answers within `timeoutMs`. */
export async function ping(store: Store, timeoutMs: number): Promise<boolean> {
  let answered = false;
  const query = sql`select 1`.execute(store.db).then(() => {
    answered = true;
  });
  await settledWithin(query, timeoutMs);
  return answered;
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'SQLITE_BUSY',
  '57P01',
  '57P02',
  '57P03',
]);

/**
 * True for errors that mean "the database is away" (PostgreSQL's class 53 too: out of connections,
 * memory or disk), not "the query is wrong". Storage failures (disk full, I/O errors, read-only)
 * are among them; `storageFailure` tells them apart.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (storageFailure(error) !== undefined) return true;
  if (e.code && (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08') || e.code.startsWith('53')))
    return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    e.message ?? '',
  );
}

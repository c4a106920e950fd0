import { EventEmitter } from 'node:events';
import { type Kysely, Migrator, sql } from 'kysely';
import type pg from 'pg';
import { type DatabaseConfig, DEFAULT_DATABASE_TIMEOUTS } from '../config.js';
import { settledWithin } from '../deadline.js';
import { migrations } from './migrations.js';
import { answerTimeoutMs, CLOSE_WITHIN_MS, openPostgres, pgConfig } from './postgres.js';
import type { Database } from './schema.js';
import { BUSY_TIMEOUT_MS, openSqlite } from './sqlite.js';
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
  /** How long a query waits at most: for its answer (PostgreSQL), or for a lock (SQLite). */
  answerTimeoutMs: number;
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
  return {
    db,
    dialect: 'sqlite',
    answerTimeoutMs: BUSY_TIMEOUT_MS,
    wakeups: new EventEmitter(),
    writeFailure,
    close: () => db.destroy(),
  };
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

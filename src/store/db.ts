import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type SqliteStatement, sql } from 'kysely';
import pg from 'pg';
import { migrations } from './migrations.js';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<Database>;
  dialect: Dialect;
  /** PostgreSQL: how to open a connection of one's own (for LISTEN). */
  connection?: pg.ClientConfig;
  /** Wakes this process's worker at once when deliveries are queued (SQLite's way; PostgreSQL adds NOTIFY). */
  wakeups: EventEmitter;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** `postgres://...`; absent for SQLite. */
  databaseUrl?: string | undefined;
  sqlitePath?: string;
  /** PostgreSQL only: the schema to work in (created when missing), for isolated test runs. */
  pgSchema?: string;
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
 */
function objectRows(statement: SQLite.Statement): SqliteStatement {
  if (!statement.reader) return statement;
  const columns = statement.columns().map((c) => c.name);
  statement.raw(true);
  const toObject = (values: unknown[]) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) row[columns[i] as string] = values[i];
    return row;
  };
  return {
    reader: true,
    all: (parameters) => (statement.all(parameters) as unknown[][]).map(toObject),
    run: (parameters) => statement.run(parameters),
    *iterate(parameters) {
      for (const values of statement.iterate(parameters) as IterableIterator<unknown[]>)
        yield toObject(values);
    },
  };
}

const SCHEMA_CHANGE = /^\s*(create|alter|drop)\s/i;

function openSqlite(file: string): Kysely<Database> {
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
        statement = objectRows(database.prepare(text));
        statements.set(text, statement);
      }
      return statement;
    },
  };
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: cached }) });
}

function pgConfig(url: string, schema: string | undefined): pg.ClientConfig {
  return {
    connectionString: url,
    types: pgTypes,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  };
}

function openPostgres(connection: pg.ClientConfig): Kysely<Database> {
  const pool = new pg.Pool({ ...connection, max: 10 });
  // A connection the server dropped must not take the process down: the query on it fails (and is
  // retried by its caller) and the pool opens a new one. Without these listeners pg would throw.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    if (options.pgSchema) {
      if (!/^[a-z_][a-z0-9_]*$/.test(options.pgSchema)) throw new Error('invalid schema name');
      const admin = openPostgres(pgConfig(options.databaseUrl, undefined));
      await sql`create schema if not exists ${sql.id(options.pgSchema)}`.execute(admin);
      await admin.destroy();
    }
    const connection = pgConfig(options.databaseUrl, options.pgSchema);
    const db = openPostgres(connection);
    return { db, dialect: 'postgres', connection, wakeups: new EventEmitter(), close: () => db.destroy() };
  }
  const db = openSqlite(options.sqlitePath ?? ':memory:');
  return { db, dialect: 'sqlite', wakeups: new EventEmitter(), close: () => db.destroy() };
}

/**
 * Applies every pending migration (up to and including `upTo` when given); safe to run from
 * several processes at once on PostgreSQL.
 */
export async function migrate(store: Store, upTo?: string): Promise<string[]> {
  // Kysely looks for its own tables in every schema; name ours, so that another schema's
  // migrations (another app, another test run) are not taken for these.
  const schema =
    store.dialect === 'postgres'
      ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db)).rows[0]?.schema
      : undefined;
  const migrator = new Migrator({
    db: store.db,
    provider: { getMigrations: async () => migrations(store.dialect) },
    ...(schema && { migrationTableSchema: schema }),
  });
  const { error, results } = await (upTo ? migrator.migrateTo(upTo) : migrator.migrateToLatest());
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** True when the database answers. */
export async function ping(store: Store): Promise<boolean> {
  try {
    await sql`select 1`.execute(store.db);
    return true;
  } catch {
    return false;
  }
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

/** True for errors that mean "the database is away", not "the query is wrong". */
export function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (e.code && (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08'))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    e.message ?? '',
  );
}

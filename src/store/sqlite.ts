/** The embedded database: one file, in this process (better-sqlite3). */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import {
  type DatabaseConnection,
  Kysely,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  type SqliteStatement,
} from 'kysely';
import type { Database } from './schema.js';
import type { WriteFailure } from './write-failure.js';

/**
 * Reads rows as arrays and makes the row objects in JavaScript: better-sqlite3 builds each object
 * property by property in native code, which costs two to three times as much on rows of ten
 * columns or more (a page of webhooks). Same objects: the later of two equal names wins.
 * Storage failures are noted in `writeFailure`; an insert that added rows clears it (a statement
 * that changed nothing proves nothing).
 */
function objectRows(statement: SQLite.Statement, adds: boolean, writeFailure: WriteFailure): SqliteStatement {
  // Try blocks written out (no closure per call): every query of the service passes here.
  const run = (parameters: Readonly<unknown[]>) => {
    try {
      const result = statement.run(parameters);
      if (adds && Number(result.changes) > 0) writeFailure.cleared();
      return result;
    } catch (error) {
      writeFailure.note(error);
      throw error;
    }
  };
  if (!statement.reader) {
    return {
      reader: false,
      // Kysely reads rows only from readers; these throw as better-sqlite3's do.
      all: (parameters) => statement.all(parameters),
      run,
      iterate: (parameters) => statement.iterate(parameters),
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
      let rows: unknown[][];
      try {
        rows = statement.all(parameters) as unknown[][];
      } catch (error) {
        writeFailure.note(error);
        throw error;
      }
      // `insert ... returning` is a reader: a row back is a row added.
      if (adds && rows.length > 0) writeFailure.cleared();
      return rows.map(toObject);
    },
    run,
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

/** A statement waits at most this long for a lock another process (the CLI) holds. */
export const BUSY_TIMEOUT_MS = 5_000;
const SCHEMA_CHANGE = /^\s*(create|alter|drop)\s/i;
const INSERT = /^\s*insert\s/i;

export function openSqlite(file: string, writeFailure: WriteFailure): Kysely<Database> {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
  const database = new SQLite(file);
  database.pragma('journal_mode = WAL');
  database.pragma('synchronous = NORMAL');
  database.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
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

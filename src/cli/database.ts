import { existsSync } from 'node:fs';
import { DEFAULT_MIGRATION_TABLE, sql } from 'kysely';
import type { Config } from '../config.js';
import { openConfiguredStore } from '../server.js';
import { migrate, type Store } from '../store/db.js';

/**
 * The database of the commands that work on an existing one (all but `migrate` and `serve`): found
 * through the service's own configuration, never created. Run from the wrong folder, they stop
 * and say where they looked instead of making an empty database there.
 */

/** A problem an operator fixes: printed as it is, exit code 1. */
export class CliError extends Error {}

/** A PostgreSQL URL without its password (and its query, which may hold one), to name it. */
export function describeDatabaseUrl(url: string): string {
  if (!URL.canParse(url)) return 'DATABASE_URL';
  const named = new URL(url);
  named.password = '';
  named.search = '';
  named.hash = '';
  return named.href;
}

export function noDatabaseMessage(sqlitePath: string): string {
  return (
    `No database at ${sqlitePath}. Run this command from the folder the service was started in, ` +
    "set DATA_DIR to the service's data folder, or create one with 'plandocket-webhooks migrate'."
  );
}

/** Whether the migrations table exists: in the connection's schema on PostgreSQL, as `migrate` makes it. */
async function migrationsTable(store: Store): Promise<{ present: boolean; schema: string | null }> {
  if (store.dialect === 'postgres') {
    const { rows } = await sql<{ present: boolean; schema: string | null }>`
      select current_schema() as schema, exists (
        select 1 from pg_catalog.pg_tables
        where schemaname = current_schema() and tablename = ${DEFAULT_MIGRATION_TABLE}
      ) as present`.execute(store.db);
    return rows[0] ?? { present: false, schema: null };
  }
  const { rows } = await sql<{ name: string }>`
    select name from sqlite_master where type = 'table' and name = ${DEFAULT_MIGRATION_TABLE}`.execute(
    store.db,
  );
  return { present: rows.length > 0, schema: null };
}

/**
 * Opens the configured database when it exists and has been migrated, and applies the migrations
 * it lacks (as `serve` would); otherwise throws a CliError saying where it looked and what to do.
 * Creates nothing: no SQLite file, no data folder, no PostgreSQL table.
 */
export async function openExistingStore(config: Config): Promise<Store> {
  if (!config.databaseUrl && !existsSync(config.sqlitePath)) {
    throw new CliError(noDatabaseMessage(config.sqlitePath));
  }
  const store = await openConfiguredStore(config);
  try {
    const { present, schema } = await migrationsTable(store).catch((error: unknown) => {
      // The first query: a database that cannot be reached, or refuses the login, is named.
      const name = config.databaseUrl ? describeDatabaseUrl(config.databaseUrl) : config.sqlitePath;
      throw new CliError(
        `Cannot use the database ${name}: ${error instanceof Error ? error.message : String(error)}`,
      );
    });
    if (!present) {
      const [where, setting] = config.databaseUrl
        ? [
            `The database ${describeDatabaseUrl(config.databaseUrl)} (schema ${schema ?? 'none: its search_path names no schema that exists'})`,
            "DATABASE_URL names the service's database",
          ]
        : [`The database ${config.sqlitePath}`, "DATA_DIR names the service's data folder"];
      throw new CliError(
        `${where} has not been migrated. Check that ${setting}, or create its tables with 'plandocket-webhooks migrate'.`,
      );
    }
    await migrate(store);
    return store;
  } catch (error) {
    await store.close();
    throw error;
  }
}

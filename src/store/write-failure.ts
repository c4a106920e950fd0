/** SQLite's result codes (better-sqlite3 names extended codes too, e.g. `SQLITE_IOERR_WRITE`). */
const SQLITE_STORAGE = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN)(_|$)/;
/** PostgreSQL: disk_full, read_only_sql_transaction, io_error. */
const PG_STORAGE = new Set(['53100', '25006', '58030']);

/**
 * The error's code when it means the database cannot store data (disk full, I/O error, read-only
 * file or server), as opposed to "away" or "the query is wrong"; undefined otherwise.
 */
export function storageFailure(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  return SQLITE_STORAGE.test(code) || PG_STORAGE.has(code) ? code : undefined;
}

/**
 * Whether the store's writes fail for lack of storage, for readiness: set by the first storage
 * failure (and kept, with its time, while they go on), cleared by a write that added data.
 */
export class WriteFailure {
  #current: { code: string; since: number } | undefined;

  /** Notes the error when it is a storage failure; other errors say nothing about storage. */
  note(error: unknown): void {
    const code = storageFailure(error);
    if (code === undefined) return;
    this.#current = { code, since: this.#current?.since ?? Date.now() };
  }

  cleared(): void {
    this.#current = undefined;
  }

  get current(): { code: string; since: number } | undefined {
    return this.#current;
  }
}

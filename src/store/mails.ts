import { type Kysely, sql, type Transaction } from 'kysely';
import type { Store } from './db.js';
import type { Database } from './schema.js';

/**
 * The outbox of notification mails to tenants. A mail is queued in the same transaction as the
 * change it tells of (a webhook that starts failing, is disabled, recovers), so that it is sent
 * if and only if the change was written; the mailers of the worker processes send it later, with
 * a lease (as deliveries are claimed) and retries, so that a mail server that is away never
 * holds up what queued it.
 *
 * States: `pending` (due at `next_attempt_at`, leased while a mailer sends it), `sent`, `failed`
 * (given up: too many tries, too old, or no mail server configured). Sent and failed rows are
 * kept as a record and pruned after RETENTION_DAYS.
 */

/** In-process wake-up of the mailers, on the store's emitter (see `wakeMailers`). */
export const MAILS_QUEUED = 'mails';

export interface MailRequest {
  tenantId: number;
  subject: string;
  /** The body, plain text. */
  text: string;
  /**
   * One mail per key: a second call with the same key queues nothing (for one occasion, e.g.
   * `webhook:7:failing:<failing_since>`, however often the caller asks). Null or absent: no limit.
   */
  dedupeKey?: string | null;
}

/**
 * Queues a mail to the tenant's `notification_email`, in `db` (the caller's transaction, or
 * not). Queues nothing and gives false when the tenant has no address or the dedupe key was used
 * already. It does not look at the configuration: without SMTP_URL the mailer gives queued mails
 * up (see Mailer), so callers need not know whether mail is on.
 */
export async function queueMail(
  db: Kysely<Database> | Transaction<Database>,
  mail: MailRequest,
  now: number = Date.now(),
): Promise<boolean> {
  const tenant = await db
    .selectFrom('tenants')
    .select('notification_email')
    .where('id', '=', mail.tenantId)
    .executeTakeFirst();
  if (!tenant?.notification_email) return false;
  // `do nothing` on the key: inside a transaction a duplicate must not abort the caller's work,
  // and on PostgreSQL a second transaction with the same key waits for the first, then skips.
  const row = await db
    .insertInto('mails')
    .values({
      tenant_id: mail.tenantId,
      recipient: tenant.notification_email,
      subject: mail.subject,
      body: mail.text,
      dedupe_key: mail.dedupeKey ?? null,
      status: 'pending',
      attempts: 0,
      next_attempt_at: now,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Wakes this process's mailer now (after the transaction that queued a mail commits); others poll. */
export function wakeMailers(store: Store): void {
  store.wakeups.emit(MAILS_QUEUED);
}

/** A mail a mailer holds the lease of. */
export interface ClaimedMail {
  id: number;
  tenant_id: number;
  recipient: string;
  subject: string;
  body: string;
  /** Tries made before this one. */
  attempts: number;
  created_at: number;
}

export interface MailClaim {
  mailerId: string;
  now: number;
  limit: number;
  /** How long the lease lasts: longer than a send may take. */
  leaseMs: number;
}

/**
 * Leases up to `limit` due mails, oldest due first. PostgreSQL skips rows that another mailer is
 * claiming at the same moment; a lease that expires (a mailer that died) makes a mail due again.
 */
export async function claimMails(store: Store, claim: MailClaim): Promise<ClaimedMail[]> {
  const { mailerId, now, limit, leaseMs } = claim;
  const { rows } = await sql<ClaimedMail>`
    update mails set locked_by = ${mailerId}, locked_until = ${now + leaseMs}, updated_at = ${now}
    where id in (
      select id from mails
      where status = 'pending' and next_attempt_at <= ${now}
        and (locked_until is null or locked_until <= ${now})
      order by next_attempt_at, id
      limit ${limit}
      ${store.dialect === 'postgres' ? sql`for update skip locked` : sql``}
    )
    returning id, tenant_id, recipient, subject, body, attempts, created_at`.execute(store.db);
  return rows.sort((a, b) => a.id - b.id);
}

/** The end of one try, written only while `mailerId` still holds the lease. */
export interface MailTry {
  id: number;
  mailerId: string;
  now: number;
}

/** Marks a mail sent; false when the lease was lost meanwhile (another mailer took it over). */
export async function markMailSent(store: Store, done: MailTry): Promise<boolean> {
  const result = await store.db
    .updateTable('mails')
    .set((eb) => ({
      status: 'sent',
      attempts: eb('attempts', '+', 1),
      sent_at: done.now,
      next_attempt_at: null,
      locked_until: null,
      locked_by: null,
      last_error: null,
      updated_at: done.now,
    }))
    .where('id', '=', done.id)
    .where('locked_by', '=', done.mailerId)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Records a failed try: the mail is due again at `retryAt`, or given up (`failed`) when that is
 * null. `countsAsTry` false for a mail given up without being tried (too old to be of use).
 */
export async function markMailFailed(
  store: Store,
  failed: MailTry & { error: string; retryAt: number | null; countsAsTry?: boolean },
): Promise<boolean> {
  const result = await store.db
    .updateTable('mails')
    .set((eb) => ({
      status: failed.retryAt === null ? 'failed' : 'pending',
      attempts: failed.countsAsTry === false ? eb.ref('attempts') : eb('attempts', '+', 1),
      next_attempt_at: failed.retryAt,
      locked_until: null,
      locked_by: null,
      last_error: failed.error.slice(0, 1000),
      updated_at: failed.now,
    }))
    .where('id', '=', failed.id)
    .where('locked_by', '=', failed.mailerId)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Gives up every pending mail (no mail server is configured), saying why; how many. */
export async function abandonPendingMails(store: Store, now: number, reason: string): Promise<number> {
  const result = await store.db
    .updateTable('mails')
    .set({
      status: 'failed',
      next_attempt_at: null,
      locked_until: null,
      locked_by: null,
      last_error: reason,
      updated_at: now,
    })
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Deletes sent and given-up mails last changed before `cutoff`; how many. */
export async function pruneMails(store: Store, cutoff: number): Promise<number> {
  const result = await store.db
    .deleteFrom('mails')
    .where('status', '!=', 'pending')
    .where('updated_at', '<', cutoff)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Mails waiting to be sent (due or not), for metrics. */
export async function pendingMailCount(store: Store): Promise<number> {
  const row = await store.db
    .selectFrom('mails')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

import { type RawBuilder, sql } from 'kysely';
import type { Decision } from '../domain/outcome.js';
import type { Store } from './db.js';

/** A delivery a worker holds the lease of, with what it needs to send it. */
export interface ClaimedDelivery {
  id: string;
  tenant_id: number;
  webhook_id: number;
  event_id: string;
  event_type: string;
  attempts: number;
  payload: string;
  url: string;
  headers: Record<string, string>;
  timeout_seconds: number;
  retry_count: number;
  secret_ciphertext: string;
}

export interface ClaimOptions {
  workerId: string;
  now: number;
  limit: number;
  /** At most this many deliveries of one webhook in one claim. */
  perWebhook: number;
  /** Webhooks this worker already sends to at its per-webhook cap. */
  skipWebhooks: number[];
  /** Added to the webhook's timeout to make the lease. */
  leaseMarginMs: number;
}

/** Pending, due, not leased by a live worker, and the webhook is active (paused ones wait). */
function claimable(now: number, skipWebhooks: number[]): RawBuilder<unknown> {
  const skip = skipWebhooks.length > 0 ? sql`and d.webhook_id not in (${sql.join(skipWebhooks)})` : sql``;
  return sql`d.status = 'pending' and d.next_attempt_at <= ${now}
    and (d.locked_until is null or d.locked_until <= ${now})
    and w.is_active = 1 ${skip}`;
}

/**
 * Leases up to `limit` due deliveries, oldest first but at most `perWebhook` per webhook so that
 * one busy endpoint cannot fill a claim. PostgreSQL skips rows that other workers are locking.
 */
export async function claimDeliveries(store: Store, options: ClaimOptions): Promise<ClaimedDelivery[]> {
  const { workerId, now, limit, perWebhook, skipWebhooks, leaseMarginMs } = options;
  const lock = store.dialect === 'postgres' ? sql`for update of d skip locked` : sql``;
  const scan = Math.max(limit * 4, 200);
  const claimed = await sql<{ id: string }>`
    update deliveries set
      locked_by = ${workerId},
      locked_until = cast(${now + leaseMarginMs} as bigint) + 1000 * (select w.timeout_seconds from webhooks w where w.id = deliveries.webhook_id),
      updated_at = ${now}
    where id in (
      select id from (
        select c.id, c.next_attempt_at,
          row_number() over (partition by c.webhook_id order by c.next_attempt_at, c.id) as rn
        from (
          select d.id, d.webhook_id, d.next_attempt_at
          from deliveries d join webhooks w on w.id = d.webhook_id
          where ${claimable(now, skipWebhooks)}
          order by d.next_attempt_at
          limit ${scan}
          ${lock}
        ) c
      ) ranked
      where rn <= ${perWebhook}
      order by next_attempt_at, id
      limit ${limit}
    )
    returning id`.execute(store.db);
  const ids = claimed.rows.map((r) => r.id);
  if (ids.length === 0) return [];
  const rows = await store.db
    .selectFrom('deliveries as d')
    .innerJoin('events as e', 'e.id', 'd.event_id')
    .innerJoin('webhooks as w', 'w.id', 'd.webhook_id')
    .select([
      'd.id',
      'd.tenant_id',
      'd.webhook_id',
      'd.event_id',
      'e.type as event_type',
      'd.attempts',
      'e.payload',
      'w.url',
      'w.headers',
      'w.timeout_seconds',
      'w.retry_count',
      'w.secret_ciphertext',
    ])
    .where('d.id', 'in', ids)
    .orderBy('d.next_attempt_at')
    .execute();
  return rows.map((row) => ({ ...row, headers: JSON.parse(row.headers) }));
}

/** When the next delivery becomes claimable (due, lease expired), or undefined when none waits. */
export async function nextClaimableAt(store: Store, skipWebhooks: number[]): Promise<number | undefined> {
  const skip = skipWebhooks.length > 0 ? sql`and d.webhook_id not in (${sql.join(skipWebhooks)})` : sql``;
  const { rows } = await sql<{ at: number | string | null }>`
    select min(case when d.locked_until > d.next_attempt_at then d.locked_until else d.next_attempt_at end) as at
    from deliveries d join webhooks w on w.id = d.webhook_id
    where d.status = 'pending' and w.is_active = 1 ${skip}`.execute(store.db);
  const at = rows[0]?.at;
  return at === null || at === undefined ? undefined : Number(at);
}

/** Gives up this worker's leases on deliveries it did not finish, so that others take them now. */
export async function releaseDeliveries(store: Store, workerId: string, ids?: string[]): Promise<void> {
  let query = store.db
    .updateTable('deliveries')
    .set({ locked_by: null, locked_until: null })
    .where('locked_by', '=', workerId)
    .where('status', '=', 'pending');
  if (ids) {
    if (ids.length === 0) return;
    query = query.where('id', 'in', ids);
  }
  await query.execute();
}

/** One attempt as it happened on the wire. */
export interface AttemptRecord {
  startedAt: number;
  durationMs: number;
  requestHeaders: Record<string, string>;
  statusCode: number | null;
  responseHeaders: Record<string, string> | null;
  responseBody: string | null;
  error: string | null;
}

export interface AutoDisable {
  /** A webhook failing for at least this long ... */
  afterMs: number;
  /** ... with at least this many deliveries that exhausted their retries is switched off. */
  minFailedDeliveries: number;
}

/**
 * Writes an attempt and its consequences in one transaction: the attempt row, the delivery's new
 * state (only while this worker still holds the lease), the webhook's stats, and switching the
 * webhook off on 410 Gone or after failing for too long.
 */
export async function recordAttempt(
  store: Store,
  delivery: Pick<ClaimedDelivery, 'id' | 'webhook_id' | 'attempts'>,
  workerId: string,
  attempt: AttemptRecord,
  decision: Decision,
  autoDisable: AutoDisable,
): Promise<void> {
  const now = attempt.startedAt + attempt.durationMs;
  const succeeded = decision.status === 'succeeded';
  await store.db.transaction().execute(async (trx) => {
    await trx
      .insertInto('attempts')
      .values({
        delivery_id: delivery.id,
        number: delivery.attempts + 1,
        started_at: attempt.startedAt,
        duration_ms: attempt.durationMs,
        request_headers: JSON.stringify(attempt.requestHeaders),
        response_status: attempt.statusCode,
        response_headers: attempt.responseHeaders && JSON.stringify(attempt.responseHeaders),
        response_body: attempt.responseBody,
        error: attempt.error,
      })
      .execute();
    await trx
      .updateTable('deliveries')
      .set((eb) => ({
        status: decision.status,
        attempts: eb('attempts', '+', 1),
        next_attempt_at: decision.status === 'pending' ? decision.nextAttemptAt : null,
        locked_by: null,
        locked_until: null,
        last_status_code: attempt.statusCode,
        last_error: attempt.error,
        updated_at: now,
      }))
      .where('id', '=', delivery.id)
      .where('locked_by', '=', workerId)
      .execute();
    await trx
      .updateTable('webhooks')
      .set((eb) =>
        succeeded
          ? {
              last_triggered_at: attempt.startedAt,
              last_success_at: now,
              failure_count: 0,
              failing_since: null,
            }
          : {
              last_triggered_at: attempt.startedAt,
              last_failure_at: now,
              failure_count: eb('failure_count', '+', 1),
              failing_since: eb.fn.coalesce('failing_since', eb.val(attempt.startedAt)),
            },
      )
      .where('id', '=', delivery.webhook_id)
      .execute();
    if (decision.status !== 'failed') return;
    let reason = decision.deactivateWebhook;
    if (!reason) {
      const webhook = await trx
        .selectFrom('webhooks')
        .select(['failing_since'])
        .where('id', '=', delivery.webhook_id)
        .executeTakeFirst();
      const since = webhook?.failing_since;
      if (since != null && now - since >= autoDisable.afterMs) {
        const { count } = await trx
          .selectFrom('deliveries')
          .select((eb) => eb.fn.countAll<number>().as('count'))
          .where('webhook_id', '=', delivery.webhook_id)
          .where('status', '=', 'failed')
          .where('updated_at', '>=', since)
          .executeTakeFirstOrThrow();
        if (Number(count) >= autoDisable.minFailedDeliveries) {
          reason = `Disabled automatically: no successful delivery since ${new Date(since).toISOString()} and ${count} deliveries failed after all retries.`;
        }
      }
    }
    if (reason) {
      await trx
        .updateTable('webhooks')
        .set({ is_active: 0, disabled_reason: reason, updated_at: now })
        .where('id', '=', delivery.webhook_id)
        .execute();
    }
  });
}

/** Deliveries due now (of active webhooks) and how long the oldest has waited, for metrics. */
export async function queueHealth(
  store: Store,
  now: number,
): Promise<{ due: number; oldestDueAgeSeconds: number }> {
  const { rows } = await sql<{ due: number | string; oldest: number | string | null }>`
    select count(*) as due, min(d.next_attempt_at) as oldest
    from deliveries d join webhooks w on w.id = d.webhook_id
    where d.status = 'pending' and d.next_attempt_at <= ${now} and w.is_active = 1`.execute(store.db);
  const row = rows[0];
  const oldest = row?.oldest == null ? now : Number(row.oldest);
  return { due: Number(row?.due ?? 0), oldestDueAgeSeconds: Math.max(0, (now - oldest) / 1000) };
}

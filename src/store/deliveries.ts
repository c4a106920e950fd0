import { type RawBuilder, sql, type Transaction } from 'kysely';
import type { Decision } from '../domain/outcome.js';
import type { Store } from './db.js';
import type { Database } from './schema.js';

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

/** One finished attempt, ready to be written. */
export interface Outcome {
  delivery: Pick<ClaimedDelivery, 'id' | 'webhook_id' | 'attempts'>;
  attempt: AttemptRecord;
  decision: Decision;
}

/** The changes to one webhook's stats from a batch of its attempts, in time order. */
function webhookStats(outcomes: Outcome[]) {
  const sorted = [...outcomes].sort((a, b) => a.attempt.startedAt - b.attempt.startedAt);
  const lastSuccess = sorted.findLastIndex((o) => o.decision.status === 'succeeded');
  const failuresAfter = sorted.slice(lastSuccess + 1);
  const end = (o: Outcome) => o.attempt.startedAt + o.attempt.durationMs;
  const success = sorted[lastSuccess];
  const failed = sorted.filter((o) => o.decision.status !== 'succeeded');
  return {
    lastTriggeredAt: Math.max(...sorted.map((o) => o.attempt.startedAt)),
    lastSuccessAt: success ? end(success) : null,
    lastFailureAt: failed.length > 0 ? Math.max(...failed.map(end)) : null,
    /** Failures since the last success in this batch (or all of them, added to the old count). */
    failures: failuresAfter.length,
    firstFailureAt: failuresAfter[0]?.attempt.startedAt ?? null,
    reset: success !== undefined,
  };
}

/**
 * Writes a batch of attempts and their consequences in one transaction: the attempt rows, each
 * delivery's new state (only where this worker still holds the lease, so that a late writer
 * cannot undo another worker's result), the webhooks' stats, and switching a webhook off on
 * 410 Gone or after it failed for too long.
 */
export async function recordOutcomes(
  store: Store,
  workerId: string,
  outcomes: Outcome[],
  autoDisable: AutoDisable,
): Promise<void> {
  if (outcomes.length === 0) return;
  const now = Date.now();
  await store.db.transaction().execute(async (trx) => {
    await trx
      .insertInto('attempts')
      .values(
        outcomes.map(({ delivery, attempt }) => ({
          delivery_id: delivery.id,
          number: delivery.attempts + 1,
          started_at: attempt.startedAt,
          duration_ms: attempt.durationMs,
          request_headers: JSON.stringify(attempt.requestHeaders),
          response_status: attempt.statusCode,
          response_headers: attempt.responseHeaders && JSON.stringify(attempt.responseHeaders),
          response_body: attempt.responseBody,
          error: attempt.error,
        })),
      )
      .execute();

    const rows = outcomes.map(
      ({ delivery, attempt, decision }) =>
        sql`(${delivery.id}, ${decision.status}, cast(${decision.status === 'pending' ? decision.nextAttemptAt : null} as bigint), cast(${attempt.statusCode} as integer), ${attempt.error})`,
    );
    // One statement for the whole batch; VALUES columns are column1.. in both databases.
    await sql`
      update deliveries set
        status = v.column2,
        attempts = attempts + 1,
        next_attempt_at = v.column3,
        locked_by = null,
        locked_until = null,
        last_status_code = v.column4,
        last_error = v.column5,
        updated_at = ${now}
      from (values ${sql.join(rows)}) as v
      where deliveries.id = v.column1 and deliveries.locked_by = ${workerId}`.execute(trx);

    const byWebhook = new Map<number, Outcome[]>();
    for (const o of outcomes)
      byWebhook.set(o.delivery.webhook_id, [...(byWebhook.get(o.delivery.webhook_id) ?? []), o]);
    for (const [webhookId, list] of byWebhook) {
      const stats = webhookStats(list);
      await trx
        .updateTable('webhooks')
        .set((eb) => ({
          last_triggered_at: stats.lastTriggeredAt,
          ...(stats.lastSuccessAt !== null && { last_success_at: stats.lastSuccessAt }),
          ...(stats.lastFailureAt !== null && { last_failure_at: stats.lastFailureAt }),
          ...(stats.reset
            ? { failure_count: stats.failures, failing_since: stats.firstFailureAt }
            : {
                failure_count: eb('failure_count', '+', stats.failures),
                failing_since: eb.fn.coalesce('failing_since', eb.val(stats.firstFailureAt)),
              }),
        }))
        .where('id', '=', webhookId)
        .execute();
    }

    for (const { delivery, decision } of outcomes) {
      if (decision.status !== 'failed') continue;
      const reason =
        decision.deactivateWebhook ?? (await autoDisableReason(trx, delivery.webhook_id, now, autoDisable));
      if (reason) {
        await trx
          .updateTable('webhooks')
          .set({ is_active: 0, disabled_reason: reason, updated_at: now })
          .where('id', '=', delivery.webhook_id)
          .where('is_active', '=', 1)
          .execute();
      }
    }
  });
}

/** Why a webhook that just exhausted a delivery should be switched off, if it should. */
async function autoDisableReason(
  trx: Transaction<Database>,
  webhookId: number,
  now: number,
  autoDisable: AutoDisable,
): Promise<string | undefined> {
  const webhook = await trx
    .selectFrom('webhooks')
    .select(['failing_since'])
    .where('id', '=', webhookId)
    .executeTakeFirst();
  const since = webhook?.failing_since;
  if (since == null || now - since < autoDisable.afterMs) return undefined;
  const { count } = await trx
    .selectFrom('deliveries')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('webhook_id', '=', webhookId)
    .where('status', '=', 'failed')
    .where('updated_at', '>=', since)
    .executeTakeFirstOrThrow();
  if (Number(count) < autoDisable.minFailedDeliveries) return undefined;
  return `Disabled automatically: no successful delivery since ${new Date(since).toISOString()} and ${count} deliveries failed after all retries.`;
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

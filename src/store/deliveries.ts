import { type RawBuilder, sql, type Transaction } from 'kysely';
import type { Decision } from '../domain/outcome.js';
import { applyBreaker, type BreakerChanges, type BreakerSettings, type BreakerWebhook } from './breaker.js';
import type { Dialect, Store } from './db.js';
import { announce, type OperationalEvent } from './operational-events.js';
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
  /** 1 when queued by hand: one attempt, not retried automatically. */
  manual: number;
  /** Caught up after an outage: its retries count from this many attempts. */
  catch_up_from: number | null;
  /** During a rotation's grace period, the replaced secret and when it stops signing. */
  previous_secret_ciphertext: string | null;
  previous_secret_expires_at: number | null;
}

export interface ClaimOptions {
  workerId: string;
  now: number;
  limit: number;
  /** At most this many deliveries of one webhook in flight in this worker. */
  perWebhook: number;
  /** At most this many deliveries of one tenant in flight in this worker. */
  perTenant: number;
  /** How many deliveries of each webhook, and of each tenant, this worker has in flight already. */
  busyWebhooks: Map<number, number>;
  busyTenants: Map<number, number>;
  /** Added to the webhook's timeout to make the lease. */
  leaseMarginMs: number;
}

/**
 * Pending, due, not leased by a live worker, and its webhook takes it: active and not failing (of
 * a failing one, only its probe: see src/store/breaker.ts), or still there for one queued by hand
 * (a retry, a recovery, a test); paused ones wait. The webhook is asked in a
 * subquery rather than joined: joined, PostgreSQL estimates from the webhooks table's statistics
 * (none on a new install with autovacuum off) that few deliveries pass, and then reads and sorts
 * every pending delivery of the tenant on each claim instead of walking the queue's index to the
 * first few due.
 */
function due(now: number): RawBuilder<unknown> {
  return sql`d.status = 'pending' and d.next_attempt_at <= ${now}
    and (select (w.is_active = 1 and (w.breaker_opened_at is null or w.probe_delivery_id = d.id))
        or (d.manual = 1 and w.deleted_at is null)
      from webhooks w where w.id = d.webhook_id)`;
}

/** `and column not in (...)` for the ids at their cap, or nothing when none is. */
function skipFull(column: string, busy: Map<number, number>, cap: number): RawBuilder<unknown> {
  const full = [...busy].filter(([, n]) => n >= cap).map(([id]) => id);
  return full.length > 0 ? sql`and ${sql.ref(column)} not in (${sql.join(full)})` : sql``;
}

/**
 * `where rank <= slots left`: the cap, less what this worker has in flight of the webhook or tenant
 * that `column` names (a VALUES list of the partly busy ones, joined).
 */
function withinCap(
  rank: string,
  column: string,
  busy: Map<number, number>,
  cap: number,
): RawBuilder<unknown> {
  const partly = [...busy].filter(([, n]) => n < cap);
  if (partly.length === 0) return sql`where ${sql.ref(rank)} <= ${cap}`;
  const rows = sql.join(partly.map(([id, n]) => sql`(cast(${id} as integer), cast(${n} as integer))`));
  return sql`left join (values ${rows}) as busy on busy.column1 = ${sql.ref(column)}
    where ${sql.ref(rank)} <= ${cap} - coalesce(busy.column2, 0)`;
}

/**
 * The ids a claim leases. Tenants with due work are served in turn: each one's oldest due
 * delivery first, then each one's second, and so on, so that a tenant with a deep backlog (or
 * many endpoints that hang) cannot push another tenant's fresh delivery behind its own. Within
 * that, at most `perWebhook` per webhook and `perTenant` per tenant in flight in this worker.
 *
 * The tenants with pending deliveries are found by walking the queue's tenant index one tenant at
 * a time (a loose index scan: one probe per tenant, however deep its queue); of each, the oldest
 * `limit` due are read from the same index, skipping webhooks and tenants at their cap.
 * PostgreSQL reads them in a lateral subquery and skips rows that other workers are locking;
 * SQLite, which has no lateral, in a correlated list subquery (planned as one index search per
 * tenant).
 */
export function claimCandidates(
  dialect: Dialect,
  options: Pick<ClaimOptions, 'now' | 'limit' | 'perWebhook' | 'perTenant' | 'busyWebhooks' | 'busyTenants'>,
): RawBuilder<{ id: string }> {
  const { now, limit, perWebhook, perTenant, busyWebhooks, busyTenants } = options;
  const oldestDue = (columns: RawBuilder<unknown>) => sql`select ${columns}
    from deliveries d
    where d.tenant_id = t.tenant_id and ${due(now)}
      and (d.locked_until is null or d.locked_until <= ${now})
      ${skipFull('d.webhook_id', busyWebhooks, perWebhook)}
    order by d.next_attempt_at
    limit ${limit}`;
  const candidates =
    dialect === 'postgres'
      ? sql`tenants_pending t cross join lateral (
          ${oldestDue(sql`d.id, d.tenant_id, d.webhook_id, d.next_attempt_at`)} for update of d skip locked
        ) as c`
      : sql`tenants_pending t join deliveries c on c.id in (${oldestDue(sql`d.id`)})`;
  return sql`
    with recursive tenants_pending(tenant_id) as (
      select tenant_id from (
        select d.tenant_id from deliveries d where d.status = 'pending' order by d.tenant_id limit 1
      ) as first
      union all
      select (select d.tenant_id from deliveries d
        where d.status = 'pending' and d.tenant_id > t.tenant_id order by d.tenant_id limit 1)
      from tenants_pending t
      where t.tenant_id is not null
    )
    select in_turn.id from (
      select ranked.id, ranked.tenant_id, ranked.next_attempt_at,
        row_number() over (partition by ranked.tenant_id order by ranked.next_attempt_at, ranked.id) as turn
      from (
        select c.id, c.tenant_id, c.webhook_id, c.next_attempt_at,
          row_number() over (partition by c.webhook_id order by c.next_attempt_at, c.id) as in_webhook
        from ${candidates}
        where t.tenant_id is not null ${skipFull('t.tenant_id', busyTenants, perTenant)}
      ) as ranked
      ${withinCap('ranked.in_webhook', 'ranked.webhook_id', busyWebhooks, perWebhook)}
    ) as in_turn
    ${withinCap('in_turn.turn', 'in_turn.tenant_id', busyTenants, perTenant)}
    order by in_turn.turn, in_turn.next_attempt_at, in_turn.id
    limit ${limit}`;
}

/** Leases up to `limit` due deliveries (see claimCandidates) and reads what sending them needs. */
export async function claimDeliveries(store: Store, options: ClaimOptions): Promise<ClaimedDelivery[]> {
  const { workerId, now, leaseMarginMs } = options;
  const postgres = store.dialect === 'postgres';
  const candidates = claimCandidates(store.dialect, options);
  const lease = sql`locked_by = ${workerId}, updated_at = ${now},
    locked_until = cast(${now + leaseMarginMs} as bigint) + 1000 * w.timeout_seconds`;
  type Row = Omit<ClaimedDelivery, 'headers'> & { headers: string; next_attempt_at: number };
  let rows: Row[];
  if (postgres) {
    // One round trip: lease the rows and read what sending them needs. The ids are gathered into
    // an array first (an init plan, run once) and found by primary key: as `in (...)`, PostgreSQL
    // may plan a hash semi-join that reads the whole table on every claim (60 to 200 ms at 50,000
    // deliveries, instead of 1 to 2).
    ({ rows } = await sql<Row>`
      update deliveries set ${lease}
      from webhooks w, events e
      where w.id = deliveries.webhook_id and e.id = deliveries.event_id
        and deliveries.id = any(array(${candidates}))
      returning deliveries.id, deliveries.tenant_id, deliveries.webhook_id, deliveries.event_id,
        e.type as event_type, deliveries.attempts, e.payload, w.url, w.headers, w.timeout_seconds,
        w.retry_count, w.secret_ciphertext, w.previous_secret_ciphertext, w.previous_secret_expires_at,
        deliveries.manual, deliveries.catch_up_from, deliveries.next_attempt_at`.execute(store.db));
  } else {
    // SQLite's RETURNING cannot name the joined tables; a second (in-process) query reads them.
    const { rows: leased } = await sql<{ id: string }>`
      update deliveries set ${lease}
      from webhooks w
      where w.id = deliveries.webhook_id and deliveries.id in (${candidates})
      returning deliveries.id`.execute(store.db);
    if (leased.length === 0) return [];
    rows = (await store.db
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
        'd.manual',
        'd.catch_up_from',
        'w.previous_secret_ciphertext',
        'w.previous_secret_expires_at',
        'd.next_attempt_at',
      ])
      .where(
        'd.id',
        'in',
        leased.map((r) => r.id),
      )
      .execute()) as Row[];
  }
  return rows
    .sort((x, y) => Number(x.next_attempt_at) - Number(y.next_attempt_at))
    .map(({ next_attempt_at: _due, ...row }) => ({ ...row, headers: JSON.parse(row.headers) }));
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
  delivery: Pick<
    ClaimedDelivery,
    'id' | 'webhook_id' | 'event_id' | 'event_type' | 'attempts' | 'manual' | 'catch_up_from'
  >;
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

const bigint = (value: number | null) => sql`cast(${value} as bigint)`;
const integer = (value: number | null) => sql`cast(${value} as integer)`;

/**
 * Rows as a table with named columns, `(select column1 as a, column2 as b ... from (values ...))`:
 * VALUES alone names its columns column1, column2 ... by position, in both databases. Every row
 * has the same keys in the same order; a value is a parameter or an expression (a cast).
 */
function valuesTable(alias: string, rows: Record<string, unknown>[]): RawBuilder<unknown> {
  const names = Object.keys(rows[0] ?? {});
  const columns = names.map((name, i) => sql`${sql.raw(`column${i + 1}`)} as ${sql.ref(name)}`);
  const tuples = rows.map((row) => sql`(${sql.join(names.map((name) => row[name]))})`);
  return sql`(select ${sql.join(columns)} from (values ${sql.join(tuples)}) as t) as ${sql.table(alias)}`;
}

/** What a write of outcomes did: `dropped` ones were not this worker's to write any more. */
export interface RecordedOutcomes {
  written: number;
  dropped: number;
  /** Webhooks that became failing or recovered. */
  breaker: BreakerChanges;
  /** Deliveries and mails queued by the operational events of the batch (wake their senders). */
  announced: { deliveries: number; mails: number };
}

/** What outcomes lead to beyond themselves: switching a webhook off, its circuit breaker. */
export interface OutcomeRules {
  autoDisable: AutoDisable;
  breaker: BreakerSettings;
}

/**
 * Writes a batch of attempts and their consequences in one transaction: each delivery's new state,
 * the attempt rows, the webhooks' stats, and switching a webhook off on 410 Gone or after it failed
 * for too long.
 *
 * Idempotent: an outcome is written only while the delivery is still as its worker claimed it
 * (leased by `workerId`, with the attempt count it had), so writing the same batch again (after a
 * commit whose answer was lost) changes nothing, and a late writer cannot undo another worker's
 * result; such outcomes are dropped, and so are their attempts and stats (the worker that holds
 * the delivery now records its own attempt). The unique key on attempts (delivery_id, number)
 * guards the attempt rows a second time.
 *
 * Lock order (PostgreSQL): the batch's webhooks first, in id order, then its deliveries, as every
 * other writer of both does (deleting a webhook locks it, then cancels its deliveries): two
 * writers of the same webhooks wait for each other instead of deadlocking. The webhooks are
 * locked `for no key update`, as an UPDATE of them would: publishing, which inserts deliveries
 * that reference them (a `key share` lock), is not held up.
 */
export async function recordOutcomes(
  store: Store,
  workerId: string,
  outcomes: Outcome[],
  rules: OutcomeRules,
): Promise<RecordedOutcomes> {
  // One outcome per delivery (the first): a delivery is updated once per statement.
  const seen = new Set<string>();
  const batch: Outcome[] = [];
  for (const outcome of outcomes) {
    if (seen.has(outcome.delivery.id)) continue;
    seen.add(outcome.delivery.id);
    batch.push(outcome);
  }
  const nothing: BreakerChanges = { failing: [], recovered: [] };
  const none = { deliveries: 0, mails: 0 };
  if (batch.length === 0) return { written: 0, dropped: 0, breaker: nothing, announced: none };
  const now = Date.now();
  const webhookIds = [...new Set(batch.map((o) => o.delivery.webhook_id))].sort((a, b) => a - b);

  const { written, breaker, announced } = await store.db.transaction().execute(async (trx) => {
    if (store.dialect === 'postgres') {
      await sql`select id from webhooks where id in (${sql.join(webhookIds)})
        order by id for no key update`.execute(trx);
    }
    const { rows: updated } = await sql<{ id: string }>`
      update deliveries set
        status = v.status, attempts = v.attempts_before + 1, next_attempt_at = v.next_attempt_at,
        locked_by = null, locked_until = null, last_status_code = v.status_code, last_error = v.error,
        updated_at = ${bigint(now)}
      from ${valuesTable(
        'v',
        batch.map(({ delivery, attempt, decision }) => ({
          id: delivery.id,
          attempts_before: integer(delivery.attempts),
          status: decision.status,
          next_attempt_at: bigint(decision.status === 'pending' ? decision.nextAttemptAt : null),
          status_code: integer(attempt.statusCode),
          error: attempt.error,
        })),
      )}
      where deliveries.id = v.id and deliveries.locked_by = ${workerId}
        and deliveries.attempts = v.attempts_before
      returning deliveries.id`.execute(trx);
    const updatedIds = new Set(updated.map((r) => r.id));
    const kept = batch.filter((o) => updatedIds.has(o.delivery.id));
    if (kept.length === 0) return { written: 0, breaker: nothing, announced: none };

    await sql`
      insert into attempts (delivery_id, webhook_id, number, delivery_status, started_at, duration_ms,
        request_headers, response_status, response_headers, response_body, error)
      values ${sql.join(
        kept.map(
          ({ delivery, attempt: a, decision }) =>
            sql`(${delivery.id}, ${integer(delivery.webhook_id)}, ${integer(delivery.attempts + 1)}, ${decision.status},
              ${bigint(a.startedAt)}, ${integer(a.durationMs)},
              ${JSON.stringify(a.requestHeaders)}, ${integer(a.statusCode)},
              ${a.responseHeaders && JSON.stringify(a.responseHeaders)}, ${a.responseBody}, ${a.error})`,
        ),
      )}
      on conflict (delivery_id, number) do nothing`.execute(trx);

    const byWebhook = new Map<number, Outcome[]>();
    for (const o of kept) {
      const list = byWebhook.get(o.delivery.webhook_id);
      if (list) list.push(o);
      else byWebhook.set(o.delivery.webhook_id, [o]);
    }
    // A success in the batch resets the failure count to the failures after it; otherwise they add up.
    // What the breaker needs of the webhooks comes back with the update.
    const { rows: webhooks } = await sql<BreakerWebhook>`
      update webhooks set
        last_triggered_at = s.triggered_at,
        last_success_at = coalesce(s.success_at, webhooks.last_success_at),
        last_failure_at = coalesce(s.failure_at, webhooks.last_failure_at),
        failure_count = case when s.had_success = 1 then s.failures else webhooks.failure_count + s.failures end,
        failing_since = case when s.had_success = 1 then s.failing_since
          else coalesce(webhooks.failing_since, s.failing_since) end
      from ${valuesTable(
        's',
        [...byWebhook].map(([webhookId, list]) => {
          const w = webhookStats(list);
          return {
            id: integer(webhookId),
            triggered_at: bigint(w.lastTriggeredAt),
            success_at: bigint(w.lastSuccessAt),
            failure_at: bigint(w.lastFailureAt),
            failures: integer(w.failures),
            failing_since: bigint(w.firstFailureAt),
            had_success: integer(w.reset ? 1 : 0),
          };
        }),
      )}
      where webhooks.id = s.id
      returning webhooks.id, webhooks.is_active, webhooks.breaker_opened_at, webhooks.probe_delivery_id,
        webhooks.last_success_at`.execute(trx);

    const told: OperationalEvent[] = [];
    const switchedOff = new Set<number>();
    for (const { delivery, attempt, decision } of kept) {
      if (decision.status !== 'failed') continue;
      const webhookId = delivery.webhook_id;
      // An attempt by hand that failed is not an exhaustion: it was one attempt of a failed delivery.
      if (delivery.manual !== 1) {
        told.push({
          type: 'delivery.exhausted',
          webhookId,
          deliveryId: delivery.id,
          eventId: delivery.event_id,
          eventType: delivery.event_type,
          attempts: delivery.attempts + 1,
          lastStatus: attempt.statusCode,
          lastError: attempt.error,
        });
      }
      const reason =
        decision.deactivateWebhook ?? (await autoDisableReason(trx, webhookId, now, rules.autoDisable));
      if (reason) {
        const { numUpdatedRows } = await trx
          .updateTable('webhooks')
          .set({ is_active: 0, disabled_reason: reason, disabled_at: now, updated_at: now })
          .where('id', '=', webhookId)
          .where('is_active', '=', 1)
          .executeTakeFirst();
        if (Number(numUpdatedRows) > 0) {
          switchedOff.add(webhookId);
          const why = decision.deactivateWebhook ? 'gone' : 'failing_too_long';
          told.push({ type: 'webhook.disabled', webhookId, reason: why, detail: reason });
        }
      }
    }
    const breaker = await applyBreaker(
      trx,
      kept,
      webhooks.map((w) => (switchedOff.has(w.id) ? { ...w, is_active: 0 } : w)),
      now,
      rules.breaker,
    );
    for (const { webhookId, since, nextProbeAt } of breaker.failing)
      told.push({ type: 'webhook.failing', webhookId, since, nextProbeAt });
    for (const { webhookId, failingSince, caughtUp } of breaker.recovered)
      told.push({ type: 'webhook.recovered', webhookId, failingSince, caughtUp });
    const announced = await announce(trx, store.dialect, told, now);
    return { written: kept.length, breaker, announced };
  });
  return { written, dropped: batch.length - written, breaker, announced };
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

/** Deliveries due now (that a worker may claim) and how long the oldest has waited, for metrics. */
export async function queueHealth(
  store: Store,
  now: number,
): Promise<{ due: number; oldestDueAgeSeconds: number }> {
  const { rows } = await sql<{ due: number | string; oldest: number | string | null }>`
    select count(*) as due, min(d.next_attempt_at) as oldest
    from deliveries d
    where ${due(now)}`.execute(store.db);
  const row = rows[0];
  const oldest = row?.oldest == null ? now : Number(row.oldest);
  return { due: Number(row?.due ?? 0), oldestDueAgeSeconds: Math.max(0, (now - oldest) / 1000) };
}

/** Whether PostgreSQL's autovacuum runs, asked once per store. */
const autovacuumOn = new WeakMap<Store, Promise<boolean>>();

/**
 * PostgreSQL: refreshes the planner's statistics of the queue. Without them (autovacuum off, or a
 * queue that grew faster than it runs) the claim is planned as if few rows were pending and sorts
 * the whole backlog on every claim: 50 ms instead of 3 ms at 200,000 pending. Where autovacuum is
 * off, the dead row versions that every lease and outcome leave in the queue's indexes are also
 * vacuumed here; nothing else would. Says whether it vacuumed.
 */
export async function refreshQueueStatistics(store: Store): Promise<{ vacuumed: boolean }> {
  if (store.dialect !== 'postgres') return { vacuumed: false };
  let on = autovacuumOn.get(store);
  if (!on) {
    on = sql<{ on: string }>`select current_setting('autovacuum') as on`
      .execute(store.db)
      .then(({ rows }) => rows[0]?.on === 'on');
    autovacuumOn.set(store, on);
  }
  // Another worker at it already: skipped rather than queued behind it.
  if (await on) {
    await sql`analyze (skip_locked) deliveries`.execute(store.db);
    return { vacuumed: false };
  }
  await sql`vacuum (analyze, skip_locked) deliveries`.execute(store.db);
  return { vacuumed: true };
}

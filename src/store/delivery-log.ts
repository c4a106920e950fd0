import { type Selectable, sql } from 'kysely';
import {
  ALL_EVENTS,
  coveredByWildcard,
  EVENT_TYPES,
  isOperational,
  isSubscribable,
} from '../domain/events.js';
import { firstIdAt, newEventId } from '../domain/ids.js';
import type { DeliveryStatus } from '../domain/outcome.js';
import type { Store } from './db.js';
import { eventBody, insertRows, newDeliveryRow } from './events.js';
import type { AttemptTable, DeliveryTable } from './schema.js';
import { wakeWorkers } from './wakeups.js';
import type { Webhook } from './webhooks.js';

/**
 * The delivery log of one webhook, and what a tenant does with it: look at one delivery and its
 * attempts, send one again, recover the failed ones of a time window (and the events it missed
 * while it was off), send a test event.
 *
 * A delivery's time is its creation time, which its id carries (ids sort by time): every time
 * filter is a range of ids, so each query walks one index of `deliveries` newest first, whatever
 * the size of the log.
 */

export type Delivery = Selectable<DeliveryTable>;
export type Attempt = Selectable<AttemptTable>;

/** Rows per statement when recovering: short write transactions, other writers go in between. */
export const RECOVER_BATCH = 1000;

export interface LogFilter {
  status?: DeliveryStatus | undefined;
  eventType?: string | undefined;
  /** Created at or after this time (ms). */
  since?: number | undefined;
  /** Created at or before this time (ms). */
  until?: number | undefined;
  /** Only deliveries older than this one (the cursor). */
  before?: string | undefined;
}

type KeyColumn = 'webhook_id' | 'status' | 'event_type';

/**
 * The rows of an index (key columns..., id) whose key equals `key` and whose id lies between the
 * bounds, as row-value comparisons: both databases then position the index scan on the whole key
 * and id at once, and PostgreSQL keeps the key columns in the ORDER BY (compared with `=`, it would
 * drop them from the order and might walk the primary key newest first instead, skipping other
 * webhooks' rows: the whole table when this webhook has none that match).
 */
function keyRange(
  key: [KeyColumn, string | number][],
  ids: { from?: string | undefined; fromExclusive?: boolean; before?: string | undefined },
) {
  const columns = (withId: boolean) =>
    sql.join([...key.map(([column]) => sql.ref(column)), ...(withId ? [sql.ref('id')] : [])]);
  const values = (id?: string) =>
    sql.join([...key.map(([, value]) => value), ...(id === undefined ? [] : [id])]);
  const lower =
    ids.from === undefined
      ? sql<boolean>`(${columns(false)}) >= (${values()})`
      : ids.fromExclusive
        ? sql<boolean>`(${columns(true)}) > (${values(ids.from)})`
        : sql<boolean>`(${columns(true)}) >= (${values(ids.from)})`;
  const upper =
    ids.before === undefined
      ? sql<boolean>`(${columns(false)}) <= (${values()})`
      : sql<boolean>`(${columns(true)}) < (${values(ids.before)})`;
  return { lower, upper };
}

const smaller = (a: string | undefined, b: string | undefined) =>
  a === undefined ? b : b === undefined ? a : a < b ? a : b;

/**
 * The log query itself, newest first; exported so that its plan can be checked. It walks one
 * index of the webhook's deliveries: (webhook_id, id), or (webhook_id, status, id) for a status, or
 * (webhook_id, event_type, id) for an event type; with both, the one of the rarer rows (succeeded
 * deliveries are most of a log, so then the type's), the other condition filtering.
 */
export function deliveryLogQuery(
  store: Store,
  tenantId: number,
  webhookId: number,
  filter: LogFilter,
  limit: number,
) {
  const byStatus =
    filter.status !== undefined && (filter.eventType === undefined || filter.status !== 'succeeded');
  const key: [KeyColumn, string | number][] = [['webhook_id', webhookId]];
  if (byStatus && filter.status !== undefined) key.push(['status', filter.status]);
  else if (filter.eventType !== undefined) key.push(['event_type', filter.eventType]);
  const { lower, upper } = keyRange(key, {
    from: filter.since === undefined ? undefined : firstIdAt('dlv', filter.since),
    before: smaller(
      filter.before,
      filter.until === undefined ? undefined : firstIdAt('dlv', filter.until + 1),
    ),
  });
  let query = store.db
    .selectFrom('deliveries')
    .selectAll()
    .where(lower)
    .where(upper)
    .where('tenant_id', '=', tenantId);
  if (filter.status !== undefined && !byStatus) query = query.where('status', '=', filter.status);
  if (filter.eventType !== undefined && byStatus) query = query.where('event_type', '=', filter.eventType);
  for (const [column] of key) query = query.orderBy(column, 'desc');
  return query.orderBy('id', 'desc').limit(limit);
}

/** One page of the log and whether more follow. */
export async function listDeliveries(
  store: Store,
  tenantId: number,
  webhookId: number,
  filter: LogFilter,
  limit: number,
): Promise<{ deliveries: Delivery[]; more: boolean }> {
  const rows = await deliveryLogQuery(store, tenantId, webhookId, filter, limit + 1).execute();
  return { deliveries: rows.slice(0, limit), more: rows.length > limit };
}

/** One delivery of this tenant's webhook, with the body it sends and every attempt. */
export async function findDelivery(
  store: Store,
  tenantId: number,
  webhookId: number,
  deliveryId: string,
): Promise<{ delivery: Delivery; payload: string; attempts: Attempt[] } | undefined> {
  const row = await store.db
    .selectFrom('deliveries as d')
    .innerJoin('events as e', 'e.id', 'd.event_id')
    .selectAll('d')
    .select('e.payload')
    .where('d.id', '=', deliveryId)
    .where('d.webhook_id', '=', webhookId)
    .where('d.tenant_id', '=', tenantId)
    .executeTakeFirst();
  if (!row) return undefined;
  const { payload, ...delivery } = row;
  const attempts = await store.db
    .selectFrom('attempts')
    .selectAll()
    .where('delivery_id', '=', deliveryId)
    .orderBy('number')
    .orderBy('id')
    .execute();
  return { delivery, payload, attempts };
}

/**
 * Queues one delivery again, due now. A delivery that is over (succeeded, failed, cancelled)
 * gets one more attempt, made by hand: it is sent even while the webhook is paused and is not
 * retried automatically when it fails. A pending one waiting for its next retry is brought
 * forward and keeps its schedule. A delivery that a worker is sending right now is left alone
 * (`in_flight`): its outcome is about to be known.
 */
export async function retryDelivery(
  store: Store,
  tenantId: number,
  webhookId: number,
  deliveryId: string,
): Promise<Delivery | 'in_flight' | undefined> {
  const now = Date.now();
  const row = await store.db
    .updateTable('deliveries')
    .set((eb) => ({
      status: 'pending',
      next_attempt_at: now,
      updated_at: now,
      manual: eb.case().when('status', '=', 'pending').then(eb.ref('manual')).else(1).end(),
    }))
    .where('id', '=', deliveryId)
    .where('webhook_id', '=', webhookId)
    .where('tenant_id', '=', tenantId)
    .where((eb) =>
      eb.or([eb('status', '!=', 'pending'), eb('locked_until', 'is', null), eb('locked_until', '<=', now)]),
    )
    // A webhook deleted meanwhile keeps its deliveries cancelled.
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('webhooks')
          .select('webhooks.id')
          .where('webhooks.id', '=', webhookId)
          .where('webhooks.deleted_at', 'is', null),
      ),
    )
    .returningAll()
    .executeTakeFirst();
  if (row) {
    await wakeWorkers(store);
    return row;
  }
  const exists = await store.db
    .selectFrom('deliveries')
    .select(['status', 'locked_until'])
    .where('id', '=', deliveryId)
    .where('webhook_id', '=', webhookId)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  return exists?.status === 'pending' ? 'in_flight' : undefined;
}

/** How a recovery advances: first the failed deliveries, then (when asked) the missed events. */
export type RecoverProgress =
  | {
      kind: 'failed';
      queued: number;
      /** Failed deliveries in the window when the recovery began. */
      total: number;
    }
  | {
      kind: 'missing';
      /** Deliveries queued for missed events so far. */
      queued: number;
      /** Events of the window looked at so far, every tenant's (see queueMissedEvents), of `total`. */
      scanned: number;
      total: number;
    };

/**
 * Queues again every failed delivery of the webhook created in [since, until], each for one
 * attempt by hand, in batches of `RECOVER_BATCH` rows: each batch is one short statement, and the
 * event loop (other requests, other writers) gets its turn between them. Returns how many were
 * queued.
 */
export async function recoverFailedDeliveries(
  store: Store,
  tenantId: number,
  webhookId: number,
  window: { since: number; until: number },
  onProgress?: (progress: RecoverProgress) => void,
): Promise<number> {
  const key: [KeyColumn, string | number][] = [
    ['webhook_id', webhookId],
    ['status', 'failed'],
  ];
  const bounds = { from: firstIdAt('dlv', window.since), before: firstIdAt('dlv', window.until + 1) };
  /** The failed deliveries of the window after `after`, on (webhook_id, status, id). */
  const inWindow = (after?: string) => {
    const { lower, upper } = keyRange(
      key,
      after === undefined ? bounds : { ...bounds, from: after, fromExclusive: true },
    );
    return store.db.selectFrom('deliveries').where(lower).where(upper).where('tenant_id', '=', tenantId);
  };
  const { total } = await inWindow()
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .executeTakeFirstOrThrow();
  const progress = { kind: 'failed' as const, queued: 0, total: Number(total) };
  onProgress?.(progress);
  let after: string | undefined;
  for (;;) {
    const ids = (
      await inWindow(after)
        .select('id')
        .orderBy('webhook_id')
        .orderBy('status')
        .orderBy('id')
        .limit(RECOVER_BATCH)
        .execute()
    ).map((r) => r.id);
    if (ids.length === 0) break;
    const now = Date.now();
    const result = await store.db
      .updateTable('deliveries')
      .set({ status: 'pending', manual: 1, next_attempt_at: now, updated_at: now })
      .where('id', 'in', ids)
      .where('status', '=', 'failed')
      .executeTakeFirst();
    progress.queued += Number(result.numUpdatedRows);
    after = ids[ids.length - 1] as string;
    onProgress?.(progress);
    void wakeWorkers(store);
    if (ids.length < RECOVER_BATCH) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return progress.queued;
}

/**
 * The event types a webhook receives, as publishing fans them out: those it lists, and for `*`
 * every type `*` covers (not `webhook.test`, sent only by hand, nor the service's operational
 * types, received by name only).
 */
function receivedTypes(events: readonly string[]): string[] {
  const named = events.filter((type) => type !== ALL_EVENTS && isSubscribable(type));
  if (!events.includes(ALL_EVENTS)) return named;
  return [...new Set([...EVENT_TYPES.filter((e) => coveredByWildcard(e.type)).map((e) => e.type), ...named])];
}

/** An operational event about this webhook, which it is never sent (see src/store/operational-events.ts). */
function isAbout(payload: string, webhookId: number): boolean {
  return (JSON.parse(payload) as { data?: { webhook_id?: unknown } }).data?.webhook_id === webhookId;
}

/**
 * Queues a delivery of every event of [since, until] that the webhook receives and has no delivery
 * to it: publishing fans out to active webhooks only, so the events published while it was paused
 * or switched off. Only events published since the webhook was created count. Each is one attempt
 * by hand, as a recovered failed delivery is; due since its event was published, so that claims
 * (oldest due first) send them in the order they were published. Returns how many were queued.
 *
 * Events have no index by tenant, so the walk goes along their primary key (ids sort by time) from
 * the window's start, `RECOVER_BATCH` events of every tenant at a time: each statement reads a
 * bounded slice however the tenants' events mix, and the anti-join looks an event's deliveries up
 * by `deliveries_event` (a batch took 1 to 2 ms on PostgreSQL with 200,000 events of 20 tenants and
 * 290,000 deliveries, analyzed or not). Each batch is one short transaction that first takes the webhook's row:
 * two recoveries of one webhook at once then queue an event once (the second sees the first's
 * deliveries), and a webhook deleted meanwhile gets nothing more.
 */
export async function queueMissedEvents(
  store: Store,
  tenantId: number,
  webhook: Pick<Webhook, 'id' | 'events' | 'created_at'>,
  window: { since: number; until: number },
  onProgress?: (progress: RecoverProgress) => void,
): Promise<number> {
  const types = receivedTypes(webhook.events);
  const operational = types.filter(isOperational);
  // The body only of operational events, to tell those about this webhook itself.
  const aboutBody =
    operational.length > 0
      ? sql<string | null>`case when e.type in (${sql.join(operational)}) then e.payload end`
      : sql<string | null>`null`;
  const from = firstIdAt('evt', Math.max(window.since, webhook.created_at));
  const end = firstIdAt('evt', window.until + 1);
  const progress = { kind: 'missing' as const, queued: 0, scanned: 0, total: 0 };
  if (types.length === 0 || from >= end) {
    onProgress?.(progress);
    return 0;
  }
  // Counted only to draw progress: it walks the window's ids once more.
  if (onProgress) {
    const { total } = await store.db
      .selectFrom('events')
      .select((eb) => eb.fn.countAll<number>().as('total'))
      .where('id', '>=', from)
      .where('id', '<', end)
      .executeTakeFirstOrThrow();
    progress.total = Number(total);
    onProgress(progress);
  }
  /** Events after the last batch's (from the window's start at first). */
  let after: string | undefined;
  for (;;) {
    const [op, bound] = after === undefined ? (['>=', from] as const) : (['>', after] as const);
    // This batch's last event: RECOVER_BATCH events on, or none when the window ends sooner.
    const last = (
      await store.db
        .selectFrom('events')
        .select('id')
        .where('id', op, bound)
        .where('id', '<', end)
        .orderBy('id')
        .limit(1)
        .offset(RECOVER_BATCH - 1)
        .executeTakeFirst()
    )?.id;
    const queued = await store.db.transaction().execute(async (trx) => {
      // A write that changes nothing: it holds the webhook's row (PostgreSQL) or the database's
      // write lock (SQLite) until the batch commits.
      const live = await trx
        .updateTable('webhooks')
        .set((eb) => ({ is_active: eb.ref('is_active') }))
        .where('id', '=', webhook.id)
        .where('tenant_id', '=', tenantId)
        .where('deleted_at', 'is', null)
        .executeTakeFirst();
      if (Number(live.numUpdatedRows) === 0) return undefined;
      const missed = await trx
        .selectFrom('events as e')
        .select(['e.id', 'e.type', 'e.created_at'])
        .select(aboutBody.as('payload'))
        .where('e.id', op, bound)
        .where('e.id', last === undefined ? '<' : '<=', last ?? end)
        .where('e.tenant_id', '=', tenantId)
        .where('e.type', 'in', types)
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('deliveries as d')
                .select('d.id')
                .whereRef('d.event_id', '=', 'e.id')
                .where('d.webhook_id', '=', webhook.id),
            ),
          ),
        )
        .orderBy('e.id')
        .execute();
      const now = Date.now();
      const rows = missed
        .filter((event) => event.payload === null || !isAbout(event.payload, webhook.id))
        .map((event) => ({
          ...newDeliveryRow(
            { tenant_id: tenantId, webhook_id: webhook.id, event_id: event.id, event_type: event.type },
            now,
            { is_test: 0, manual: 1 },
          ),
          next_attempt_at: Number(event.created_at),
        }));
      await insertRows(trx, store.dialect, 'deliveries', rows);
      return rows.length;
    });
    // The webhook was deleted meanwhile.
    if (queued === undefined) break;
    progress.queued += queued;
    progress.scanned =
      last === undefined ? progress.total : Math.min(progress.total, progress.scanned + RECOVER_BATCH);
    onProgress?.(progress);
    if (queued > 0) void wakeWorkers(store);
    if (last === undefined) break;
    after = last;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return progress.queued;
}

export const TEST_EVENT_TYPE = 'webhook.test';

/**
 * Sends a `webhook.test` event to this webhook only, as one attempt by hand (so also to a paused
 * webhook); marked as a test in the log.
 */
export async function queueTestDelivery(
  store: Store,
  tenant: { id: number; slug: string },
  webhookId: number,
): Promise<Delivery> {
  const now = Date.now();
  const eventId = newEventId(now);
  const delivery: Delivery = newDeliveryRow(
    { tenant_id: tenant.id, webhook_id: webhookId, event_id: eventId, event_type: TEST_EVENT_TYPE },
    now,
    { is_test: 1, manual: 1 },
  );
  await store.db.transaction().execute(async (trx) => {
    await insertRows(trx, store.dialect, 'events', [
      {
        id: eventId,
        tenant_id: tenant.id,
        type: TEST_EVENT_TYPE,
        client_id: null,
        payload: eventBody(eventId, TEST_EVENT_TYPE, now, tenant.slug, {
          webhook_id: webhookId,
          message: 'A test event sent from PlanDocket Webhooks.',
        }),
        created_at: now,
      },
    ]);
    await insertRows(trx, store.dialect, 'deliveries', [delivery]);
  });
  await wakeWorkers(store);
  return delivery;
}

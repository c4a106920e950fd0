import { type Selectable, sql } from 'kysely';
import { firstIdAt, newEventId } from '../domain/ids.js';
import type { DeliveryStatus } from '../domain/outcome.js';
import type { Store } from './db.js';
import { eventBody, insertRows, newDeliveryRow } from './events.js';
import type { AttemptTable, DeliveryTable } from './schema.js';
import { wakeWorkers } from './wakeups.js';

/**
 * The delivery log of one webhook, and what a tenant does with it: look at one delivery and its
 * attempts, send one again, recover the failed ones of a time window, send a test event.
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

export interface RecoverProgress {
  queued: number;
  /** Failed deliveries in the window when the recovery began. */
  total: number;
}

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
  const progress = { queued: 0, total: Number(total) };
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

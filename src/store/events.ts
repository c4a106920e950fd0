import { CompiledQuery, type Transaction } from 'kysely';
import { ALL_EVENTS } from '../domain/events.js';
import { newDeliveryId, newEventId } from '../domain/ids.js';
import type { Dialect, Store } from './db.js';
import type { Database } from './schema.js';
import { wakeWorkers } from './wakeups.js';

export interface NewEvent {
  tenantId: number;
  tenantSlug: string;
  type: string;
  data: Record<string, unknown>;
  clientId?: string | undefined;
}

export interface PublishedEvent {
  id: string;
  deliveries: number;
  /** False when the client id was seen before: the first event is returned, nothing new is queued. */
  created: boolean;
  /** The event's type: for a repeated client id, the first event's (which may differ from the one sent). */
  type: string;
}

/** The exact body of every delivery of an event. */
export function eventBody(
  id: string,
  type: string,
  createdAt: number,
  tenant: string,
  data: unknown,
): string {
  return JSON.stringify({ id, type, created_at: new Date(createdAt).toISOString(), tenant, data });
}

/** A delivery just queued: pending, due now. Its id carries the creation time exactly (the log's time filters are ranges of ids). */
export function newDeliveryRow(
  fields: { tenant_id: number; webhook_id: number; event_id: string; event_type: string },
  now: number,
  byHand: { is_test: 0 | 1; manual: 0 | 1 } = { is_test: 0, manual: 0 },
): Database['deliveries'] {
  return {
    id: newDeliveryId(now),
    ...fields,
    status: 'pending',
    attempts: 0,
    next_attempt_at: now,
    locked_until: null,
    locked_by: null,
    last_status_code: null,
    last_error: null,
    created_at: now,
    updated_at: now,
    catch_up_from: null,
    ...byHand,
  };
}

/** Rows per INSERT: well under both databases' limits on bound parameters. */
const CHUNK = 500;

/** INSERT texts by dialect, table and row count: a batch repeats the same few. */
const insertTexts = new Map<string, string>();

/**
 * Inserts rows of one shape (the same columns in the same order), in chunks. The statement text is written here rather than by Kysely's
 * builder, which parses every value of every row into nodes and compiles them back: 9 % of the API
 * process's time when publishing batches.
 */
export async function insertRows(
  trx: Transaction<Database>,
  dialect: Dialect,
  table: 'events' | 'deliveries',
  rows: Database['events'][] | Database['deliveries'][],
): Promise<void> {
  const first = rows[0];
  if (!first) return;
  const columns = Object.keys(first);
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK) as unknown as Record<string, unknown>[];
    const key = `${dialect} ${table} ${chunk.length} ${columns.join()}`;
    let text = insertTexts.get(key);
    if (!text) {
      let n = 0;
      const placeholder = dialect === 'postgres' ? () => `$${++n}` : () => '?';
      const values = chunk.map(() => `(${columns.map(placeholder).join(', ')})`).join(', ');
      text = `insert into ${table} (${columns.join(', ')}) values ${values}`;
      if (insertTexts.size >= 1000) insertTexts.clear();
      insertTexts.set(key, text);
    }
    const parameters = chunk.flatMap((row) => columns.map((column) => row[column]));
    await trx.executeQuery(CompiledQuery.raw(text, parameters));
  }
}

interface KnownEvent {
  id: string;
  type: string;
}

/** Events already stored under these client ids, by `tenant id + client id`. */
async function knownClientIds(
  trx: Transaction<Database>,
  events: NewEvent[],
): Promise<Map<string, KnownEvent>> {
  const withId = events.filter((e) => e.clientId !== undefined);
  const known = new Map<string, KnownEvent>();
  for (let i = 0; i < withId.length; i += CHUNK) {
    const chunk = withId.slice(i, i + CHUNK);
    const rows = await trx
      .selectFrom('events')
      .select(['id', 'tenant_id', 'client_id', 'type'])
      .where('tenant_id', 'in', [...new Set(chunk.map((e) => e.tenantId))])
      .where(
        'client_id',
        'in',
        chunk.map((e) => e.clientId as string),
      )
      .execute();
    for (const row of rows) known.set(`${row.tenant_id} ${row.client_id}`, { id: row.id, type: row.type });
  }
  return known;
}

/** Active webhooks of these tenants by tenant, then by subscribed type (`*` included). */
async function subscriptions(
  trx: Transaction<Database>,
  events: NewEvent[],
): Promise<Map<number, Map<string, number[]>>> {
  const rows = await trx
    .selectFrom('webhooks')
    .innerJoin('webhook_events', 'webhook_events.webhook_id', 'webhooks.id')
    .select(['webhooks.id', 'webhooks.tenant_id', 'webhook_events.event_type'])
    .where('webhooks.tenant_id', 'in', [...new Set(events.map((e) => e.tenantId))])
    .where('webhooks.is_active', '=', 1)
    .where('webhooks.deleted_at', 'is', null)
    .where('webhook_events.event_type', 'in', [...new Set(events.map((e) => e.type)), ALL_EVENTS])
    .execute();
  const byTenant = new Map<number, Map<string, number[]>>();
  for (const row of rows) {
    const byType = byTenant.get(row.tenant_id) ?? new Map<string, number[]>();
    byType.set(row.event_type, [...(byType.get(row.event_type) ?? []), row.id]);
    byTenant.set(row.tenant_id, byType);
  }
  return byTenant;
}

async function deliveryCounts(trx: Transaction<Database>, eventIds: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < eventIds.length; i += CHUNK) {
    const rows = await trx
      .selectFrom('deliveries')
      .select(['event_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('event_id', 'in', eventIds.slice(i, i + CHUNK))
      .groupBy('event_id')
      .execute();
    for (const row of rows) counts.set(row.event_id, Number(row.n));
  }
  return counts;
}

/**
 * Stores events and fans each out to its tenant's active webhooks subscribed to its type or to
 * `*`: a few statements for the whole batch, in one transaction, then wakes the workers.
 */
async function publishInTransaction(
  trx: Transaction<Database>,
  dialect: Dialect,
  events: NewEvent[],
  now: number,
) {
  const known = await knownClientIds(trx, events);
  const subscribed = await subscriptions(trx, events);
  const eventRows: Database['events'][] = [];
  const deliveryRows: Database['deliveries'][] = [];
  const results: PublishedEvent[] = events.map((event) => {
    const key = `${event.tenantId} ${event.clientId}`;
    const existing = event.clientId !== undefined ? known.get(key) : undefined;
    if (existing) return { id: existing.id, deliveries: 0, created: false, type: existing.type };
    const id = newEventId(now);
    if (event.clientId !== undefined) known.set(key, { id, type: event.type });
    eventRows.push({
      id,
      tenant_id: event.tenantId,
      type: event.type,
      client_id: event.clientId ?? null,
      payload: eventBody(id, event.type, now, event.tenantSlug, event.data),
      created_at: now,
    });
    const byType = subscribed.get(event.tenantId);
    const webhooks = new Set([...(byType?.get(event.type) ?? []), ...(byType?.get(ALL_EVENTS) ?? [])]);
    for (const webhookId of webhooks) {
      deliveryRows.push(
        newDeliveryRow(
          { tenant_id: event.tenantId, webhook_id: webhookId, event_id: id, event_type: event.type },
          now,
        ),
      );
    }
    return { id, deliveries: webhooks.size, created: true, type: event.type };
  });
  await insertRows(trx, dialect, 'events', eventRows);
  await insertRows(trx, dialect, 'deliveries', deliveryRows);
  // A repeated client id answers with the first event and the deliveries it queued.
  const repeats = results.filter((r) => !r.created);
  if (repeats.length > 0) {
    const counts = await deliveryCounts(trx, [...new Set(repeats.map((r) => r.id))]);
    for (const r of repeats) r.deliveries = counts.get(r.id) ?? 0;
  }
  return { results, queued: deliveryRows.length };
}

export async function publishEvents(store: Store, events: NewEvent[]): Promise<PublishedEvent[]> {
  const now = Date.now();
  const attempt = () =>
    store.db.transaction().execute(async (trx) => {
      const { results, queued } = await publishInTransaction(trx, store.dialect, events, now);
      return { results, queued };
    });
  let outcome: Awaited<ReturnType<typeof attempt>>;
  try {
    outcome = await attempt();
  } catch (error) {
    // Two publishers raced with the same client id: the loser's second try finds the winner's event.
    if (!isUniqueViolation(error)) throw error;
    outcome = await attempt();
  }
  if (outcome.queued > 0) void wakeWorkers(store);
  return outcome.results;
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

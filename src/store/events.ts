import { sql, type Transaction } from 'kysely';
import { ALL_EVENTS } from '../domain/events.js';
import { newDeliveryId, newEventId } from '../domain/ids.js';
import { type Dialect, type Store, wake } from './db.js';
import type { Database } from './schema.js';

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

async function publishOne(trx: Transaction<Database>, event: NewEvent, now: number): Promise<PublishedEvent> {
  if (event.clientId !== undefined) {
    const existing = await trx
      .selectFrom('events')
      .select('id')
      .where('tenant_id', '=', event.tenantId)
      .where('client_id', '=', event.clientId)
      .executeTakeFirst();
    if (existing) {
      const { count } = await trx
        .selectFrom('deliveries')
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .where('event_id', '=', existing.id)
        .executeTakeFirstOrThrow();
      return { id: existing.id, deliveries: Number(count), created: false };
    }
  }
  const id = newEventId();
  await trx
    .insertInto('events')
    .values({
      id,
      tenant_id: event.tenantId,
      type: event.type,
      client_id: event.clientId ?? null,
      payload: eventBody(id, event.type, now, event.tenantSlug, event.data),
      created_at: now,
    })
    .execute();
  const webhooks = await trx
    .selectFrom('webhooks')
    .select('webhooks.id')
    .distinct()
    .innerJoin('webhook_events', 'webhook_events.webhook_id', 'webhooks.id')
    .where('webhooks.tenant_id', '=', event.tenantId)
    .where('webhooks.is_active', '=', 1)
    .where('webhooks.deleted_at', 'is', null)
    .where('webhook_events.event_type', 'in', [event.type, ALL_EVENTS])
    .execute();
  await insertDeliveries(
    trx,
    webhooks.map((w) => ({ tenantId: event.tenantId, webhookId: w.id, eventId: id })),
    now,
  );
  return { id, deliveries: webhooks.length, created: true };
}

/** Queues deliveries, due now. Inserted in chunks to stay under the databases' parameter limits. */
export async function insertDeliveries(
  trx: Transaction<Database>,
  rows: { tenantId: number; webhookId: number; eventId: string }[],
  now: number,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500).map((row) => {
      const id = newDeliveryId();
      ids.push(id);
      return {
        id,
        tenant_id: row.tenantId,
        webhook_id: row.webhookId,
        event_id: row.eventId,
        status: 'pending',
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        updated_at: now,
      };
    });
    await trx.insertInto('deliveries').values(chunk).execute();
  }
  return ids;
}

/**
 * Stores events and fans each out to the tenant's active webhooks subscribed to its type or to
 * `*`, all in one transaction, then wakes the workers.
 */
export async function publishEvents(store: Store, events: NewEvent[]): Promise<PublishedEvent[]> {
  const now = Date.now();
  const attempt = () =>
    store.db.transaction().execute(async (trx) => {
      const out: PublishedEvent[] = [];
      for (const event of events) out.push(await publishOne(trx, event, now));
      if (out.some((r) => r.created && r.deliveries > 0)) await announce(trx, store.dialect);
      return out;
    });
  let results: PublishedEvent[];
  try {
    results = await attempt();
  } catch (error) {
    // Two publishers raced with the same client id: the loser's second try finds the winner's event.
    if (!isUniqueViolation(error)) throw error;
    results = await attempt();
  }
  if (store.dialect === 'sqlite') wake(store);
  return results;
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

export const DELIVERIES_CHANNEL = 'plandocket_deliveries';

/** PostgreSQL: a NOTIFY sent on commit wakes every listening worker process. */
async function announce(trx: Transaction<Database>, dialect: Dialect): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_notify(${DELIVERIES_CHANNEL}, '')`.execute(trx);
}

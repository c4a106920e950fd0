import { type Kysely, type Selectable, sql } from 'kysely';
import { ALL_EVENTS } from '../domain/events.js';
import type { Health } from '../domain/webhook-health.js';
import type { Store } from './db.js';
import type { Database, WebhookTable } from './schema.js';

export interface Webhook {
  id: number;
  tenant_id: number;
  name: string;
  url: string;
  events: string[];
  is_active: boolean;
  headers: Record<string, string>;
  retry_count: number;
  timeout_seconds: number;
  secret_ciphertext: string;
  last_triggered_at: number | null;
  last_success_at: number | null;
  last_failure_at: number | null;
  failure_count: number;
  disabled_reason: string | null;
  /** When the service switched it off (410 Gone, auto-disable); null when active or paused by hand. */
  disabled_at: number | null;
  /** After a rotation, the replaced secret, signing alongside the new one until it expires. */
  previous_secret_ciphertext: string | null;
  previous_secret_expires_at: number | null;
  created_at: number;
  updated_at: number;
  health: Health;
  /** While failing: since when, and when the next probe goes. */
  failing_since: number | null;
  next_probe_at: number | null;
}

export interface NewWebhook {
  name: string;
  url: string;
  events: string[];
  is_active: boolean;
  headers: Record<string, string>;
  retry_count: number;
  timeout_seconds: number;
  secret_ciphertext: string;
}

export type WebhookChanges = Partial<Omit<NewWebhook, 'secret_ciphertext'>>;

export interface WebhookFilter {
  is_active?: boolean;
  health?: Health;
  /** Webhooks that receive this event type: subscribed to it or to `*`. */
  event?: string;
}

type Row = Selectable<WebhookTable>;

/** Field by field: spreading a row into a new object costs more than the query on a page of them. */
function toWebhook(row: Row): Webhook {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    url: row.url,
    events: JSON.parse(row.events),
    is_active: row.is_active === 1,
    headers: JSON.parse(row.headers),
    retry_count: row.retry_count,
    timeout_seconds: row.timeout_seconds,
    secret_ciphertext: row.secret_ciphertext,
    last_triggered_at: row.last_triggered_at,
    last_success_at: row.last_success_at,
    last_failure_at: row.last_failure_at,
    failure_count: row.failure_count,
    disabled_reason: row.disabled_reason,
    disabled_at: row.disabled_at,
    previous_secret_ciphertext: row.previous_secret_ciphertext,
    previous_secret_expires_at: row.previous_secret_expires_at,
    created_at: row.created_at,
    updated_at: row.updated_at,
    health:
      row.is_active === 0 && row.disabled_at !== null
        ? 'disabled'
        : row.breaker_opened_at !== null
          ? 'failing'
          : 'healthy',
    failing_since: row.breaker_opened_at === null ? null : Number(row.breaker_opened_at),
    next_probe_at: row.next_probe_at === null ? null : Number(row.next_probe_at),
  };
}

/** The subscribed types, in both places: the list on the webhook and the rows fan-out looks up. */
async function replaceEvents(db: Kysely<Database>, webhookId: number, events: string[]): Promise<void> {
  await db.deleteFrom('webhook_events').where('webhook_id', '=', webhookId).execute();
  await db
    .insertInto('webhook_events')
    .values(events.map((event_type, position) => ({ webhook_id: webhookId, event_type, position })))
    .execute();
}

/** A tenant that has as many webhooks as it may have. */
export class WebhookLimitReached extends Error {
  constructor(readonly limit: number) {
    super(`webhook limit of ${limit} reached`);
  }
}

/**
 * Creates a webhook, unless the tenant has `limit` live webhooks already (WebhookLimitReached).
 * On PostgreSQL the tenant's row is locked first, so that creates at the same time count in turn.
 */
export async function createWebhook(
  store: Store,
  tenantId: number,
  input: NewWebhook,
  limit: number,
): Promise<Webhook> {
  const now = Date.now();
  return store.db.transaction().execute(async (trx) => {
    if (store.dialect === 'postgres') {
      await sql`select id from tenants where id = ${tenantId} for no key update`.execute(trx);
    }
    const { live } = await trx
      .selectFrom('webhooks')
      .select((eb) => eb.fn.countAll<number>().as('live'))
      .where('tenant_id', '=', tenantId)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    if (Number(live) >= limit) throw new WebhookLimitReached(limit);
    const { events, ...fields } = input;
    const row = await trx
      .insertInto('webhooks')
      .values({
        ...fields,
        tenant_id: tenantId,
        is_active: fields.is_active ? 1 : 0,
        headers: JSON.stringify(fields.headers),
        events: JSON.stringify(events),
        failure_count: 0,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await replaceEvents(trx, row.id, events);
    return toWebhook(row);
  });
}

/** A live webhook of this tenant; another tenant's webhook is not found, like a missing one. */
export async function findWebhook(store: Store, tenantId: number, id: number): Promise<Webhook | undefined> {
  const row = await store.db
    .selectFrom('webhooks')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row && toWebhook(row);
}

export async function listWebhooks(
  store: Store,
  tenantId: number,
  filter: WebhookFilter,
  page: { offset: number; limit: number },
): Promise<{ webhooks: Webhook[]; total: number }> {
  let query = store.db
    .selectFrom('webhooks')
    .where('tenant_id', '=', tenantId)
    .where('deleted_at', 'is', null);
  if (filter.is_active !== undefined) query = query.where('is_active', '=', filter.is_active ? 1 : 0);
  if (filter.health !== undefined) {
    const health = filter.health;
    query = query.where((eb) => {
      const disabled = eb.and([eb('is_active', '=', 0), eb('disabled_at', 'is not', null)]);
      if (health === 'disabled') return disabled;
      return eb.and([
        eb.not(disabled),
        eb('breaker_opened_at', health === 'failing' ? 'is not' : 'is', null),
      ]);
    });
  }
  const event = filter.event;
  if (event !== undefined) {
    const types = event === ALL_EVENTS ? [ALL_EVENTS] : [event, ALL_EVENTS];
    query = query.where((eb) =>
      eb.exists(
        eb
          .selectFrom('webhook_events')
          .select('webhook_events.webhook_id')
          .whereRef('webhook_events.webhook_id', '=', 'webhooks.id')
          .where('webhook_events.event_type', 'in', types),
      ),
    );
  }
  const [rows, count] = await Promise.all([
    query.selectAll().orderBy('id').limit(page.limit).offset(page.offset).execute(),
    query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  return { webhooks: rows.map(toWebhook), total: Number(count.total) };
}

export async function updateWebhook(
  store: Store,
  tenantId: number,
  id: number,
  changes: WebhookChanges,
): Promise<Webhook | undefined> {
  return store.db.transaction().execute(async (trx) => {
    const { events, headers, is_active, ...plain } = changes;
    const row = await trx
      .updateTable('webhooks')
      .set({
        ...plain,
        ...(headers !== undefined && { headers: JSON.stringify(headers) }),
        ...(events !== undefined && { events: JSON.stringify(events) }),
        // Turning a webhook on again clears why and when it was switched off.
        ...(is_active !== undefined && { is_active: is_active ? 1 : 0 }),
        ...(is_active === true && { disabled_reason: null, disabled_at: null }),
        updated_at: Date.now(),
      })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!row) return undefined;
    if (events !== undefined) await replaceEvents(trx, id, events);
    return toWebhook(row);
  });
}

/**
 * Gives a webhook a new secret. The one it replaces keeps signing for `graceMs` (not at all when
 * 0); only one previous secret is kept, so rotating again during a grace period drops the oldest
 * at once. Undefined when not found.
 */
export async function rotateWebhookSecret(
  store: Store,
  tenantId: number,
  id: number,
  rotation: { secretCiphertext: string; graceMs: number },
): Promise<Webhook | undefined> {
  const now = Date.now();
  const keepPrevious = rotation.graceMs > 0;
  const row = await store.db
    .updateTable('webhooks')
    .set((eb) => ({
      secret_ciphertext: rotation.secretCiphertext,
      previous_secret_ciphertext: keepPrevious ? eb.ref('secret_ciphertext') : null,
      previous_secret_expires_at: keepPrevious ? now + rotation.graceMs : null,
      updated_at: now,
    }))
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row && toWebhook(row);
}

/**
 * Deletes a webhook (kept as a tombstone for its delivery history) and cancels its pending
 * deliveries; false when not found.
 */
export async function deleteWebhook(store: Store, tenantId: number, id: number): Promise<boolean> {
  const now = Date.now();
  return store.db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('webhooks')
      .set({ deleted_at: now, updated_at: now, is_active: 0 })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) return false;
    await trx
      .updateTable('deliveries')
      .set({
        status: 'cancelled',
        next_attempt_at: null,
        locked_by: null,
        locked_until: null,
        updated_at: now,
      })
      .where('webhook_id', '=', id)
      .where('status', '=', 'pending')
      .execute();
    return true;
  });
}

import { type ColumnDefinitionBuilder, type Kysely, type Migration, sql } from 'kysely';
import type { Dialect } from './db.js';

/**
 * The schema, one migration per step, for both dialects. The only difference between them is
 * how an integer primary key gets its values.
 */
export function migrations(dialect: Dialect): Record<string, Migration> {
  const id = (col: ColumnDefinitionBuilder) =>
    dialect === 'postgres'
      ? col.primaryKey().generatedByDefaultAsIdentity()
      : col.primaryKey().autoIncrement();

  return {
    '0001_tenants_keys_webhooks': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('tenants')
          .addColumn('id', 'integer', id)
          .addColumn('slug', 'text', (c) => c.notNull().unique())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('plan', 'text', (c) => c.notNull())
          .addColumn('features', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();

        await db.schema
          .createTable('api_keys')
          .addColumn('id', 'integer', id)
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('scopes', 'text', (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('key_prefix', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('last_used_at', 'bigint')
          .addColumn('revoked_at', 'bigint')
          .execute();
        await db.schema.createIndex('api_keys_tenant').on('api_keys').columns(['tenant_id']).execute();

        await db.schema
          .createTable('webhooks')
          .addColumn('id', 'integer', id)
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('is_active', 'integer', (c) => c.notNull())
          .addColumn('headers', 'text', (c) => c.notNull())
          .addColumn('retry_count', 'integer', (c) => c.notNull())
          .addColumn('timeout_seconds', 'integer', (c) => c.notNull())
          .addColumn('secret_ciphertext', 'text', (c) => c.notNull())
          .addColumn('last_triggered_at', 'bigint')
          .addColumn('last_success_at', 'bigint')
          .addColumn('last_failure_at', 'bigint')
          .addColumn('failure_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('disabled_reason', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addColumn('deleted_at', 'bigint')
          .execute();
        await db.schema.createIndex('webhooks_tenant').on('webhooks').columns(['tenant_id', 'id']).execute();

        await db.schema
          .createTable('webhook_events')
          .addColumn('webhook_id', 'integer', (c) =>
            c.notNull().references('webhooks.id').onDelete('cascade'),
          )
          .addColumn('event_type', 'text', (c) => c.notNull())
          .addColumn('position', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('webhook_events_pk', ['webhook_id', 'event_type'])
          .execute();
        await db.schema
          .createIndex('webhook_events_type')
          .on('webhook_events')
          .columns(['event_type', 'webhook_id'])
          .execute();

        await db.schema
          .createTable('rate_limit_windows')
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('window_start', 'bigint', (c) => c.notNull())
          .addColumn('count', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('rate_limit_windows_pk', ['tenant_id', 'window_start'])
          .execute();
      },
    },
    '0002_events_deliveries_attempts': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('webhooks').addColumn('failing_since', 'bigint').execute();

        await db.schema
          .createTable('events')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('client_id', 'text')
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('events_client_id')
          .on('events')
          .columns(['tenant_id', 'client_id'])
          .unique()
          .execute();

        await db.schema
          .createTable('deliveries')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('webhook_id', 'integer', (c) =>
            c.notNull().references('webhooks.id').onDelete('cascade'),
          )
          .addColumn('event_id', 'text', (c) => c.notNull().references('events.id').onDelete('cascade'))
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'bigint')
          .addColumn('locked_until', 'bigint')
          .addColumn('locked_by', 'text')
          .addColumn('last_status_code', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .execute();
        // The queue: pending deliveries by due time.
        await db.schema
          .createIndex('deliveries_due')
          .on('deliveries')
          .columns(['next_attempt_at'])
          .where(sql.ref('status'), '=', 'pending')
          .execute();
        // The delivery log of one webhook, newest first (ids sort by time).
        await db.schema
          .createIndex('deliveries_webhook')
          .on('deliveries')
          .columns(['webhook_id', 'id'])
          .execute();
        await db.schema
          .createIndex('deliveries_webhook_status')
          .on('deliveries')
          .columns(['webhook_id', 'status', 'id'])
          .execute();
        await db.schema.createIndex('deliveries_event').on('deliveries').columns(['event_id']).execute();

        await db.schema
          .createTable('attempts')
          .addColumn('id', 'integer', id)
          .addColumn('delivery_id', 'text', (c) =>
            c.notNull().references('deliveries.id').onDelete('cascade'),
          )
          .addColumn('number', 'integer', (c) => c.notNull())
          .addColumn('started_at', 'bigint', (c) => c.notNull())
          .addColumn('duration_ms', 'integer', (c) => c.notNull())
          .addColumn('request_headers', 'text', (c) => c.notNull())
          .addColumn('response_status', 'integer')
          .addColumn('response_headers', 'text')
          .addColumn('response_body', 'text')
          .addColumn('error', 'text')
          .execute();
        await db.schema
          .createIndex('attempts_delivery')
          .on('attempts')
          .columns(['delivery_id', 'number'])
          .execute();
      },
    },
    '0003_delivery_log': {
      async up(db: Kysely<unknown>) {
        // The delivery log filters by event type: the type is kept on the delivery itself, so that
        // the filter walks one index of one table, newest first, like the other filters.
        await db.schema
          .alterTable('deliveries')
          .addColumn('event_type', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await sql`update deliveries set event_type = (select e.type from events e where e.id = deliveries.event_id)`.execute(
          db,
        );
        // A test event, sent by hand to one webhook.
        await db.schema
          .alterTable('deliveries')
          .addColumn('is_test', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        // Queued by hand (retry, recover, test): one attempt, sent even while the webhook is paused.
        await db.schema
          .alterTable('deliveries')
          .addColumn('manual', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema
          .createIndex('deliveries_webhook_event')
          .on('deliveries')
          .columns(['webhook_id', 'event_type', 'id'])
          .execute();
      },
    },
    '0004_secret_rotation': {
      async up(db: Kysely<unknown>) {
        // The secret being replaced keeps signing until it expires (one kept, encrypted too).
        await db.schema.alterTable('webhooks').addColumn('previous_secret_ciphertext', 'text').execute();
        await db.schema.alterTable('webhooks').addColumn('previous_secret_expires_at', 'bigint').execute();
        // When the webhook was switched off by the service (410 Gone, auto-disable).
        await db.schema.alterTable('webhooks').addColumn('disabled_at', 'bigint').execute();
        await sql`update webhooks set disabled_at = updated_at
          where disabled_reason is not null and is_active = 0`.execute(db);

        // A webhook's attempts by time, for its statistics. Without the webhook on the attempt a
        // window means walking every delivery the webhook has; without the status the attempt led
        // to, joining every attempt to its delivery. The index holds what the statistics read.
        await db.schema.alterTable('attempts').addColumn('webhook_id', 'integer').execute();
        await db.schema.alterTable('attempts').addColumn('delivery_status', 'text').execute();
        await sql`update attempts set
          webhook_id = (select d.webhook_id from deliveries d where d.id = attempts.delivery_id),
          delivery_status = coalesce((select d.status from deliveries d
            where d.id = attempts.delivery_id and d.attempts = attempts.number), 'pending')`.execute(db);
        await db.schema
          .createIndex('attempts_webhook_time')
          .on('attempts')
          .columns(['webhook_id', 'started_at', 'duration_ms', 'delivery_status'])
          .execute();
      },
    },
    '0005_webhook_event_list': {
      // The subscribed types also as a JSON list on the webhook, so that reading a webhook is one
      // query; webhook_events stays the index that fan-out looks types up in.
      async up(db: Kysely<unknown>) {
        await db.schema
          .alterTable('webhooks')
          .addColumn('events', 'text', (c) => c.notNull().defaultTo('[]'))
          .execute();
        const list =
          dialect === 'postgres'
            ? sql`(select coalesce(json_agg(e.event_type order by e.position), '[]')::text
                from webhook_events e where e.webhook_id = webhooks.id)`
            : sql`(select coalesce(json_group_array(event_type), '[]') from
                (select e.event_type from webhook_events e where e.webhook_id = webhooks.id order by e.position))`;
        await sql`update webhooks set events = ${list}`.execute(db);
      },
    },
    '0006_portal_links': {
      async up(db: Kysely<unknown>) {
        // Keys that stop working by themselves: the portal's session keys.
        await db.schema.alterTable('api_keys').addColumn('expires_at', 'bigint').execute();

        await db.schema
          .createTable('portal_links')
          .addColumn('id', 'integer', id)
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('used_at', 'bigint')
          .addColumn('session_key_id', 'integer', (c) => c.references('api_keys.id').onDelete('set null'))
          .execute();
        await db.schema
          .createIndex('portal_links_tenant')
          .on('portal_links')
          .columns(['tenant_id'])
          .execute();
      },
    },
    '0007_unique_attempt_numbers': {
      // One row per attempt of a delivery. Before outcome writes were idempotent, a worker that
      // wrote a batch again after a commit whose answer was lost added a second row of the same
      // attempt: of such copies the first written (the lowest id) stays, and the plain index on
      // (delivery_id, number) becomes a unique one.
      async up(db: Kysely<unknown>) {
        await sql`delete from attempts where exists (select 1 from attempts a
          where a.delivery_id = attempts.delivery_id and a.number = attempts.number and a.id < attempts.id)`.execute(
          db,
        );
        await db.schema.dropIndex('attempts_delivery').execute();
        await db.schema
          .createIndex('attempts_delivery')
          .on('attempts')
          .columns(['delivery_id', 'number'])
          .unique()
          .execute();
      },
    },
    '0008_tenant_webhook_limit': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('tenants').addColumn('max_webhooks', 'integer').execute();
      },
    },
    '0009_tenant_queue': {
      // Claims serve tenants in turn: they walk the queue by tenant, then by due time. The index
      // by due time alone goes: PostgreSQL would walk it for each tenant, through every other
      // tenant's due deliveries.
      async up(db: Kysely<unknown>) {
        await db.schema
          .createIndex('deliveries_tenant_due')
          .on('deliveries')
          .columns(['tenant_id', 'next_attempt_at'])
          .where(sql.ref('status'), '=', 'pending')
          .execute();
        await db.schema.dropIndex('deliveries_due').execute();
      },
    },
    '0010_tenant_notification_email': {
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('tenants').addColumn('notification_email', 'text').execute();

        // The outbox of notification mails: written in the transaction that decides a mail is due,
        // sent by the mailers of the worker processes, kept a while after as a record.
        await db.schema
          .createTable('mails')
          .addColumn('id', 'integer', id)
          .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
          .addColumn('recipient', 'text', (c) => c.notNull())
          .addColumn('subject', 'text', (c) => c.notNull())
          .addColumn('body', 'text', (c) => c.notNull())
          // One mail per occasion (`webhook:7:failing:<since>`), however often it is asked for.
          .addColumn('dedupe_key', 'text', (c) => c.unique())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'bigint')
          .addColumn('locked_until', 'bigint')
          .addColumn('locked_by', 'text')
          .addColumn('last_error', 'text')
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addColumn('sent_at', 'bigint')
          .execute();
        await db.schema
          .createIndex('mails_due')
          .on('mails')
          .columns(['next_attempt_at'])
          .where(sql.ref('status'), '=', 'pending')
          .execute();
        await db.schema.createIndex('mails_tenant').on('mails').columns(['tenant_id']).execute();
      },
    },
    '0011_circuit_breaker': {
      // A webhook whose endpoint is down holds its deliveries (see src/store/breaker.ts): since
      // when, when the next probe goes, which delivery it is. A delivery caught up after an outage
      // retries from the attempt count it had then.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('webhooks').addColumn('breaker_opened_at', 'bigint').execute();
        await db.schema.alterTable('webhooks').addColumn('next_probe_at', 'bigint').execute();
        await db.schema.alterTable('webhooks').addColumn('probe_delivery_id', 'text').execute();
        await db.schema.alterTable('deliveries').addColumn('catch_up_from', 'integer').execute();
        await db.schema
          .createIndex('webhooks_probe_due')
          .on('webhooks')
          .columns(['next_probe_at'])
          .where(sql.ref('breaker_opened_at'), 'is not', null)
          .execute();
      },
    },
  };
}

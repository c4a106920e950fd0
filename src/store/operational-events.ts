import type { Transaction } from 'kysely';
import { isOperational } from '../domain/events.js';
import { newEventId } from '../domain/ids.js';
import type { Dialect } from './db.js';
import { eventBody, insertRows, newDeliveryRow } from './events.js';
import { queueMail } from './mails.js';
import type { Database } from './schema.js';

/**
 * The service's own events about its work, published in the transaction that records the change
 * they tell of, so that each is told once per change (never for a change that was not written):
 *
 * - `webhook.failing`, `webhook.recovered`, `webhook.disabled`: to the tenant's webhooks that
 *   subscribe to the type by name (`*` does not include them), never to the webhook they are
 *   about, and by mail to the tenant's `notification_email`;
 * - `delivery.exhausted`: likewise, but not for a delivery of one of these events (two webhooks
 *   down that subscribe to each other's would otherwise tell each other forever), and without mail.
 *
 * Every one also goes to the operator's webhook (OPERATOR_WEBHOOK_URL), a webhook of the hidden
 * operator tenant; its own failures are logged, not told.
 */

/** The hidden tenant that owns the operator's webhook; not a valid slug, so no route reaches it. */
export const OPERATOR_TENANT = '_operator';

export type OperationalEvent =
  | { type: 'webhook.failing'; webhookId: number; since: number; nextProbeAt: number }
  | { type: 'webhook.recovered'; webhookId: number; failingSince: number; caughtUp: number }
  | { type: 'webhook.disabled'; webhookId: number; reason: 'gone' | 'failing_too_long'; detail: string }
  | {
      type: 'delivery.exhausted';
      webhookId: number;
      deliveryId: string;
      eventId: string;
      eventType: string;
      attempts: number;
      lastStatus: number | null;
      lastError: string | null;
    };

const iso = (ms: number) => new Date(ms).toISOString();

/** What the event says beyond `webhook_id`, `url` and `name`. */
function details(event: OperationalEvent): Record<string, unknown> {
  switch (event.type) {
    case 'webhook.failing':
      return { failing_since: iso(event.since), next_probe_at: iso(event.nextProbeAt) };
    case 'webhook.recovered':
      return { failing_since: iso(event.failingSince), caught_up: event.caughtUp };
    case 'webhook.disabled':
      return { reason: event.reason, disabled_reason: event.detail };
    case 'delivery.exhausted':
      return {
        delivery_id: event.deliveryId,
        event_id: event.eventId,
        event_type: event.eventType,
        attempts: event.attempts,
        last_status: event.lastStatus,
        last_error: event.lastError,
      };
  }
}

interface Subject {
  id: number;
  tenant_id: number;
  name: string;
  url: string;
  slug: string;
}

/** The mail a change gives the tenant, if any: plain and short. */
function mail(
  event: OperationalEvent,
  webhook: Subject,
  now: number,
): { subject: string; text: string; key: string } | undefined {
  const which = `Your webhook "${webhook.name}" (${webhook.url})`;
  switch (event.type) {
    case 'webhook.failing':
      return {
        subject: `Webhook failing: ${webhook.name}`,
        text: `${which} is failing since ${iso(event.since)}: its endpoint did not answer successfully, even after retries.\n\nNew deliveries are held, not lost. One is sent as a probe at ${iso(event.nextProbeAt)} and then at each interval; when one succeeds, the held deliveries go on and those that failed during the outage are sent again.\n`,
        key: `webhook:${webhook.id}:failing:${event.since}`,
      };
    case 'webhook.recovered':
      return {
        subject: `Webhook recovered: ${webhook.name}`,
        text: `${which} answers again and is healthy. It was failing since ${iso(event.failingSince)}.\n\nHeld deliveries go on, and ${event.caughtUp} that failed during the outage were queued again.\n`,
        key: `webhook:${webhook.id}:recovered:${event.failingSince}`,
      };
    case 'webhook.disabled':
      return {
        subject: `Webhook disabled: ${webhook.name}`,
        text: `${which} was switched off: ${event.detail}\n\nNothing is sent to it until it is switched on again. Events published meanwhile can be sent afterwards with a recovery that includes missing events.\n`,
        key: `webhook:${webhook.id}:disabled:${now}`,
      };
    case 'delivery.exhausted':
      return undefined;
  }
}

/**
 * Publishes operational events (see above) in `trx`; returns how many deliveries they queued, so
 * that the caller wakes the workers once it commits.
 */
export async function announce(
  trx: Transaction<Database>,
  dialect: Dialect,
  events: OperationalEvent[],
  now: number,
): Promise<{ deliveries: number; mails: number }> {
  const told = events.filter((e) => e.type !== 'delivery.exhausted' || !isOperational(e.eventType));
  if (told.length === 0) return { deliveries: 0, mails: 0 };
  const subjects = new Map(
    (
      await trx
        .selectFrom('webhooks as w')
        .innerJoin('tenants as t', 't.id', 'w.tenant_id')
        .select(['w.id', 'w.tenant_id', 'w.name', 'w.url', 't.slug'])
        .where(
          'w.id',
          'in',
          told.map((e) => e.webhookId),
        )
        .execute()
    ).map((w) => [w.id, w]),
  );
  const about = told.filter((e) => {
    const subject = subjects.get(e.webhookId);
    return subject !== undefined && subject.slug !== OPERATOR_TENANT;
  });
  if (about.length === 0) return { deliveries: 0, mails: 0 };

  const subscribers = await trx
    .selectFrom('webhooks as w')
    .innerJoin('webhook_events as s', 's.webhook_id', 'w.id')
    .select(['w.id', 'w.tenant_id', 's.event_type'])
    .where('w.tenant_id', 'in', [
      ...new Set(about.map((e) => (subjects.get(e.webhookId) as Subject).tenant_id)),
    ])
    .where('w.is_active', '=', 1)
    .where('w.deleted_at', 'is', null)
    .where('s.event_type', 'in', [...new Set(about.map((e) => e.type))])
    .execute();
  const operator = await trx
    .selectFrom('webhooks as w')
    .innerJoin('tenants as t', 't.id', 'w.tenant_id')
    .select(['w.id', 'w.tenant_id'])
    .where('t.slug', '=', OPERATOR_TENANT)
    .where('w.is_active', '=', 1)
    .where('w.deleted_at', 'is', null)
    .executeTakeFirst();

  const eventRows: Database['events'][] = [];
  const deliveryRows: Database['deliveries'][] = [];
  let mails = 0;
  for (const event of about) {
    const subject = subjects.get(event.webhookId) as Subject;
    const id = newEventId(now);
    const data = { webhook_id: subject.id, url: subject.url, name: subject.name, ...details(event) };
    eventRows.push({
      id,
      tenant_id: subject.tenant_id,
      type: event.type,
      client_id: null,
      payload: eventBody(id, event.type, now, subject.slug, data),
      created_at: now,
    });
    const fields = { event_id: id, event_type: event.type };
    for (const s of subscribers) {
      // A webhook is never told about itself through itself.
      if (s.tenant_id !== subject.tenant_id || s.event_type !== event.type || s.id === subject.id) continue;
      deliveryRows.push(newDeliveryRow({ tenant_id: s.tenant_id, webhook_id: s.id, ...fields }, now));
    }
    if (operator) {
      deliveryRows.push(
        newDeliveryRow({ tenant_id: operator.tenant_id, webhook_id: operator.id, ...fields }, now),
      );
    }
    const notice = mail(event, subject, now);
    if (notice) {
      const queued = await queueMail(
        trx,
        { tenantId: subject.tenant_id, subject: notice.subject, text: notice.text, dedupeKey: notice.key },
        now,
      );
      if (queued) mails += 1;
    }
  }
  await insertRows(trx, dialect, 'events', eventRows);
  await insertRows(trx, dialect, 'deliveries', deliveryRows);
  return { deliveries: deliveryRows.length, mails };
}

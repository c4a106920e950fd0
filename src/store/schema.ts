import type { Generated } from 'kysely';

/**
 * The tables as Kysely sees them. Times are milliseconds since the Unix epoch (integers in both
 * dialects); lists and maps are JSON text; booleans are 0/1 integers. The same queries run on
 * SQLite and PostgreSQL.
 */

export interface TenantTable {
  id: Generated<number>;
  slug: string;
  name: string;
  plan: string;
  features: string;
  /** The operator's limit on this tenant's webhooks; null: MAX_WEBHOOKS_PER_TENANT. */
  max_webhooks: number | null;
  /** Where the tenant's notification mails go (set by the operator); null: none are sent. */
  notification_email: string | null;
  created_at: number;
  updated_at: number;
}

export interface ApiKeyTable {
  id: Generated<number>;
  tenant_id: number;
  name: string;
  scopes: string;
  key_hash: string;
  key_prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  /** Keys that end by themselves (the portal's session keys); null for keys that last. */
  expires_at: number | null;
}

export interface WebhookTable {
  id: Generated<number>;
  tenant_id: number;
  name: string;
  url: string;
  is_active: number;
  headers: string;
  /** The subscribed types as a JSON list, in the order given (webhook_events holds them too). */
  events: Generated<string>;
  retry_count: number;
  timeout_seconds: number;
  secret_ciphertext: string;
  last_triggered_at: number | null;
  last_success_at: number | null;
  last_failure_at: number | null;
  failure_count: number;
  disabled_reason: string | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  /** When the current run of failures began; null after a success. */
  failing_since: number | null;
  /** After a rotation, the secret replaced, which keeps signing until it expires. */
  previous_secret_ciphertext: string | null;
  previous_secret_expires_at: number | null;
  /** When the service switched the webhook off (410 Gone, auto-disable); null otherwise. */
  disabled_at: number | null;
  /** Since when the webhook is failing: its deliveries are held, one probe at a time; null if not. */
  breaker_opened_at: Generated<number | null>;
  /** While failing: when the next probe is sent, and which delivery it is (once chosen). */
  next_probe_at: Generated<number | null>;
  probe_delivery_id: Generated<string | null>;
}

/** One row per subscribed event type of a webhook (`*` for all), in the order given. */
export interface WebhookEventTable {
  webhook_id: number;
  event_type: string;
  position: number;
}

/** Requests counted per tenant and fixed hourly window, shared by every API process. */
export interface RateLimitWindowTable {
  tenant_id: number;
  window_start: number;
  count: number;
}

/** An event as published: `payload` is the exact JSON body every delivery sends. */
export interface EventTable {
  id: string;
  tenant_id: number;
  type: string;
  /** The publisher's own id, for idempotent publishing. */
  client_id: string | null;
  payload: string;
  created_at: number;
}

/** One (event, webhook) pair: the queue, the retry schedule and the delivery log in one row. */
export interface DeliveryTable {
  id: string;
  tenant_id: number;
  webhook_id: number;
  event_id: string;
  /** The event's type, kept here for the delivery log's filter. */
  event_type: string;
  status: string;
  attempts: number;
  next_attempt_at: number | null;
  /** The lease of the worker that claimed it; an expired lease lets another worker take over. */
  locked_until: number | null;
  locked_by: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  /** 1 for a test event sent by hand to this webhook. */
  is_test: number;
  /** 1 when queued by hand (retry, recover, test): one attempt, sent even while the webhook is paused. */
  manual: number;
  /** Caught up after an outage: the attempts it had then, from which its retries count again. */
  catch_up_from: number | null;
}

export interface AttemptTable {
  id: Generated<number>;
  delivery_id: string;
  /** The delivery's webhook, so that a webhook's attempts can be read by time. */
  webhook_id: number;
  number: number;
  /** What this attempt made of its delivery: `succeeded`, `failed` (gave up) or `pending` (retry). */
  delivery_status: string;
  started_at: number;
  duration_ms: number;
  request_headers: string;
  response_status: number | null;
  response_headers: string | null;
  response_body: string | null;
  error: string | null;
}

/** A one-time sign-in link to the portal, minted by an operator; only the token's hash is kept. */
export interface PortalLinkTable {
  id: Generated<number>;
  tenant_id: number;
  token_hash: string;
  created_at: number;
  expires_at: number;
  /** When it was exchanged for a session key; a link is usable once. */
  used_at: number | null;
  session_key_id: number | null;
}

/** The states of a notification mail: waiting to be sent (again), sent, or given up. */
export type MailStatus = 'pending' | 'sent' | 'failed';

/** A notification mail to a tenant: the outbox, the retry schedule and the record in one row. */
export interface MailTable {
  id: Generated<number>;
  tenant_id: number;
  /** The tenant's notification_email when the mail was queued. */
  recipient: string;
  subject: string;
  /** Plain text. */
  body: string;
  /** One mail per key: asking again for the same occasion queues nothing. */
  dedupe_key: string | null;
  status: MailStatus;
  /** Tries made to hand it to the mail server. */
  attempts: number;
  /** When a pending mail is due; null once it is sent or given up. */
  next_attempt_at: number | null;
  /** The lease of the mailer sending it; an expired lease lets another mailer take over. */
  locked_until: number | null;
  locked_by: string | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
}

export interface Database {
  tenants: TenantTable;
  api_keys: ApiKeyTable;
  webhooks: WebhookTable;
  webhook_events: WebhookEventTable;
  rate_limit_windows: RateLimitWindowTable;
  events: EventTable;
  deliveries: DeliveryTable;
  attempts: AttemptTable;
  portal_links: PortalLinkTable;
  mails: MailTable;
}

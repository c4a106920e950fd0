import { type TSchema, Type } from 'typebox';
import { FEATURE_FLAGS, PLANS, SCOPES } from '../domain/plans.js';
import { SLUG_PATTERN } from '../domain/slug.js';
import { STATS_WINDOWS } from '../domain/stats.js';
import { HEALTH } from '../domain/webhook-health.js';
import {
  GRACE_PERIOD_SECONDS,
  HEADERS_MAX_COUNT,
  NAME_MAX_LENGTH,
  RETRY_COUNT,
  TIMEOUT_SECONDS,
  URL_MAX_LENGTH,
} from '../domain/webhook-rules.js';

/** The route schemas: they validate requests, shape responses and make the OpenAPI document. */

/** Text that the databases can store: PostgreSQL refuses the NUL character. */
export const NO_NUL = '^[^\\u0000]*$';
export const Text = (options: { minLength?: number; maxLength?: number; description?: string } = {}) =>
  Type.String({ ...options, pattern: NO_NUL });

const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339, UTC' });
const NullableTimestamp = Type.Union([Timestamp, Type.Null()]);

/**
 * A map with any keys. (TypeBox's Record matches keys with `^.*$`, which misses keys holding a
 * line break; the serializer would then drop them.)
 */
export const MapOf = (value: TSchema, options: object = {}) =>
  Type.Object({}, { additionalProperties: value, ...options });

export const ErrorBody = Type.Object(
  {
    error: Type.String(),
    errors: Type.Optional(MapOf(Type.Array(Type.String()))),
    meta: Type.Object({ request_id: Type.String() }),
  },
  {
    description: 'An error; `errors` lists messages per field on 422.',
    examples: [
      {
        error: 'Validation failed',
        errors: { url: ['The url must use HTTPS.'] },
        meta: { request_id: 'req_3kTzq8AqR2mX0bW1fV9cYd' },
      },
    ],
  },
);

const Meta = Type.Object({ request_id: Type.String() });
const PageMeta = Type.Object({
  request_id: Type.String(),
  page: Type.Integer(),
  per_page: Type.Integer(),
  total: Type.Integer(),
  total_pages: Type.Integer(),
});

export const envelope = (data: TSchema, meta: TSchema = Meta) => Type.Object({ data, meta });

// ---- Webhooks ----

const webhookFields = {
  url: Type.String({ maxLength: URL_MAX_LENGTH, description: 'HTTPS endpoint that receives the events.' }),
  events: Type.Array(Type.String(), {
    minItems: 1,
    description: 'Event types to subscribe to, or ["*"] for every type.',
  }),
  name: Text({ minLength: 1, maxLength: NAME_MAX_LENGTH, description: "Defaults to the URL's host." }),
  is_active: Type.Boolean({ description: 'Default true.' }),
  headers: MapOf(Type.String(), {
    maxProperties: HEADERS_MAX_COUNT,
    description: 'Custom HTTP headers sent with every delivery.',
  }),
  retry_count: Type.Integer({
    minimum: RETRY_COUNT.min,
    maximum: RETRY_COUNT.max,
    default: RETRY_COUNT.default,
  }),
  timeout_seconds: Type.Integer({
    minimum: TIMEOUT_SECONDS.min,
    maximum: TIMEOUT_SECONDS.max,
    default: TIMEOUT_SECONDS.default,
  }),
};

export const CreateWebhookBody = Type.Object(
  {
    url: webhookFields.url,
    events: webhookFields.events,
    name: Type.Optional(webhookFields.name),
    is_active: Type.Optional(webhookFields.is_active),
    headers: Type.Optional(webhookFields.headers),
    retry_count: Type.Optional(webhookFields.retry_count),
    timeout_seconds: Type.Optional(webhookFields.timeout_seconds),
  },
  {
    additionalProperties: false,
    examples: [
      {
        url: 'https://erp.acme-fairs.com/plandocket/webhooks',
        events: ['invoice.paid', 'booth.assigned'],
        name: 'ERP',
        headers: { 'X-Env': 'production' },
        retry_count: 5,
        timeout_seconds: 10,
      },
    ],
  },
);

export const UpdateWebhookBody = Type.Object(
  {
    url: Type.Optional(webhookFields.url),
    events: Type.Optional(webhookFields.events),
    name: Type.Optional(webhookFields.name),
    is_active: Type.Optional(webhookFields.is_active),
    headers: Type.Optional(webhookFields.headers),
    retry_count: Type.Optional(webhookFields.retry_count),
    timeout_seconds: Type.Optional(webhookFields.timeout_seconds),
  },
  { additionalProperties: false, examples: [{ events: ['*'], is_active: false }] },
);

const Health = Type.Union(
  HEALTH.map((h) => Type.Literal(h)),
  {
    description:
      '`healthy`; `failing`: its endpoint is down, its deliveries are held and one is sent as a probe at each interval, and when one succeeds what failed in the outage is sent again; `disabled`: switched off by the service (410 Gone, failing too long).',
  },
);

/** Response fields in the order of PlanDocket's Response Schema, then ours. */
const webhookResponseFields = (withSecret: boolean) => ({
  id: Type.Integer(),
  name: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  is_active: Type.Boolean(),
  retry_count: Type.Integer(),
  timeout_seconds: Type.Integer(),
  last_triggered_at: NullableTimestamp,
  last_success_at: NullableTimestamp,
  last_failure_at: NullableTimestamp,
  failure_count: Type.Integer(),
  ...(withSecret && {
    secret: Type.String({ description: 'Signing secret; shown on create and show only.' }),
  }),
  created_at: Timestamp,
  updated_at: Timestamp,
  headers: MapOf(Type.String()),
  disabled_reason: Type.Union([Type.String(), Type.Null()], {
    description: 'Why the service switched the webhook off (410 Gone, failing for days); null otherwise.',
  }),
  disabled_at: Type.Union([Timestamp, Type.Null()], {
    description: 'When the service switched the webhook off; null when active or paused by hand.',
  }),
  health: Health,
  failing_since: Type.Union([Timestamp, Type.Null()], {
    description: 'Since when the webhook is failing; null unless failing.',
  }),
  next_probe_at: Type.Union([Timestamp, Type.Null()], {
    description:
      'While failing: when one held delivery is next sent as a probe (RECOVERY_PROBE_INTERVAL); null otherwise.',
  }),
});

export const Webhook = Type.Object(webhookResponseFields(false));
export const WebhookWithSecret = Type.Object(webhookResponseFields(true));

export const WebhookList = envelope(Type.Array(Webhook), PageMeta);

export const ListWebhooksQuery = Type.Object({
  page: Type.Integer({ minimum: 1, default: 1 }),
  per_page: Type.Integer({ minimum: 1, maximum: 100, default: 25 }),
  is_active: Type.Optional(Type.Boolean()),
  health: Type.Optional(Health),
  event: Type.Optional(Type.String({ minLength: 1, description: 'Webhooks that receive this event type.' })),
});

export const IdParams = Type.Object({ id: Type.String() });

export const RotateSecretBody = Type.Object(
  {
    grace_period_seconds: Type.Optional(
      Type.Integer({
        minimum: GRACE_PERIOD_SECONDS.min,
        maximum: GRACE_PERIOD_SECONDS.max,
        default: GRACE_PERIOD_SECONDS.default,
        description:
          'How long the replaced secret keeps signing alongside the new one; 0 drops it at once. ' +
          'Rotating again during a grace period replaces the previous secret: only one is kept.',
      }),
    ),
  },
  { additionalProperties: false, examples: [{ grace_period_seconds: 3600 }] },
);

export const StatsQuery = Type.Object({
  window: Type.Enum([...STATS_WINDOWS], {
    default: '24h',
    description: '24h: hourly buckets; 7d and 30d: daily buckets (whole UTC hours and days).',
  }),
});

const deliveriesInBucket = (status: string) =>
  Type.Integer({
    description: `Deliveries created in this bucket whose current status is \`${status}\`; summed over the series, \`counts.${status}\`.`,
  });

const StatsBucket = Type.Object({
  start: Timestamp,
  succeeded: deliveriesInBucket('succeeded'),
  failed: deliveriesInBucket('failed'),
  pending: deliveriesInBucket('pending'),
  cancelled: deliveriesInBucket('cancelled'),
  attempts: Type.Integer({
    description:
      'Attempts started in this bucket, whenever their delivery was created: first attempts, ' +
      'automatic retries, retries by hand and recoveries alike.',
  }),
  p50_duration_ms: Type.Union([Type.Integer(), Type.Null()], {
    description: 'The median duration of the attempts started in this bucket; null when none.',
  }),
  p95_duration_ms: Type.Union([Type.Integer(), Type.Null()], {
    description: 'The 95th percentile duration of the attempts started in this bucket; null when none.',
  }),
});

export const WebhookStats = Type.Object({
  window: Type.Enum([...STATS_WINDOWS]),
  bucket: Type.Enum(['hour', 'day']),
  since: Timestamp,
  until: Timestamp,
  counts: Type.Object(
    {
      pending: Type.Integer(),
      succeeded: Type.Integer(),
      failed: Type.Integer(),
      cancelled: Type.Integer(),
    },
    {
      description:
        'Deliveries created in the window, by current status: each delivery is counted once, in the ' +
        'state it is in now, however many attempts, retries by hand or recoveries it took. Each ' +
        "count is the sum of the series' counts of that status.",
    },
  ),
  series: Type.Array(StatsBucket, {
    description:
      'Every bucket of the window, oldest first: the deliveries of `counts` by the bucket they were ' +
      'created in, and the attempts started in it.',
  }),
});

export const EventType = Type.Object({
  type: Type.String(),
  category: Type.String(),
  description: Type.String(),
  subscribable: Type.Boolean(),
  operational: Type.Boolean({
    description:
      'Published by the service about its own work (category `webhooks`): subscribed to by name only; `*` does not include it.',
  }),
});

// ---- Deliveries: the log, the payload view, retries, recovery, test events ----

export const DELIVERY_STATUSES = ['pending', 'succeeded', 'failed', 'cancelled'] as const;
const DateTime = (description: string) => Type.String({ format: 'date-time', description });

export const DeliveryParams = Type.Object({ id: Type.String(), delivery_id: Type.String() });

export const ListDeliveriesQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 25 }),
  cursor: Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, description: "The previous page's meta.next_cursor." }),
  ),
  status: Type.Optional(Type.Enum([...DELIVERY_STATUSES])),
  event: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'An event type.' })),
  since: Type.Optional(DateTime('Deliveries created at or after this time (RFC 3339).')),
  until: Type.Optional(DateTime('Deliveries created at or before this time (RFC 3339).')),
});

const deliveryFields = {
  id: Type.String({ description: 'Sent as X-Webhook-Delivery, the same on every attempt.' }),
  event_id: Type.String(),
  event_type: Type.String(),
  status: Type.Enum([...DELIVERY_STATUSES]),
  attempts: Type.Integer({ description: 'Attempts made so far.' }),
  next_attempt_at: NullableTimestamp,
  last_status_code: Type.Union([Type.Integer(), Type.Null()]),
  last_error: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp,
  updated_at: Timestamp,
  is_test: Type.Boolean({ description: 'A test event sent by hand.' }),
};

export const Delivery = Type.Object(deliveryFields);

export const DeliveryList = envelope(
  Type.Array(Delivery),
  Type.Object({
    request_id: Type.String(),
    limit: Type.Integer(),
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next (older) page; null on the last page.',
    }),
  }),
);

const Attempt = Type.Object({
  number: Type.Integer(),
  started_at: Timestamp,
  duration_ms: Type.Integer(),
  request_headers: MapOf(Type.String(), {
    description: 'As sent; values of custom headers that look like credentials are masked.',
  }),
  response_status: Type.Union([Type.Integer(), Type.Null()]),
  response_headers: Type.Union([MapOf(Type.String()), Type.Null()]),
  response_body: Type.Union([Type.String(), Type.Null()], {
    description: 'The first 16 KiB; a body that is not UTF-8 is given as `base64:...`.',
  }),
  error: Type.Union([Type.String(), Type.Null()]),
});

export const DeliveryDetail = Type.Object({
  ...deliveryFields,
  payload: Type.String({ description: 'The exact request body, as signed.' }),
  attempt_history: Type.Array(Attempt),
});

export const RecoverBody = Type.Object(
  {
    since: DateTime(
      'Failed deliveries (and with `missing`, events) created at or after this time, at most 14 days ago.',
    ),
    until: Type.Optional(DateTime('... and at or before this time; default now.')),
    missing: Type.Optional(
      Type.Boolean({
        description:
          'Also send the events of the window that this webhook missed: those of the types it receives ' +
          '(for `*`, the types `*` covers), published since it was created, that have no delivery to it ' +
          'because it was paused or switched off when they were published; never an operational event ' +
          'about itself. Each once: a second recovery finds it has a delivery. Default false.',
      }),
    ),
  },
  { additionalProperties: false, examples: [{ since: '2026-11-30T08:00:00Z', missing: true }] },
);

export const Recovered = Type.Object({
  queued: Type.Integer({ description: 'Deliveries queued in all: `failed` plus `missing`.' }),
  failed: Type.Integer({ description: 'Failed deliveries queued again.' }),
  missing: Type.Integer({
    description: 'Deliveries queued for events this webhook missed; 0 unless `missing` was true.',
  }),
});

export const Pruned = Type.Object({ deliveries: Type.Integer(), events: Type.Integer() });

// ---- Tenants and keys (operator API) ----

export const Slug = Type.String({ pattern: SLUG_PATTERN, maxLength: 63 });
const Plan = Type.Enum([...PLANS]);
const Features = Type.Array(Type.Enum([...FEATURE_FLAGS]), {
  maxItems: 100,
  description: "Feature flags; the Webhooks API needs 'webhooks'.",
});
const Scopes = Type.Array(Type.Enum([...SCOPES]), { minItems: 1, uniqueItems: true });
/** Its form (an address) is checked by the route, which says what is wrong in one message. */
const NotificationEmail = Type.Union([Type.String(), Type.Null()], {
  description:
    'Where mails about its webhooks go (one failing, disabled or recovered), e.g. ops@example.com; null: no mail.',
});

export const CreateTenantBody = Type.Object(
  {
    slug: Slug,
    name: Text({ minLength: 1, maxLength: 255 }),
    plan: Plan,
    features: Type.Optional(Features),
    notification_email: Type.Optional(NotificationEmail),
  },
  {
    additionalProperties: false,
    examples: [
      {
        slug: 'acme',
        name: 'Acme Fairs',
        plan: 'business',
        features: ['webhooks'],
        notification_email: 'ops@acme-fairs.com',
      },
    ],
  },
);

export const UpdateTenantBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    plan: Type.Optional(Plan),
    features: Type.Optional(Features),
    max_webhooks: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 100_000 }), Type.Null()], {
        description: 'Webhooks the tenant may have; null: MAX_WEBHOOKS_PER_TENANT.',
      }),
    ),
    notification_email: Type.Optional(NotificationEmail),
  },
  { additionalProperties: false },
);

const ApiKeySummary = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  key_prefix: Type.String(),
  created_at: Timestamp,
  last_used_at: NullableTimestamp,
  expires_at: Type.Union([Timestamp, Type.Null()], { description: 'Portal sessions end by themselves.' }),
});

export const Tenant = Type.Object({
  id: Type.Integer(),
  slug: Type.String(),
  name: Type.String(),
  plan: Type.String(),
  features: Type.Array(Type.String()),
  max_webhooks: Type.Integer({ description: 'Webhooks the tenant may have.' }),
  notification_email: Type.Union([Type.String(), Type.Null()], {
    description: 'Where mails about its webhooks go; null: no mail.',
  }),
  created_at: Timestamp,
  updated_at: Timestamp,
  api_keys: Type.Optional(Type.Array(ApiKeySummary)),
});

export const SlugParams = Type.Object({ slug: Type.String() });
export const KeyParams = Type.Object({ slug: Type.String(), id: Type.String() });

export const CreateApiKeyBody = Type.Object(
  { name: Text({ minLength: 1, maxLength: 255 }), scopes: Scopes },
  { additionalProperties: false, examples: [{ name: 'ERP integration', scopes: ['webhooks'] }] },
);

export const CreatedApiKey = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  scopes: Type.Array(Type.String()),
  key: Type.String({ description: 'The key itself; shown only in this response.' }),
  created_at: Timestamp,
});

// ---- The portal: one-time links and sessions ----

export const PortalLink = Type.Object({
  url: Type.String({ description: 'Open it in a browser; it signs in once, before expires_at.' }),
  expires_at: Timestamp,
});

export const CreatePortalSessionBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 200, description: 'The token of a portal link.' }) },
  { additionalProperties: false },
);

export const PortalSession = Type.Object({
  key: Type.String({ description: "A session key with the 'webhooks' scope; send it as a Bearer token." }),
  expires_at: Timestamp,
});

export const PortalIdentity = Type.Object({
  tenant: Type.Object({ slug: Type.String(), name: Type.String(), plan: Type.String() }),
  key: Type.Object({
    name: Type.String(),
    key_prefix: Type.String(),
    expires_at: Type.Union([Timestamp, Type.Null()]),
    is_portal_session: Type.Boolean(),
  }),
});

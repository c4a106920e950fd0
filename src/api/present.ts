import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { decryptSecret } from '../domain/secrets.js';
import type { Buckets, StatsWindow } from '../domain/stats.js';
import type { Attempt, Delivery } from '../store/delivery-log.js';
import type { WebhookStats } from '../store/stats.js';
import type { ApiKey, Tenant } from '../store/tenants.js';
import type { Webhook } from '../store/webhooks.js';

/** Stored rows -> the API's JSON: RFC 3339 times, no internal columns. */

export const iso = (ms: number) => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

/** Where tenants reach the service: PUBLIC_URL, else the origin the request came to. */
export const publicOrigin = (config: Config, request: FastifyRequest) =>
  config.portal.publicUrl ?? `${request.protocol}://${request.host}`;

export function meta(request: FastifyRequest, extra: Record<string, unknown> = {}) {
  return { request_id: request.id, ...extra };
}

export function presentWebhook(webhook: Webhook, secretsKey?: Buffer) {
  return {
    id: webhook.id,
    name: webhook.name,
    url: webhook.url,
    events: webhook.events,
    is_active: webhook.is_active,
    retry_count: webhook.retry_count,
    timeout_seconds: webhook.timeout_seconds,
    last_triggered_at: isoOrNull(webhook.last_triggered_at),
    last_success_at: isoOrNull(webhook.last_success_at),
    last_failure_at: isoOrNull(webhook.last_failure_at),
    failure_count: webhook.failure_count,
    ...(secretsKey && { secret: decryptSecret(secretsKey, webhook.secret_ciphertext) }),
    created_at: iso(webhook.created_at),
    updated_at: iso(webhook.updated_at),
    headers: webhook.headers,
    disabled_reason: webhook.disabled_reason,
    disabled_at: isoOrNull(webhook.disabled_at),
    health: webhook.health,
    failing_since: isoOrNull(webhook.failing_since),
    next_probe_at: isoOrNull(webhook.next_probe_at),
  };
}

export function presentStats(window: StatsWindow, buckets: Buckets, now: number, stats: WebhookStats) {
  return {
    window,
    bucket: buckets.bucket,
    since: iso(buckets.start),
    until: iso(now),
    counts: stats.counts,
    series: stats.series.map(({ start, ...bucket }) => ({ start: iso(start), ...bucket })),
  };
}

export function presentApiKey(key: ApiKey) {
  return {
    id: key.id,
    name: key.name,
    scopes: key.scopes,
    key_prefix: key.key_prefix,
    created_at: iso(key.created_at),
    last_used_at: isoOrNull(key.last_used_at),
    expires_at: isoOrNull(key.expires_at),
  };
}

/** `defaultMaxWebhooks`: MAX_WEBHOOKS_PER_TENANT, shown where the operator set no limit of its own. */
export function presentTenant(tenant: Tenant, defaultMaxWebhooks: number, keys?: ApiKey[]) {
  return {
    id: tenant.id,
    slug: tenant.slug,
    name: tenant.name,
    plan: tenant.plan,
    features: tenant.features,
    max_webhooks: tenant.max_webhooks ?? defaultMaxWebhooks,
    notification_email: tenant.notification_email,
    created_at: iso(tenant.created_at),
    updated_at: iso(tenant.updated_at),
    ...(keys && { api_keys: keys.map(presentApiKey) }),
  };
}

export function presentDelivery(delivery: Delivery) {
  return {
    id: delivery.id,
    event_id: delivery.event_id,
    event_type: delivery.event_type,
    status: delivery.status,
    attempts: delivery.attempts,
    next_attempt_at: isoOrNull(delivery.next_attempt_at),
    last_status_code: delivery.last_status_code,
    last_error: delivery.last_error,
    created_at: iso(delivery.created_at),
    updated_at: iso(delivery.updated_at),
    is_test: delivery.is_test === 1,
  };
}

export function presentAttempt(attempt: Attempt) {
  return {
    number: attempt.number,
    started_at: iso(attempt.started_at),
    duration_ms: attempt.duration_ms,
    request_headers: JSON.parse(attempt.request_headers) as Record<string, string>,
    response_status: attempt.response_status,
    response_headers:
      attempt.response_headers === null
        ? null
        : (JSON.parse(attempt.response_headers) as Record<string, string>),
    response_body: attempt.response_body,
    error: attempt.error,
  };
}

/** The Payload View: the delivery, the exact body it sends, and every attempt. */
export function presentDeliveryDetail(delivery: Delivery, payload: string, attempts: Attempt[]) {
  return { ...presentDelivery(delivery), payload, attempt_history: attempts.map(presentAttempt) };
}

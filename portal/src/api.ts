import { currentKey, signedOut } from './session';

/** The public Webhooks API, as the portal uses it: the same routes and keys as any client. */

export interface Webhook {
  id: number;
  name: string;
  url: string;
  events: string[];
  is_active: boolean;
  retry_count: number;
  timeout_seconds: number;
  last_triggered_at: string | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  failure_count: number;
  secret?: string;
  created_at: string;
  updated_at: string;
  headers: Record<string, string>;
  disabled_reason: string | null;
  disabled_at?: string | null;
  /** What the service sees of its endpoint: `failing` while its deliveries are held, `disabled` once switched off. */
  health: WebhookHealth;
  failing_since: string | null;
  /** While failing: when one held delivery is next sent as a probe. */
  next_probe_at: string | null;
}

export type WebhookHealth = 'healthy' | 'failing' | 'disabled';

/** What a recovery queued: failed deliveries again, and deliveries of events the webhook missed. */
export interface Recovered {
  queued: number;
  failed: number;
  missing: number;
}

export interface EventType {
  type: string;
  category: string;
  description: string;
  subscribable: boolean;
  /** The service's own events (a webhook failing, a delivery exhausted): by name only, not by `*`. */
  operational: boolean;
}

export type DeliveryStatus = 'pending' | 'succeeded' | 'failed' | 'cancelled';

export interface Delivery {
  id: string;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  is_test: boolean;
}

export interface Attempt {
  number: number;
  started_at: string;
  duration_ms: number;
  request_headers: Record<string, string>;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  error: string | null;
}

export interface DeliveryDetail extends Delivery {
  payload: string;
  attempt_history: Attempt[];
}

export type StatsWindow = '24h' | '7d' | '30d';

/** Deliveries created in the bucket, by current status; attempts started in it. */
export interface StatsBucket {
  start: string;
  succeeded: number;
  failed: number;
  pending: number;
  cancelled: number;
  attempts: number;
  p50_duration_ms: number | null;
  p95_duration_ms: number | null;
}

export interface WebhookStats {
  window: StatsWindow;
  bucket: 'hour' | 'day';
  since: string;
  until: string;
  counts: Record<DeliveryStatus, number>;
  series: StatsBucket[];
}

export interface Identity {
  tenant: { slug: string; name: string; plan: string };
  key: { name: string; key_prefix: string; expires_at: string | null; is_portal_session: boolean };
}

export type FieldErrors = Record<string, string[]>;

/** An answer other than 2xx: its status, the API's message, and per-field messages on 422. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fieldErrors: FieldErrors = {},
  ) {
    super(message);
  }
}

interface Envelope<T, M = Record<string, unknown>> {
  data: T;
  meta: M & { request_id: string };
}

async function request<T, M = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  key: string | undefined = currentKey(),
): Promise<Envelope<T, M>> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'omit',
      cache: 'no-store',
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError(0, 'The service cannot be reached. Check your connection and try again.');
  }
  if (response.status === 204)
    return { data: undefined as T, meta: { request_id: '' } as M & { request_id: string } };
  const json = (await response.json().catch(() => undefined)) as
    | (Envelope<T, M> & { error?: string; errors?: FieldErrors })
    | undefined;
  if (!response.ok) {
    const message = json?.error ?? `The service answered ${response.status}.`;
    // A key that no longer works (revoked, expired) ends the session; the sign-in page says why.
    if (response.status === 401 && key && key === currentKey()) signedOut(message);
    throw new ApiError(response.status, message, json?.errors ?? {});
  }
  if (!json) throw new ApiError(response.status, 'The service sent an answer that is not JSON.');
  return json;
}

const webhookPath = (id: number | string) => `/api/v1/webhooks/${encodeURIComponent(String(id))}`;

export interface WebhookInput {
  url: string;
  name?: string;
  events: string[];
  headers: Record<string, string>;
  retry_count: number;
  timeout_seconds: number;
}

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  event?: string | undefined;
  cursor?: string | undefined;
  limit?: number;
}

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params))
    if (value !== undefined) search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const api = {
  /** Checks a key and tells whose it is, without keeping it. */
  identity: (key?: string) => request<Identity>('GET', '/api/v1/portal/session', undefined, key),
  exchangeLink: (token: string) =>
    request<{ key: string; expires_at: string }>('POST', '/api/v1/portal/sessions', { token }, ''),
  signOut: () => request<null>('DELETE', '/api/v1/portal/session'),

  webhooks: (page = 1) =>
    request<Webhook[], { page: number; per_page: number; total: number; total_pages: number }>(
      'GET',
      `/api/v1/webhooks${query({ page, per_page: 50 })}`,
    ),
  webhook: (id: number | string) => request<Webhook>('GET', webhookPath(id)),
  catalog: () => request<EventType[]>('GET', '/api/v1/webhooks/events'),
  createWebhook: (input: WebhookInput) => request<Webhook>('POST', '/api/v1/webhooks', input),
  updateWebhook: (id: number | string, input: Partial<WebhookInput> & { is_active?: boolean }) =>
    request<Webhook>('PATCH', webhookPath(id), input),
  deleteWebhook: (id: number | string) => request<null>('DELETE', webhookPath(id)),
  rotateSecret: (id: number | string, gracePeriodSeconds: number) =>
    request<Webhook>('POST', `${webhookPath(id)}/rotate-secret`, {
      grace_period_seconds: gracePeriodSeconds,
    }),
  sendTest: (id: number | string) => request<Delivery>('POST', `${webhookPath(id)}/test`),
  stats: (id: number | string, window: StatsWindow) =>
    request<WebhookStats>('GET', `${webhookPath(id)}/stats${query({ window })}`),

  deliveries: (id: number | string, filter: DeliveryFilter) =>
    request<Delivery[], { limit: number; next_cursor: string | null }>(
      'GET',
      `${webhookPath(id)}/deliveries${query({ limit: filter.limit ?? 25, status: filter.status, event: filter.event, cursor: filter.cursor })}`,
    ),
  delivery: (id: number | string, deliveryId: string) =>
    request<DeliveryDetail>('GET', `${webhookPath(id)}/deliveries/${encodeURIComponent(deliveryId)}`),
  retryDelivery: (id: number | string, deliveryId: string) =>
    request<Delivery>('POST', `${webhookPath(id)}/deliveries/${encodeURIComponent(deliveryId)}/retry`),
  recover: (id: number | string, since: string, until: string | undefined, missing: boolean) =>
    request<Recovered>('POST', `${webhookPath(id)}/recover`, {
      since,
      ...(until && { until }),
      ...(missing && { missing }),
    }),
};

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
}

export interface WebhookTable {
  id: Generated<number>;
  tenant_id: number;
  name: string;
  url: string;
  is_active: number;
  headers: string;
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

export interface Database {
  tenants: TenantTable;
  api_keys: ApiKeyTable;
  webhooks: WebhookTable;
  webhook_events: WebhookEventTable;
  rate_limit_windows: RateLimitWindowTable;
}

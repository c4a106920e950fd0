import type { DeliveryStatus, Webhook } from '../api';

export type WebhookState = 'active' | 'failing' | 'paused' | 'disabled';

/**
 * Active, failing (its endpoint is down: deliveries held), paused by the tenant, or switched off
 * by the service (with its reason). Paused wins over failing: paused, it sends nothing anyway.
 */
export function webhookState(webhook: Webhook): WebhookState {
  if (webhook.health === 'disabled') return 'disabled';
  if (webhook.is_active) return webhook.health === 'failing' ? 'failing' : 'active';
  return webhook.disabled_reason ? 'disabled' : 'paused';
}

const STATE_LABELS: Record<WebhookState, string> = {
  active: 'Active',
  failing: 'Failing',
  paused: 'Paused',
  disabled: 'Auto-disabled',
};

export function StateBadge({ webhook }: { webhook: Webhook }) {
  const state = webhookState(webhook);
  return (
    <span class={`badge badge-${state}`} title={webhook.disabled_reason ?? undefined}>
      <span class="dot" aria-hidden="true" />
      {STATE_LABELS[state]}
    </span>
  );
}

const STATUS_LABELS: Record<DeliveryStatus, string> = {
  pending: 'Pending',
  succeeded: 'Succeeded',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export function StatusBadge({ status }: { status: DeliveryStatus }) {
  return (
    <span class={`badge badge-${status}`}>
      <span class="dot" aria-hidden="true" />
      {STATUS_LABELS[status]}
    </span>
  );
}

/** An HTTP status as received: green for 2xx, amber for 3xx/4xx, red for 5xx. */
export function HttpStatus({ code }: { code: number | null }) {
  if (code === null) return <span class="muted">—</span>;
  const kind = code < 300 ? 'ok' : code < 500 ? 'warn' : 'bad';
  return <span class={`http http-${kind}`}>{code}</span>;
}

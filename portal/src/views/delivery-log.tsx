import { useEffect, useState } from 'preact/hooks';
import { api, type Delivery, type DeliveryStatus, type EventType } from '../api';
import { HttpStatus, StatusBadge } from '../components/badges';
import { Empty, ErrorState, Loading } from '../components/states';
import { dateTime, timeAgo } from '../format';
import { useLoad } from '../load';
import { Link } from '../router';

const TABS: { id: string; label: string; status?: DeliveryStatus }[] = [
  { id: 'all', label: 'All' },
  { id: 'failed', label: 'Failed', status: 'failed' },
  { id: 'pending', label: 'Pending', status: 'pending' },
];

/** How often the log asks for news while it is open (the webhook page's statistics with it). */
export const LOG_POLL_MS = 3000;

/**
 * A webhook's deliveries, newest first, with tabs for the failed and pending ones and a filter by
 * event type. The first page updates itself on each beat of `pulse` while the page is open; older
 * pages load on demand.
 */
export function DeliveryLog({
  webhookId,
  catalog,
  refresh,
  pulse,
}: {
  webhookId: string;
  catalog: EventType[];
  /** Changes when something was queued from this page, to ask at once rather than at the next poll. */
  refresh: number;
  /** The page's refresh cycle (`usePulse(LOG_POLL_MS)`), which the statistics follow too. */
  pulse: number;
}) {
  const [tab, setTab] = useState('all');
  const [event, setEvent] = useState('');
  const [older, setOlder] = useState<Delivery[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const status = TABS.find((t) => t.id === tab)?.status;
  const filter = { status, event: event || undefined };
  const first = useLoad(() => api.deliveries(webhookId, filter), [webhookId, tab, event, refresh], {
    pulse,
  });

  useEffect(() => {
    setOlder([]);
    setCursor(undefined);
  }, [webhookId, tab, event]);

  const nextCursor = cursor === undefined ? first.data?.meta.next_cursor : cursor;
  async function loadOlder() {
    if (!nextCursor) return;
    setLoadingOlder(true);
    try {
      const page = await api.deliveries(webhookId, { ...filter, cursor: nextCursor });
      setOlder([...older, ...page.data]);
      setCursor(page.meta.next_cursor);
    } finally {
      setLoadingOlder(false);
    }
  }

  const firstPage = first.data?.data ?? [];
  const seen = new Set(firstPage.map((d) => d.id));
  const rows = [...firstPage, ...older.filter((d) => !seen.has(d.id))];
  const types = catalog.filter((e) => e.subscribable || e.type === 'webhook.test');

  return (
    <section class="card" aria-labelledby="log-title">
      <div class="card-header">
        <h2 id="log-title">Delivery log</h2>
        <span class="live muted small" aria-hidden="true">
          <span class="live-dot" /> Live
        </span>
      </div>
      <div class="log-controls">
        <div role="tablist" aria-label="Deliveries to show" class="tabs">
          {TABS.map((t) => (
            <button
              key={t.id}
              type="button"
              role="tab"
              id={`tab-${t.id}`}
              aria-selected={tab === t.id}
              aria-controls="log-panel"
              tabIndex={tab === t.id ? 0 : -1}
              class="tab"
              onClick={() => setTab(t.id)}
              onKeyDown={(e) => {
                const i = TABS.findIndex((x) => x.id === tab);
                const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
                if (!step) return;
                e.preventDefault();
                const next = TABS[(i + step + TABS.length) % TABS.length];
                if (next) {
                  setTab(next.id);
                  document.getElementById(`tab-${next.id}`)?.focus();
                }
              }}
            >
              {t.label}
            </button>
          ))}
        </div>
        <div class="inline-field">
          <label for="log-event">Event type</label>
          <select id="log-event" value={event} onChange={(e) => setEvent(e.currentTarget.value)}>
            <option value="">All event types</option>
            {types.map((t) => (
              <option key={t.type} value={t.type}>
                {t.type}
              </option>
            ))}
          </select>
        </div>
      </div>
      <div id="log-panel" role="tabpanel" aria-labelledby={`tab-${tab}`}>
        {first.error && !first.data && <ErrorState error={first.error} onRetry={first.reload} />}
        {!first.data && !first.error && <Loading label="Loading deliveries…" />}
        {first.data && rows.length === 0 && (
          <Empty
            title={
              tab === 'failed'
                ? 'No failed deliveries'
                : tab === 'pending'
                  ? 'Nothing pending'
                  : 'No deliveries yet'
            }
          >
            <p class="muted">
              {tab === 'all' && !event
                ? 'Deliveries appear here as events are sent. Try “Send test event”.'
                : 'Nothing matches this view.'}
            </p>
          </Empty>
        )}
        {rows.length > 0 && (
          <table class="table log-table">
            <caption class="visually-hidden">Deliveries, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Event</th>
                <th scope="col">Response</th>
                <th scope="col">Attempts</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Details</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((d) => (
                <tr key={d.id} data-delivery={d.id}>
                  <td data-label="Status">
                    <StatusBadge status={d.status} />
                  </td>
                  <td class="cell-main">
                    <code>{d.event_type}</code>
                    {d.is_test && <span class="tag">test</span>}
                    {d.last_error && <span class="error-text small">{d.last_error}</span>}
                  </td>
                  <td data-label="Response">
                    <HttpStatus code={d.last_status_code} />
                  </td>
                  <td data-label="Attempts">
                    {d.attempts}
                    {d.status === 'pending' && d.next_attempt_at && (
                      <span class="muted small"> · next {timeAgo(d.next_attempt_at)}</span>
                    )}
                  </td>
                  <td data-label="Created">
                    <time dateTime={d.created_at} title={dateTime(d.created_at)}>
                      {timeAgo(d.created_at)}
                    </time>
                  </td>
                  <td>
                    <Link
                      to={`/webhooks/${webhookId}/deliveries/${d.id}`}
                      aria-label={`View delivery ${d.id}`}
                    >
                      View
                    </Link>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {first.error && first.data && (
          <p class="notice notice-warn small" role="status">
            Updating the log failed: {first.error.message}
          </p>
        )}
        {nextCursor && rows.length > 0 && (
          <div class="load-more">
            <button type="button" class="button" disabled={loadingOlder} onClick={loadOlder}>
              {loadingOlder ? 'Loading…' : 'Load older deliveries'}
            </button>
          </div>
        )}
      </div>
    </section>
  );
}

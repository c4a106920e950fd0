import { useEffect, useState } from 'preact/hooks';
import { api, type Webhook } from '../api';
import { StateBadge, webhookState } from '../components/badges';
import { Sparkline } from '../components/sparkline';
import { Empty, ErrorState, Loading } from '../components/states';
import { dateTime, plural, timeAgo } from '../format';
import { useLoad } from '../load';
import { Link } from '../router';
import { PageHeader } from './page-header';

const eventCount = (webhook: Webhook) =>
  webhook.events.includes('*') ? 'All events' : plural(webhook.events.length, 'event');

function SuccessRate({ webhook }: { webhook: Webhook }) {
  const stats = useLoad(() => api.stats(webhook.id, '24h'), [webhook.id]);
  if (stats.data)
    return <Sparkline series={stats.data.data.series} label={`Success rate of ${webhook.name}`} />;
  if (stats.error) return <span class="muted">—</span>;
  return <span class="spark-placeholder" aria-hidden="true" />;
}

function When({ iso, kind }: { iso: string | null; kind: 'success' | 'failure' }) {
  if (!iso) return <span class="muted">never</span>;
  return (
    <time dateTime={iso} title={dateTime(iso)} class={kind === 'failure' ? 'when-failure' : undefined}>
      {timeAgo(iso)}
    </time>
  );
}

/** Every webhook of the tenant, with how it is doing. */
export function WebhookList() {
  const [page, setPage] = useState(1);
  const list = useLoad(() => api.webhooks(page), [page], 30_000);
  useEffect(() => {
    document.title = 'Webhooks · PlanDocket';
  }, []);

  const webhooks = list.data?.data;
  const meta = list.data?.meta;
  return (
    <>
      <PageHeader
        title="Webhooks"
        subtitle="Endpoints that receive your PlanDocket events."
        actions={
          <Link to="/webhooks/new" class="button button-primary">
            New webhook
          </Link>
        }
      />
      {list.error && !webhooks && <ErrorState error={list.error} onRetry={list.reload} />}
      {!webhooks && !list.error && <Loading label="Loading webhooks…" />}
      {webhooks && webhooks.length === 0 && (
        <Empty title="No webhooks yet">
          <p>Create a webhook to have PlanDocket send events such as invoice.paid to your server.</p>
          <Link to="/webhooks/new" class="button button-primary">
            Create your first webhook
          </Link>
        </Empty>
      )}
      {webhooks && webhooks.length > 0 && (
        <div class="card card-flush">
          <table class="table webhook-table">
            <caption class="visually-hidden">Webhooks</caption>
            <thead>
              <tr>
                <th scope="col">Webhook</th>
                <th scope="col">Events</th>
                <th scope="col">State</th>
                <th scope="col">Last success</th>
                <th scope="col">Last failure</th>
                <th scope="col">Success, 24 h</th>
              </tr>
            </thead>
            <tbody>
              {webhooks.map((webhook) => (
                <tr key={webhook.id}>
                  <td class="cell-main">
                    <Link to={`/webhooks/${webhook.id}`} class="row-link">
                      {webhook.name}
                    </Link>
                    <span class="url">{webhook.url}</span>
                  </td>
                  <td data-label="Events">{eventCount(webhook)}</td>
                  <td data-label="State">
                    <StateBadge webhook={webhook} />
                    {webhookState(webhook) === 'failing' && webhook.failing_since && (
                      <span class="reason">
                        Endpoint down, noticed{' '}
                        <time dateTime={webhook.failing_since} title={dateTime(webhook.failing_since)}>
                          {timeAgo(webhook.failing_since)}
                        </time>
                        ; deliveries held
                      </span>
                    )}
                    {webhookState(webhook) === 'disabled' && webhook.disabled_reason && (
                      <span class="reason">{webhook.disabled_reason}</span>
                    )}
                  </td>
                  <td data-label="Last success">
                    <When iso={webhook.last_success_at} kind="success" />
                  </td>
                  <td data-label="Last failure">
                    <When iso={webhook.last_failure_at} kind="failure" />
                  </td>
                  <td data-label="Success, 24 h">
                    <SuccessRate webhook={webhook} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {meta && meta.total_pages > 1 && (
        <nav class="pager" aria-label="Pages of webhooks">
          <button type="button" class="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>
            Previous
          </button>
          <span>
            Page {meta.page} of {meta.total_pages}
          </span>
          <button
            type="button"
            class="button"
            disabled={page >= meta.total_pages}
            onClick={() => setPage(page + 1)}
          >
            Next
          </button>
        </nav>
      )}
    </>
  );
}

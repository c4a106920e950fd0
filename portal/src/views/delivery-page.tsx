import { useEffect, useState } from 'preact/hooks';
import { ApiError, type Attempt, api } from '../api';
import { HttpStatus, StatusBadge } from '../components/badges';
import { ErrorState, Loading, type Notice, Notices } from '../components/states';
import { dateTime, duration, prettyJson, timeAgo } from '../format';
import { useLoad } from '../load';
import { Link } from '../router';
import { PageHeader } from './page-header';

function Headers({ headers, label }: { headers: Record<string, string> | null; label: string }) {
  if (!headers || Object.keys(headers).length === 0) return null;
  return (
    <details class="headers-details">
      <summary>{label}</summary>
      <dl class="header-list">
        {Object.entries(headers).map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
    </details>
  );
}

function AttemptCard({ attempt }: { attempt: Attempt }) {
  const ok = attempt.response_status !== null && attempt.response_status < 300 && !attempt.error;
  return (
    <li class={`attempt ${ok ? 'attempt-ok' : 'attempt-bad'}`}>
      <div class="attempt-head">
        <h3>Attempt {attempt.number}</h3>
        <HttpStatus code={attempt.response_status} />
        <span class="muted small">
          <time dateTime={attempt.started_at}>{dateTime(attempt.started_at)}</time> ·{' '}
          {duration(attempt.duration_ms)}
        </span>
      </div>
      {attempt.error && <p class="error-text">{attempt.error}</p>}
      <Headers headers={attempt.request_headers} label="Request headers" />
      <Headers headers={attempt.response_headers} label="Response headers" />
      {attempt.response_body !== null && attempt.response_body !== '' && (
        <div class="code-block">
          <p class="code-label">Response body</p>
          <pre>{prettyJson(attempt.response_body)}</pre>
        </div>
      )}
    </li>
  );
}

/** The Payload View: the body sent, and every attempt with what the endpoint answered. */
export function DeliveryPage({ id, deliveryId }: { id: string; deliveryId: string }) {
  const [refresh, setRefresh] = useState(0);
  const webhook = useLoad(() => api.webhook(id), [id]);
  const loaded = useLoad(() => api.delivery(id, deliveryId), [id, deliveryId, refresh], 3000);
  const [notice, setNotice] = useState<Notice>(undefined);
  const [busy, setBusy] = useState(false);
  const delivery = loaded.data?.data;

  useEffect(() => {
    document.title = `Delivery ${deliveryId} · PlanDocket`;
  }, [deliveryId]);

  async function retry() {
    setBusy(true);
    setNotice(undefined);
    try {
      await api.retryDelivery(id, deliveryId);
      setNotice({ tone: 'ok', text: 'Sending again now. The new attempt appears below.' });
      setRefresh(refresh + 1);
    } catch (e) {
      setNotice({ tone: 'error', text: e instanceof ApiError ? e.message : String(e) });
    } finally {
      setBusy(false);
    }
  }

  const crumbs = (
    <>
      <Link to="/">Webhooks</Link>
      <span aria-hidden="true"> / </span>
      <Link to={`/webhooks/${id}`}>{webhook.data?.data.name ?? 'Webhook'}</Link>
    </>
  );
  if (!delivery) {
    return (
      <>
        <PageHeader title="Delivery" crumbs={crumbs} />
        {loaded.error ? (
          <ErrorState
            error={loaded.error}
            title={loaded.error.status === 404 ? 'This delivery does not exist' : undefined}
            onRetry={loaded.error.status === 404 ? undefined : loaded.reload}
          />
        ) : (
          <Loading label="Loading the delivery…" />
        )}
      </>
    );
  }
  const attempts = [...delivery.attempt_history].reverse();
  return (
    <>
      <PageHeader
        crumbs={crumbs}
        title={
          <>
            <code>{delivery.event_type}</code> delivery
          </>
        }
        subtitle={
          <>
            <StatusBadge status={delivery.status} /> <span class="muted">{delivery.id}</span>
          </>
        }
        actions={
          <button type="button" class="button button-primary" disabled={busy} onClick={retry}>
            {busy ? 'Retrying…' : 'Retry now'}
          </button>
        }
      />
      <Notices notice={notice} />
      <section class="card" aria-labelledby="summary-title">
        <h2 id="summary-title" class="visually-hidden">
          Summary
        </h2>
        <dl class="details details-wide">
          <dt>Event</dt>
          <dd>
            <code>{delivery.event_id}</code>
            {delivery.is_test && <span class="tag">test</span>}
          </dd>
          <dt>Created</dt>
          <dd>{dateTime(delivery.created_at)}</dd>
          <dt>Attempts</dt>
          <dd>{delivery.attempts}</dd>
          <dt>Next attempt</dt>
          <dd>
            {delivery.status === 'pending' && delivery.next_attempt_at
              ? timeAgo(delivery.next_attempt_at)
              : '—'}
          </dd>
        </dl>
      </section>
      <div class="grid-2 grid-wide-left">
        <section class="card" aria-labelledby="payload-title">
          <h2 id="payload-title">Payload</h2>
          <p class="muted small">The exact body sent (and signed), formatted for reading.</p>
          <pre class="payload">{prettyJson(delivery.payload)}</pre>
        </section>
        <section class="card" aria-labelledby="attempts-title">
          <h2 id="attempts-title">Attempts</h2>
          {attempts.length === 0 ? (
            <p class="muted">No attempt yet: it is waiting for its first send.</p>
          ) : (
            <ol class="attempts">
              {attempts.map((a) => (
                <AttemptCard key={a.number} attempt={a} />
              ))}
            </ol>
          )}
        </section>
      </div>
    </>
  );
}

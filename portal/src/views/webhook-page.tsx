import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type Recovered, type StatsWindow, type Webhook } from '../api';
import { StateBadge } from '../components/badges';
import { DeliveriesChart, DurationChart } from '../components/charts';
import { Dialog } from '../components/dialog';
import { Field } from '../components/field';
import { ErrorState, Loading, type Notice, Notices } from '../components/states';
import { dateTime, localInputValue, percent, plural, timeAgo } from '../format';
import { useLoad, usePulse } from '../load';
import { Link, navigate } from '../router';
import { DeliveryLog, LOG_POLL_MS } from './delivery-log';
import { HealthBanner } from './health-banner';
import { PageHeader } from './page-header';

const GRACE_PERIODS: [number, string][] = [
  [0, 'None: the old secret stops at once'],
  [3600, '1 hour'],
  [86_400, '24 hours (default)'],
  [3 * 86_400, '3 days'],
  [7 * 86_400, '7 days'],
];

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function SecretCard({
  webhook,
  onRotated,
  say,
}: {
  webhook: Webhook;
  onRotated: (w: Webhook) => void;
  say: (n: Notice) => void;
}) {
  const [revealed, setRevealed] = useState(false);
  const [rotating, setRotating] = useState(false);
  const [grace, setGrace] = useState(86_400);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const secret = webhook.secret ?? '';

  async function rotate(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const rotated = (await api.rotateSecret(webhook.id, grace)).data;
      setRotating(false);
      setRevealed(true);
      onRotated(rotated);
      say({
        tone: 'ok',
        text:
          grace === 0
            ? 'The secret was rotated. The old one no longer signs.'
            : `The secret was rotated. The old one keeps signing for ${GRACE_PERIODS.find(([s]) => s === grace)?.[1].replace(' (default)', '')}.`,
      });
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="card" aria-labelledby="secret-title">
      <div class="card-header">
        <h2 id="secret-title">Signing secret</h2>
      </div>
      <p class="muted small">
        Verify the <code>X-Webhook-Signature</code> or <code>webhook-signature</code> header of each request
        with it.
      </p>
      <div class="secret-row">
        <code class="secret">
          {revealed ? secret : `whsec_${'•'.repeat(24)}`}
          {!revealed && <span class="visually-hidden"> (hidden)</span>}
        </code>
        <button type="button" class="button" aria-pressed={revealed} onClick={() => setRevealed(!revealed)}>
          {revealed ? 'Hide' : 'Reveal'}
        </button>
        <button
          type="button"
          class="button"
          onClick={async () =>
            say(
              (await copy(secret))
                ? { tone: 'ok', text: 'The secret was copied to the clipboard.' }
                : {
                    tone: 'error',
                    text: 'The browser did not allow copying: reveal the secret and copy it by hand.',
                  },
            )
          }
        >
          Copy secret
        </button>
        <button type="button" class="button" onClick={() => setRotating(true)}>
          Rotate secret…
        </button>
      </div>
      <Dialog open={rotating} title="Rotate the signing secret" onClose={() => setRotating(false)}>
        <form onSubmit={rotate}>
          <p>
            A new secret signs every delivery from now on. During the grace period each delivery also carries
            a signature with the old secret, so that your server can switch over without failing.
          </p>
          <Field id="grace-period" label="Grace period" errors={error ? [error] : undefined}>
            {(props) => (
              <select
                {...props}
                value={String(grace)}
                onChange={(e) => setGrace(Number(e.currentTarget.value))}
              >
                {GRACE_PERIODS.map(([seconds, label]) => (
                  <option key={seconds} value={String(seconds)}>
                    {label}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <div class="form-actions">
            <button type="submit" class="button button-primary" disabled={busy}>
              {busy ? 'Rotating…' : 'Rotate secret'}
            </button>
            <button type="button" class="button button-ghost" onClick={() => setRotating(false)}>
              Cancel
            </button>
          </div>
        </form>
      </Dialog>
    </section>
  );
}

function Details({ webhook }: { webhook: Webhook }) {
  const headers = Object.keys(webhook.headers);
  return (
    <section class="card" aria-labelledby="details-title">
      <div class="card-header">
        <h2 id="details-title">Settings</h2>
        <Link to={`/webhooks/${webhook.id}/edit`} class="button button-small">
          Edit settings
        </Link>
      </div>
      <dl class="details">
        <dt>Events</dt>
        <dd>
          {webhook.events.includes('*') ? (
            'All events, including ones added later'
          ) : (
            <ul class="chips">
              {webhook.events.map((e) => (
                <li key={e}>
                  <code>{e}</code>
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Retries</dt>
        <dd>{webhook.retry_count === 0 ? 'None' : plural(webhook.retry_count, 'retry', 'retries')}</dd>
        <dt>Timeout</dt>
        <dd>{plural(webhook.timeout_seconds, 'second')}</dd>
        <dt>Custom headers</dt>
        <dd>
          {headers.length === 0 ? (
            <span class="muted">None</span>
          ) : (
            <ul class="chips">
              {headers.map((h) => (
                <li key={h}>
                  <code>{h}</code>
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Last attempt</dt>
        <dd>{timeAgo(webhook.last_triggered_at)}</dd>
        <dt>Created</dt>
        <dd>{dateTime(webhook.created_at)}</dd>
      </dl>
    </section>
  );
}

const WINDOWS: Record<StatsWindow, string> = {
  '24h': 'Last 24 hours',
  '7d': 'Last 7 days',
  '30d': 'Last 30 days',
};

/**
 * The cards and charts of a window: deliveries created in it, each counted once as it is now (the
 * cards are the charts' sums), and the attempts' durations. They refresh with the delivery log,
 * on its pulse: one request per beat at most, none while the page is hidden.
 */
function Stats({ webhookId, refresh, pulse }: { webhookId: string; refresh: number; pulse: number }) {
  const [window, setWindow] = useState<StatsWindow>('24h');
  const stats = useLoad(() => api.stats(webhookId, window), [webhookId, window, refresh], { pulse });
  const data = stats.data?.data;
  const done = data ? data.counts.succeeded + data.counts.failed : 0;
  return (
    <section class="card" aria-labelledby="stats-title">
      <div class="card-header">
        <h2 id="stats-title">Deliveries over time</h2>
        <div class="inline-field">
          <label for="stats-window">Window</label>
          <select
            id="stats-window"
            value={window}
            onChange={(e) => setWindow(e.currentTarget.value as StatsWindow)}
          >
            {Object.entries(WINDOWS).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
      </div>
      {stats.error && !data && <ErrorState error={stats.error} onRetry={stats.reload} />}
      {!data && !stats.error && <Loading label="Loading statistics…" />}
      {data && (
        <>
          <ul class="counts">
            <li>
              <span class="count-value">{percent(data.counts.succeeded, done)}</span>
              <span class="count-label">success rate</span>
            </li>
            <li>
              <span class="count-value ok">{data.counts.succeeded.toLocaleString('en')}</span>
              <span class="count-label">succeeded</span>
            </li>
            <li>
              <span class="count-value bad">{data.counts.failed.toLocaleString('en')}</span>
              <span class="count-label">failed</span>
            </li>
            <li>
              <span class="count-value">{data.counts.pending.toLocaleString('en')}</span>
              <span class="count-label">pending</span>
            </li>
          </ul>
          <p class="muted small stats-note">
            Deliveries created in the {WINDOWS[data.window].toLowerCase()}, each counted once by its current
            status, however often it was retried or recovered.
          </p>
          <figure class="chart">
            <figcaption>Deliveries by {data.bucket} of creation</figcaption>
            <DeliveriesChart series={data.series} bucket={data.bucket} />
          </figure>
          <figure class="chart">
            <figcaption>Attempt duration</figcaption>
            <DurationChart series={data.series} bucket={data.bucket} />
          </figure>
        </>
      )}
    </section>
  );
}

/** What a recovery queued, in words: the failed deliveries, and the missed events when asked. */
function recoveredText({ failed, missing }: Recovered, askedMissing: boolean): string {
  const again =
    failed === 0
      ? 'No failed deliveries in this window'
      : `${plural(failed, 'failed delivery', 'failed deliveries')} queued again`;
  if (!askedMissing) return `${again}.`;
  return `${again}; ${missing === 0 ? 'no missed events' : `${plural(missing, 'missed event')} queued`}.`;
}

function Recover({ webhookId, onQueued }: { webhookId: string; onQueued: (n: number) => void }) {
  const now = Date.now();
  const [since, setSince] = useState(localInputValue(now - 86_400_000));
  const [until, setUntil] = useState(localInputValue(now));
  const [missing, setMissing] = useState(false);
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [result, setResult] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setErrors({});
    setResult(undefined);
    const iso = (local: string) => (local ? new Date(local).toISOString() : '');
    // The fields name minutes: "until 14:05" takes in all of 14:05 (the API stops at now), or the
    // window would leave out what happened in the minute the page was opened.
    const endOf = (local: string) => new Date(new Date(local).getTime() + 59_999).toISOString();
    try {
      if (!since) {
        setErrors({ since: ['Choose where the window starts.'] });
        return;
      }
      const recovered = (await api.recover(webhookId, iso(since), until ? endOf(until) : undefined, missing))
        .data;
      setResult(recoveredText(recovered, missing));
      onQueued(recovered.queued);
    } catch (e) {
      const error = e instanceof ApiError ? e : new ApiError(0, String(e));
      setErrors(Object.keys(error.fieldErrors).length ? error.fieldErrors : { since: [error.message] });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="card" aria-labelledby="recover-title">
      <div class="card-header">
        <h2 id="recover-title">Recover failed deliveries</h2>
      </div>
      <p class="muted small">
        After an outage on your side: send every delivery that failed in a time window again (up to 14 days
        back). Events published while the webhook was paused or switched off were not queued for it; tick the
        box to send them too, once each.
      </p>
      <form class="recover-form" onSubmit={submit} noValidate>
        <Field id="recover-since" label="From" errors={errors.since}>
          {(props) => (
            <input
              {...props}
              type="datetime-local"
              value={since}
              onInput={(e) => setSince(e.currentTarget.value)}
            />
          )}
        </Field>
        <Field id="recover-until" label="Until" errors={errors.until}>
          {(props) => (
            <input
              {...props}
              type="datetime-local"
              value={until}
              onInput={(e) => setUntil(e.currentTarget.value)}
            />
          )}
        </Field>
        <label class="check recover-missing">
          <input type="checkbox" checked={missing} onChange={(e) => setMissing(e.currentTarget.checked)} />
          <span>Also send the events this webhook missed while it was paused or switched off</span>
        </label>
        <button type="submit" class="button" disabled={busy}>
          {busy ? 'Queuing…' : 'Recover failed deliveries'}
        </button>
      </form>
      <p role="status" class="small">
        {result}
      </p>
    </section>
  );
}

/** One webhook: its secret, state, statistics, delivery log and what can be done with it. */
export function WebhookPage({ id }: { id: string }) {
  const loaded = useLoad(() => api.webhook(id), [id], 15_000);
  const catalog = useLoad(() => api.catalog(), []);
  const [override, setOverride] = useState<Webhook | undefined>(undefined);
  const [notice, setNotice] = useState<Notice>(undefined);
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const [deleting, setDeleting] = useState(false);
  const [refresh, setRefresh] = useState(0);
  const pulse = usePulse(LOG_POLL_MS);
  const fresh = loaded.data?.data;
  const webhook =
    override && fresh && Date.parse(override.updated_at) >= Date.parse(fresh.updated_at)
      ? { ...fresh, ...override }
      : fresh;

  useEffect(() => {
    if (webhook) document.title = `${webhook.name} · Webhooks · PlanDocket`;
  }, [webhook?.name]);

  async function act(name: string, action: () => Promise<void>) {
    setBusy(name);
    setNotice(undefined);
    try {
      await action();
    } catch (e) {
      setNotice({ tone: 'error', text: e instanceof ApiError ? e.message : String(e) });
    } finally {
      setBusy(undefined);
    }
  }

  if (loaded.error && !fresh) {
    return (
      <>
        <PageHeader title="Webhook" crumbs={<Link to="/">Webhooks</Link>} />
        <ErrorState
          error={loaded.error}
          title={loaded.error.status === 404 ? 'This webhook does not exist' : undefined}
          onRetry={loaded.error.status === 404 ? undefined : loaded.reload}
        />
      </>
    );
  }
  if (!webhook) {
    return (
      <>
        <PageHeader title="Webhook" crumbs={<Link to="/">Webhooks</Link>} />
        <Loading label="Loading the webhook…" />
      </>
    );
  }

  const sendTest = () =>
    act('test', async () => {
      await api.sendTest(webhook.id);
      setRefresh(refresh + 1);
      setNotice({ tone: 'ok', text: 'A test event was queued. Watch it arrive in the delivery log.' });
    });
  const toggleActive = () =>
    act('active', async () => {
      const updated = (await api.updateWebhook(webhook.id, { is_active: !webhook.is_active })).data;
      setOverride({ ...webhook, ...updated });
      setNotice({
        tone: 'ok',
        text: updated.is_active
          ? 'The webhook is active: new events are delivered again, held retries resume.'
          : 'The webhook is paused: no new deliveries until you activate it. Pending retries wait.',
      });
    });
  const remove = () =>
    act('delete', async () => {
      await api.deleteWebhook(webhook.id);
      setDeleting(false);
      navigate('/');
    });

  return (
    <>
      <PageHeader
        crumbs={<Link to="/">Webhooks</Link>}
        title={webhook.name}
        subtitle={
          <>
            <StateBadge webhook={webhook} /> <span class="url">{webhook.url}</span>
          </>
        }
        actions={
          <>
            <button type="button" class="button" disabled={busy === 'test'} onClick={sendTest}>
              {busy === 'test' ? 'Sending…' : 'Send test event'}
            </button>
            <button type="button" class="button" disabled={busy === 'active'} onClick={toggleActive}>
              {webhook.is_active ? 'Pause' : 'Activate'}
            </button>
            <button type="button" class="button button-danger" onClick={() => setDeleting(true)}>
              Delete…
            </button>
          </>
        }
      />
      <Notices notice={notice} />
      <HealthBanner webhook={webhook} />
      <div class="grid-2">
        <SecretCard webhook={webhook} onRotated={(w) => setOverride({ ...webhook, ...w })} say={setNotice} />
        <Details webhook={webhook} />
      </div>
      <Stats webhookId={id} refresh={refresh} pulse={pulse} />
      <DeliveryLog webhookId={id} catalog={catalog.data?.data ?? []} refresh={refresh} pulse={pulse} />
      <Recover webhookId={id} onQueued={() => setRefresh(refresh + 1)} />
      <Dialog open={deleting} title="Delete this webhook?" onClose={() => setDeleting(false)}>
        <p>
          <strong>{webhook.name}</strong> stops receiving events at once and its pending deliveries are
          cancelled. This cannot be undone.
        </p>
        <div class="form-actions">
          <button type="button" class="button button-danger" disabled={busy === 'delete'} onClick={remove}>
            {busy === 'delete' ? 'Deleting…' : 'Delete webhook'}
          </button>
          <button type="button" class="button button-ghost" onClick={() => setDeleting(false)}>
            Cancel
          </button>
        </div>
      </Dialog>
    </>
  );
}

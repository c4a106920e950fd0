import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, api, type EventType, type FieldErrors, type Webhook, type WebhookInput } from '../api';
import { FieldErrors as Errors, Field } from '../components/field';
import { ErrorState, Loading } from '../components/states';
import { useLoad } from '../load';
import { Link, navigate } from '../router';
import { PageHeader } from './page-header';

/** The API's limits for these fields (the API checks them; the form shows them). */
export const RETRY_COUNT = { default: 3, min: 0, max: 10 };
export const TIMEOUT_SECONDS = { default: 30, min: 1, max: 60 };
const HEADERS_MAX = 20;
const ALL = '*';

interface HeaderRow {
  key: number;
  name: string;
  value: string;
}

let rowKeys = 0;
const row = (name = '', value = ''): HeaderRow => ({ key: ++rowKeys, name, value });

export const categoryLabel = (category: string) =>
  (category.charAt(0).toUpperCase() + category.slice(1)).replace(/_/g, ' ');

/** Messages for a field and everything under it (`events` takes `events.2` too). */
function errorsOf(errors: FieldErrors, field: string): string[] | undefined {
  const found = Object.entries(errors)
    .filter(([name]) => name === field || name.startsWith(`${field}.`))
    .flatMap(([, messages]) => messages);
  return found.length ? found : undefined;
}

const KNOWN_FIELDS = ['url', 'name', 'events', 'headers', 'retry_count', 'timeout_seconds'];

/** An integer field's text as the API should get it: a number when it is one, else as typed. */
function numberOrText(text: string): number | undefined {
  if (text.trim() === '') return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : (text as unknown as number);
}

function Form({ catalog, webhook }: { catalog: EventType[]; webhook?: Webhook | undefined }) {
  const [url, setUrl] = useState(webhook?.url ?? '');
  const [name, setName] = useState(webhook?.name ?? '');
  const [events, setEvents] = useState<Set<string>>(new Set(webhook?.events ?? []));
  const [headers, setHeaders] = useState<HeaderRow[]>(
    webhook ? Object.entries(webhook.headers).map(([n, v]) => row(n, v)) : [],
  );
  const [retryCount, setRetryCount] = useState(String(webhook?.retry_count ?? RETRY_COUNT.default));
  const [timeout, setTimeoutText] = useState(String(webhook?.timeout_seconds ?? TIMEOUT_SECONDS.default));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [failure, setFailure] = useState<string | undefined>(undefined);
  const [saving, setSaving] = useState(false);

  const categories = useMemo(() => {
    const groups = new Map<string, EventType[]>();
    for (const event of catalog.filter((e) => e.subscribable)) {
      groups.set(event.category, [...(groups.get(event.category) ?? []), event]);
    }
    return [...groups];
  }, [catalog]);

  const all = events.has(ALL);
  /** Whether `*` includes the type: all but the service's own events, which are chosen by name. */
  const covered = (type: EventType) => all && !type.operational;
  const operational = new Set(catalog.filter((e) => e.operational).map((e) => e.type));
  const toggle = (type: string, on: boolean) => {
    const next = new Set(events);
    if (on) next.add(type);
    else next.delete(type);
    setEvents(next);
  };
  const setHeader = (key: number, change: Partial<HeaderRow>) =>
    setHeaders(headers.map((h) => (h.key === key ? { ...h, ...change } : h)));

  async function submit(event: Event) {
    event.preventDefault();
    setSaving(true);
    setFailure(undefined);
    const input: WebhookInput = {
      url: url.trim(),
      events: all ? [ALL, ...[...events].filter((type) => operational.has(type))] : [...events],
      headers: Object.fromEntries(
        headers.filter((h) => h.name.trim() || h.value).map((h) => [h.name.trim(), h.value]),
      ),
      ...(name.trim() && { name: name.trim() }),
    } as WebhookInput;
    const retry = numberOrText(retryCount);
    const seconds = numberOrText(timeout);
    if (retry !== undefined) input.retry_count = retry;
    if (seconds !== undefined) input.timeout_seconds = seconds;
    try {
      const saved = webhook
        ? (await api.updateWebhook(webhook.id, input)).data
        : (await api.createWebhook(input)).data;
      navigate(`/webhooks/${saved.id}`);
    } catch (e) {
      const error = e instanceof ApiError ? e : new ApiError(0, String(e));
      setErrors(error.fieldErrors);
      const others = Object.entries(error.fieldErrors).filter(
        ([field]) => !KNOWN_FIELDS.some((known) => field === known || field.startsWith(`${known}.`)),
      );
      setFailure(
        error.status === 422
          ? `Please correct the fields marked below.${others.length ? ` ${others.flatMap(([, m]) => m).join(' ')}` : ''}`
          : error.message,
      );
      setSaving(false);
      requestAnimationFrame(() => {
        document.querySelector<HTMLElement>('[aria-invalid="true"], .form-failure')?.focus();
      });
    }
  }

  return (
    <form class="card form" onSubmit={submit} noValidate>
      {failure && (
        <p class="notice notice-error form-failure" role="alert" tabIndex={-1}>
          {failure}
        </p>
      )}
      <Field
        id="webhook-url"
        label="Endpoint URL"
        hint="The HTTPS address that receives the events, e.g. https://example.com/plandocket."
        errors={errorsOf(errors, 'url')}
      >
        {(props) => (
          <input
            {...props}
            type="url"
            inputMode="url"
            required
            value={url}
            onInput={(e) => setUrl(e.currentTarget.value)}
            placeholder="https://"
          />
        )}
      </Field>
      <Field
        id="webhook-name"
        label="Name"
        hint="Optional; the URL's host when left empty."
        errors={errorsOf(errors, 'name')}
      >
        {(props) => (
          <input
            {...props}
            type="text"
            maxLength={255}
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        )}
      </Field>

      <fieldset
        class={`field events${errorsOf(errors, 'events') ? ' field-invalid' : ''}`}
        aria-describedby={errorsOf(errors, 'events') ? 'events-error' : undefined}
      >
        <legend>Events</legend>
        <label class="check check-all">
          <input type="checkbox" checked={all} onChange={(e) => toggle(ALL, e.currentTarget.checked)} />
          <span>
            <strong>All events</strong>
            <span class="muted">
              {' '}
              — every type, including ones added later, but the service's own (choose those by name)
            </span>
          </span>
        </label>
        <div class="event-groups">
          {categories.map(([category, types]) => (
            <fieldset class="event-group" key={category} disabled={types.every(covered)}>
              <legend>{categoryLabel(category)}</legend>
              {types.map((type) => (
                <label class="check" key={type.type}>
                  <input
                    type="checkbox"
                    checked={covered(type) || events.has(type.type)}
                    onChange={(e) => toggle(type.type, e.currentTarget.checked)}
                    aria-describedby={`event-${type.type.replace(/\W/g, '-')}-description`}
                  />
                  <span>
                    <code>{type.type}</code>
                    <span class="muted small" id={`event-${type.type.replace(/\W/g, '-')}-description`}>
                      {type.description}
                    </span>
                  </span>
                </label>
              ))}
            </fieldset>
          ))}
        </div>
        <Errors id="events-error" errors={errorsOf(errors, 'events')} />
      </fieldset>

      <fieldset
        class={`field headers${errorsOf(errors, 'headers') ? ' field-invalid' : ''}`}
        aria-describedby={`headers-hint${errorsOf(errors, 'headers') ? ' headers-error' : ''}`}
      >
        <legend>Custom headers</legend>
        <p class="hint" id="headers-hint">
          Sent with every delivery, e.g. an Authorization header your server expects. Up to {HEADERS_MAX}.
        </p>
        {headers.map((header, i) => (
          <div class="header-row" key={header.key}>
            <label class="visually-hidden" for={`header-name-${header.key}`}>
              Header {i + 1} name
            </label>
            <input
              id={`header-name-${header.key}`}
              type="text"
              placeholder="Header name"
              autocomplete="off"
              value={header.name}
              onInput={(e) => setHeader(header.key, { name: e.currentTarget.value })}
            />
            <label class="visually-hidden" for={`header-value-${header.key}`}>
              Header {i + 1} value
            </label>
            <input
              id={`header-value-${header.key}`}
              type="text"
              placeholder="Value"
              autocomplete="off"
              value={header.value}
              onInput={(e) => setHeader(header.key, { value: e.currentTarget.value })}
            />
            <button
              type="button"
              class="button button-ghost"
              aria-label={`Remove header ${i + 1}${header.name ? ` (${header.name})` : ''}`}
              onClick={() => setHeaders(headers.filter((h) => h.key !== header.key))}
            >
              Remove
            </button>
          </div>
        ))}
        <button
          type="button"
          class="button"
          disabled={headers.length >= HEADERS_MAX}
          onClick={() => setHeaders([...headers, row()])}
        >
          Add header
        </button>
        <Errors id="headers-error" errors={errorsOf(errors, 'headers')} />
      </fieldset>

      <div class="field-pair">
        <Field
          id="webhook-retry-count"
          label="Retries"
          hint={`After a failed attempt: ${RETRY_COUNT.min} to ${RETRY_COUNT.max}, default ${RETRY_COUNT.default}.`}
          errors={errorsOf(errors, 'retry_count')}
        >
          {(props) => (
            <input
              {...props}
              type="number"
              min={RETRY_COUNT.min}
              max={RETRY_COUNT.max}
              step={1}
              value={retryCount}
              onInput={(e) => setRetryCount(e.currentTarget.value)}
            />
          )}
        </Field>
        <Field
          id="webhook-timeout"
          label="Timeout (seconds)"
          hint={`Per attempt: ${TIMEOUT_SECONDS.min} to ${TIMEOUT_SECONDS.max}, default ${TIMEOUT_SECONDS.default}.`}
          errors={errorsOf(errors, 'timeout_seconds')}
        >
          {(props) => (
            <input
              {...props}
              type="number"
              min={TIMEOUT_SECONDS.min}
              max={TIMEOUT_SECONDS.max}
              step={1}
              value={timeout}
              onInput={(e) => setTimeoutText(e.currentTarget.value)}
            />
          )}
        </Field>
      </div>

      <div class="form-actions">
        <button type="submit" class="button button-primary" disabled={saving}>
          {saving ? 'Saving…' : webhook ? 'Save changes' : 'Create webhook'}
        </button>
        <Link to={webhook ? `/webhooks/${webhook.id}` : '/'} class="button button-ghost">
          Cancel
        </Link>
      </div>
    </form>
  );
}

/** Create a webhook, or edit one (`id`). */
export function WebhookForm({ id }: { id?: string }) {
  const catalog = useLoad(() => api.catalog(), []);
  const webhook = useLoad(() => (id ? api.webhook(id) : Promise.resolve(undefined)), [id]);
  useEffect(() => {
    document.title = `${id ? 'Edit webhook' : 'New webhook'} · PlanDocket`;
  }, [id]);
  const error = catalog.error ?? webhook.error;
  const ready = catalog.data && (!id || webhook.data);
  return (
    <>
      <PageHeader
        title={id ? 'Edit webhook' : 'New webhook'}
        crumbs={
          <>
            <Link to="/">Webhooks</Link>
            {id && webhook.data && (
              <>
                <span aria-hidden="true"> / </span>
                <Link to={`/webhooks/${id}`}>{webhook.data.data.name}</Link>
              </>
            )}
          </>
        }
      />
      {error && (
        <ErrorState
          error={error}
          onRetry={() => {
            catalog.reload();
            webhook.reload();
          }}
        />
      )}
      {!error && !ready && <Loading label="Loading the event catalog…" />}
      {!error && ready && catalog.data && <Form catalog={catalog.data.data} webhook={webhook.data?.data} />}
    </>
  );
}

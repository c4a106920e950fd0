import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api } from '../api';
import { Field } from '../components/field';
import { signIn, signInMessage } from '../session';

/** Sign in by pasting an API key with the `webhooks` scope. (Portal links sign in by themselves.) */
export function SignIn() {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const message = signInMessage.value;

  useEffect(() => {
    document.title = 'Sign in · Webhooks · PlanDocket';
    heading.current?.focus();
  }, []);

  async function submit(event: Event) {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError('Paste an API key to sign in.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await api.identity(trimmed);
      signIn(trimmed);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
      setBusy(false);
    }
  }

  return (
    <main class="sign-in" id="main">
      <div class="sign-in-card">
        <div class="brand brand-large" aria-hidden="true">
          <span class="brand-mark" />
          <span>PlanDocket Webhooks</span>
        </div>
        <h1 ref={heading} tabIndex={-1}>
          Sign in to your webhooks
        </h1>
        {message && (
          <p class="notice notice-warn" role="alert">
            {message}
          </p>
        )}
        <form onSubmit={submit} noValidate>
          <Field
            id="api-key"
            label="API key"
            hint="A key with the webhooks scope. It is kept in this browser tab only, until you sign out or close it."
            errors={error ? [error] : undefined}
          >
            {(props) => (
              <input
                {...props}
                type="password"
                autocomplete="off"
                spellcheck={false}
                value={key}
                onInput={(e) => setKey(e.currentTarget.value)}
                placeholder="pdk_…"
              />
            )}
          </Field>
          <button type="submit" class="button button-primary button-block" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        <p class="muted small">
          No key at hand? Ask your PlanDocket administrator for a portal link: it signs you in once, without a
          key.
        </p>
      </div>
    </main>
  );
}

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type Identity } from './api';
import { ErrorState, Loading } from './components/states';
import { Link, match, path } from './router';
import { session, signedOut, signIn, takeLinkToken } from './session';
import './styles.css';
import { DeliveryPage } from './views/delivery-page';
import { PageHeader } from './views/page-header';
import { SignIn } from './views/sign-in';
import { WebhookForm } from './views/webhook-form';
import { WebhookList } from './views/webhook-list';
import { WebhookPage } from './views/webhook-page';

// Taken out of the address bar before anything else runs.
const linkToken = takeLinkToken();

function Page() {
  const route = match(path.value);
  switch (route.page) {
    case 'webhooks':
      return <WebhookList />;
    case 'new-webhook':
      return <WebhookForm />;
    case 'webhook':
      return <WebhookPage key={route.id} id={route.id} />;
    case 'edit-webhook':
      return <WebhookForm key={route.id} id={route.id} />;
    case 'delivery':
      return <DeliveryPage key={route.deliveryId} id={route.id} deliveryId={route.deliveryId} />;
    default:
      return (
        <>
          <PageHeader title="Page not found" />
          <p>
            There is nothing here. <Link to="/">Back to your webhooks</Link>
          </p>
        </>
      );
  }
}

function Shell({ identity }: { identity: Identity | undefined }) {
  async function signOut() {
    // A portal session ends on the server too; a pasted key is only forgotten here.
    await api.signOut().catch(() => undefined);
    signedOut('You are signed out.');
  }
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="topbar-inner">
          <Link to="/" class="brand">
            <span class="brand-mark" aria-hidden="true" />
            <span>
              PlanDocket <span class="brand-product">Webhooks</span>
            </span>
          </Link>
          <div class="topbar-right">
            {identity && (
              <span
                class="tenant"
                title={`Signed in with ${identity.key.name} (${identity.key.key_prefix}…)`}
              >
                {identity.tenant.name}
              </span>
            )}
            <button type="button" class="button button-small button-on-dark" onClick={signOut}>
              Sign out
            </button>
          </div>
        </div>
      </header>
      <main id="main" class="content">
        <Page />
      </main>
    </>
  );
}

function App() {
  const [exchanging, setExchanging] = useState(linkToken !== undefined);
  const [identity, setIdentity] = useState<Identity | undefined>(undefined);
  const [problem, setProblem] = useState<ApiError | undefined>(undefined);
  const key = session.value;

  useEffect(() => {
    if (linkToken === undefined) return;
    if (linkToken === '') {
      signedOut('This portal link is not valid: copy the whole link, or ask for a new one.');
      setExchanging(false);
      return;
    }
    api
      .exchangeLink(linkToken)
      .then((answer) => signIn(answer.data.key))
      .catch((e: unknown) => signedOut(e instanceof ApiError ? e.message : String(e)))
      .finally(() => setExchanging(false));
  }, []);

  useEffect(() => {
    setIdentity(undefined);
    setProblem(undefined);
    if (!key || exchanging) return;
    api
      .identity()
      .then((answer) => setIdentity(answer.data))
      .catch((e: unknown) => {
        if (e instanceof ApiError && e.status !== 401) setProblem(e);
      });
  }, [key, exchanging]);

  if (exchanging) {
    return (
      <main id="main" class="sign-in">
        <div class="sign-in-card">
          <h1>Signing you in…</h1>
          <Loading label="Opening your portal link…" />
        </div>
      </main>
    );
  }
  if (!key) return <SignIn />;
  if (problem) {
    return (
      <main id="main" class="sign-in">
        <div class="sign-in-card">
          <h1>This key cannot open the portal</h1>
          <ErrorState error={problem} title="Access refused" />
          <button type="button" class="button" onClick={() => signedOut()}>
            Use another key
          </button>
        </div>
      </main>
    );
  }
  return <Shell identity={identity} />;
}

const root = document.getElementById('app');
if (root) render(<App />, root);

import { signal } from '@preact/signals';

/**
 * Who is signed in. The key lives in this tab's sessionStorage only: never in a URL, a cookie or
 * localStorage, and it is gone when the tab closes.
 */

const STORAGE_KEY = 'plandocket.webhooks.key';

function stored(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The key in use; undefined when signed out. */
export const session = signal<string | undefined>(stored());
/** Why the last session ended (an expired key, a refused link), for the sign-in page. */
export const signInMessage = signal<string | undefined>(undefined);

export const currentKey = () => session.value;

export function signIn(key: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    // Storage may be off (private modes); the session then lasts until the page reloads.
  }
  signInMessage.value = undefined;
  session.value = key;
}

export function signedOut(message?: string): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing kept
  }
  signInMessage.value = message;
  session.value = undefined;
}

/**
 * The token of a portal link (`/portal/#token=...`), taken out of the address bar at once so that
 * it is neither kept in the history nor shown; undefined when the page was opened without one.
 */
export function takeLinkToken(): string | undefined {
  const match = /^#token=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
  if (!window.location.hash.startsWith('#token=')) return undefined;
  history.replaceState(history.state, '', window.location.pathname + window.location.search);
  return match?.[1] ?? '';
}

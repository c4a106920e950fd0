import { signal } from '@preact/signals';
import type { ComponentChildren, JSX } from 'preact';

/** A small history router for the portal's pages, all under /portal/. */

export const BASE = '/portal';

const here = () => window.location.pathname.replace(/^\/portal/, '') || '/';

/** The portal path shown (`/webhooks/12`), without the base. */
export const path = signal(here());

window.addEventListener('popstate', () => {
  path.value = here();
});

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = BASE + to;
  if (options.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  path.value = to;
  window.scrollTo(0, 0);
}

export type Route =
  | { page: 'webhooks' }
  | { page: 'new-webhook' }
  | { page: 'webhook'; id: string }
  | { page: 'edit-webhook'; id: string }
  | { page: 'delivery'; id: string; deliveryId: string }
  | { page: 'not-found' };

export function match(p: string): Route {
  const parts = p.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'webhooks' };
  if (parts[0] !== 'webhooks') return { page: 'not-found' };
  const [, id, sub, deliveryId] = parts;
  if (parts.length === 1) return { page: 'webhooks' };
  if (id === 'new' && parts.length === 2) return { page: 'new-webhook' };
  if (!id || !/^\d+$/.test(id)) return { page: 'not-found' };
  if (parts.length === 2) return { page: 'webhook', id };
  if (sub === 'edit' && parts.length === 3) return { page: 'edit-webhook', id };
  if (sub === 'deliveries' && deliveryId && parts.length === 4) return { page: 'delivery', id, deliveryId };
  return { page: 'not-found' };
}

type LinkProps = Omit<JSX.HTMLAttributes<HTMLAnchorElement>, 'href'> & {
  to: string;
  children: ComponentChildren;
};

/** A real link (it opens in a new tab too) that moves within the portal without a reload. */
export function Link({ to, children, ...rest }: LinkProps) {
  return (
    <a
      {...rest}
      href={BASE + to}
      onClick={(event) => {
        if (event.defaultPrevented || event.button !== 0) return;
        if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}

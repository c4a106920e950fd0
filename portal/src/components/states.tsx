import type { ComponentChildren } from 'preact';
import type { ApiError } from '../api';

export function Loading({ label }: { label: string }) {
  return (
    <div class="state state-loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      <span>{label}</span>
    </div>
  );
}

export function ErrorState({
  error,
  onRetry,
  title,
}: {
  error: ApiError;
  onRetry?: () => void;
  title?: string;
}) {
  return (
    <div class="state state-error" role="alert">
      <p class="state-title">{title ?? (error.status === 404 ? 'Not found' : 'Something went wrong')}</p>
      <p>{error.message}</p>
      {onRetry && (
        <button type="button" class="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state state-empty">
      <p class="state-title">{title}</p>
      {children}
    </div>
  );
}

/** The outcome of an action on the page; errors are announced at once, the rest politely. */
export type Notice = { tone: 'ok' | 'error'; text: string } | undefined;

export function Notices({ notice }: { notice: Notice }) {
  return (
    <div class="notices" aria-live="polite">
      {notice && (
        <p class={`notice notice-${notice.tone}`} role={notice.tone === 'error' ? 'alert' : 'status'}>
          {notice.text}
        </p>
      )}
    </div>
  );
}

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** Loads again; the data shown stays until the new answer arrives. */
  reload: () => void;
}

/**
 * Loads with `load` when `deps` change, and again every `pollMs` while the page is visible (the
 * delivery log updates itself this way). A failed poll keeps the last data and shows the error.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], pollMs?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const latest = useRef(load);
  latest.current = load;

  const run = useCallback(() => {
    const mine = ++generation.current;
    setLoading(true);
    latest
      .current()
      .then((value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(undefined);
      })
      .catch((e: unknown) => {
        if (mine !== generation.current) return;
        setError(e instanceof ApiError ? e : new ApiError(0, String(e)));
      })
      .finally(() => {
        if (mine === generation.current) setLoading(false);
      });
  }, []);

  useEffect(() => {
    setData(undefined);
    run();
    if (!pollMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') run();
    }, pollMs);
    return () => {
      clearInterval(timer);
      generation.current++;
    };
  }, deps);

  return { data, error, loading, reload: run };
}

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** Loads again; the data shown stays until the new answer arrives. */
  reload: () => void;
}

const visible = () => document.visibilityState === 'visible';

/**
 * A number that goes up every `ms` while the page is visible, and once at once when it becomes
 * visible again: the refresh cycle of views that update together (the webhook page's statistics
 * and its delivery log), one timer for all of them.
 */
export function usePulse(ms: number): number {
  const [pulse, setPulse] = useState(0);
  useEffect(() => {
    const beat = () => {
      if (visible()) setPulse((n) => n + 1);
    };
    const timer = setInterval(beat, ms);
    document.addEventListener('visibilitychange', beat);
    return () => {
      clearInterval(timer);
      document.removeEventListener('visibilitychange', beat);
    };
  }, [ms]);
  return pulse;
}

/**
 * When to load again by itself: every `ms` milliseconds while the page is visible, or on each
 * beat of a pulse shared with other views (`usePulse`).
 */
export type Refresh = number | { pulse: number };

/**
 * Loads with `load` when `deps` change, and again as `refresh` says (the delivery log updates
 * itself this way). A refresh while the previous answer is still awaited is skipped: one request
 * at a time. A failed refresh keeps the last data and shows the error.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], refresh?: Refresh): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const inFlight = useRef(0);
  const latest = useRef(load);
  latest.current = load;

  const run = useCallback(() => {
    const mine = ++generation.current;
    inFlight.current++;
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
        inFlight.current--;
        if (mine === generation.current) setLoading(false);
      });
  }, []);
  const again = useCallback(() => {
    if (inFlight.current === 0) run();
  }, []);

  const pollMs = typeof refresh === 'number' ? refresh : undefined;
  useEffect(() => {
    setData(undefined);
    run();
    if (!pollMs) return;
    const timer = setInterval(() => {
      if (visible()) again();
    }, pollMs);
    return () => {
      clearInterval(timer);
      generation.current++;
    };
  }, deps);

  // Each beat after the first render loads again (the first load is the one above).
  const pulse = typeof refresh === 'object' ? refresh.pulse : undefined;
  const firstPulse = useRef(pulse);
  useEffect(() => {
    if (pulse !== undefined && pulse !== firstPulse.current) again();
  }, [pulse]);

  return { data, error, loading, reload: run };
}

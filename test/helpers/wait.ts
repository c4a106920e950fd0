type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Polls until `check` returns a truthy value, and returns it; throws after `timeoutMs`. The limit
 * is generous on purpose: a test waits for the state it asserts, however busy the machine is, and
 * a limit only bounds how long a broken behaviour takes to fail.
 */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Truthy<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Waits until the clock has passed `mark` (ms, now by default): what happens next has a later
 * time. A mark ahead (an expiry, the end of a period) is waited for until it has passed.
 */
export const clockPast = (mark = Date.now()) =>
  waitFor(() => Date.now() > mark, Math.max(0, mark - Date.now()) + 20_000, 'the clock to move on');

const HOUR_MS = 3_600_000;

/**
 * Rate limits and statistics count per clock hour: a test whose next `marginMs` must fall within
 * one hour, a second or more into it, waits for the turn of the hour when it is that close.
 */
export async function withinOneHour(marginMs = 10_000): Promise<void> {
  const start = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  if (start + HOUR_MS - Date.now() < marginMs) await clockPast(start + HOUR_MS + 1_000);
  else await clockPast(start + 1_000);
}

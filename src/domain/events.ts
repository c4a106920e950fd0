import catalog from './event-catalog.json' with { type: 'json' };

export interface EventType {
  type: string;
  category: string;
  description: string;
  /** False for event types that are sent but cannot be subscribed to (`webhook.test`). */
  subscribable: boolean;
  /**
   * Told by the service about its own work (a webhook failing, a delivery exhausted): subscribed
   * to by name only, not by `*`, and not published through the API.
   */
  operational: boolean;
}

/** Subscribing to `*` means every event type, including types added later. */
export const ALL_EVENTS = '*';

/** The event catalog: one entry per type in `event-catalog.json`. */
export const EVENT_TYPES: readonly EventType[] = catalog.map((entry) => ({
  type: entry.type,
  category: entry.category,
  description: entry.description,
  subscribable: entry.subscribable ?? true,
  operational: entry.operational ?? false,
}));

const KNOWN = new Set(EVENT_TYPES.map((e) => e.type));

/** Whether the catalog has this type (subscribable or not; not `*`). */
export function isEventType(type: string): boolean {
  return KNOWN.has(type);
}

const SUBSCRIBABLE = new Set(EVENT_TYPES.filter((e) => e.subscribable).map((e) => e.type));

export function isSubscribable(type: string): boolean {
  return type === ALL_EVENTS || SUBSCRIBABLE.has(type);
}

const OPERATIONAL = new Set(EVENT_TYPES.filter((e) => e.operational).map((e) => e.type));

/** Whether the service publishes this type itself (see EventType.operational). */
export function isOperational(type: string): boolean {
  return OPERATIONAL.has(type);
}

/** Whether a subscription to `*` receives this type: every subscribable one but the service's own. */
export function coveredByWildcard(type: string): boolean {
  return SUBSCRIBABLE.has(type) && !OPERATIONAL.has(type);
}

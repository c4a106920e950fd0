import catalog from './event-catalog.json' with { type: 'json' };

export interface EventType {
  type: string;
  category: string;
  description: string;
  /** False for event types that are sent but cannot be subscribed to (`webhook.test`). */
  subscribable: boolean;
}

/** Subscribing to `*` means every event type, including types added later. */
export const ALL_EVENTS = '*';

/** The event catalog: one entry per type in `event-catalog.json`. */
export const EVENT_TYPES: readonly EventType[] = catalog.map((entry) => ({
  type: entry.type,
  category: entry.category,
  description: entry.description,
  subscribable: entry.subscribable ?? true,
}));

const SUBSCRIBABLE = new Set(EVENT_TYPES.filter((e) => e.subscribable).map((e) => e.type));

export function isSubscribable(type: string): boolean {
  return type === ALL_EVENTS || SUBSCRIBABLE.has(type);
}

/**
 * What the service sees of a webhook's endpoint: `disabled` once the service switched it off (410
 * Gone, failing too long), `failing` while its circuit breaker holds its deliveries (see
 * src/store/breaker.ts), `healthy` otherwise (also when paused by hand).
 */
export const HEALTH = ['healthy', 'failing', 'disabled'] as const;
export type Health = (typeof HEALTH)[number];

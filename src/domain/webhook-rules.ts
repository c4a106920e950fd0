import type { AddressPolicy } from './address-policy.js';
import { ALL_EVENTS, EVENT_TYPES, isSubscribable } from './events.js';
import { addError, type FieldErrors } from './field-errors.js';

/**
 * The rules of the webhook resource beyond its JSON shape (types, lengths and ranges live in the
 * route schema). Pure functions: each returns readable messages per field, as the API shows them.
 */

export const URL_MAX_LENGTH = 2048;
export const NAME_MAX_LENGTH = 255;
export const HEADERS_MAX_COUNT = 20;
export const HEADERS_MAX_BYTES = 8 * 1024;
export const RETRY_COUNT = { default: 3, min: 0, max: 10 } as const;
export const TIMEOUT_SECONDS = { default: 30, min: 1, max: 60 } as const;
/** How long a replaced secret keeps signing after a rotation: 24 hours by default, at most 7 days. */
export const GRACE_PERIOD_SECONDS = { default: 86_400, min: 0, max: 604_800 } as const;

/** Headers the service sets itself on every delivery; tenants cannot override them. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-type',
  'content-length',
  'user-agent',
  'transfer-encoding',
  'connection',
]);
const RESERVED_HEADER_PREFIXES = ['x-webhook-', 'webhook-'];
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Header values may hold visible characters, spaces and tabs; never CR, LF or other controls.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const URL_SPACE_OR_CONTROL = /[\x00-\x20\x7f]/;
// Header values are printable ASCII, spaces and tabs: no line breaks, no other controls, and
// nothing that HTTP clients would refuse or send in an encoding the receiver cannot guess.
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

export interface TargetRules {
  policy: AddressPolicy;
  allowHttp: boolean;
}

export function checkUrl(value: string, rules: TargetRules, errors: FieldErrors): void {
  // URL parsers drop tabs and line breaks silently: the URL delivered to would not be the one shown.
  if (URL_SPACE_OR_CONTROL.test(value)) {
    addError(errors, 'url', 'The url must not contain spaces or control characters.');
    return;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    addError(errors, 'url', 'The url must be a valid absolute URL.');
    return;
  }
  const schemes = rules.allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) {
    addError(
      errors,
      'url',
      'The url must use HTTPS. (For development, the operator can allow http:// with ALLOW_HTTP_TARGETS=true.)',
    );
    return;
  }
  if (url.username || url.password) {
    addError(errors, 'url', 'The url must not contain a username or password.');
  }
  const refusal = rules.policy.hostRefusal(url.hostname);
  if (refusal) {
    addError(
      errors,
      'url',
      `The url must not point to a private, loopback or link-local address (${refusal}). ` +
        '(For development, the operator can allow a range with ALLOWED_TARGET_CIDRS, e.g. 127.0.0.0/8.)',
    );
  }
}

/** De-duplicates in order of first appearance; reports unknown and unsubscribable types. */
export function normalizeEvents(events: string[], errors: FieldErrors): string[] {
  const unique = [...new Set(events)];
  const unknown = unique.filter((type) => !EVENT_TYPES.some((e) => e.type === type) && type !== ALL_EVENTS);
  if (unknown.length > 0) {
    addError(errors, 'events', `The events contain unknown event types: ${unknown.join(', ')}.`);
  }
  const unsubscribable = unique.filter((type) => !unknown.includes(type) && !isSubscribable(type));
  if (unsubscribable.length > 0) {
    addError(errors, 'events', `These event types cannot be subscribed to: ${unsubscribable.join(', ')}.`);
  }
  return unique;
}

export function checkHeaders(headers: Record<string, string>, errors: FieldErrors): void {
  const seen = new Set<string>();
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!HTTP_TOKEN.test(name)) {
      addError(errors, 'headers', `The header name "${name}" is not a valid HTTP header name.`);
    } else if (RESERVED_HEADERS.has(lower) || RESERVED_HEADER_PREFIXES.some((p) => lower.startsWith(p))) {
      addError(errors, 'headers', `The header "${name}" is set by the service and cannot be overridden.`);
    } else if (seen.has(lower)) {
      addError(errors, 'headers', `The header "${name}" is given more than once.`);
    }
    seen.add(lower);
    if (!HEADER_VALUE.test(value)) {
      addError(
        errors,
        'headers',
        `The value of header "${name}" must be printable ASCII, without line breaks or control characters.`,
      );
    }
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  if (bytes > HEADERS_MAX_BYTES) {
    addError(errors, 'headers', `The headers must not exceed ${HEADERS_MAX_BYTES} bytes in all.`);
  }
}

/** The fields a tenant may send, after the schema accepted their shape. */
export interface WebhookFields {
  url?: string;
  events?: string[];
  name?: string;
  is_active?: boolean;
  headers?: Record<string, string>;
  retry_count?: number;
  timeout_seconds?: number;
}

const isStringArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((e) => typeof e === 'string');
const isStringMap = (v: unknown): v is Record<string, string> =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  Object.values(v).every((e) => typeof e === 'string');

/**
 * Applies the rules to a create or update and returns the normalized fields with the errors.
 * Fields of the wrong type are left to the schema's messages, so that one answer lists all.
 */
export function checkWebhookFields(
  input: unknown,
  rules: TargetRules,
): { fields: WebhookFields; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { fields: {}, errors };
  const fields = { ...input } as WebhookFields & Record<string, unknown>;
  if (typeof fields.url === 'string') checkUrl(fields.url, rules, errors);
  if (isStringArray(fields.events)) fields.events = normalizeEvents(fields.events, errors);
  if (isStringMap(fields.headers)) checkHeaders(fields.headers, errors);
  return { fields, errors };
}

/** A webhook without a name is called by its URL's host. */
export function defaultName(url: string): string {
  return new URL(url).hostname.slice(0, NAME_MAX_LENGTH);
}

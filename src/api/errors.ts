import type { ErrorObject } from 'ajv';
import { addError, type FieldErrors } from '../domain/field-errors.js';
import { NO_NUL } from './schemas.js';

/** An error a client can act on: an HTTP status, a message, and per-field messages for 422. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly fieldErrors?: FieldErrors,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** A 404 that names what was not found: `notFound('Webhook', '42')` says `Webhook 42 not found.` */
export function notFound(kind: string, id: string): ApiError {
  const shown = id.length > 64 ? `${id.slice(0, 64)}...` : id;
  return new ApiError(404, `${kind} ${shown} not found.`);
}

/** A 404 for a tenant slug that names none: `Tenant 'acme' not found.` */
export const tenantNotFound = (slug: string) => notFound('Tenant', `'${slug}'`);

/** Path ids are positive integers; anything else names nothing, so it is a 404 naming the `kind`. */
export function parseId(raw: string, kind: string): number {
  const id = /^[1-9]\d{0,15}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(id)) throw notFound(kind, raw);
  return id;
}

/** The message for an `event` filter that names no type of the catalog. */
export const unknownEventType = (type: string) =>
  `Unknown event type: ${type}. GET /api/v1/webhooks/events lists the event types.`;

export const validationFailed = (errors: FieldErrors) => new ApiError(422, 'Validation failed', errors);

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  null: 'null',
};

function typeName(type: unknown): string {
  const types = Array.isArray(type) ? type : [type];
  return types.map((t) => TYPE_NAMES[String(t)] ?? String(t)).join(' or ');
}

/** `/events/2` -> `events.2`; the field an error is about. */
function fieldOf(error: ErrorObject): string {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (error.keyword === 'required') path.push(String(error.params.missingProperty));
  if (error.keyword === 'additionalProperties') path.push(String(error.params.additionalProperty));
  return path.join('.');
}

function messageOf(field: string, error: ErrorObject): string {
  const p = error.params as Record<string, unknown>;
  const label = field === '' ? 'request body' : field;
  switch (error.keyword) {
    case 'required':
      return `The ${label} field is required.`;
    case 'additionalProperties':
      return `The ${label} field is not allowed.`;
    case 'type':
      return field === ''
        ? `The request body must be ${typeName(p.type)}.`
        : `The ${label} must be ${typeName(p.type)}.`;
    case 'minimum':
      return `The ${label} must be at least ${p.limit}.`;
    case 'maximum':
      return `The ${label} must not be greater than ${p.limit}.`;
    case 'minLength':
      return p.limit === 1
        ? `The ${label} must not be empty.`
        : `The ${label} must be at least ${p.limit} characters.`;
    case 'maxLength':
      return `The ${label} must not be greater than ${p.limit} characters.`;
    case 'minItems':
      return `The ${label} must have at least ${p.limit} item${p.limit === 1 ? '' : 's'}.`;
    case 'maxItems':
      return `The ${label} must not have more than ${p.limit} items.`;
    case 'maxProperties':
      return `The ${label} must not have more than ${p.limit} entries.`;
    case 'uniqueItems':
      return `The ${label} must not contain duplicates.`;
    case 'enum':
      return `The ${label} must be one of: ${(p.allowedValues as unknown[]).join(', ')}.`;
    case 'pattern':
      return p.pattern === NO_NUL
        ? `The ${label} must not contain NUL characters.`
        : `The ${label} format is invalid.`;
    case 'format':
      return `The ${label} must be a valid ${p.format}.`;
    default:
      return `The ${label} is invalid.`;
  }
}

/** Schema validation errors -> readable messages per field (`body` for the body as a whole). */
export function fieldErrorsFromSchema(errors: ErrorObject[]): FieldErrors {
  const result: FieldErrors = {};
  for (const error of errors) {
    // anyOf/oneOf repeat what their branches said; the branch errors are enough.
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf' || error.keyword === 'if') continue;
    const field = fieldOf(error);
    const message = messageOf(field, error);
    addError(result, field === '' ? 'body' : field, message);
  }
  return result;
}

import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { VERSION } from '../version.js';
import { ErrorBody } from './schemas.js';

/**
 * The two OpenAPI documents: the public Webhooks API (`/api/v1/openapi.json`) and the operator
 * API (`/internal/v1/openapi.json`, behind the admin token). The routes' schemas make one
 * document of every route; it is split by path here, and each operation is given the answers
 * that every route of its kind can give (an error handler's 4xx and 5xx, the headers), by the
 * rules below rather than route by route, so that none is forgotten.
 */

type Json = Record<string, unknown>;
type Operation = {
  operationId?: string;
  parameters?: { in: string; required?: boolean; schema?: Json }[];
  requestBody?: { required?: boolean };
  responses: Record<string, Json>;
  security?: unknown[];
  'x-body-optional'?: boolean;
};
type Document = { paths: Record<string, Record<string, Operation>>; components: Json } & Json;

export type Surface = 'public' | 'operator';

const LICENSE = { name: 'MIT', url: 'https://opensource.org/licenses/MIT' };

/** What the error answers mean; the message of each says the details. */
const ERRORS: Record<string, string> = {
  400: 'Malformed JSON in the request body.',
  401: 'Not authenticated: no credentials, or ones that are unknown, revoked or expired (the message says which).',
  403: "The API key lacks the 'webhooks' scope, or the tenant is below the Business plan or lacks the 'webhooks' feature.",
  404: 'What the path names does not exist, or belongs to another tenant; the message names it.',
  405: 'The path does not take this method; `Allow` lists those it takes.',
  409: 'Conflict; the message says with what.',
  413: 'The request body is larger than the route takes; the message gives the limit.',
  415: 'The request has a body that is not JSON (`Content-Type: application/json`).',
  422: 'Validation failed: `errors` holds readable messages per field.',
  429: "The tenant's hourly request limit is used up; `Retry-After` says when to try again.",
  500: 'An internal error; the answer holds no details (the log does, under the request id).',
  503: 'The database does not answer or its storage is failing; `Retry-After` says when to try again.',
};

const integerHeader = (description: string, required = false) => ({
  description,
  required,
  schema: { type: 'integer' },
});
const REQUEST_ID = {
  description: 'The request id, also in `meta.request_id` and in every log line of the request.',
  required: true,
  schema: { type: 'string' },
};
const RATE_LIMIT_HEADERS = {
  'X-RateLimit-Limit': integerHeader("Requests per hour of the tenant's plan (absent when unlimited)."),
  'X-RateLimit-Remaining': integerHeader('Requests left in this hour.'),
  'X-RateLimit-Reset': integerHeader('When the hour ends (Unix time, seconds).'),
};

/** The options of `@fastify/swagger`: the document of every route, split by `apiDocument`. */
export const swaggerOptions: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: '3.1.0',
    info: { title: 'PlanDocket Webhooks', version: VERSION, license: LICENSE },
    components: {
      schemas: { Error: ErrorBody },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key as `Authorization: Bearer KEY` (recommended).',
        },
        apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key.' },
        apiKeyQuery: {
          type: 'apiKey',
          in: 'query',
          name: 'api_key',
          description: 'An API key in the URL: discouraged, URLs end up in logs.',
        },
        adminToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'The operator API: `Authorization: Bearer $ADMIN_TOKEN`.',
        },
      },
    },
  },
};

const SURFACES = {
  public: {
    prefix: '/api/',
    info: {
      title: 'PlanDocket Webhooks API',
      description:
        'Register HTTPS endpoints for PlanDocket events, watch their deliveries and send them again. ' +
        "Requires the Business plan or higher, the 'webhooks' feature flag and an API key with the " +
        "'webhooks' scope.",
    },
    security: [{ bearer: [] }, { apiKeyHeader: [] }, { apiKeyQuery: [] }],
    schemes: ['bearer', 'apiKeyHeader', 'apiKeyQuery'],
    tags: [
      { name: 'Webhooks', description: "A tenant's webhooks, their signing secrets and statistics." },
      { name: 'Deliveries', description: 'The delivery log, retries, recovery and test events.' },
      { name: 'Portal', description: 'Signing in to the portal with a one-time link.' },
    ],
  },
  operator: {
    prefix: '/internal/',
    info: {
      title: 'PlanDocket Webhooks operator API',
      description:
        'For the platform and its operators: tenants, API keys, publishing events, portal links, ' +
        "a tenant's delivery log and pruning. Every route takes the admin token as a Bearer token.",
    },
    security: [{ adminToken: [] }],
    schemes: ['adminToken'],
    tags: [
      { name: 'Tenants', description: 'Tenants, their plans, feature flags and API keys.' },
      {
        name: 'Events',
        description: 'Publishing events: each is fanned out to the webhooks subscribed to it.',
      },
      { name: 'Portal', description: 'One-time links that sign a tenant in to the portal.' },
      { name: 'Deliveries', description: "A tenant's delivery log, as the tenant sees it, and pruning." },
    ],
  },
} as const;

const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

function errorResponse(status: string, headers: Json): Json {
  return {
    description: ERRORS[status] ?? 'An error.',
    headers,
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  };
}

/** The answers every operation of its kind can give, beside those its route declares. */
function completeOperation(method: string, operation: Operation, surface: Surface): void {
  const authenticated = operation.security === undefined || operation.security.length > 0;
  const byTenantKey = surface === 'public' && authenticated;
  const parameters = operation.parameters ?? [];
  const statuses = ['405', '500', '503'];
  if (authenticated) statuses.push('401');
  if (byTenantKey) statuses.push('403', '429');
  if (BODY_METHODS.has(method)) statuses.push('400', '413', '415');
  if (operation.requestBody || parameters.some((p) => p.in === 'query')) statuses.push('422');
  if (parameters.some((p) => p.in === 'path')) statuses.push('404');

  const common: Json = { 'X-Request-Id': REQUEST_ID, ...(byTenantKey && RATE_LIMIT_HEADERS) };
  const retryAfter = integerHeader('Seconds to wait before trying again.', true);
  for (const status of statuses) {
    const declared = operation.responses[status];
    operation.responses[status] = declared
      ? { ...declared, description: ERRORS[status] ?? declared.description }
      : errorResponse(status, {});
  }
  for (const [status, response] of Object.entries(operation.responses)) {
    const headers: Json = { ...common };
    if (status === '429' || status === '503') headers['Retry-After'] = retryAfter;
    if (status === '405')
      headers.Allow = {
        description: 'The methods this path takes.',
        required: true,
        schema: { type: 'string' },
      };
    if (status === '201')
      headers.Location = { description: 'The URL of what was created.', schema: { type: 'string' } };
    const content = (response.content as Record<string, { schema?: Json }> | undefined)?.['application/json'];
    // Errors are one schema, given once.
    if (Number(status) >= 400 && content) content.schema = { $ref: '#/components/schemas/Error' };
    response.headers = { ...(response.headers as Json | undefined), ...headers };
  }

  // A query parameter with a default need not be sent; a body that defaults to `{}` either.
  for (const parameter of parameters) {
    if (parameter.in === 'query' && parameter.schema && 'default' in parameter.schema)
      parameter.required = false;
  }
  if (operation['x-body-optional'] && operation.requestBody) operation.requestBody.required = false;
  delete operation['x-body-optional'];
}

/** One surface's document, from the document of every route; `servers` is added per request. */
export function apiDocument(all: object, surface: Surface): Json {
  const spec = SURFACES[surface];
  const doc = structuredClone(all) as Document;
  doc.paths = Object.fromEntries(Object.entries(doc.paths).filter(([path]) => path.startsWith(spec.prefix)));
  for (const operations of Object.values(doc.paths)) {
    for (const [method, operation] of Object.entries(operations))
      completeOperation(method, operation, surface);
  }
  const schemes = doc.components.securitySchemes as Json;
  return {
    ...doc,
    info: { ...(doc.info as Json), ...spec.info },
    security: spec.security,
    tags: spec.tags,
    components: {
      ...doc.components,
      securitySchemes: Object.fromEntries(spec.schemes.map((name) => [name, schemes[name]])),
    },
  };
}

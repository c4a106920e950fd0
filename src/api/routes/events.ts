import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../../config.js';
import { ALL_EVENTS, isOperational, isSubscribable } from '../../domain/events.js';
import type { FieldErrors } from '../../domain/field-errors.js';
import { isSlug } from '../../domain/slug.js';
import type { Store } from '../../store/db.js';
import { type NewEvent, publishEvents } from '../../store/events.js';
import { findTenantBySlug, type Tenant } from '../../store/tenants.js';
import { operatorAuth } from '../auth.js';
import { ApiError, fieldErrorsFromSchema, validationFailed } from '../errors.js';
import { meta } from '../present.js';
import { ErrorBody, envelope, MapOf, Text } from '../schemas.js';
import { validators } from '../validators.js';

/** An event's `data` may take this much JSON; a publish body a little more. */
export const EVENT_DATA_LIMIT = 256 * 1024;
export const BATCH_LIMIT = 1000;
/** A batch's body may take this much: many events, not a thousand of the largest. */
export const BATCH_BODY_LIMIT = 32 * 1024 * 1024;

const EventInput = Type.Object(
  {
    tenant: Type.String({ minLength: 1, maxLength: 63 }),
    type: Type.String({ minLength: 1, maxLength: 255 }),
    data: MapOf(Type.Unknown(), { description: 'Any JSON object.' }),
    id: Type.Optional(
      Text({ minLength: 1, maxLength: 255, description: 'Your id: publishing it again is a no-op.' }),
    ),
  },
  { additionalProperties: false },
);
type EventInputType = { tenant: string; type: string; data: object; id?: string };

/** A batch's events, each checked on its own (as the route's body is) so that one bad event does not refuse the others. */
const validEvent = validators().body.compile<EventInputType>(EventInput);

const Published = Type.Object(
  { id: Type.String(), deliveries: Type.Integer() },
  { description: 'Published (or published before with this `id`): the event and its deliveries queued.' },
);
const BatchItem = Type.Union([
  Published,
  Type.Object(
    {
      status: Type.Integer(),
      error: Type.String(),
      errors: Type.Optional(MapOf(Type.Array(Type.String()))),
    },
    {
      description:
        'Refused, with the status the event alone would get: 404 unknown tenant, 413 data too large, ' +
        '422 invalid (`errors` per field, as `POST /internal/v1/events` says them).',
    },
  ),
]);

type Problem = { status: number; error: string; errors?: FieldErrors };

/** A batch item's shape, checked as `POST /internal/v1/events` checks its body. */
function shapeProblem(item: unknown): Problem | undefined {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { status: 422, error: 'Validation failed', errors: { event: ['The event must be an object.'] } };
  }
  if (validEvent(item)) return undefined;
  return { status: 422, error: 'Validation failed', errors: fieldErrorsFromSchema(validEvent.errors ?? []) };
}

/** The platform's publish API: events in, deliveries queued. Behind the operator token. */
export function eventRoutes(config: Config, store: Store): FastifyPluginAsyncTypebox {
  /** Checks what the schema cannot: the tenant exists, the type is in the catalog, the size. */
  async function resolve(
    input: EventInputType,
    tenants: Map<string, Tenant | undefined>,
  ): Promise<NewEvent | Problem> {
    if (!tenants.has(input.tenant)) {
      tenants.set(
        input.tenant,
        isSlug(input.tenant) ? await findTenantBySlug(store, input.tenant) : undefined,
      );
    }
    const tenant = tenants.get(input.tenant);
    if (!tenant) return { status: 404, error: `Tenant not found: ${input.tenant}` };
    // Publishable are the subscribable types; `*` is only a subscription.
    if (input.type === ALL_EVENTS || !isSubscribable(input.type)) {
      return {
        status: 422,
        error: 'Validation failed',
        errors: { type: [`Unknown event type: ${input.type}.`] },
      };
    }
    if (isOperational(input.type)) {
      return {
        status: 422,
        error: 'Validation failed',
        errors: { type: [`${input.type} is published by the service itself.`] },
      };
    }
    if (Buffer.byteLength(JSON.stringify(input.data)) > EVENT_DATA_LIMIT) {
      return { status: 413, error: `The event data is larger than ${EVENT_DATA_LIMIT} bytes.` };
    }
    return {
      tenantId: tenant.id,
      tenantSlug: tenant.slug,
      type: input.type,
      data: input.data as Record<string, unknown>,
      clientId: input.id,
    };
  }

  return async (app) => {
    app.addHook('onRequest', operatorAuth(config));
    const schema = { hide: true, tags: ['Operators'] };

    app.post(
      '/internal/v1/events',
      {
        bodyLimit: EVENT_DATA_LIMIT,
        schema: {
          ...schema,
          body: EventInput,
          response: { 202: envelope(Published), 404: ErrorBody, 413: ErrorBody, 422: ErrorBody },
        },
      },
      async (request, reply) => {
        const event = await resolve(request.body, new Map());
        if ('status' in event) {
          if (event.errors) throw validationFailed(event.errors);
          throw new ApiError(event.status, event.error);
        }
        const [published] = await publishEvents(store, [event]);
        reply.code(202);
        return {
          data: { id: published?.id as string, deliveries: published?.deliveries ?? 0 },
          meta: meta(request),
        };
      },
    );

    app.post(
      '/internal/v1/events/batch',
      {
        bodyLimit: BATCH_BODY_LIMIT,
        schema: {
          ...schema,
          description:
            'Publishes up to 1,000 events in one transaction and answers per event, in order: each ' +
            'event is checked on its own (as `POST /internal/v1/events` checks one) and the valid ones ' +
            'are published even when others are refused. A body that is not `{"events": [...]}` with ' +
            '1 to 1,000 items is refused as a whole (422).',
          body: Type.Object(
            {
              events: Type.Array(
                Type.Unknown({
                  description:
                    'An event as `POST /internal/v1/events` takes it: `{"tenant", "type", "data", "id"?}`. ' +
                    'An invalid one is answered in its place.',
                }),
                { minItems: 1, maxItems: BATCH_LIMIT },
              ),
            },
            { additionalProperties: false },
          ),
          response: { 202: envelope(Type.Array(BatchItem)), 413: ErrorBody, 422: ErrorBody },
        },
      },
      async (request, reply) => {
        const tenants = new Map<string, Tenant | undefined>();
        const resolved: (NewEvent | Problem)[] = [];
        for (const input of request.body.events) {
          const problem = shapeProblem(input);
          resolved.push(problem ?? (await resolve(input as EventInputType, tenants)));
        }
        const valid = resolved.filter((r): r is NewEvent => !('status' in r));
        const published = valid.length > 0 ? await publishEvents(store, valid) : [];
        let next = 0;
        const data = resolved.map((r) => {
          if ('status' in r) return r;
          const p = published[next++];
          return { id: p?.id as string, deliveries: p?.deliveries ?? 0 };
        });
        reply.code(202);
        return { data, meta: meta(request) };
      },
    );
  };
}

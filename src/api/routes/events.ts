import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from 'typebox';
import type { Config } from '../../config.js';
import { ALL_EVENTS, isOperational, isSubscribable } from '../../domain/events.js';
import type { FieldErrors } from '../../domain/field-errors.js';
import { isSlug } from '../../domain/slug.js';
import type { Store } from '../../store/db.js';
import { type NewEvent, type PublishedEvent, publishEvents } from '../../store/events.js';
import { findTenantBySlug, type Tenant } from '../../store/tenants.js';
import { operatorAuth } from '../auth.js';
import { ApiError, fieldErrorsFromSchema, tenantNotFound, validationFailed } from '../errors.js';
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
  {
    additionalProperties: false,
    examples: [
      {
        tenant: 'acme',
        type: 'invoice.paid',
        data: { invoice_id: 4711, amount: '120.00' },
        id: 'inv-4711-paid',
      },
    ],
  },
);
type EventInputType = { tenant: string; type: string; data: object; id?: string };

/** A batch's events, each checked on its own (as the route's body is) so that one bad event does not refuse the others. */
const validEvent = validators().body.compile<EventInputType>(EventInput);

const Published = Type.Object(
  {
    id: Type.String({ description: "The event's id: the payload's `id`, sent as `webhook-id`." }),
    deliveries: Type.Integer({ description: 'Deliveries queued for it: one per webhook subscribed.' }),
    duplicate: Type.Boolean({
      description:
        'True when an event with this `id` was published before: nothing new was queued, and `id` and ' +
        '`deliveries` are those of the first.',
    }),
  },
  {
    description: 'Published, or published before with this `id`.',
    examples: [{ id: 'evt_01JDZ8X7V4K2M9Q3R5T6W8Y0AB', deliveries: 2, duplicate: false }],
  },
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
        'Refused, with the status the event alone would get: 404 unknown tenant, 409 its `id` was ' +
        'published before with another type, 413 data too large, 422 invalid (`errors` per field, as ' +
        '`POST /internal/v1/events` says them).',
    },
  ),
]);

type Problem = { status: number; error: string; errors?: FieldErrors };

/**
 * What a publish answers for one event: it, or a conflict when its `id` names an event of another
 * type (an id names one event; sending another under it is a mistake to report, not to drop).
 */
function answer(input: NewEvent, published: PublishedEvent): Problem | Static<typeof Published> {
  if (!published.created && published.type !== input.type) {
    return {
      status: 409,
      error: `The event id '${input.clientId}' was published before as ${published.type}; an id names one event.`,
    };
  }
  return { id: published.id, deliveries: published.deliveries, duplicate: !published.created };
}

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
    if (!tenant) return { status: 404, error: tenantNotFound(input.tenant).message };
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
    const tags = ['Events'];

    app.post(
      '/internal/v1/events',
      {
        bodyLimit: EVENT_DATA_LIMIT,
        schema: {
          tags,
          operationId: 'publishEvent',
          summary: 'Publish an event',
          body: EventInput,
          response: {
            200: { ...envelope(Published), description: 'Published before with this `id`: nothing queued.' },
            202: { ...envelope(Published), description: 'Published: its deliveries are queued.' },
            404: ErrorBody,
            409: ErrorBody,
          },
        },
      },
      async (request, reply) => {
        const event = await resolve(request.body, new Map());
        if ('status' in event) {
          if (event.errors) throw validationFailed(event.errors);
          throw new ApiError(event.status, event.error);
        }
        const [published] = await publishEvents(store, [event]);
        const data = answer(event, published as PublishedEvent);
        if ('status' in data) throw new ApiError(data.status, data.error);
        // 202: queued for delivery; 200: known already, nothing queued.
        reply.code(data.duplicate ? 200 : 202);
        return { data, meta: meta(request) };
      },
    );

    app.post(
      '/internal/v1/events/batch',
      {
        bodyLimit: BATCH_BODY_LIMIT,
        schema: {
          tags,
          operationId: 'publishEvents',
          summary: 'Publish up to 1,000 events',
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
          response: { 202: envelope(Type.Array(BatchItem)) },
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
        const data = resolved.map((r) =>
          'status' in r ? r : answer(r, published[next++] as PublishedEvent),
        );
        reply.code(202);
        return { data, meta: meta(request) };
      },
    );
  };
}

import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { type TProperties, Type } from 'typebox';
import type { Config } from '../../config.js';
import { isEventType } from '../../domain/events.js';
import { addError, type FieldErrors } from '../../domain/field-errors.js';
import type { DeliveryStatus } from '../../domain/outcome.js';
import { DAY_MS } from '../../domain/retry-schedule.js';
import type { Store } from '../../store/db.js';
import {
  findDelivery,
  listDeliveries,
  queueMissedEvents,
  queueTestDelivery,
  type RecoverProgress,
  recoverFailedDeliveries,
  retryDelivery,
} from '../../store/delivery-log.js';
import { pruneOldDeliveries } from '../../store/retention.js';
import type { Tenant } from '../../store/tenants.js';
import { findWebhook, type Webhook } from '../../store/webhooks.js';
import { operatorAuth, tenantAuth } from '../auth.js';
import { ApiError, notFound, parseId, unknownEventType, validationFailed } from '../errors.js';
import { meta, presentDelivery, presentDeliveryDetail } from '../present.js';
import {
  Delivery,
  DeliveryDetail,
  DeliveryList,
  ErrorBody,
  envelope,
  ListDeliveriesQuery,
  Pruned,
  RecoverBody,
  Recovered,
} from '../schemas.js';
import { tenantOr404 } from './tenants.js';

/** How far back a recovery may reach. */
export const RECOVER_MAX_DAYS = 14;
const DELIVERY_ID = /^dlv_[0-9A-HJKMNP-TV-Z]{26}$/;

export interface DeliveryRouteOptions {
  /** Told how a recovery advances (the command line draws a progress bar with it). */
  onRecoverProgress?: (progress: RecoverProgress) => void;
}

/** The cursor is the last delivery id of a page, opaque to clients. */
export const encodeCursor = (deliveryId: string) => Buffer.from(deliveryId).toString('base64url');
function decodeCursor(cursor: string): string | undefined {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  return DELIVERY_ID.test(id) && encodeCursor(id) === cursor ? id : undefined;
}

/** An RFC 3339 time that the schema let through, as milliseconds; undefined if it names no instant. */
function instant(value: string | undefined, field: string, problems: FieldErrors): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) addError(problems, field, `The ${field} must be a valid date-time.`);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Where the delivery routes are mounted: for tenants under their webhooks (API key, scope
 * `webhooks`, rate limits), and for operators under a tenant's slug (admin token). The handlers
 * are the same; only how the tenant is found differs.
 */
interface Surface {
  prefix: string;
  params: TProperties;
  /** The operations' ids: `listDeliveries` for tenants, `listTenantDeliveries` for operators. */
  operationId: (verb: string, noun: string) => string;
  authenticate: (request: FastifyRequest) => Promise<void>;
  tenant: (request: FastifyRequest) => Promise<Tenant>;
}

/** The delivery log and what tenants do with it; and pruning for operators. */
export function deliveryRoutes(
  config: Config,
  store: Store,
  options: DeliveryRouteOptions = {},
): FastifyPluginAsyncTypebox {
  const surfaces: Surface[] = [
    {
      prefix: '/api/v1/webhooks/:id',
      params: {},
      operationId: (verb, noun) => `${verb}${noun}`,
      authenticate: tenantAuth(config, store, 'webhooks') as Surface['authenticate'],
      tenant: async (request) => request.tenant,
    },
    {
      prefix: '/internal/v1/tenants/:slug/webhooks/:id',
      params: { slug: Type.String() },
      operationId: (verb, noun) => `${verb}Tenant${noun}`,
      authenticate: operatorAuth(config),
      tenant: (request) => tenantOr404(store, (request.params as { slug: string }).slug),
    },
  ];

  return async (app) => {
    for (const surface of surfaces) {
      await app.register(async (plain) => {
        const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
        scope.addHook('onRequest', surface.authenticate);
        const webhookParams = Type.Object({ ...surface.params, id: Type.String() });
        const deliveryParams = Type.Object({
          ...surface.params,
          id: Type.String(),
          delivery_id: Type.String(),
        });
        const tags = ['Deliveries'];
        const id = surface.operationId;

        /** The tenant and its live webhook named in the URL; another tenant's is a 404. */
        const webhookOf = async (request: FastifyRequest): Promise<{ tenant: Tenant; webhook: Webhook }> => {
          const tenant = await surface.tenant(request);
          const rawId = (request.params as { id: string }).id;
          const webhook = await findWebhook(store, tenant.id, parseId(rawId, 'Webhook'));
          if (!webhook) throw notFound('Webhook', rawId);
          return { tenant, webhook };
        };
        const deliveryIdOf = (request: FastifyRequest): string => {
          const id = (request.params as { delivery_id: string }).delivery_id;
          if (!DELIVERY_ID.test(id)) throw notFound('Delivery', id);
          return id;
        };

        scope.get(
          `${surface.prefix}/deliveries`,
          {
            schema: {
              tags,
              operationId: id('list', 'Deliveries'),
              summary: "List a webhook's deliveries, newest first",
              description:
                'The delivery log. `status=failed` lists the failed deliveries. Pages are ' +
                'stable while new deliveries arrive: pass `meta.next_cursor` as `cursor`.',
              params: webhookParams,
              querystring: ListDeliveriesQuery,
              response: { 200: DeliveryList },
            },
          },
          async (request) => {
            const { tenant, webhook } = await webhookOf(request);
            const query = request.query;
            const problems: FieldErrors = {};
            const before = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
            if (query.cursor !== undefined && before === undefined) {
              addError(
                problems,
                'cursor',
                'The cursor is invalid: pass meta.next_cursor of the previous page.',
              );
            }
            if (query.event !== undefined && !isEventType(query.event)) {
              addError(problems, 'event', unknownEventType(query.event));
            }
            const since = instant(query.since, 'since', problems);
            const until = instant(query.until, 'until', problems);
            if (since !== undefined && until !== undefined && until < since) {
              addError(problems, 'until', 'The until must not be before since.');
            }
            if (Object.keys(problems).length > 0) throw validationFailed(problems);
            const { deliveries, more } = await listDeliveries(
              store,
              tenant.id,
              webhook.id,
              {
                status: query.status as DeliveryStatus | undefined,
                eventType: query.event,
                since,
                until,
                before,
              },
              query.limit,
            );
            const last = deliveries[deliveries.length - 1];
            return {
              data: deliveries.map(presentDelivery),
              meta: meta(request, {
                limit: query.limit,
                next_cursor: more && last ? encodeCursor(last.id) : null,
              }),
            };
          },
        );

        scope.get(
          `${surface.prefix}/deliveries/:delivery_id`,
          {
            schema: {
              tags,
              operationId: id('get', 'Delivery'),
              summary: 'Show one delivery: the exact body sent and every attempt',
              params: deliveryParams,
              response: { 200: envelope(DeliveryDetail) },
            },
          },
          async (request) => {
            const { tenant, webhook } = await webhookOf(request);
            const deliveryId = deliveryIdOf(request);
            const found = await findDelivery(store, tenant.id, webhook.id, deliveryId);
            if (!found) throw notFound('Delivery', deliveryId);
            return {
              data: presentDeliveryDetail(found.delivery, found.payload, found.attempts),
              meta: meta(request),
            };
          },
        );

        scope.post(
          `${surface.prefix}/deliveries/:delivery_id/retry`,
          {
            schema: {
              tags,
              operationId: id('retry', 'Delivery'),
              summary: 'Deliver again now',
              description:
                'A new attempt on the same delivery, also for succeeded ones. An attempt asked for ' +
                'by hand is sent even while the webhook is paused and is not retried automatically. ' +
                'A pending delivery waiting for its next retry is sent now. 409 while a worker is ' +
                'sending it.',
              params: deliveryParams,
              response: { 202: envelope(Delivery), 409: ErrorBody },
            },
          },
          async (request, reply) => {
            const { tenant, webhook } = await webhookOf(request);
            const deliveryId = deliveryIdOf(request);
            const result = await retryDelivery(store, tenant.id, webhook.id, deliveryId);
            if (result === undefined) throw notFound('Delivery', deliveryId);
            if (result === 'in_flight') {
              throw new ApiError(
                409,
                'This delivery is being sent right now; its outcome will be in the delivery log shortly.',
              );
            }
            reply.code(202);
            return { data: presentDelivery(result), meta: meta(request) };
          },
        );

        scope.post(
          `${surface.prefix}/recover`,
          {
            schema: {
              tags,
              operationId: id('recover', 'Deliveries'),
              summary: 'Queue again every failed delivery of a time window, and the events missed',
              description:
                `\`since\` at most ${RECOVER_MAX_DAYS} days ago; \`until\` defaults to now. Each is one ` +
                'attempt by hand, sent even while the webhook is paused. With `missing: true`, the ' +
                'events of the window that the webhook missed while it was paused or switched off ' +
                'are sent too, once each: a second recovery finds they have a delivery.',
              params: webhookParams,
              body: RecoverBody,
              response: { 202: envelope(Recovered) },
            },
          },
          async (request, reply) => {
            const { tenant, webhook } = await webhookOf(request);
            const now = Date.now();
            const problems: FieldErrors = {};
            const since = instant(request.body.since, 'since', problems);
            const until = instant(request.body.until, 'until', problems) ?? now;
            if (since !== undefined && since < now - RECOVER_MAX_DAYS * DAY_MS) {
              addError(problems, 'since', `The since must be within the last ${RECOVER_MAX_DAYS} days.`);
            }
            if (since !== undefined && until < since) {
              addError(problems, 'until', 'The until must not be before since.');
            }
            if (since === undefined || Object.keys(problems).length > 0) throw validationFailed(problems);
            const window = { since, until: Math.min(until, now) };
            const failed = await recoverFailedDeliveries(
              store,
              tenant.id,
              webhook.id,
              window,
              options.onRecoverProgress,
            );
            const missing = request.body.missing
              ? await queueMissedEvents(store, tenant.id, webhook, window, options.onRecoverProgress)
              : 0;
            reply.code(202);
            return { data: { queued: failed + missing, failed, missing }, meta: meta(request) };
          },
        );

        scope.post(
          `${surface.prefix}/test`,
          {
            schema: {
              tags,
              operationId: id('send', 'TestEvent'),
              summary: 'Send a test event',
              description:
                'Sends a `webhook.test` event to this webhook only, also while it is paused; ' +
                'marked `is_test` in the delivery log.',
              params: webhookParams,
              response: { 202: envelope(Delivery) },
            },
          },
          async (request, reply) => {
            const { tenant, webhook } = await webhookOf(request);
            const delivery = await queueTestDelivery(store, tenant, webhook.id);
            reply.code(202);
            return { data: presentDelivery(delivery), meta: meta(request) };
          },
        );
      });
    }

    await app.register(async (scope) => {
      scope.addHook('onRequest', operatorAuth(config));
      scope.post(
        '/internal/v1/prune',
        {
          schema: {
            tags: ['Deliveries'],
            operationId: 'prune',
            summary: 'Delete finished deliveries and events older than RETENTION_DAYS now',
            response: { 200: envelope(Pruned) },
          },
        },
        async (request) => {
          const pruned = await pruneOldDeliveries(store, Date.now() - config.retentionDays * DAY_MS);
          return { data: pruned, meta: meta(request) };
        },
      );
    });
  };
}

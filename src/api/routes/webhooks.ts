import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ErrorObject } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Config } from '../../config.js';
import { AddressPolicy } from '../../domain/address-policy.js';
import { EVENT_TYPES, isEventType, isSubscribable } from '../../domain/events.js';
import { mergeErrors } from '../../domain/field-errors.js';
import { encryptSecret, generateWebhookSecret } from '../../domain/secrets.js';
import { statsBuckets } from '../../domain/stats.js';
import {
  checkWebhookFields,
  defaultName,
  GRACE_PERIOD_SECONDS,
  RETRY_COUNT,
  type TargetRules,
  TIMEOUT_SECONDS,
  type WebhookFields,
} from '../../domain/webhook-rules.js';
import type { Store } from '../../store/db.js';
import { webhookStats } from '../../store/stats.js';
import { wakeWorkers } from '../../store/wakeups.js';
import {
  createWebhook,
  deleteWebhook,
  findWebhook,
  listWebhooks,
  rotateWebhookSecret,
  updateWebhook,
  WebhookLimitReached,
  type Webhook as WebhookRecord,
} from '../../store/webhooks.js';
import { tenantAuth } from '../auth.js';
import { fieldErrorsFromSchema, notFound, parseId, unknownEventType, validationFailed } from '../errors.js';
import { meta, presentStats, presentWebhook } from '../present.js';
import {
  CreateWebhookBody,
  EventType,
  envelope,
  IdParams,
  ListWebhooksQuery,
  RotateSecretBody,
  StatsQuery,
  UpdateWebhookBody,
  Webhook,
  WebhookList,
  WebhookStats as WebhookStatsSchema,
  WebhookWithSecret,
} from '../schemas.js';

/** The public Webhooks API: `/api/v1/webhooks`. */
export function webhookRoutes(config: Config, store: Store): FastifyPluginAsyncTypebox {
  const rules: TargetRules = {
    policy: new AddressPolicy(config.allowedTargetCidrs),
    allowHttp: config.allowHttpTargets,
  };

  /** Schema errors and the webhook rules' errors together, so that one 422 lists every problem. */
  function checked(request: FastifyRequest): WebhookFields {
    const { fields, errors: ruleErrors } = checkWebhookFields(request.body, rules);
    const schemaErrors = request.validationError
      ? fieldErrorsFromSchema(request.validationError.validation as ErrorObject[])
      : {};
    const all = mergeErrors(schemaErrors, ruleErrors);
    if (Object.keys(all).length > 0) throw validationFailed(all);
    return fields;
  }

  async function found(tenantId: number, rawId: string): Promise<WebhookRecord> {
    const webhook = await findWebhook(store, tenantId, parseId(rawId, 'Webhook'));
    if (!webhook) throw notFound('Webhook', rawId);
    return webhook;
  }

  return async (app) => {
    app.addHook('onRequest', tenantAuth(config, store, 'webhooks'));
    const tags = ['Webhooks'];

    app.get(
      '/api/v1/webhooks',
      {
        schema: {
          tags,
          operationId: 'listWebhooks',
          summary: 'List all webhooks',
          querystring: ListWebhooksQuery,
          response: { 200: WebhookList },
        },
      },
      async (request) => {
        const { page, per_page, is_active, health, event } = request.query;
        if (event !== undefined && !isSubscribable(event)) {
          throw validationFailed({
            event: [
              isEventType(event)
                ? `No webhook receives ${event}: it cannot be subscribed to.`
                : unknownEventType(event),
            ],
          });
        }
        const { webhooks, total } = await listWebhooks(
          store,
          request.tenant.id,
          {
            ...(is_active !== undefined && { is_active }),
            ...(health !== undefined && { health }),
            ...(event !== undefined && { event }),
          },
          { offset: (page - 1) * per_page, limit: per_page },
        );
        return {
          data: webhooks.map((w) => presentWebhook(w)),
          meta: meta(request, { page, per_page, total, total_pages: Math.ceil(total / per_page) }),
        };
      },
    );

    app.get(
      '/api/v1/webhooks/events',
      {
        schema: {
          tags,
          operationId: 'listEventTypes',
          summary: 'List available event types',
          response: { 200: envelope(Type.Array(EventType)) },
        },
      },
      async (request) => ({ data: EVENT_TYPES, meta: meta(request) }),
    );

    app.get(
      '/api/v1/webhooks/:id',
      {
        schema: {
          tags,
          operationId: 'getWebhook',
          summary: 'Retrieve a single webhook',
          params: IdParams,
          response: { 200: envelope(WebhookWithSecret) },
        },
      },
      async (request) => ({
        data: presentWebhook(await found(request.tenant.id, request.params.id), config.secretsKey),
        meta: meta(request),
      }),
    );

    app.post(
      '/api/v1/webhooks',
      {
        attachValidation: true,
        schema: {
          tags,
          operationId: 'createWebhook',
          summary: 'Create a new webhook',
          body: CreateWebhookBody,
          response: { 201: envelope(WebhookWithSecret) },
        },
      },
      async (request, reply) => {
        const fields = checked(request);
        const url = fields.url as string;
        const limit = request.tenant.max_webhooks ?? config.maxWebhooksPerTenant;
        const webhook = await createWebhook(
          store,
          request.tenant.id,
          {
            url,
            events: fields.events as string[],
            name: fields.name ?? defaultName(url),
            is_active: fields.is_active ?? true,
            headers: fields.headers ?? {},
            retry_count: fields.retry_count ?? RETRY_COUNT.default,
            timeout_seconds: fields.timeout_seconds ?? TIMEOUT_SECONDS.default,
            secret_ciphertext: encryptSecret(config.secretsKey, generateWebhookSecret()),
          },
          limit,
        ).catch((error: unknown) => {
          if (!(error instanceof WebhookLimitReached)) throw error;
          throw validationFailed({
            url: [
              `This account has reached its limit of ${error.limit} webhooks. Delete one you no longer use, or ask us to raise the limit.`,
            ],
          });
        });
        reply.code(201).header('Location', `/api/v1/webhooks/${webhook.id}`);
        return { data: presentWebhook(webhook, config.secretsKey), meta: meta(request) };
      },
    );

    app.patch(
      '/api/v1/webhooks/:id',
      {
        attachValidation: true,
        schema: {
          tags,
          operationId: 'updateWebhook',
          summary: 'Update a webhook',
          params: IdParams,
          body: UpdateWebhookBody,
          response: { 200: envelope(Webhook) },
        },
      },
      async (request) => {
        const id = parseId(request.params.id, 'Webhook');
        const fields = checked(request);
        const webhook = await updateWebhook(store, request.tenant.id, id, fields);
        if (!webhook) throw notFound('Webhook', request.params.id);
        // Switched on again: its held deliveries may be due now.
        if (fields.is_active === true) await wakeWorkers(store);
        return { data: presentWebhook(webhook), meta: meta(request) };
      },
    );

    app.post(
      '/api/v1/webhooks/:id/rotate-secret',
      {
        // No body at all means the defaults.
        preValidation: async (request) => {
          request.body ??= {};
        },
        schema: {
          tags,
          operationId: 'rotateWebhookSecret',
          'x-body-optional': true,
          summary: "Rotate a webhook's signing secret",
          description:
            'Returns the webhook with its new secret. During the grace period every delivery is ' +
            'signed with both secrets: `webhook-signature` carries both signatures, ' +
            '`X-Webhook-Signature` the new one and `X-Webhook-Signature-Previous` the old one. ' +
            'Rotating again during a grace period replaces the previous secret (only one is kept).',
          params: IdParams,
          body: RotateSecretBody,
          response: { 200: envelope(WebhookWithSecret) },
        },
      },
      async (request) => {
        const id = parseId(request.params.id, 'Webhook');
        const grace = request.body.grace_period_seconds ?? GRACE_PERIOD_SECONDS.default;
        const webhook = await rotateWebhookSecret(store, request.tenant.id, id, {
          secretCiphertext: encryptSecret(config.secretsKey, generateWebhookSecret()),
          graceMs: grace * 1000,
        });
        if (!webhook) throw notFound('Webhook', request.params.id);
        return { data: presentWebhook(webhook, config.secretsKey), meta: meta(request) };
      },
    );

    app.get(
      '/api/v1/webhooks/:id/stats',
      {
        schema: {
          tags,
          operationId: 'getWebhookStats',
          summary: "A webhook's delivery statistics",
          description:
            'Deliveries created in the window, each counted once by its current status (a delivery ' +
            'retried by hand or recovered is not counted again), in total (`counts`) and per hour ' +
            '(24h) or day (7d, 30d) of creation (`series`, whose sums are `counts`); and per hour ' +
            'or day, the attempts started and their median and 95th percentile duration.',
          params: IdParams,
          querystring: StatsQuery,
          response: { 200: envelope(WebhookStatsSchema) },
        },
      },
      async (request) => {
        const webhook = await found(request.tenant.id, request.params.id);
        const now = Date.now();
        const buckets = statsBuckets(request.query.window, now);
        const stats = await webhookStats(store, webhook.id, buckets);
        return { data: presentStats(request.query.window, buckets, now, stats), meta: meta(request) };
      },
    );

    app.delete(
      '/api/v1/webhooks/:id',
      {
        schema: {
          tags,
          operationId: 'deleteWebhook',
          summary: 'Delete a webhook',
          params: IdParams,
          response: { 204: Type.Null() },
        },
      },
      async (request, reply) => {
        const id = parseId(request.params.id, 'Webhook');
        if (!(await deleteWebhook(store, request.tenant.id, id)))
          throw notFound('Webhook', request.params.id);
        return reply.code(204).send(null);
      },
    );
  };
}

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../../config.js';
import { isMailAddress } from '../../domain/mail-address.js';
import { apiKeyPrefix, generateApiKey, hashApiKey } from '../../domain/secrets.js';
import { isSlug } from '../../domain/slug.js';
import type { Store } from '../../store/db.js';
import {
  createApiKey,
  createTenant,
  findTenantBySlug,
  listApiKeys,
  revokeApiKey,
  type Tenant as TenantRecord,
  updateTenant,
} from '../../store/tenants.js';
import { operatorAuth } from '../auth.js';
import { notFound, parseId, tenantNotFound, validationFailed } from '../errors.js';
import { iso, meta, presentTenant } from '../present.js';
import {
  CreateApiKeyBody,
  CreatedApiKey,
  CreateTenantBody,
  envelope,
  KeyParams,
  SlugParams,
  Tenant,
  UpdateTenantBody,
} from '../schemas.js';

const dedupe = (list: string[]) => [...new Set(list)];

/** A 422 on notification_email when it is given and is not an address (null clears it). */
function checkNotificationEmail(value: string | null | undefined): void {
  if (typeof value === 'string' && !isMailAddress(value)) {
    throw validationFailed({
      notification_email: ['The notification_email must be an e-mail address such as ops@example.com.'],
    });
  }
}

/** The tenant named in an operator URL; a 404 when there is none. */
export async function tenantOr404(store: Store, slug: string): Promise<TenantRecord> {
  const tenant = isSlug(slug) ? await findTenantBySlug(store, slug) : undefined;
  if (!tenant) throw tenantNotFound(slug);
  return tenant;
}

/** The operator API: tenants and their API keys, behind the admin token. Not in the public docs. */
export function tenantRoutes(config: Config, store: Store): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.addHook('onRequest', operatorAuth(config));
    const tags = ['Tenants'];

    app.post(
      '/internal/v1/tenants',
      {
        schema: {
          tags,
          operationId: 'createTenant',
          summary: 'Create a tenant',
          body: CreateTenantBody,
          response: { 201: envelope(Tenant) },
        },
      },
      async (request, reply) => {
        const { features = [], ...rest } = request.body;
        checkNotificationEmail(rest.notification_email);
        const tenant = await createTenant(store, { ...rest, features: dedupe(features) });
        if (!tenant) throw validationFailed({ slug: ['The slug has already been taken.'] });
        reply.code(201).header('Location', `/internal/v1/tenants/${tenant.slug}`);
        return { data: presentTenant(tenant, config.maxWebhooksPerTenant), meta: meta(request) };
      },
    );

    app.get(
      '/internal/v1/tenants/:slug',
      {
        schema: {
          tags,
          operationId: 'getTenant',
          summary: 'Retrieve a tenant, with its live API keys',
          params: SlugParams,
          response: { 200: envelope(Tenant) },
        },
      },
      async (request) => {
        const tenant = await tenantOr404(store, request.params.slug);
        return {
          data: presentTenant(tenant, config.maxWebhooksPerTenant, await listApiKeys(store, tenant.id)),
          meta: meta(request),
        };
      },
    );

    app.patch(
      '/internal/v1/tenants/:slug',
      {
        schema: {
          tags,
          operationId: 'updateTenant',
          summary: "Change a tenant's name, plan, feature flags, webhook limit or notification address",
          params: SlugParams,
          body: UpdateTenantBody,
          response: { 200: envelope(Tenant) },
        },
      },
      async (request) => {
        const { features, ...rest } = request.body;
        const slug = request.params.slug;
        if (!isSlug(slug)) throw tenantNotFound(slug);
        checkNotificationEmail(rest.notification_email);
        const tenant = await updateTenant(store, request.params.slug, {
          ...rest,
          ...(features && { features: dedupe(features) }),
        });
        if (!tenant) throw tenantNotFound(slug);
        return { data: presentTenant(tenant, config.maxWebhooksPerTenant), meta: meta(request) };
      },
    );

    app.post(
      '/internal/v1/tenants/:slug/api-keys',
      {
        schema: {
          tags,
          operationId: 'createApiKey',
          summary: 'Create an API key; the key is shown only in this answer',
          params: SlugParams,
          body: CreateApiKeyBody,
          response: { 201: envelope(CreatedApiKey) },
        },
      },
      async (request, reply) => {
        const tenant = await tenantOr404(store, request.params.slug);
        const key = generateApiKey();
        const created = await createApiKey(store, {
          tenant_id: tenant.id,
          name: request.body.name,
          scopes: dedupe(request.body.scopes) as typeof request.body.scopes,
          key_hash: hashApiKey(key),
          key_prefix: apiKeyPrefix(key),
        });
        reply.code(201);
        return {
          data: {
            id: created.id,
            name: created.name,
            scopes: created.scopes,
            key,
            created_at: iso(created.created_at),
          },
          meta: meta(request),
        };
      },
    );

    app.delete(
      '/internal/v1/tenants/:slug/api-keys/:id',
      {
        schema: {
          tags,
          operationId: 'revokeApiKey',
          summary: 'Revoke an API key',
          params: KeyParams,
          response: { 204: Type.Null() },
        },
      },
      async (request, reply) => {
        const tenant = await tenantOr404(store, request.params.slug);
        const keyId = parseId(request.params.id, 'API key');
        if (!(await revokeApiKey(store, tenant.id, keyId))) {
          throw notFound('API key', `${request.params.id} of tenant '${tenant.slug}'`);
        }
        return reply.code(204).send(null);
      },
    );
  };
}

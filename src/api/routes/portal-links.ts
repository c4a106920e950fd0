import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../../config.js';
import { apiKeyPrefix, generateApiKey, hashApiKey } from '../../domain/secrets.js';
import type { Store } from '../../store/db.js';
import { createPortalLink, exchangePortalLink, isPortalSessionKey } from '../../store/portal-links.js';
import { revokeApiKey } from '../../store/tenants.js';
import { operatorAuth, tenantAuth } from '../auth.js';
import { ApiError } from '../errors.js';
import { iso, isoOrNull, meta, publicOrigin } from '../present.js';
import {
  CreatePortalSessionBody,
  ErrorBody,
  envelope,
  PortalIdentity,
  PortalLink,
  PortalSession,
  SlugParams,
} from '../schemas.js';
import { tenantOr404 } from './tenants.js';

/** The name of the keys that portal links give, as operators see them in a tenant's key list. */
export const PORTAL_SESSION_KEY_NAME = 'Portal session';

/** A portal link's token: 256 random bits, in the link's fragment so that it never reaches a server log. */
const generatePortalToken = () => `pdp_${randomBytes(32).toString('base64url')}`;

/**
 * Signing in to the portal. An operator mints a one-time link for a tenant; the portal exchanges
 * the link's token once for a session key (scope `webhooks`) that expires. Tokens are stored
 * hashed, like keys.
 */
export function portalLinkRoutes(config: Config, store: Store): FastifyPluginAsyncTypebox {
  return async (app) => {
    await app.register(async (plain) => {
      const operator = plain.withTypeProvider<TypeBoxTypeProvider>();
      operator.addHook('onRequest', operatorAuth(config));
      operator.post(
        '/internal/v1/tenants/:slug/portal-links',
        {
          schema: {
            tags: ['Portal'],
            operationId: 'createPortalLink',
            summary: 'A one-time link that signs the tenant in to the portal',
            params: SlugParams,
            response: { 201: envelope(PortalLink) },
          },
        },
        async (request, reply) => {
          const tenant = await tenantOr404(store, request.params.slug);
          const token = generatePortalToken();
          const link = await createPortalLink(store, {
            tenant_id: tenant.id,
            token_hash: hashApiKey(token),
            expires_at: Date.now() + config.portal.linkTtlMs,
          });
          reply.code(201);
          return {
            data: {
              url: `${publicOrigin(config, request)}/portal/#token=${token}`,
              expires_at: iso(link.expires_at),
            },
            meta: meta(request),
          };
        },
      );
    });

    app.post(
      '/api/v1/portal/sessions',
      {
        schema: {
          tags: ['Portal'],
          operationId: 'createPortalSession',
          summary: 'Exchange a portal link for a session key',
          security: [],
          description:
            "The token from a portal link's fragment (`#token=...`), usable once before it expires. " +
            "The answer is a key with the 'webhooks' scope that expires by itself.",
          body: CreatePortalSessionBody,
          response: { 201: envelope(PortalSession), 401: ErrorBody },
        },
      },
      async (request, reply) => {
        const now = Date.now();
        const key = generateApiKey();
        const expiresAt = now + config.portal.sessionTtlMs;
        const created = await exchangePortalLink(store, hashApiKey(request.body.token), now, () => ({
          name: PORTAL_SESSION_KEY_NAME,
          scopes: ['webhooks'],
          key_hash: hashApiKey(key),
          key_prefix: apiKeyPrefix(key),
          expires_at: expiresAt,
        }));
        if (!created) {
          throw new ApiError(
            401,
            'This portal link is not valid: it has expired or was already used. Ask for a new one.',
          );
        }
        reply.code(201);
        return { data: { key, expires_at: iso(expiresAt) }, meta: meta(request) };
      },
    );

    await app.register(async (plain) => {
      const tenant = plain.withTypeProvider<TypeBoxTypeProvider>();
      tenant.addHook('onRequest', tenantAuth(config, store, 'webhooks'));
      tenant.get(
        '/api/v1/portal/session',
        {
          schema: {
            tags: ['Portal'],
            operationId: 'getPortalSession',
            summary: 'Who is signed in: the tenant and the key in use',
            response: { 200: envelope(PortalIdentity) },
          },
        },
        async (request) => ({
          data: {
            tenant: { slug: request.tenant.slug, name: request.tenant.name, plan: request.tenant.plan },
            key: {
              name: request.apiKey.name,
              key_prefix: request.apiKey.key_prefix,
              expires_at: isoOrNull(request.apiKey.expires_at),
              is_portal_session: await isPortalSessionKey(store, request.apiKey.id),
            },
          },
          meta: meta(request),
        }),
      );
      tenant.delete(
        '/api/v1/portal/session',
        {
          schema: {
            tags: ['Portal'],
            operationId: 'deletePortalSession',
            summary: 'Sign out',
            description:
              'Ends a session key that a portal link gave. Any other API key is left as it is: ' +
              'signing out of the portal only forgets it in the browser.',
            response: { 204: Type.Null() },
          },
        },
        async (request, reply) => {
          if (await isPortalSessionKey(store, request.apiKey.id)) {
            await revokeApiKey(store, request.tenant.id, request.apiKey.id);
          }
          return reply.code(204).send(null);
        },
      );
    });
  };
}

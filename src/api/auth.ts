import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { type Plan, planIncludes, type Scope, WEBHOOKS_MINIMUM_PLAN } from '../domain/plans.js';
import { constantTimeEqual, hashApiKey } from '../domain/secrets.js';
import { isSlug } from '../domain/slug.js';
import type { Store } from '../store/db.js';
import { countRequest } from '../store/rate-limits.js';
import { type ApiKey, findKeyByHash, type Tenant, touchApiKey } from '../store/tenants.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    tenant: Tenant;
    apiKey: ApiKey;
  }
}

const PLAN_NAMES: Record<Plan, string> = {
  standard: 'Standard',
  professional: 'Professional',
  business: 'Business',
  enterprise: 'Enterprise',
};

/** `last_used_at` is written at most this often per key, to keep reads free of writes. */
const TOUCH_INTERVAL_MS = 60_000;
const HOUR_SECONDS = 3600;

/** The key from `Authorization: Bearer`, `X-API-Key` or `?api_key=`, in that order. */
function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new ApiError(401, "The Authorization header must be 'Bearer YOUR_API_KEY'.");
    return match[1];
  }
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header !== '') return header;
  const query = (request.query as Record<string, unknown> | undefined)?.api_key;
  if (typeof query === 'string' && query !== '') return query;
  return undefined;
}

/** The tenant slug named by the Host header (`acme.plandocket.com`), if the host is one of ours. */
export function slugFromHost(hostname: string, baseDomain: string): string | undefined {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  const suffix = `.${baseDomain}`;
  if (!host.endsWith(suffix)) return undefined;
  const label = host.slice(0, -suffix.length);
  return isSlug(label) ? label : undefined;
}

/**
 * Authenticates a tenant's API key, counts the request against the plan's hourly limit, and
 * checks what the Webhooks API needs: scope `webhooks`, plan Business or higher, flag `webhooks`.
 */
export function tenantAuth(config: Config, store: Store, scope: Scope) {
  return async function authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const key = presentedKey(request);
    if (!key) {
      throw new ApiError(
        401,
        "Authentication required: pass an API key as 'Authorization: Bearer YOUR_API_KEY'.",
      );
    }
    const found = await findKeyByHash(store, hashApiKey(key));
    if (!found) throw new ApiError(401, 'Invalid API key.');
    const { tenant, key: apiKey } = found;
    const now = Date.now();
    // Keys that end by themselves are portal sessions.
    const session = apiKey.expires_at !== null;
    if (apiKey.revoked_at !== null) {
      throw new ApiError(
        401,
        session
          ? 'This session was ended (signed out): sign in again.'
          : `This API key was revoked on ${new Date(apiKey.revoked_at).toISOString()}: ask for a new one.`,
      );
    }
    if (session && (apiKey.expires_at as number) <= now) {
      throw new ApiError(401, 'This session has expired: sign in again.');
    }
    const hostSlug = slugFromHost(request.hostname, config.baseDomain);
    if (hostSlug !== undefined && hostSlug !== tenant.slug) {
      throw new ApiError(401, 'This API key does not belong to this tenant.');
    }
    request.tenant = tenant;
    request.apiKey = apiKey;

    await enforceRateLimit(store, config.rateLimits[tenant.plan], tenant.id, now, reply);
    if (apiKey.last_used_at === null || now - apiKey.last_used_at > TOUCH_INTERVAL_MS) {
      await touchApiKey(store, apiKey.id, now);
    }

    if (!apiKey.scopes.includes(scope)) {
      throw new ApiError(403, `This API key does not have the '${scope}' scope.`);
    }
    if (!planIncludes(tenant.plan, WEBHOOKS_MINIMUM_PLAN)) {
      throw new ApiError(
        403,
        `The Webhooks API requires the ${PLAN_NAMES[WEBHOOKS_MINIMUM_PLAN]} plan or higher; this tenant is on the ${PLAN_NAMES[tenant.plan]} plan.`,
      );
    }
    if (!tenant.features.includes('webhooks')) {
      throw new ApiError(403, "The 'webhooks' feature is not enabled for this tenant.");
    }
  };
}

async function enforceRateLimit(
  store: Store,
  limit: number | null,
  tenantId: number,
  now: number,
  reply: FastifyReply,
): Promise<void> {
  if (limit === null) return;
  const nowSeconds = Math.floor(now / 1000);
  const windowStart = nowSeconds - (nowSeconds % HOUR_SECONDS);
  const reset = windowStart + HOUR_SECONDS;
  const count = await countRequest(store, tenantId, windowStart);
  reply.header('X-RateLimit-Limit', limit);
  reply.header('X-RateLimit-Remaining', Math.max(0, limit - count));
  reply.header('X-RateLimit-Reset', reset);
  if (count > limit) {
    throw new ApiError(429, 'Rate limit exceeded', undefined, {
      'Retry-After': String(Math.max(1, reset - nowSeconds)),
    });
  }
}

/** The operator API: `Authorization: Bearer $ADMIN_TOKEN`. */
export function operatorAuth(config: Config) {
  return async function authenticate(request: FastifyRequest): Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (!match?.[1] || !constantTimeEqual(match[1], config.adminToken)) {
      throw new ApiError(401, 'Operator authentication required: pass the admin token as a Bearer token.');
    }
  };
}

import { randomBytes } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Config } from '../config.js';
import type { DeliveryWorker } from '../delivery/worker.js';
import { Metrics } from '../metrics.js';
import { isDatabaseUnavailable, type Store, storageFailure } from '../store/db.js';
import type { RecoverProgress } from '../store/delivery-log.js';
import { operatorAuth } from './auth.js';
import { ApiError, fieldErrorsFromSchema } from './errors.js';
import { apiDocument, type Surface, swaggerOptions } from './openapi.js';
import { portalFiles } from './portal-files.js';
import { publicOrigin } from './present.js';
import { deliveryRoutes } from './routes/deliveries.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { portalLinkRoutes } from './routes/portal-links.js';
import { tenantRoutes } from './routes/tenants.js';
import { webhookRoutes } from './routes/webhooks.js';
import { validators } from './validators.js';
import { metricsHandler } from './worker-app.js';

export { loggerOptions } from './logging.js';

export const BODY_LIMIT = 1024 * 1024;
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export interface AppOptions {
  config: Config;
  store: Store;
  /** Shared with the worker of the same process; made here when absent. */
  metrics?: Metrics;
  logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Told how a recovery of failed deliveries advances (the command line's progress bar). */
  onRecoverProgress?: (progress: RecoverProgress) => void;
  /** The worker of the same process, whose loop readiness watches. */
  worker?: DeliveryWorker;
}

/** `262144` -> `256 KiB (262144 bytes)`: a limit as people read it, and exactly. */
function bytesText(bytes: number): string {
  const mib = 1024 * 1024;
  if (bytes >= mib && bytes % mib === 0) return `${bytes / mib} MiB (${bytes} bytes)`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB (${bytes} bytes)`;
  return `${bytes} bytes`;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, store } = options;
  const metrics = options.metrics ?? new Metrics(store);
  const app = Fastify({
    ...(options.logger && typeof options.logger === 'object' && 'child' in options.logger
      ? { loggerInstance: options.logger as FastifyBaseLogger }
      : { logger: options.logger ?? false }),
    bodyLimit: BODY_LIMIT,
    requestIdHeader: false,
    logController: new LogController({ requestIdLogLabel: 'request_id' }),
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming)
        ? incoming
        : `req_${randomBytes(12).toString('base64url')}`;
    },
    trustProxy: false,
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const ajv = validators();
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? ajv.body : ajv.text).compile(schema),
  );

  // An empty JSON body (a DELETE sent with a JSON content type) is no body, not an error.
  // Only JSON is taken: a body of any other type (Fastify would read text/plain as a string) is a 415.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    parseJson(request, body as string, done);
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('X-Request-Id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequests.observe(
      { method: request.method, route: request.routeOptions.url ?? 'unknown', status_code: reply.statusCode },
      reply.elapsedTime / 1000,
    );
  });

  app.setErrorHandler(
    (error: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
      const meta = { request_id: request.id };
      if (error instanceof ApiError) {
        reply.headers(error.headers);
        const body = error.fieldErrors
          ? { error: error.message, errors: error.fieldErrors, meta }
          : { error: error.message, meta };
        return reply.code(error.statusCode).send(body);
      }
      if (error.validation) {
        const errors = fieldErrorsFromSchema(error.validation as Parameters<typeof fieldErrorsFromSchema>[0]);
        return reply.code(422).send({ error: 'Validation failed', errors, meta });
      }
      switch (error.code) {
        case 'FST_ERR_CTP_INVALID_JSON_BODY':
          return reply.code(400).send({ error: 'Malformed JSON in request body.', meta });
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
          // The route's own limit (the publish routes have theirs), else the app's.
          return reply.code(413).send({
            error: `Request body is larger than ${bytesText(request.routeOptions.bodyLimit ?? BODY_LIMIT)}.`,
            meta,
          });
        case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
          return reply.code(415).send({ error: 'Content-Type must be application/json.', meta });
      }
      if (error instanceof SyntaxError && error.statusCode === 400) {
        return reply.code(400).send({ error: 'Malformed JSON in request body.', meta });
      }
      if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
        return reply.code(error.statusCode).send({ error: error.message, meta });
      }
      const storage = storageFailure(error);
      if (storage) {
        // Disk full, I/O errors, a read-only file or server: the operator has to act.
        request.log.error({ err: error, cause: storage }, `database storage failing: ${storage}`);
        return reply.code(503).header('Retry-After', '30').send({
          error:
            'Service unavailable: the database storage is failing (full or not writable). Try again later.',
          meta,
        });
      }
      if (isDatabaseUnavailable(error)) {
        request.log.warn({ err: error }, 'database unavailable');
        return reply
          .code(503)
          .header('Retry-After', '5')
          .send({ error: 'Service unavailable: the database does not answer. Try again shortly.', meta });
      }
      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send({ error: 'Internal server error', meta });
    },
  );

  app.setNotFoundHandler((request, reply) => {
    const path = (request.url.split('?')[0] ?? '').slice(0, 200);
    return reply.code(404).send({
      error: `Resource not found: ${request.method} ${path} is not a route of this API.`,
      meta: { request_id: request.id },
    });
  });

  // Every route's methods, so that another method on the same path answers 405 with `Allow`.
  const methodsByUrl = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const set = methodsByUrl.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) set.add(method);
    methodsByUrl.set(route.url, set);
  });

  await app.register(swagger, swaggerOptions);
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/api/v1/openapi.json' } });

  await app.register(healthRoutes(store, options.worker));
  await app.register(webhookRoutes(config, store));
  await app.register(
    deliveryRoutes(config, store, {
      ...(options.onRecoverProgress && { onRecoverProgress: options.onRecoverProgress }),
    }),
  );
  await app.register(tenantRoutes(config, store));
  await app.register(eventRoutes(config, store));
  await app.register(portalLinkRoutes(config, store));
  await app.register(portalFiles(), { prefix: '/portal' });
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/portal/'));
  app.get('/metrics', { schema: { hide: true } }, metricsHandler(metrics));
  // Made once, when first asked for (the routes are all known by then); the server is where the
  // request came to, unless PUBLIC_URL says otherwise.
  const documents = new Map<Surface, object>();
  const document = (surface: Surface) => async (request: FastifyRequest) => {
    const doc = documents.get(surface) ?? apiDocument(app.swagger(), surface);
    documents.set(surface, doc);
    return { ...doc, servers: [{ url: publicOrigin(config, request), description: 'This service.' }] };
  };
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, document('public'));
  app.get(
    '/internal/v1/openapi.json',
    { schema: { hide: true }, onRequest: operatorAuth(config) },
    document('operator'),
  );

  for (const [url, methods] of methodsByUrl) {
    if (!url.startsWith('/api/') && !url.startsWith('/internal/')) continue;
    const allow = METHODS.filter((m) => methods.has(m)).join(', ');
    const others = METHODS.filter((m) => !methods.has(m));
    app.route({
      method: others,
      url,
      schema: { hide: true },
      handler: async (request, reply) =>
        reply
          .code(405)
          .header('Allow', allow)
          .send({ error: `Method ${request.method} is not allowed here.`, meta: { request_id: request.id } }),
    });
  }
  return app;
}

import type { FastifyPluginAsync } from 'fastify';
import { ping, type Store } from '../../store/db.js';

export function healthRoutes(store: Store): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
    app.get('/readyz', { schema: { hide: true } }, async (_request, reply) =>
      (await ping(store))
        ? { status: 'ready' }
        : reply.code(503).send({ status: 'unavailable', error: 'The database does not answer.' }),
    );
  };
}

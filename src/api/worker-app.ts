import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { DeliveryWorker } from '../delivery/worker.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/db.js';
import { healthRoutes } from './routes/health.js';

/** `/metrics`, of the API and of a worker. */
export function metricsHandler(metrics: Metrics) {
  return async (_request: FastifyRequest, reply: FastifyReply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
}

/**
 * What a worker process serves (`serve --role worker`): `/healthz`, `/readyz` (the database, and
 * whether its loop goes round) and `/metrics`, on `PORT`, and nothing of the API. Apart from
 * `app.ts`, so that a worker loads none of the API's routes, schemas and documentation.
 */
export async function buildWorkerApp(options: {
  store: Store;
  metrics: Metrics;
  worker: DeliveryWorker;
  logger?: FastifyBaseLogger;
}): Promise<FastifyInstance> {
  const app = Fastify(options.logger ? { loggerInstance: options.logger } : { logger: false });
  await app.register(healthRoutes(options.store, options.worker));
  app.get('/metrics', metricsHandler(options.metrics));
  return app;
}

import type { FastifyPluginAsync } from 'fastify';
import type { DeliveryWorker } from '../../delivery/worker.js';
import { ping, type Store } from '../../store/db.js';

/** Readiness waits this long for the database's answer: a probe must answer promptly itself. */
const READY_TIMEOUT_MS = 2_000;

/**
 * `/healthz`: the process is up. `/readyz`: it can do its work: the database answers within
 * READY_TIMEOUT_MS, its writes do not fail for lack of storage, and the worker's loop (in a
 * process that runs one) goes round.
 */
export function healthRoutes(store: Store, worker?: DeliveryWorker): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
    app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
      const problems: string[] = [];
      if (!(await ping(store, READY_TIMEOUT_MS))) problems.push('The database does not answer.');
      const failure = store.writeFailure.current;
      if (failure) {
        problems.push(`Writes fail (${failure.code}) since ${new Date(failure.since).toISOString()}.`);
      }
      const stalled = worker?.stalled();
      if (stalled) problems.push(stalled);
      if (problems.length === 0) return { status: 'ready' };
      return reply
        .code(503)
        .header('Retry-After', '5')
        .send({ status: 'unavailable', error: problems.join(' ') });
    });
  };
}

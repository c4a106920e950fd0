import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { loggerOptions } from './api/logging.js';
import type { Config } from './config.js';
import type { DeliveryWorker, WorkerOptions } from './delivery/worker.js';
import { Metrics } from './metrics.js';
import type { Mailer, MailerOptions } from './notify/mailer.js';
import { migrate, openStore, type Store } from './store/db.js';
import { configureOperatorWebhook } from './store/operator-webhook.js';

export const ROLES = ['all', 'api', 'worker'] as const;
/** Shutdown ends within SHUTDOWN_GRACE plus this, whatever the database does. */
const SHUTDOWN_MARGIN_MS = 5_000;
export type Role = (typeof ROLES)[number];

export interface Service {
  /** The API (roles `all` and `api`), or a worker's health and metrics (role `worker`). */
  app: FastifyInstance;
  worker: DeliveryWorker | undefined;
  /** Sends the tenants' notification mails, beside the worker (roles `all` and `worker`). */
  mailer: Mailer | undefined;
  store: Store;
  /** Stops the worker (finishing or releasing its deliveries), closes the API and the database. */
  close(): Promise<void>;
}

export async function openConfiguredStore(config: Config): Promise<Store> {
  return openStore({
    databaseUrl: config.databaseUrl,
    sqlitePath: config.sqlitePath,
    timeouts: config.database,
  });
}

export interface ServiceOptions {
  role?: Role;
  logger?: pino.Logger;
  /** Tests: see WorkerOptions. */
  worker?: Pick<WorkerOptions, 'resolve' | 'ca' | 'pollMs'>;
  /** Tests: see MailerOptions. */
  mailer?: Pick<MailerOptions, 'retryScheduleMs' | 'pollMs'>;
  /** False: the worker is made but not started (`serve` starts it once the process listens). */
  startWorker?: boolean;
}

/** Opens the database, applies migrations, builds the API and starts the worker, as the role says. */
export async function createService(config: Config, options: ServiceOptions = {}): Promise<Service> {
  const role = options.role ?? 'all';
  const logger = options.logger ?? pino({ level: 'silent' });
  const store = await openConfiguredStore(config);
  try {
    await migrate(store);
    await configureOperatorWebhook(store, config.secretsKey, config.operatorWebhook);
    const metrics = new Metrics(store);
    // Each role loads only what it runs: an API process no delivery client, a worker none of the
    // API's routes, schemas and documentation (a third less to load: a faster start).
    const worker =
      role === 'api'
        ? undefined
        : new (await import('./delivery/worker.js')).DeliveryWorker({
            config,
            store,
            metrics,
            log: logger.child({ component: 'worker' }),
            ...options.worker,
          });
    const app =
      role === 'worker' && worker
        ? await (await import('./api/worker-app.js')).buildWorkerApp({ store, metrics, worker, logger })
        : await (await import('./api/app.js')).buildApp({
            config,
            store,
            metrics,
            logger,
            ...(worker && { worker }),
          });
    const mailer =
      role === 'api'
        ? undefined
        : new (await import('./notify/mailer.js')).Mailer({
            config,
            store,
            metrics,
            log: logger.child({ component: 'mailer' }),
            ...options.mailer,
          });
    if (options.startWorker ?? true) {
      worker?.start();
      mailer?.start();
    }
    return {
      app,
      worker,
      mailer,
      store,
      async close() {
        await Promise.all([worker?.stop(), mailer?.stop()]);
        await app.close();
        await store.close();
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** `serve`: runs until SIGTERM or SIGINT, then shuts down cleanly and exits 0. */
export async function serve(config: Config, role: Role): Promise<void> {
  const logger = pino(loggerOptions(config.logLevel) as pino.LoggerOptions);
  if (config.allowHttpTargets)
    logger.warn('ALLOW_HTTP_TARGETS is on: plain http:// webhook URLs are accepted');
  if (config.allowedTargetCidrs.length > 0) {
    logger.warn(
      { cidrs: config.allowedTargetCidrs },
      'ALLOWED_TARGET_CIDRS lets webhooks reach private addresses',
    );
  }
  const service = await createService(config, { role, logger, startWorker: false });
  await service.app.listen({ port: config.port, host: config.host });
  // Then the worker: its upkeep at start (pruning old deliveries: seconds of work on a large
  // SQLite database, in this thread) does not hold up the listen; its first claim follows it.
  service.worker?.start();
  service.mailer?.start();
  const { port } = service.app.server.address() as AddressInfo;
  logger.info(
    { role, port, database: config.databaseUrl ? 'postgres' : config.sqlitePath, worker: service.worker?.id },
    role === 'worker'
      ? `PlanDocket Webhooks worker started; health and metrics on port ${port}`
      : `PlanDocket Webhooks is listening on port ${port}`,
  );

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down: no new claims, finishing deliveries in flight');
    // Whatever the database does, the process ends: leases left behind expire as after a kill.
    const limitMs = config.delivery.shutdownGraceMs + SHUTDOWN_MARGIN_MS;
    setTimeout(() => {
      logger.error(
        { limit_ms: limitMs },
        'shutdown did not finish within SHUTDOWN_GRACE and its margin (does the database answer?); exiting, leases left behind expire',
      );
      process.exit(1);
    }, limitMs).unref();
    try {
      await service.close();
      logger.info('stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { buildApp, loggerOptions } from './api/app.js';
import type { Config } from './config.js';
import { migrate, openStore, type Store } from './store/db.js';

export interface Service {
  app: FastifyInstance;
  store: Store;
  close(): Promise<void>;
}

export async function openConfiguredStore(config: Config): Promise<Store> {
  return openStore({ databaseUrl: config.databaseUrl, sqlitePath: config.sqlitePath });
}

/** Opens the database, applies migrations and builds the HTTP app (not yet listening). */
export async function createService(config: Config, logger?: pino.Logger): Promise<Service> {
  const store = await openConfiguredStore(config);
  try {
    await migrate(store);
    const app = await buildApp({ config, store, ...(logger && { logger }) });
    return {
      app,
      store,
      async close() {
        await app.close();
        await store.close();
      },
    };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** `serve`: listens until SIGTERM or SIGINT, then closes cleanly and exits 0. */
export async function serve(config: Config): Promise<void> {
  const logger = pino(loggerOptions(config.logLevel) as pino.LoggerOptions);
  if (config.allowHttpTargets)
    logger.warn('ALLOW_HTTP_TARGETS is on: plain http:// webhook URLs are accepted');
  if (config.allowedTargetCidrs.length > 0) {
    logger.warn(
      { cidrs: config.allowedTargetCidrs },
      'ALLOWED_TARGET_CIDRS lets webhooks reach private addresses',
    );
  }
  const service = await createService(config, logger);
  await service.app.listen({ port: config.port, host: config.host });
  logger.info(
    { database: config.databaseUrl ? 'postgres' : config.sqlitePath },
    `PlanDocket Webhooks is listening on port ${config.port}`,
  );

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down');
    try {
      await service.close();
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

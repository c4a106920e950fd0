import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { type Config, loadConfig } from '../../src/config.js';
import type { Resolver } from '../../src/delivery/safe-agent.js';
import { createService, type Role, type Service } from '../../src/server.js';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import { checkAnswersAgainstDocuments } from './contract.js';
import type { DATABASES } from './harness.js';
import { ADMIN_TOKEN } from './harness.js';
import { makeCertificate, Receiver, type TestCertificate, verifyAllWays } from './receiver.js';
import { waitFor } from './wait.js';

export { clockPast, waitFor } from './wait.js';

/** Test host names: the receiver, and names that resolve to addresses webhooks may not reach. */
export const TEST_HOSTS: Record<string, string[]> = {
  'receiver.test': ['127.0.0.1'],
  localhost: ['127.0.0.1'],
  'loopback.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  'v6-loopback.test': ['::1'],
  'mapped-private.test': ['::ffff:10.0.0.1'],
};

export const testResolver: Resolver = async (hostname) => {
  const addresses = TEST_HOSTS[hostname];
  if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

/** PostgreSQL: a fresh schema, named in the URL so that child processes use it too. */
export async function freshDatabaseUrl(database: (typeof DATABASES)[number]): Promise<{
  url: string | undefined;
  drop(): Promise<void>;
}> {
  if (!database.url) return { url: undefined, drop: async () => {} };
  const schema = `test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(`create schema ${schema}`);
  await client.end();
  const separator = database.url.includes('?') ? '&' : '?';
  return {
    url: `${database.url}${separator}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    async drop() {
      const c = new pg.Client({ connectionString: database.url });
      await c.connect();
      await c.query(`drop schema ${schema} cascade`);
      await c.end();
    },
  };
}

/**
 * A database of its own, migrated up to and including `upTo`: rows laid down in it are as the
 * service wrote them before the later migrations. `drop` closes the store and removes the database.
 */
export async function storeMigratedTo(
  database: (typeof DATABASES)[number],
  upTo: string,
): Promise<{ store: Store; drop(): Promise<void> }> {
  const fresh = await freshDatabaseUrl(database);
  const store = await openStore({ databaseUrl: fresh.url });
  await migrate(store, upTo);
  return {
    store,
    async drop() {
      await store.close();
      await fresh.drop();
    },
  };
}

export interface DeliveryHarness {
  config: Config;
  service: Service;
  receiver: Receiver;
  certificate: TestCertificate;
  dataDir: string;
  env: Record<string, string>;
  /** POSTs as the operator or the tenant through the running app. */
  operator(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }>;
  tenantApi(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
  ): Promise<{ status: number; body: any }>;
  slug: string;
  /** Creates a webhook of the test tenant; returns it with its secret. */
  webhook(body: Record<string, unknown>): Promise<{ id: number; secret: string; [k: string]: unknown }>;
  /** Rotates a webhook's secret; returns the webhook with its new secret. */
  rotateSecret(
    id: number,
    body?: Record<string, unknown>,
  ): Promise<{ id: number; secret: string; [k: string]: unknown }>;
  publish(
    type: string,
    data?: Record<string, unknown>,
    id?: string,
  ): Promise<{ id: string; deliveries: number }>;
  /** The deliveries table rows (optionally of one webhook). */
  deliveries(webhookId?: number): Promise<any[]>;
  attempts(deliveryId: string): Promise<any[]>;
  /**
   * Waits until the worker has claimed since this call: a test event, sent now to a paused
   * webhook of its own, has been delivered. Whatever was due before the call and could be claimed
   * has been claimed by then (the worker's claims follow one another): what is still unclaimed
   * was held. Nothing else gets the test event.
   */
  caughtUp(): Promise<void>;
  close(): Promise<void>;
}

export async function createDeliveryHarness(
  database: (typeof DATABASES)[number],
  env: Record<string, string> = {},
  options: { role?: Role; certificate?: TestCertificate; pollMs?: number } = {},
): Promise<DeliveryHarness> {
  const certificate = options.certificate ?? (await makeCertificate());
  const receiver = await new Receiver(certificate).start();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-delivery-'));
  const db = await freshDatabaseUrl(database);
  const fullEnv: Record<string, string> = {
    DATA_DIR: dataDir,
    ADMIN_TOKEN,
    SECRETS_KEY: randomBytes(32).toString('hex'),
    ALLOWED_TARGET_CIDRS: '127.0.0.0/8,::1/128',
    RETRY_SCHEDULE: '100ms',
    LEASE_MARGIN: '2s',
    SHUTDOWN_GRACE: '2s',
    ...(db.url && { DATABASE_URL: db.url }),
    ...env,
  };
  const config = loadConfig(fullEnv);
  const service = await createService(config, {
    role: options.role ?? 'all',
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'error' }),
    worker: {
      resolve: testResolver,
      ca: [certificate.cert],
      ...(options.pollMs && { pollMs: options.pollMs }),
    },
  });
  const app = service.app;
  if (!app) throw new Error('the delivery harness needs the API');
  await checkAnswersAgainstDocuments(app, ADMIN_TOKEN);

  const call = async (method: string, url: string, body: unknown, auth: string) => {
    const res = await app.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${auth}` },
      ...(body !== undefined && { payload: body as object }),
    });
    return { status: res.statusCode, body: res.body ? res.json() : undefined };
  };
  const operator = (method: string, url: string, body?: unknown) => call(method, url, body, ADMIN_TOKEN);
  const slug = `acme-${randomBytes(3).toString('hex')}`;
  await operator('POST', '/internal/v1/tenants', {
    slug,
    name: 'Acme',
    plan: 'business',
    features: ['webhooks'],
  });
  const key = (
    await operator('POST', `/internal/v1/tenants/${slug}/api-keys`, { name: 't', scopes: ['webhooks'] })
  ).body.data.key as string;
  const tenantApi = (method: string, url: string, body?: unknown) => call(method, url, body, key);
  // Every request the receiver gets for one of our webhooks is verified three ways on close, with
  // one of the secrets the webhook has had (the one it was signed with).
  const secretsByPath = new Map<string, string[]>();
  const remember = (url: string, secret: string) => {
    const path = new URL(url).pathname;
    secretsByPath.set(path, [...(secretsByPath.get(path) ?? []), secret]);
  };
  let witness: number | undefined;

  const harness: DeliveryHarness = {
    config,
    service,
    receiver,
    certificate,
    dataDir,
    env: fullEnv,
    operator,
    tenantApi,
    slug,
    async webhook(body) {
      const res = await tenantApi('POST', '/api/v1/webhooks', body);
      if (res.status !== 201) throw new Error(`webhook: ${JSON.stringify(res.body)}`);
      remember(res.body.data.url, res.body.data.secret);
      return res.body.data;
    },
    async rotateSecret(id, body) {
      const res = await tenantApi('POST', `/api/v1/webhooks/${id}/rotate-secret`, body);
      if (res.status !== 200) throw new Error(`rotate: ${JSON.stringify(res.body)}`);
      remember(res.body.data.url, res.body.data.secret);
      return res.body.data;
    },
    async publish(type, data = {}, id) {
      const res = await operator('POST', '/internal/v1/events', {
        tenant: slug,
        type,
        data,
        ...(id && { id }),
      });
      // 202: published; 200: published before with this id (`duplicate`).
      if (res.status !== 202 && res.status !== 200) throw new Error(`publish: ${JSON.stringify(res.body)}`);
      return res.body.data;
    },
    async deliveries(webhookId) {
      let query = service.store.db.selectFrom('deliveries').selectAll().orderBy('id');
      if (webhookId !== undefined) query = query.where('webhook_id', '=', webhookId);
      return query.execute();
    },
    async attempts(deliveryId) {
      return service.store.db
        .selectFrom('attempts')
        .selectAll()
        .where('delivery_id', '=', deliveryId)
        .orderBy('number')
        .execute();
    },
    async caughtUp() {
      witness ??= (
        await harness.webhook({ url: receiver.url('/caught-up'), events: ['invoice.paid'], is_active: false })
      ).id;
      const sent = await tenantApi('POST', `/api/v1/webhooks/${witness}/test`);
      if (sent.status !== 202) throw new Error(`test event: ${JSON.stringify(sent.body)}`);
      await waitFor(
        async () =>
          (await harness.deliveries(witness)).find((d) => d.id === sent.body.data.id)?.status === 'succeeded',
        undefined,
        'a test event claimed after the call',
      );
    },
    async close() {
      await service.close();
      await receiver.stop();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
      for (const received of receiver.requests) {
        const secrets = secretsByPath.get(received.path);
        if (!secrets) continue;
        const errors: unknown[] = [];
        for (const secret of secrets) {
          try {
            verifyAllWays(secret, received);
            break;
          } catch (error) {
            errors.push(error);
          }
        }
        if (errors.length === secrets.length) throw errors[0];
      }
    },
  };
  return harness;
}

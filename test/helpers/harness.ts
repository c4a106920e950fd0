import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { newEventId } from '../../src/domain/ids.js';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import type { NewWebhook } from '../../src/store/webhooks.js';
import { checkAnswersAgainstDocuments } from './contract.js';

/** The contract suites run once per database: SQLite always, PostgreSQL when TEST_DATABASE_URL is set. */
export const DATABASES = [
  { name: 'sqlite', url: undefined as string | undefined, skip: false },
  { name: 'postgres', url: process.env.TEST_DATABASE_URL, skip: !process.env.TEST_DATABASE_URL },
];

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface Harness {
  app: FastifyInstance;
  store: Store;
  config: Config;
  /** A request as a tenant would send it (`key` goes in `Authorization: Bearer`). */
  api(
    method: InjectOptions['method'],
    url: string,
    options?: RequestOptions,
  ): Promise<LightMyRequestResponse>;
  /** A request to the operator API with the admin token. */
  operator(method: InjectOptions['method'], url: string, body?: unknown): Promise<LightMyRequestResponse>;
  /** A new tenant (Business plan, `webhooks` flag, unless told otherwise) and a key for it. */
  tenant(options?: TenantOptions): Promise<{ slug: string; id: number; key: string }>;
  close(): Promise<void>;
}

export interface RequestOptions {
  key?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface TenantOptions {
  plan?: string;
  features?: string[];
  scopes?: string[];
}

export async function createHarness(
  database: (typeof DATABASES)[number],
  env: Record<string, string> = {},
): Promise<Harness> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-test-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    ADMIN_TOKEN,
    SECRETS_KEY: randomBytes(32).toString('base64'),
    ...env,
  });
  const pgSchema = database.url ? `test_${randomBytes(6).toString('hex')}` : undefined;
  const store = await openStore({
    databaseUrl: database.url,
    sqlitePath: path.join(dataDir, 'webhooks.db'),
    ...(pgSchema && { pgSchema }),
  });
  await migrate(store);
  const app = await buildApp({ config, store });
  await checkAnswersAgainstDocuments(app, ADMIN_TOKEN);
  let tenants = 0;

  const harness: Harness = {
    app,
    store,
    config,
    api: (method, url, options = {}) =>
      app.inject({
        method,
        url,
        headers: {
          ...(options.key && { authorization: `Bearer ${options.key}` }),
          ...options.headers,
        },
        ...(options.body !== undefined && {
          payload: typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
          headers: {
            'content-type': 'application/json',
            ...(options.key && { authorization: `Bearer ${options.key}` }),
            ...options.headers,
          },
        }),
      }),
    operator: (method, url, body) =>
      app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        ...(body !== undefined && { payload: body as object }),
      }),
    async tenant(options = {}) {
      tenants += 1;
      const slug = `t${tenants}-${randomBytes(3).toString('hex')}`;
      const created = await harness.operator('POST', '/internal/v1/tenants', {
        slug,
        name: `Tenant ${tenants}`,
        plan: options.plan ?? 'business',
        features: options.features ?? ['webhooks'],
      });
      if (created.statusCode !== 201) throw new Error(`tenant: ${created.body}`);
      const key = await harness.operator('POST', `/internal/v1/tenants/${slug}/api-keys`, {
        name: 'test',
        scopes: options.scopes ?? ['webhooks'],
      });
      if (key.statusCode !== 201) throw new Error(`key: ${key.body}`);
      return { slug, id: created.json().data.id, key: key.json().data.key };
    },
    async close() {
      await app.close();
      if (pgSchema) await sql`drop schema ${sql.id(pgSchema)} cascade`.execute(store.db);
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return harness;
}

/**
 * Declares a suite once per database, each with its own fresh database (a new SQLite file, or a
 * new PostgreSQL schema). The PostgreSQL suite is reported as skipped, with the reason, without
 * TEST_DATABASE_URL.
 */
export function describeContract(
  title: string,
  body: (harness: () => Harness) => void,
  env: Record<string, string> = {},
): void {
  for (const database of DATABASES) {
    const label = database.skip
      ? `${title} [${database.name}: skipped, TEST_DATABASE_URL is not set]`
      : `${title} [${database.name}]`;
    describe.skipIf(database.skip)(label, () => {
      let harness: Harness | undefined;
      beforeAll(async () => {
        harness = await createHarness(database, env);
      });
      afterAll(async () => {
        await harness?.close();
      });
      body(() => {
        if (!harness) throw new Error('the harness is not ready');
        return harness;
      });
    });
  }
}

/** A webhook as the store creates it (tests that work below the API), the n-th of its tenant. */
export function storedWebhook(n = 0): NewWebhook {
  return {
    name: `w${n}`,
    url: `https://example.com/hook/${n}`,
    events: ['*'],
    is_active: true,
    headers: {},
    retry_count: 5,
    timeout_seconds: 30,
    secret_ciphertext: 'unused',
  };
}

/** A valid webhook body; override what a test is about. */
export function webhookBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { url: 'https://example.com/hooks/plandocket', events: ['invoice.paid'], ...overrides };
}

/**
 * An event row written straight into the database at time `at` (for tests that lay down
 * deliveries in the past); its id unless given is one made at that time.
 */
export async function storeEvent(
  store: Store,
  tenantId: number,
  at: number,
  id: string = newEventId(at),
): Promise<string> {
  await store.db
    .insertInto('events')
    .values({ id, tenant_id: tenantId, type: 'invoice.paid', client_id: null, payload: '{}', created_at: at })
    .execute();
  return id;
}

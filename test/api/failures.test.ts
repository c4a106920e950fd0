import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, loggerOptions } from '../../src/api/app.js';
import { openStore } from '../../src/store/db.js';
import { createHarness, DATABASES, type Harness, webhookBody } from '../helpers/harness.js';

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`failures and logs [${database.name}]`, () => {
    let harness: Harness | undefined;
    afterEach(async () => {
      await harness?.close();
      harness = undefined;
    });

    it('answers a database failure with a 500 that leaks nothing and writes nothing', async () => {
      harness = await createHarness(database);
      const { key } = await harness.tenant();
      await sql`drop table webhook_events`.execute(harness.store.db);
      const res = await harness.api('POST', '/api/v1/webhooks', { key, body: webhookBody() });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({
        error: 'Internal server error',
        meta: { request_id: expect.any(String) },
      });
      expect(res.body).not.toMatch(/webhook_events|at .*\.ts|stack/i);
      // Nothing half-written: the webhook row went back with the failed transaction.
      const rows = await harness.store.db.selectFrom('webhooks').select('id').execute();
      expect(rows).toEqual([]);
    });

    it('never writes API keys or secrets into the logs, and tags lines with the request id', async () => {
      harness = await createHarness(database);
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      });
      const logger = pino(loggerOptions('trace') as pino.LoggerOptions, sink);
      const app = await buildApp({ config: harness.config, store: harness.store, logger });
      const { key } = await harness.tenant();
      await app.inject({
        method: 'GET',
        url: `/api/v1/webhooks?api_key=${key}`,
        headers: { 'x-request-id': 'log-1' },
      });
      const created = await app.inject({
        method: 'POST',
        url: '/api/v1/webhooks',
        headers: { authorization: `Bearer ${key}`, 'x-api-key': key },
        payload: webhookBody(),
      });
      expect(created.statusCode).toBe(201);
      const rotated = await app.inject({
        method: 'POST',
        url: `/api/v1/webhooks/${created.json().data.id}/rotate-secret`,
        headers: { authorization: `Bearer ${key}` },
      });
      expect(rotated.statusCode).toBe(200);
      await app.close();
      const log = lines.join('');
      expect(lines.length).toBeGreaterThan(2);
      expect(log).not.toContain(key);
      expect(log).not.toContain(created.json().data.secret);
      expect(log).not.toContain(rotated.json().data.secret);
      expect(log).not.toContain(harness.config.adminToken);
      expect(log).toContain('api_key=[redacted]');
      expect(lines.filter((l) => l.includes('"request_id":"log-1"')).length).toBeGreaterThanOrEqual(2);
    });
  });
}

describe('readiness', () => {
  it('answers readyz with 503 while the database does not answer, healthz still 200', async () => {
    const harness = await createHarness(DATABASES[0] as (typeof DATABASES)[number]);
    // Nothing listens on port 1: the database is unreachable.
    const store = await openStore({ databaseUrl: 'postgres://postgres@127.0.0.1:1/test' });
    const app = await buildApp({ config: harness.config, store });
    expect((await app.inject('/readyz')).statusCode).toBe(503);
    expect((await app.inject('/healthz')).statusCode).toBe(200);
    await app.close();
    await store.close();
    await harness.close();
  });
});

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pino from 'pino';
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createService, type Service } from '../../src/server.js';
import { testResolver, waitFor } from '../helpers/delivery-harness.js';
import { ADMIN_TOKEN } from '../helpers/harness.js';
import { makeCertificate, Receiver } from '../helpers/receiver.js';

const WEBHOOKS = 2;

async function call(service: Service, method: 'GET' | 'POST', url: string, body: unknown, token: string) {
  const res = await service.app?.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(body !== undefined && { payload: body as object }),
  });
  if (!res) throw new Error('no API');
  return res;
}

async function counts(service: Service) {
  const count = async (table: 'events' | 'deliveries') =>
    Number(
      (
        await service.store.db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return { events: await count('events'), deliveries: await count('deliveries') };
}

async function succeeded(service: Service): Promise<number> {
  const row = await service.store.db
    .selectFrom('deliveries')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'succeeded')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const batch = (slug: string, size: number, from: number) => ({
  events: Array.from({ length: size }, (_, i) => ({
    tenant: slug,
    type: 'invoice.paid',
    // Large enough that the batch needs new pages.
    data: { n: from + i, note: randomBytes(1500).toString('hex') },
  })),
});

it('SQLite disk full: 503 naming storage, the real error logged, nothing half-written, and it recovers', async () => {
  const certificate = await makeCertificate();
  const receiver = await new Receiver(certificate).start();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-full-'));
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const service = await createService(
    loadConfig({
      DATA_DIR: dataDir,
      ADMIN_TOKEN,
      SECRETS_KEY: randomBytes(32).toString('hex'),
      ALLOWED_TARGET_CIDRS: '127.0.0.0/8',
      RETRY_SCHEDULE: '200ms',
    }),
    {
      role: 'all',
      logger: pino({ level: 'warn' }, sink),
      worker: { resolve: testResolver, ca: [certificate.cert] },
    },
  );
  try {
    const slug = 'full';
    const tenant = await call(
      service,
      'POST',
      '/internal/v1/tenants',
      { slug, name: 'Full', plan: 'enterprise', features: ['webhooks'] },
      ADMIN_TOKEN,
    );
    expect(tenant.statusCode).toBe(201);
    const key = (
      await call(
        service,
        'POST',
        `/internal/v1/tenants/${slug}/api-keys`,
        { name: 'k', scopes: ['webhooks'] },
        ADMIN_TOKEN,
      )
    ).json().data.key;
    for (let i = 0; i < WEBHOOKS; i++) {
      const res = await call(
        service,
        'POST',
        '/api/v1/webhooks',
        { url: `https://localhost:${receiver.port}/c/${i}`, events: ['*'], timeout_seconds: 5 },
        key,
      );
      expect(res.statusCode, res.body).toBe(201);
    }
    const first = await call(service, 'POST', '/internal/v1/events/batch', batch(slug, 10, 0), ADMIN_TOKEN);
    expect(first.statusCode).toBe(202);
    // The worker is idle before the disk fills: its own writes cannot clear or mask what is seen.
    await waitFor(async () => (await succeeded(service)) === 10 * WEBHOOKS, 30_000, 'the first deliveries');
    const before = await counts(service);

    // max_page_count is per connection: the service's own.
    const pages = Number(
      (await sql<{ page_count: number }>`pragma page_count`.execute(service.store.db)).rows[0]?.page_count,
    );
    await sql.raw(`pragma max_page_count = ${pages + 1}`).execute(service.store.db);
    const full = await call(service, 'POST', '/internal/v1/events/batch', batch(slug, 200, 10), ADMIN_TOKEN);
    expect(full.statusCode, full.body).toBe(503);
    expect(full.headers['retry-after']).toMatch(/^\d+$/);
    expect(full.json().error).toMatch(/storage/);
    expect(full.body).not.toMatch(/SQLITE|rollback/);
    const log = lines.join('');
    expect(log).toContain('SQLITE_FULL');
    expect(log).not.toContain('cannot rollback');
    expect(service.store.writeFailure.current?.code).toBe('SQLITE_FULL');
    const unready = await service.app.inject('/readyz');
    expect(unready.statusCode).toBe(503);
    expect(unready.json().error).toMatch(/Writes fail \(SQLITE_FULL\)/);
    expect(await counts(service)).toEqual(before);
    // One event alone does not fit either.
    const one = await call(
      service,
      'POST',
      '/internal/v1/events',
      { tenant: slug, type: 'invoice.paid', data: { note: randomBytes(8000).toString('hex') } },
      ADMIN_TOKEN,
    );
    expect(one.statusCode).toBe(503);
    expect(await counts(service)).toEqual(before);

    await sql.raw('pragma max_page_count = 1000000000').execute(service.store.db);
    const after = await call(service, 'POST', '/internal/v1/events/batch', batch(slug, 200, 10), ADMIN_TOKEN);
    expect(after.statusCode).toBe(202);
    expect(service.store.writeFailure.current).toBeUndefined();
    expect((await service.app.inject('/readyz')).statusCode).toBe(200);
    expect(await counts(service)).toEqual({
      events: before.events + 200,
      deliveries: before.deliveries + 200 * WEBHOOKS,
    });
    await waitFor(async () => (await succeeded(service)) === 210 * WEBHOOKS, 60_000, 'every delivery');
    const arrived = new Set(receiver.requests.map((r) => r.headers['x-webhook-delivery']));
    const all = await service.store.db.selectFrom('deliveries').select('id').execute();
    expect(all.filter((d) => !arrived.has(d.id))).toEqual([]);
  } finally {
    await service.close();
    await receiver.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 120_000);

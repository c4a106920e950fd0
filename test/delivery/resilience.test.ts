import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createService, type Service } from '../../src/server.js';
import { openStore, type Store } from '../../src/store/db.js';
import { freshDatabaseUrl, testResolver, waitFor } from '../helpers/delivery-harness.js';
import { ADMIN_TOKEN, DATABASES } from '../helpers/harness.js';
import { hasExited, killIfRunning, startServe } from '../helpers/processes.js';
import { makeCertificate, Receiver } from '../helpers/receiver.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const postgres = DATABASES.find((d) => d.name === 'postgres') as (typeof DATABASES)[number];
const WEBHOOKS = 5;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function baseEnv(dataDir: string, databaseUrl: string | undefined): Record<string, string> {
  return {
    DATA_DIR: dataDir,
    ADMIN_TOKEN,
    SECRETS_KEY: randomBytes(32).toString('hex'),
    ALLOWED_TARGET_CIDRS: '127.0.0.0/8',
    RETRY_SCHEDULE: '200ms',
    // The service's own margin: a lease expires where a test makes it (a kill, a partition), not
    // because a busy machine took longer than a second over a delivery's timeout.
    LEASE_MARGIN: '30s',
    WEBHOOK_CONCURRENCY: '10',
    LOG_LEVEL: 'warn',
    ...(databaseUrl && { DATABASE_URL: databaseUrl }),
  };
}

/** Operator and tenant calls, over HTTP or through `inject`. */
type Call = (
  method: string,
  url: string,
  body: unknown,
  token: string,
) => Promise<{ status: number; body: any }>;

const overHttp =
  (port: number): Call =>
  async (method, url, body, token) => {
    const res = await fetch(`http://127.0.0.1:${port}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  };

const throughInject =
  (service: Service): Call =>
  async (method, url, body, token) => {
    const res = await service.app?.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(body !== undefined && { payload: body as object }),
    });
    return { status: res?.statusCode ?? 0, body: res?.body ? res.json() : undefined };
  };

/** A tenant with WEBHOOKS webhooks on the receiver, each subscribed to everything. */
async function setUp(call: Call, receiver: Receiver): Promise<{ slug: string; key: string }> {
  const slug = 'crash';
  await call(
    'POST',
    '/internal/v1/tenants',
    { slug, name: 'Crash', plan: 'enterprise', features: ['webhooks'] },
    ADMIN_TOKEN,
  );
  const key = (
    await call(
      'POST',
      `/internal/v1/tenants/${slug}/api-keys`,
      { name: 'k', scopes: ['webhooks'] },
      ADMIN_TOKEN,
    )
  ).body.data.key;
  for (let i = 0; i < WEBHOOKS; i++) {
    const res = await call(
      'POST',
      '/api/v1/webhooks',
      {
        url: `https://localhost:${receiver.port}/c/${i}`,
        events: ['*'],
        timeout_seconds: 5,
        retry_count: 10,
      },
      key,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
  return { slug, key };
}

async function publish(call: Call, slug: string, events: number): Promise<void> {
  for (let sent = 0; sent < events; sent += 200) {
    const batch = Array.from({ length: Math.min(200, events - sent) }, (_, i) => ({
      tenant: slug,
      type: 'invoice.paid',
      data: { n: sent + i },
    }));
    const res = await call('POST', '/internal/v1/events/batch', { events: batch }, ADMIN_TOKEN);
    expect(res.status).toBe(202);
  }
}

async function statusCounts(store: Store): Promise<Record<string, number>> {
  const rows = await store.db
    .selectFrom('deliveries')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/**
 * Every delivery arrived at least once. With `orphaned`, a delivery that arrived more than once
 * is one whose lease expired (in `orphaned`) or one that was retried after a failed attempt (a
 * receiver can get a request whose answer came too late).
 */
async function expectAtLeastOnce(store: Store, receiver: Receiver, orphaned?: Set<string>): Promise<void> {
  const all = (await store.db.selectFrom('deliveries').select('id').execute()).map((r) => r.id);
  const seen = new Map<string, number>();
  for (const r of receiver.requests) {
    const id = r.headers['x-webhook-delivery'] as string;
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  expect(all.filter((id) => !seen.has(id))).toEqual([]);
  if (!orphaned) return;
  const retried = new Set(
    (await store.db.selectFrom('deliveries').select('id').where('attempts', '>', 1).execute()).map(
      (r) => r.id,
    ),
  );
  const repeated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  expect(repeated.filter((id) => !orphaned.has(id) && !retried.has(id))).toEqual([]);
}

const leasedBy = async (store: Store, pid: number | undefined) =>
  new Set(
    (
      await store.db
        .selectFrom('deliveries')
        .select('id')
        .where('locked_by', 'like', `%:${pid}:%`)
        .where('status', '=', 'pending')
        .execute()
    ).map((r) => r.id),
  );

describe.skipIf(postgres.skip)('crash safety [postgres]', () => {
  it('two worker processes, one killed with SIGKILL mid-run: every delivery arrives, none stays pending', async () => {
    const certificate = await makeCertificate();
    const receiver = await new Receiver(certificate).start();
    for (let i = 0; i < WEBHOOKS; i++) receiver.on(`/c/${i}`, () => ({ status: 200, delayMs: 30 }));
    const db = await freshDatabaseUrl(postgres);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-crash-'));
    const env = baseEnv(dataDir, db.url);
    const api = await createService(loadConfig(env), { role: 'api' });
    const workers: Awaited<ReturnType<typeof startServe>>[] = [];
    try {
      const call = throughInject(api);
      const { slug } = await setUp(call, receiver);
      const one = await startServe({ ...env, PORT: '0' }, 'worker', certificate.cert, dataDir);
      const two = await startServe({ ...env, PORT: '0' }, 'worker', certificate.cert, dataDir);
      workers.push(one, two);
      await publish(call, slug, 600);
      await waitFor(() => receiver.requests.length >= 800, 30_000, '800 arrivals');
      one.child.kill('SIGKILL');
      expect(await one.exited).toBe('SIGKILL');
      const orphaned = await leasedBy(api.store, one.child.pid);
      expect(orphaned.size).toBeGreaterThan(0);
      await waitFor(
        async () => (await statusCounts(api.store)).succeeded === 600 * WEBHOOKS,
        180_000,
        'every delivery to succeed',
      );
      expect(await statusCounts(api.store)).toEqual({ succeeded: 600 * WEBHOOKS });
      await expectAtLeastOnce(api.store, receiver, orphaned);
      two.child.kill('SIGTERM');
      expect(await two.exited).toBe(0);
    } finally {
      killIfRunning(workers);
      await api.close();
      await receiver.stop();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('crash safety [sqlite]', () => {
  it('the single process killed with SIGKILL mid-run and started again on the same file: nothing is lost', async () => {
    const certificate = await makeCertificate();
    const receiver = await new Receiver(certificate).start();
    for (let i = 0; i < WEBHOOKS; i++) receiver.on(`/c/${i}`, () => ({ status: 200, delayMs: 30 }));
    const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-crash-'));
    const port = await freePort();
    const env = { ...baseEnv(dataDir, undefined), PORT: String(port), HOST: '127.0.0.1' };
    const store = await openStore({ sqlitePath: path.join(dataDir, 'webhooks.db') });
    let first: Awaited<ReturnType<typeof startServe>> | undefined;
    let second: Awaited<ReturnType<typeof startServe>> | undefined;
    try {
      first = await startServe(env, 'all', certificate.cert, dataDir);
      const call = overHttp(port);
      const { slug } = await setUp(call, receiver);
      await publish(call, slug, 400);
      await waitFor(() => receiver.requests.length >= 500, 30_000, '500 arrivals');
      first.child.kill('SIGKILL');
      expect(await first.exited).toBe('SIGKILL');
      const orphaned = await leasedBy(store, first.child.pid);
      expect(orphaned.size).toBeGreaterThan(0);
      const before = await statusCounts(store);
      expect((before.pending ?? 0) + (before.succeeded ?? 0)).toBe(400 * WEBHOOKS);
      expect(before.pending).toBeGreaterThan(0);
      second = await startServe(env, 'all', certificate.cert, dataDir);
      await waitFor(
        async () => (await statusCounts(store)).succeeded === 400 * WEBHOOKS,
        180_000,
        'every delivery',
      );
      expect(await statusCounts(store)).toEqual({ succeeded: 400 * WEBHOOKS });
      await expectAtLeastOnce(store, receiver, orphaned);
    } finally {
      killIfRunning([first]);
      second?.child.kill('SIGTERM');
      if (second) expect(await second.exited).toBe(0);
      await store.close();
      await receiver.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('the process on this Node.js [sqlite]', () => {
  it('starts, delivers and stops cleanly again and again while the garbage collector finalises statements', async () => {
    // better-sqlite3 12 on Node.js 24 aborted when a statement was finalised (WiseLibs/better-sqlite3#1515).
    const certificate = await makeCertificate();
    const receiver = await new Receiver(certificate).start();
    for (let i = 0; i < WEBHOOKS; i++) receiver.on(`/c/${i}`, () => ({ status: 200 }));
    const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-restarts-'));
    const port = await freePort();
    const env = {
      ...baseEnv(dataDir, undefined),
      PORT: String(port),
      HOST: '127.0.0.1',
      // A small young generation: collections, and the finalisers of dropped statements, run often.
      NODE_OPTIONS: '--max-semi-space-size=1',
    };
    const call = overHttp(port);
    let slug: string | undefined;
    let published = 0;
    try {
      for (let round = 0; round < 3; round++) {
        const serve = await startServe(env, 'all', certificate.cert, dataDir);
        try {
          slug ??= (await setUp(call, receiver)).slug;
          // Batches of every size from 1 to 40: statements of their own, prepared and dropped.
          for (let size = 1; size <= 40; size++) {
            const events = Array.from({ length: size }, () => ({
              tenant: slug,
              type: 'invoice.paid',
              data: {},
            }));
            const res = await call('POST', '/internal/v1/events/batch', { events }, ADMIN_TOKEN);
            expect(res.status).toBe(202);
            published += size;
          }
          await waitFor(
            () => receiver.requests.length >= published * WEBHOOKS,
            60_000,
            `${published * WEBHOOKS} arrivals`,
          );
        } finally {
          serve.child.kill('SIGTERM');
          const exit = await serve.exited;
          const output = serve.output();
          expect({
            exit,
            abort: /Assertion failed|Segmentation fault|core dumped/.exec(output)?.[0],
          }).toEqual({
            exit: 0,
            abort: undefined,
          });
        }
      }
    } finally {
      await receiver.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe.skipIf(postgres.skip)('database outage [postgres]', () => {
  it('answers 503 while the database is away, reconnects by itself, and every delivery still arrives', async () => {
    const certificate = await makeCertificate();
    const receiver = await new Receiver(certificate).start();
    for (let i = 0; i < WEBHOOKS; i++) receiver.on(`/c/${i}`, () => ({ status: 200, delayMs: 20 }));
    const db = await freshDatabaseUrl(postgres);
    const target = new URL(postgres.url as string);
    const proxy = await new TcpProxy(target.hostname, Number(target.port || 5432)).start();
    const viaProxy = new URL(db.url as string);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-outage-'));
    const config = loadConfig(baseEnv(dataDir, viaProxy.toString()));
    const logged: string[] = [];
    const service = await createService(config, {
      role: 'all',
      logger: pino({ level: 'warn' }, { write: (line: string) => logged.push(line) }),
      worker: { resolve: testResolver, ca: [certificate.cert] },
    });
    const direct = await openStore({ databaseUrl: db.url });
    try {
      const call = throughInject(service);
      const { slug, key } = await setUp(call, receiver);
      await publish(call, slug, 200);
      await waitFor(() => receiver.requests.length >= 200, 30_000, '200 arrivals');
      await proxy.cut();
      const during = await call('GET', '/api/v1/webhooks', undefined, key);
      expect(during.status).toBe(503);
      expect(during.body.error).toMatch(/database/);
      expect((await service.app?.inject('/readyz'))?.statusCode).toBe(503);
      expect(
        (
          await call(
            'POST',
            '/internal/v1/events',
            { tenant: slug, type: 'invoice.paid', data: {} },
            ADMIN_TOKEN,
          )
        ).status,
      ).toBe(503);
      // The worker finds the database gone too before it comes back.
      await waitFor(
        () => /claiming deliveries failed|recording attempts failed/.test(logged.join('')),
        undefined,
        'the worker to find the database gone',
      );
      await proxy.restore();
      await waitFor(
        async () => (await call('GET', '/api/v1/webhooks', undefined, key)).status === 200,
        20_000,
        'the API',
      );
      await publish(call, slug, 50);
      await waitFor(
        async () => (await statusCounts(direct)).succeeded === 250 * WEBHOOKS,
        180_000,
        'every delivery after the outage',
      );
      const inFlightAtCut = new Set(
        (await direct.db.selectFrom('deliveries').select('id').execute()).map((r) => r.id),
      );
      await expectAtLeastOnce(direct, receiver, inFlightAtCut);
    } finally {
      await service.close();
      await direct.close();
      await proxy.cut();
      await receiver.stop();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300_000);
});

/** A worker's own `/readyz` status, or 0 when it does not answer. */
async function readiness(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(10_000) }).catch(
    () => undefined,
  );
  return res?.status ?? 0;
}

/**
 * A receiver, a fresh PostgreSQL database, the API in this process on it directly, and the
 * environment of worker processes that reach it through a proxy that can black-hole them.
 */
async function partitionable(receiverDelayMs: number) {
  const certificate = await makeCertificate();
  const receiver = await new Receiver(certificate).start();
  for (let i = 0; i < WEBHOOKS; i++)
    receiver.on(`/c/${i}`, () => ({ status: 200, delayMs: receiverDelayMs }));
  const db = await freshDatabaseUrl(postgres);
  const target = new URL(postgres.url as string);
  const proxy = await new TcpProxy(target.hostname, Number(target.port || 5432)).start();
  const viaProxy = new URL(db.url as string);
  viaProxy.host = `127.0.0.1:${proxy.port}`;
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-partition-'));
  const env = baseEnv(dataDir, db.url);
  const api = await createService(loadConfig(env), { role: 'api' });
  const { slug } = await setUp(throughInject(api), receiver);
  return {
    certificate,
    receiver,
    proxy,
    dataDir,
    api,
    slug,
    workerEnv: { ...env, DATABASE_URL: viaProxy.toString(), PORT: '0' },
    async close() {
      await api.close();
      await proxy.cut();
      await receiver.stop();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

describe.skipIf(postgres.skip)('a silent partition [postgres]', () => {
  it('two workers whose connections are black-holed: readiness says so, they resume after the heal, nothing is lost', async () => {
    // The API publishes directly; the workers reach the database through the proxy. A short
    // statement timeout keeps the test short: a query waits at most 3 s + 2 s for its answer, and
    // the locks of a transaction cut off mid-way are freed by the server after 5 s.
    const { certificate, receiver, proxy, dataDir, api, slug, ...setup } = await partitionable(20);
    const workerEnv = {
      ...setup.workerEnv,
      DATABASE_STATEMENT_TIMEOUT: '3s',
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT: '5s',
    };
    const workers: Awaited<ReturnType<typeof startServe>>[] = [];
    const events = 2000;
    try {
      const call = throughInject(api);
      workers.push(await startServe(workerEnv, 'worker', certificate.cert, dataDir));
      workers.push(await startServe(workerEnv, 'worker', certificate.cert, dataDir));
      for (const w of workers)
        await waitFor(async () => (await readiness(w.port)) === 200, undefined, 'ready');
      await publish(call, slug, events);
      await waitFor(() => receiver.requests.length >= 1000, 30_000, '1,000 arrivals');

      proxy.blackHole();
      // What the workers hold leases on now may be sent again after the heal: their leases expire.
      const leasedAtPartition = new Set(
        (
          await api.store.db
            .selectFrom('deliveries')
            .select('id')
            .where('status', '=', 'pending')
            .where('locked_by', 'is not', null)
            .execute()
        ).map((r) => r.id),
      );
      // The partition lasts until both workers have seen a query go unanswered and say they are not ready.
      await waitFor(
        async () => (await Promise.all(workers.map((w) => readiness(w.port)))).every((s) => s === 503),
        60_000,
        'both workers to answer 503 on /readyz',
      );
      await waitFor(
        () => workers.every((w) => /claiming deliveries failed|recording attempts failed/.test(w.output())),
        60_000,
        'both workers to log a query that got no answer',
      );
      const arrivedBeforeHeal = new Set(receiver.requests.map((r) => r.headers['x-webhook-delivery']));
      const healedAt = Date.now();
      proxy.heal();

      await waitFor(
        // One claimed after the heal: neither arrived before it nor held when the partition began.
        () =>
          receiver.requests.some((r) => {
            const id = r.headers['x-webhook-delivery'] as string;
            return !arrivedBeforeHeal.has(id) && !leasedAtPartition.has(id);
          }),
        60_000,
        'the first delivery after the heal',
      );
      const firstAfterHeal = Date.now() - healedAt;
      await waitFor(
        async () => (await statusCounts(api.store)).succeeded === events * WEBHOOKS,
        180_000,
        'every delivery after the heal',
      );
      const allAfterHeal = Date.now() - healedAt;
      console.info(
        `partition healed: first new delivery after ${firstAfterHeal} ms, every delivery succeeded after ${allAfterHeal} ms`,
      );
      for (const w of workers)
        await waitFor(async () => (await readiness(w.port)) === 200, 60_000, 'ready again');
      // Each worker's loop went round after the heal, as its metric says.
      for (const w of workers) {
        const metrics = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
        const lastCycle = Number(/^webhook_worker_last_cycle_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
        expect(lastCycle * 1000).toBeGreaterThan(healedAt);
      }
      // The LISTEN connections were silenced too: each worker found out and listens again.
      await waitFor(
        () => workers.every((w) => /listening for deliveries again/.test(w.output())),
        60_000,
        'both workers to listen again',
      );
      await expectAtLeastOnce(api.store, receiver, leasedAtPartition);
      const attempts = await api.store.db
        .selectFrom('attempts')
        .select(['delivery_id', 'number', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy(['delivery_id', 'number'])
        .having((eb) => eb.fn.countAll(), '>', 1)
        .execute();
      expect(attempts).toEqual([]);
      for (const w of workers) {
        w.child.kill('SIGTERM');
        expect(await w.exited).toBe(0);
      }
    } finally {
      killIfRunning(workers);
      await setup.close();
    }
  }, 300_000);

  it('SIGTERM ends a worker whose database went silent, within SHUTDOWN_GRACE and its margin', async () => {
    const { certificate, receiver, proxy, dataDir, api, slug, workerEnv, ...setup } = await partitionable(50);
    let worker: Awaited<ReturnType<typeof startServe>> | undefined;
    try {
      const call = throughInject(api);
      // The default statement timeout (15 s): shutdown must not wait for it, nor for the database at all.
      worker = await startServe({ ...workerEnv, SHUTDOWN_GRACE: '2s' }, 'worker', certificate.cert, dataDir);
      await publish(call, slug, 400);
      await waitFor(() => receiver.requests.length >= 100, 30_000, '100 arrivals');
      proxy.blackHole();
      const signalledAt = Date.now();
      worker.child.kill('SIGTERM');
      const stopping = worker;
      await waitFor(() => hasExited(stopping), 60_000, 'the worker to exit after SIGTERM');
      const exit = await stopping.exited;
      console.info(`SIGTERM with the database silent: exited ${exit} after ${Date.now() - signalledAt} ms`);
      // Exit code 1 when the shutdown had to give up on the database; leases expire as after a kill.
      expect([0, 1]).toContain(exit);
      proxy.heal();
      const restarted = await startServe(workerEnv, 'worker', certificate.cert, dataDir);
      worker = restarted;
      await waitFor(
        async () => (await statusCounts(api.store)).succeeded === 400 * WEBHOOKS,
        180_000,
        'every delivery after the restart',
      );
      restarted.child.kill('SIGTERM');
      expect(await restarted.exited).toBe(0);
    } finally {
      killIfRunning([worker]);
      await setup.close();
    }
  }, 300_000);
});

describe.skipIf(postgres.skip)('a stuck worker loop [postgres]', () => {
  it('counts a cycle held up past its bound, and lets it go once the cycle ends', async () => {
    const db = await freshDatabaseUrl(postgres);
    const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-stuck-'));
    // A long statement timeout: the claim waits on the lock below instead of being cancelled.
    const config = loadConfig({ ...baseEnv(dataDir, db.url), DATABASE_STATEMENT_TIMEOUT: '10m' });
    const service = await createService(config, { role: 'worker' });
    const worker = service.worker as NonNullable<Service['worker']>;
    const locker = await openStore({ databaseUrl: db.url });
    // Readiness asks whether the cycle under way is older than its bound; the clock is moved, not waited for.
    const stalledOnceBoundPassed = () => worker.stalled(Date.now() + worker.cycleBoundMs + 1_000);
    try {
      await locker.db.transaction().execute(async (trx) => {
        await sql`lock table deliveries in access exclusive mode`.execute(trx);
        worker.wake();
        await waitFor(() => stalledOnceBoundPassed(), 30_000, 'a claim held up by the lock');
        expect(stalledOnceBoundPassed()).toMatch(/has not completed a cycle/);
        // Not stuck yet in real time: readiness still answers 200.
        expect((await service.app.inject('/readyz')).statusCode).toBe(200);
      });
      await waitFor(() => stalledOnceBoundPassed() === undefined, 30_000, 'the cycle to end');
    } finally {
      await locker.close();
      await service.close();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/domain/outcome.js';
import { migrate, openStore, type Store } from '../../src/store/db.js';
import {
  type ClaimedDelivery,
  claimDeliveries,
  type Outcome,
  recordOutcomes,
} from '../../src/store/deliveries.js';
import { newDeliveryRow } from '../../src/store/events.js';
import { createTenant } from '../../src/store/tenants.js';
import { createWebhook, deleteWebhook } from '../../src/store/webhooks.js';
import { freshDatabaseUrl, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES, storedWebhook, storeEvent } from '../helpers/harness.js';
import { POSTGRES_COMMIT_ANSWER, TcpProxy } from '../helpers/tcp-proxy.js';

/** Never switches a webhook off within a test: its failures began moments ago. */
const RULES = {
  autoDisable: { afterMs: 3_600_000, minFailedDeliveries: 5 },
  breaker: { probeIntervalMs: 3_600_000, catchUpWindowMs: 3 * 86_400_000 },
};
const LEASE_MARGIN_MS = 60_000;

/** A database of its own, migrated, with a tenant; `url` is PostgreSQL's (undefined for SQLite). */
async function freshStore(database: (typeof DATABASES)[number]) {
  const fresh = await freshDatabaseUrl(database);
  const store = await openStore({ databaseUrl: fresh.url });
  await migrate(store);
  const tenant = await createTenant(store, {
    slug: 'outcomes',
    name: 'Outcomes',
    plan: 'enterprise',
    features: ['webhooks'],
  });
  if (!tenant) throw new Error('no tenant');
  return {
    store,
    url: fresh.url,
    tenantId: tenant.id,
    async drop() {
      await store.close();
      await fresh.drop();
    },
  };
}

async function webhooks(store: Store, tenantId: number, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const webhook = await createWebhook(store, tenantId, storedWebhook(i), Number.MAX_SAFE_INTEGER);
    ids.push(webhook.id);
  }
  return ids;
}

/** `perWebhook` new deliveries of each webhook, due at `now`. */
async function queue(store: Store, tenantId: number, webhookIds: number[], now: number, perWebhook = 1) {
  const eventId = await storeEvent(store, tenantId, now);
  const rows = webhookIds.flatMap((webhookId) =>
    Array.from({ length: perWebhook }, () =>
      newDeliveryRow(
        { tenant_id: tenantId, webhook_id: webhookId, event_id: eventId, event_type: 'invoice.paid' },
        now,
      ),
    ),
  );
  await store.db.insertInto('deliveries').values(rows).execute();
}

const claim = (store: Store, workerId: string, now: number, perWebhook = 100) =>
  claimDeliveries(store, {
    workerId,
    now,
    limit: 100,
    perWebhook,
    perTenant: 100,
    busyWebhooks: new Map(),
    busyTenants: new Map(),
    leaseMarginMs: LEASE_MARGIN_MS,
  });

function outcome(delivery: ClaimedDelivery, decision: Decision, startedAt: number, status: number): Outcome {
  return {
    delivery,
    decision,
    attempt: {
      startedAt,
      durationMs: 12,
      requestHeaders: { 'content-type': 'application/json' },
      statusCode: status,
      responseHeaders: { 'content-type': 'text/plain' },
      responseBody: status < 300 ? 'ok' : 'no',
      error: null,
    },
  };
}

/** Everything an outcome write touches, in a stable order. */
async function snapshot(store: Store) {
  const [attempts, deliveries, hooks] = await Promise.all([
    store.db
      .selectFrom('attempts')
      .selectAll()
      .orderBy('delivery_id')
      .orderBy('number')
      .orderBy('id')
      .execute(),
    store.db.selectFrom('deliveries').selectAll().orderBy('id').execute(),
    store.db
      .selectFrom('webhooks')
      .select([
        'id',
        'is_active',
        'failure_count',
        'failing_since',
        'last_triggered_at',
        'last_success_at',
        'last_failure_at',
        'disabled_reason',
        'updated_at',
      ])
      .orderBy('id')
      .execute(),
  ]);
  return { attempts, deliveries, webhooks: hooks };
}

/** Rows whose first column is a delivery id, in id order (as the database sorts them). */
const byDelivery = <T extends unknown[]>(rows: T[]) =>
  rows.sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1));

const byWebhook = (claimed: ClaimedDelivery[], webhookId: number) =>
  claimed.filter((d) => d.webhook_id === webhookId);

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`outcome writes [${database.name}]`, () => {
    it('writing the same batch again changes nothing: attempts, deliveries, webhooks stay as written once', async () => {
      const { store, tenantId, drop } = await freshStore(database);
      try {
        const [a, b] = (await webhooks(store, tenantId, 2)) as [number, number];
        const t = Date.now();
        await queue(store, tenantId, [a], t, 2);
        await queue(store, tenantId, [b], t, 1);
        const claimed = await claim(store, 'worker-1', t);
        expect(claimed).toHaveLength(3);
        const [ok, retry] = byWebhook(claimed, a) as [ClaimedDelivery, ClaimedDelivery];
        const [exhausted] = byWebhook(claimed, b) as [ClaimedDelivery];
        const batch = [
          outcome(ok, { status: 'succeeded' }, t, 200),
          outcome(retry, { status: 'pending', nextAttemptAt: t + 60_000 }, t + 100, 500),
          outcome(exhausted, { status: 'failed' }, t + 50, 500),
        ];

        expect(await recordOutcomes(store, 'worker-1', batch, RULES)).toMatchObject({
          written: 3,
          dropped: 0,
        });
        const once = await snapshot(store);
        expect(once.attempts.map((r) => [r.delivery_id, r.number, r.delivery_status])).toEqual(
          byDelivery([
            [ok.id, 1, 'succeeded'],
            [retry.id, 1, 'pending'],
            [exhausted.id, 1, 'failed'],
          ]),
        );
        expect(once.deliveries.map((d) => [d.id, d.status, d.attempts, d.locked_by])).toEqual(
          byDelivery([
            [ok.id, 'succeeded', 1, null],
            [retry.id, 'pending', 1, null],
            [exhausted.id, 'failed', 1, null],
          ]),
        );
        expect(once.webhooks.map(({ updated_at: _, ...w }) => w)).toEqual([
          {
            id: a,
            is_active: 1,
            failure_count: 1,
            failing_since: t + 100,
            last_triggered_at: t + 100,
            last_success_at: t + 12,
            last_failure_at: t + 112,
            disabled_reason: null,
          },
          {
            id: b,
            is_active: 1,
            failure_count: 1,
            failing_since: t + 50,
            last_triggered_at: t + 50,
            last_success_at: null,
            last_failure_at: t + 62,
            disabled_reason: null,
          },
        ]);

        // As the worker's flush does when it did not hear the first write's answer.
        expect(await recordOutcomes(store, 'worker-1', batch, RULES)).toMatchObject({
          written: 0,
          dropped: 3,
        });
        expect(await snapshot(store)).toEqual(once);
      } finally {
        await drop();
      }
    });

    it('drops the outcome of a delivery whose lease another worker took; that worker records its own', async () => {
      const { store, tenantId, drop } = await freshStore(database);
      try {
        const [a] = (await webhooks(store, tenantId, 1)) as [number];
        const t = Date.now();
        await queue(store, tenantId, [a], t, 1);
        const [late] = (await claim(store, 'worker-late', t)) as [ClaimedDelivery];
        // The lease (margin + timeout) has run out by then: another worker takes the delivery.
        const later = t + LEASE_MARGIN_MS + 31_000;
        const [taken] = (await claim(store, 'worker-next', later)) as [ClaimedDelivery];
        expect(taken.id).toBe(late.id);
        const before = await snapshot(store);

        const lost = [outcome(late, { status: 'failed' }, t, 500)];
        expect(await recordOutcomes(store, 'worker-late', lost, RULES)).toMatchObject({
          written: 0,
          dropped: 1,
        });
        expect(await snapshot(store)).toEqual(before);

        const own = [outcome(taken, { status: 'succeeded' }, later, 200)];
        expect(await recordOutcomes(store, 'worker-next', own, RULES)).toMatchObject({
          written: 1,
          dropped: 0,
        });
        const after = await snapshot(store);
        expect(after.attempts.map((r) => [r.number, r.delivery_status, r.started_at])).toEqual([
          [1, 'succeeded', later],
        ]);
        expect(after.webhooks[0]).toMatchObject({ failure_count: 0, last_success_at: later + 12 });
      } finally {
        await drop();
      }
    });

    it('drops a second outcome for the same attempt of a delivery the same worker claimed twice', async () => {
      const { store, tenantId, drop } = await freshStore(database);
      try {
        const [a] = (await webhooks(store, tenantId, 1)) as [number];
        const t = Date.now();
        await queue(store, tenantId, [a], t, 1);
        const [first] = (await claim(store, 'worker-1', t)) as [ClaimedDelivery];
        // Its lease ran out while its outcome waited to be written: the same worker claims it again.
        const later = t + LEASE_MARGIN_MS + 31_000;
        const [again] = (await claim(store, 'worker-1', later)) as [ClaimedDelivery];
        expect(again.id).toBe(first.id);

        const newer = [outcome(again, { status: 'succeeded' }, later, 200)];
        expect(await recordOutcomes(store, 'worker-1', newer, RULES)).toMatchObject({
          written: 1,
          dropped: 0,
        });
        const stale = [outcome(first, { status: 'pending', nextAttemptAt: later }, t, 500)];
        expect(await recordOutcomes(store, 'worker-1', stale, RULES)).toMatchObject({
          written: 0,
          dropped: 1,
        });
        const after = await snapshot(store);
        expect(after.attempts.map((r) => [r.number, r.delivery_status])).toEqual([[1, 'succeeded']]);
        expect(after.deliveries.map((d) => [d.status, d.attempts])).toEqual([['succeeded', 1]]);
        expect(after.webhooks[0]).toMatchObject({ failure_count: 0, last_failure_at: null });
      } finally {
        await drop();
      }
    });
  });
}

const postgres = DATABASES.find((d) => d.name === 'postgres') as (typeof DATABASES)[number];

/** Waits until `count` connections named `name` wait for a lock (a row another transaction holds). */
async function waitingForLocks(store: Store, name: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
        where application_name = ${name} and wait_event_type = 'Lock'`.execute(store.db);
      return (rows[0]?.n ?? 0) >= count;
    },
    20_000,
    `${count} connections waiting for a lock`,
  );
}

describe.skipIf(postgres.skip)('outcome writes under faults [postgres]', () => {
  it('a crash between the commit and its answer: written again, each attempt is there once and counted once', async () => {
    const { store: direct, url, tenantId, drop } = await freshStore(postgres);
    const target = new URL(url as string);
    const proxy = await new TcpProxy(target.hostname, Number(target.port || 5432)).start();
    const viaProxy = new URL(url as string);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const store = await openStore({ databaseUrl: viaProxy.toString() });
    try {
      const [a, b] = (await webhooks(direct, tenantId, 2)) as [number, number];
      const t = Date.now();
      await queue(direct, tenantId, [a, b], t, 2);
      const claimed = await claim(store, 'worker-1', t);
      expect(claimed).toHaveLength(4);
      const [a1, a2] = byWebhook(claimed, a) as [ClaimedDelivery, ClaimedDelivery];
      const [b1, b2] = byWebhook(claimed, b) as [ClaimedDelivery, ClaimedDelivery];
      // A failure that gives up, so that the write is a transaction on any version of it.
      const batch = [
        outcome(a1, { status: 'succeeded' }, t, 200),
        outcome(a2, { status: 'pending', nextAttemptAt: t + 60_000 }, t + 10, 500),
        outcome(b1, { status: 'pending', nextAttemptAt: t + 60_000 }, t + 20, 503),
        outcome(b2, { status: 'failed' }, t + 30, 500),
      ];

      const cut = proxy.cutOnAnswer(POSTGRES_COMMIT_ANSWER);
      await expect(recordOutcomes(store, 'worker-1', batch, RULES)).rejects.toThrow();
      await cut;
      // It did commit: the worker just never heard so.
      const committed = await snapshot(direct);
      expect(committed.attempts).toHaveLength(4);

      // The worker's flush writes the batch again, on a new connection.
      await recordOutcomes(store, 'worker-1', batch, RULES);
      const after = await snapshot(direct);
      expect(after.attempts.map((r) => [r.delivery_id, r.number])).toEqual(
        byDelivery([a1, a2, b1, b2].map((d) => [d.id, 1])),
      );
      expect(after.webhooks.map((w) => [w.id, w.failure_count, w.failing_since])).toEqual([
        [a, 1, t + 10],
        [b, 2, t + 20],
      ]);
      expect(after).toEqual(committed);
    } finally {
      await store.close();
      await proxy.cut();
      await drop();
    }
  });

  it('two workers writing outcomes of the same webhooks in opposite orders never deadlock', async () => {
    const { store: direct, url, tenantId, drop } = await freshStore(postgres);
    // The writers' connections are told apart by name in pg_stat_activity.
    const name = `outcome-writer-${randomBytes(4).toString('hex')}`;
    const writerUrl = `${url}&application_name=${name}`;
    const one = await openStore({ databaseUrl: writerUrl });
    const two = await openStore({ databaseUrl: writerUrl });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    const deadlocks: unknown[] = [];
    const failures: unknown[] = [];
    const ROUNDS = 20;
    try {
      const ids = await webhooks(direct, tenantId, 3);
      const middle = ids[1] as number;
      // As many webhooks as an installation in use has, with statistics: PostgreSQL then finds the
      // few of a batch one by one through the index, in the order the batch gives them (with a
      // handful of webhooks it scans the table, in table order, the same for every writer).
      await sql`insert into webhooks (tenant_id, name, url, is_active, headers, retry_count, timeout_seconds,
          secret_ciphertext, failure_count, created_at, updated_at)
        select ${tenantId}, 'other', 'https://example.com/other', 0, '{}', 5, 30, 'unused', 0, 1, 1
        from generate_series(1, 20000)`.execute(direct.db);
      await sql`analyze webhooks`.execute(direct.db);
      for (let round = 0; round < ROUNDS; round++) {
        const t = Date.now();
        await queue(direct, tenantId, ids, t, 2);
        // One delivery of each webhook for each worker.
        const mine = await claim(one, 'worker-1', t, 1);
        const theirs = await claim(two, 'worker-2', t, 1);
        expect([mine.length, theirs.length]).toEqual([ids.length, ids.length]);
        const batch = (claimed: ClaimedDelivery[], order: 1 | -1) =>
          claimed
            .sort((x, y) => order * (x.webhook_id - y.webhook_id))
            .map((d, i) =>
              outcome(
                d,
                i % 10 === 0 ? { status: 'failed' } : { status: 'pending', nextAttemptAt: t + 60_000 },
                t + i,
                // An exhaustion the receiver refused: it does not make the webhook failing, whose
                // deliveries the next round's claims would then hold back.
                i % 10 === 0 ? 422 : 500,
              ),
            );
        // Every other round, a third transaction holds the middle webhook until both writers wait
        // for a lock: both are then midway through the batch at once, the worst interleaving.
        const forced = round % 2 === 0;
        if (forced) {
          await holder.query('begin');
          await holder.query('select id from webhooks where id = $1 for no key update', [middle]);
        }
        const writes = Promise.allSettled([
          recordOutcomes(one, 'worker-1', batch(mine, 1), RULES),
          recordOutcomes(two, 'worker-2', batch(theirs, -1), RULES),
        ]);
        if (forced) {
          try {
            await waitingForLocks(direct, name, 2);
          } finally {
            await holder.query('commit');
          }
        }
        for (const result of await writes) {
          if (result.status === 'fulfilled') continue;
          if ((result.reason as { code?: string }).code === '40P01') deadlocks.push(result.reason);
          else failures.push(result.reason);
        }
      }
      expect({ deadlocks: deadlocks.length, failures }).toEqual({ deadlocks: 0, failures: [] });
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from attempts`.execute(direct.db);
      expect(rows[0]?.n).toBe(2 * ids.length * ROUNDS);
      const counts = await direct.db
        .selectFrom('webhooks')
        .select('failure_count')
        .where('id', 'in', ids)
        .execute();
      expect(counts.every((w) => w.failure_count === 2 * ROUNDS)).toBe(true);
    } finally {
      await holder.end();
      await one.close();
      await two.close();
      await drop();
    }
  }, 120_000);

  it('a webhook deleted while an outcome of its delivery is written: whichever comes first, the other waits, no deadlock', async () => {
    const { store: direct, url, tenantId, drop } = await freshStore(postgres);
    const name = `outcome-writer-${randomBytes(4).toString('hex')}`;
    const store = await openStore({ databaseUrl: `${url}&application_name=${name}` });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    const errors: unknown[] = [];
    const settle = (work: Promise<unknown>) => work.then(undefined, (error: unknown) => errors.push(error));
    try {
      for (const first of ['write', 'delete', 'write', 'delete'] as const) {
        const [w] = (await webhooks(direct, tenantId, 1)) as [number];
        const t = Date.now();
        await queue(direct, tenantId, [w], t, 1);
        const [d] = (await claim(store, 'worker-1', t)) as [ClaimedDelivery];
        const write = () =>
          settle(recordOutcomes(store, 'worker-1', [outcome(d, { status: 'failed' }, t, 500)], RULES));
        const remove = () => settle(deleteWebhook(store, tenantId, w));
        // A third transaction holds the delivery while the one, then the other, come to wait for a
        // lock: each has then locked what it locks first.
        await holder.query('begin');
        await holder.query('select id from deliveries where id = $1 for no key update', [d.id]);
        const both: Promise<unknown>[] = [];
        try {
          both.push(first === 'write' ? write() : remove());
          await waitingForLocks(direct, name, 1);
          both.push(first === 'write' ? remove() : write());
          await waitingForLocks(direct, name, 2);
        } finally {
          await holder.query('commit');
        }
        await Promise.all(both);
        // Written first: the delivery failed with its attempt, and stays so (only pending ones are
        // cancelled). Deleted first: cancelled, and the outcome of a lease cancelled is dropped.
        const row = await direct.db
          .selectFrom('deliveries')
          .select('status')
          .where('id', '=', d.id)
          .executeTakeFirst();
        const attempts = await direct.db
          .selectFrom('attempts')
          .select('number')
          .where('delivery_id', '=', d.id)
          .execute();
        expect({ first, status: row?.status, attempts: attempts.map((a) => a.number) }).toEqual(
          first === 'write'
            ? { first, status: 'failed', attempts: [1] }
            : { first, status: 'cancelled', attempts: [] },
        );
        expect(errors).toEqual([]);
      }
    } finally {
      await holder.end();
      await store.close();
      await drop();
    }
  }, 60_000);
});

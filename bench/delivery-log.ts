import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { newDeliveryId, newEventId } from '../src/domain/ids.js';
import { migrate, openStore, type Store } from '../src/store/db.js';
import { type LogFilter, listDeliveries } from '../src/store/delivery-log.js';

/**
 * The delivery log on a large log: `npx tsx bench/delivery-log.ts [rows]` (default 1,000,000) fills
 * a fresh database with that many deliveries of 200 webhooks over 30 days (two in five for one busy
 * webhook, which never gets one common type), then times one page (25 items) of each filter, for
 * the busy webhook and a quiet one.
 * SQLite always; PostgreSQL too when BENCH_DATABASE_URL is set (in a schema of its own, dropped after).
 */

const ROWS = Number(process.argv[2] ?? 1_000_000);
const WEBHOOKS = 200;
const DAYS = 30;
const DAY_MS = 86_400_000;
const RUNS = 25;
const STATUSES = ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'pending', 'cancelled'];
const TYPES = ['invoice.paid', 'invoice.created', 'contact.created', 'booth.assigned', 'participant.added'];

async function fill(store: Store): Promise<number[]> {
  const now = Date.now();
  const { id: tenantId } = await store.db
    .insertInto('tenants')
    .values({
      slug: 'bench',
      name: 'Bench',
      plan: 'business',
      features: '["webhooks"]',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const webhookIds: number[] = [];
  for (let i = 0; i < WEBHOOKS; i++) {
    const { id } = await store.db
      .insertInto('webhooks')
      .values({
        tenant_id: tenantId,
        name: `hook ${i}`,
        url: 'https://example.com/hook',
        is_active: 1,
        headers: '{}',
        retry_count: 3,
        timeout_seconds: 30,
        secret_ciphertext: 'none',
        failure_count: 0,
        created_at: now,
        updated_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    webhookIds.push(id);
  }
  const start = now - DAYS * DAY_MS;
  const eventId = newEventId(start);
  await store.db
    .insertInto('events')
    .values({
      id: eventId,
      tenant_id: tenantId,
      type: 'invoice.paid',
      client_id: null,
      payload: '{}',
      created_at: start,
    })
    .execute();
  const [busy, ...quiet] = webhookIds as [number, ...number[]];
  const CHUNK = 1000;
  for (let from = 0; from < ROWS; from += CHUNK) {
    const rows = [];
    for (let i = from; i < Math.min(ROWS, from + CHUNK); i++) {
      const at = start + Math.floor((i * DAYS * DAY_MS) / ROWS);
      const status = STATUSES[i % STATUSES.length] as string;
      const type = TYPES[Math.floor(i / 5) % TYPES.length] as string;
      rows.push({
        id: newDeliveryId(at),
        tenant_id: tenantId,
        webhook_id: i % 5 < 2 ? busy : (quiet[i % quiet.length] as number),
        event_id: eventId,
        // Not i % 5: that would give the busy webhook (i % 5 < 2) two types only. The busy webhook
        // never gets contact.created, a type common in the table.
        event_type: i % 5 < 2 && type === 'contact.created' ? 'invoice.paid' : type,
        status,
        attempts: 1,
        next_attempt_at: status === 'pending' ? at : null,
        locked_until: null,
        locked_by: null,
        last_status_code: 200,
        last_error: null,
        created_at: at,
        updated_at: at,
        is_test: 0,
        manual: 0,
      });
    }
    await store.db.insertInto('deliveries').values(rows).execute();
    if (from % 100_000 === 0) process.stderr.write(`\r  filled ${from.toLocaleString('en')} rows`);
  }
  process.stderr.write(`\r  filled ${ROWS.toLocaleString('en')} rows\n`);
  await sql`analyze`.execute(store.db);
  return [tenantId, busy, quiet[7] as number];
}

async function measure(store: Store, label: string): Promise<void> {
  console.log(`\n${label}: ${ROWS.toLocaleString('en')} deliveries, ${WEBHOOKS} webhooks`);
  const [tenantId, busy, quiet] = (await fill(store)) as [number, number, number];
  const now = Date.now();
  const first = (await listDeliveries(store, tenantId, busy, {}, 25)).deliveries;
  const cursor = first[first.length - 1]?.id;
  const cases: [string, LogFilter][] = [
    ['newest page', {}],
    ['status=failed', { status: 'failed' }],
    ['event=booth.assigned', { eventType: 'booth.assigned' }],
    ['event=contact.created (never sent to the busy one)', { eventType: 'contact.created' }],
    ['status=failed&event=booth.assigned', { status: 'failed', eventType: 'booth.assigned' }],
    ['status=succeeded&event=contact.created', { status: 'succeeded', eventType: 'contact.created' }],
    ['since..until (one day)', { since: now - 10 * DAY_MS, until: now - 9 * DAY_MS }],
    ['cursor (second page)', { before: cursor }],
    ['status=failed, 20 days back', { status: 'failed', until: now - 20 * DAY_MS }],
  ];
  console.log('| query | busy webhook p50 / max (ms) | quiet webhook p50 / max (ms) |');
  console.log('| --- | --- | --- |');
  for (const [name, filter] of cases) {
    const cells = [];
    for (const webhookId of [busy, quiet]) {
      const times: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const t = performance.now();
        await listDeliveries(store, tenantId, webhookId, filter, 25);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      cells.push(
        `${(times[Math.floor(RUNS / 2)] as number).toFixed(2)} / ${(times[RUNS - 1] as number).toFixed(2)}`,
      );
    }
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'pdw-log-bench-'));
const sqlite = await openStore({ sqlitePath: path.join(dir, 'bench.db') });
try {
  await migrate(sqlite);
  await measure(sqlite, 'SQLite');
} finally {
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
}

const url = process.env.BENCH_DATABASE_URL;
if (url) {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const postgres = await openStore({ databaseUrl: url, pgSchema: schema });
  try {
    await migrate(postgres);
    await measure(postgres, 'PostgreSQL');
  } finally {
    await sql`drop schema ${sql.id(schema)} cascade`.execute(postgres.db);
    await postgres.close();
  }
}

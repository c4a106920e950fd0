import { CompiledQuery, sql } from 'kysely';
import { beforeAll, expect, it } from 'vitest';
import { newDeliveryId } from '../../src/domain/ids.js';
import type { Store } from '../../src/store/db.js';
import {
  deliveryLogQuery,
  type LogFilter,
  RECOVER_BATCH,
  recoverFailedDeliveries,
} from '../../src/store/delivery-log.js';
import { describeContract, storeEvent, webhookBody } from '../helpers/harness.js';

/**
 * The delivery log stays fast on a large log: every filter is answered by walking one index of
 * `deliveries` newest first, never by reading a webhook's whole log and sorting it. Proven with
 * each database's own EXPLAIN on a log of many webhooks.
 */

const WEBHOOKS = 50;
const ROWS = 25_000;
const STATUSES = ['succeeded', 'succeeded', 'succeeded', 'failed', 'pending'];
const TYPES = ['invoice.paid', 'invoice.created', 'contact.created', 'booth.assigned'];
const DAY_MS = 86_400_000;

/**
 * `rows` deliveries spread over the last 10 days: two in five for the first (busy) webhook, the
 * rest shared by the others, as a real log is shaped. The busy webhook never gets contact.created,
 * a common type: the trap of a filter that matches many rows of the table and none of the webhook.
 */
async function fill(store: Store, tenantId: number, webhookIds: number[], rows: number, status?: string) {
  const start = Date.now() - 10 * DAY_MS;
  const eventId = await storeEvent(store, tenantId, start);
  const [busy, ...quiet] = webhookIds as [number, ...number[]];
  const all = [];
  for (let i = 0; i < rows; i++) {
    const at = start + Math.floor((i * 10 * DAY_MS) / rows);
    all.push({
      id: newDeliveryId(at),
      tenant_id: tenantId,
      webhook_id: quiet.length === 0 || i % 5 < 2 ? busy : (quiet[i % quiet.length] as number),
      event_id: eventId,
      event_type:
        quiet.length > 0 && i % 5 < 2 && TYPES[i % TYPES.length] === 'contact.created'
          ? 'invoice.paid'
          : (TYPES[i % TYPES.length] as string),
      status: status ?? (STATUSES[Math.floor(i / 5) % STATUSES.length] as string),
      attempts: 1,
      next_attempt_at: null,
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
  for (let i = 0; i < all.length; i += 1000) {
    await store.db
      .insertInto('deliveries')
      .values(all.slice(i, i + 1000))
      .execute();
  }
}

interface Plan {
  indexes: string[];
  fullScan: boolean;
  sorts: boolean;
  text: string;
}

/** What the database plans for a query: the indexes it walks, and whether it scans or sorts. */
async function planOf(store: Store, compiled: CompiledQuery): Promise<Plan> {
  if (store.dialect === 'sqlite') {
    const { rows } = await store.db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]),
    );
    const text = rows.map((r) => r.detail).join('\n');
    return {
      indexes: [...text.matchAll(/USING (?:COVERING )?INDEX (\w+)/g)].map((m) => m[1] as string),
      fullScan: /^SCAN deliveries(?! USING)/m.test(text),
      sorts: /USE TEMP B-TREE/.test(text),
      text,
    };
  }
  const { rows } = await store.db.executeQuery<{ 'QUERY PLAN': unknown }>(
    CompiledQuery.raw(`explain (format json) ${compiled.sql}`, [...compiled.parameters]),
  );
  const nodes: Record<string, unknown>[] = [];
  const walk = (node: Record<string, unknown>) => {
    nodes.push(node);
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child);
  };
  const [explained] = (rows[0]?.['QUERY PLAN'] ?? []) as { Plan: Record<string, unknown> }[];
  if (!explained) throw new Error('EXPLAIN gave no plan');
  walk(explained.Plan);
  return {
    indexes: nodes.flatMap((n) => (typeof n['Index Name'] === 'string' ? [n['Index Name'] as string] : [])),
    fullScan: nodes.some((n) => n['Node Type'] === 'Seq Scan'),
    sorts: nodes.some((n) => n['Node Type'] === 'Sort' || n['Node Type'] === 'Incremental Sort'),
    text: JSON.stringify(rows[0]?.['QUERY PLAN']),
  };
}

describeContract('delivery log queries', (h) => {
  let tenantId: number;
  let webhookIds: number[];

  beforeAll(async () => {
    const tenant = await h().tenant();
    tenantId = tenant.id;
    webhookIds = [];
    for (let i = 0; i < WEBHOOKS; i++) {
      const res = await h().api('POST', '/api/v1/webhooks', { key: tenant.key, body: webhookBody() });
      webhookIds.push(res.json().data.id);
    }
    await fill(h().store, tenantId, webhookIds, ROWS);
    await sql`analyze`.execute(h().store.db);
  }, 120_000);

  const now = Date.now();
  const cases: [string, LogFilter, string][] = [
    ['no filter', {}, 'deliveries_webhook'],
    ['status', { status: 'failed' }, 'deliveries_webhook_status'],
    ['event type', { eventType: 'booth.assigned' }, 'deliveries_webhook_event'],
    [
      'an event type common in the table, never sent to the busy webhook',
      { eventType: 'contact.created' },
      'deliveries_webhook_event',
    ],
    ['a status with no rows', { status: 'cancelled' }, 'deliveries_webhook_status'],
    // Either index bounds the work by this webhook's rows: the planner may take the type's and sort.
    [
      'failed and an event type',
      { status: 'failed', eventType: 'booth.assigned' },
      'deliveries_webhook_status|deliveries_webhook_event',
    ],
    [
      'succeeded and an event type',
      { status: 'succeeded', eventType: 'invoice.paid' },
      'deliveries_webhook_event',
    ],
    ['since and until', { since: now - 5 * DAY_MS, until: now - 4 * DAY_MS }, 'deliveries_webhook'],
    ['a cursor', { before: newDeliveryId(now - 3 * DAY_MS) }, 'deliveries_webhook'],
    [
      'status, time and a cursor',
      { status: 'succeeded', since: now - 8 * DAY_MS, before: newDeliveryId(now - 3 * DAY_MS) },
      'deliveries_webhook_status',
    ],
    [
      'event type, time and a cursor',
      { eventType: 'booth.assigned', until: now - DAY_MS, before: newDeliveryId(now - 2 * DAY_MS) },
      'deliveries_webhook_event',
    ],
  ];

  /**
   * For a quiet webhook and for the busy one alike, the page comes from the one index chosen for
   * the filters, walked newest first: never from the primary key (all webhooks' deliveries newest
   * first, the others' skipped), which reads the whole table when this webhook has no matching rows.
   * (The planner may instead sort the few rows the index finds when it expects few.)
   */
  it.each(
    cases.flatMap(([label, filter, index]) => [
      [`${label}, quiet webhook`, filter, index, 1] as const,
      [`${label}, busy webhook`, filter, index, 0] as const,
    ]),
  )('walks the right index, never the whole table: %s', async (_label, filter, index, which) => {
    const store = h().store;
    const webhookId = webhookIds[which] as number;
    const query = deliveryLogQuery(store, tenantId, webhookId, filter, 26);
    const plan = await planOf(store, query.compile());
    expect(plan.fullScan, plan.text).toBe(false);
    expect(plan.indexes, plan.text).toHaveLength(1);
    expect(index.split('|'), plan.text).toContain(plan.indexes[0]);

    // And the answer is right: newest first, this webhook only, every filter applied.
    const rows = await query.execute();
    if (!(filter.status === 'cancelled' || (which === 0 && filter.eventType === 'contact.created'))) {
      expect(rows.length).toBeGreaterThan(0);
    }
    expect(rows.map((r) => r.id)).toEqual(
      rows
        .map((r) => r.id)
        .sort()
        .reverse(),
    );
    for (const row of rows) {
      expect(row.webhook_id).toBe(webhookId);
      if (filter.status) expect(row.status).toBe(filter.status);
      if (filter.eventType) expect(row.event_type).toBe(filter.eventType);
      if (filter.since !== undefined) expect(row.created_at).toBeGreaterThanOrEqual(filter.since);
      if (filter.until !== undefined) expect(row.created_at).toBeLessThanOrEqual(filter.until);
      if (filter.before) expect(row.id < filter.before).toBe(true);
    }
  });

  it('recovers a large window in batches, reporting progress', async () => {
    const tenant = await h().tenant();
    const res = await h().api('POST', '/api/v1/webhooks', {
      key: tenant.key,
      body: webhookBody({ is_active: false }),
    });
    const webhookId = res.json().data.id;
    const count = RECOVER_BATCH * 2 + 500;
    await fill(h().store, tenant.id, [webhookId], count, 'failed');
    const steps: number[] = [];
    const queued = await recoverFailedDeliveries(
      h().store,
      tenant.id,
      webhookId,
      { since: Date.now() - 11 * DAY_MS, until: Date.now() },
      (p) => {
        expect(p.total).toBe(count);
        steps.push(p.queued);
      },
    );
    expect(queued).toBe(count);
    expect(steps).toEqual([0, RECOVER_BATCH, 2 * RECOVER_BATCH, count]);
    const rows = await h()
      .store.db.selectFrom('deliveries')
      .select(['status', 'manual'])
      .where('webhook_id', '=', webhookId)
      .execute();
    expect(rows.every((r) => r.status === 'pending' && r.manual === 1)).toBe(true);
  }, 60_000);
});

import { expect, it } from 'vitest';
import { describeContract, webhookBody } from '../helpers/harness.js';

describeContract('publish API', (h) => {
  const publish = (body: unknown) => h().operator('POST', '/internal/v1/events', body);

  it('queues one delivery per subscribed active webhook, committed before the 202', async () => {
    const t = await h().tenant();
    const other = await h().tenant();
    const make = (events: string[], is_active = true, key = t.key) =>
      h().api('POST', '/api/v1/webhooks', { key, body: webhookBody({ events, is_active }) });
    await make(['invoice.paid']);
    await make(['*']);
    await make(['invoice.paid', 'invoice.created']);
    await make(['contact.created']);
    await make(['invoice.paid'], false);
    await make(['invoice.paid'], true, other.key);
    const deleted = (await make(['invoice.paid'])).json().data.id;
    await h().api('DELETE', `/api/v1/webhooks/${deleted}`, { key: t.key });

    const res = await publish({ tenant: t.slug, type: 'invoice.paid', data: { invoice_id: 42 } });
    expect(res.statusCode).toBe(202);
    const { data } = res.json();
    expect(data.id).toMatch(/^evt_/);
    expect(data.deliveries).toBe(3);
    const rows = await h()
      .store.db.selectFrom('deliveries')
      .selectAll()
      .where('event_id', '=', data.id)
      .execute();
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r.status === 'pending' && r.tenant_id === t.id)).toBe(true);
    const event = await h()
      .store.db.selectFrom('events')
      .selectAll()
      .where('id', '=', data.id)
      .executeTakeFirstOrThrow();
    expect(JSON.parse(event.payload)).toEqual({
      id: data.id,
      type: 'invoice.paid',
      created_at: new Date(event.created_at).toISOString(),
      tenant: t.slug,
      data: { invoice_id: 42 },
    });
  });

  it('is idempotent per tenant and client id, and says when an event was known already', async () => {
    const t = await h().tenant();
    const u = await h().tenant();
    await h().api('POST', '/api/v1/webhooks', { key: t.key, body: webhookBody() });
    const published = await publish({ tenant: t.slug, type: 'invoice.paid', data: {}, id: 'inv-42-paid' });
    expect(published.statusCode).toBe(202);
    const first = published.json().data;
    expect(first).toEqual({ id: expect.stringMatching(/^evt_/), deliveries: 1, duplicate: false });
    const repeated = await publish({
      tenant: t.slug,
      type: 'invoice.paid',
      data: { x: 1 },
      id: 'inv-42-paid',
    });
    expect(repeated.statusCode).toBe(200);
    expect(repeated.json().data).toEqual({ ...first, duplicate: true });
    // The same id with another type is a mistake to report, not a duplicate to drop.
    const conflict = await publish({ tenant: t.slug, type: 'booth.assigned', data: {}, id: 'inv-42-paid' });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().error).toBe(
      "The event id 'inv-42-paid' was published before as invoice.paid; an id names one event.",
    );
    const count = await h()
      .store.db.selectFrom('deliveries')
      .select('id')
      .where('event_id', '=', first.id)
      .execute();
    expect(count).toHaveLength(1);
    const elsewhere = (
      await publish({ tenant: u.slug, type: 'invoice.paid', data: {}, id: 'inv-42-paid' })
    ).json().data;
    expect(elsewhere.id).not.toBe(first.id);
  });

  it('stays idempotent when the same client id is published concurrently', async () => {
    const t = await h().tenant();
    await h().api('POST', '/api/v1/webhooks', { key: t.key, body: webhookBody() });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        publish({ tenant: t.slug, type: 'invoice.paid', data: {}, id: 'race-1' }),
      ),
    );
    // One of them published it; the others were told it was a duplicate.
    expect(answers.map((a) => a.statusCode).sort()).toEqual([...Array(9).fill(200), 202]);
    expect(answers.filter((a) => a.json().data.duplicate)).toHaveLength(9);
    expect(new Set(answers.map((a) => a.json().data.id)).size).toBe(1);
    const events = await h()
      .store.db.selectFrom('events')
      .select('id')
      .where('tenant_id', '=', t.id)
      .execute();
    expect(events).toHaveLength(1);
  });

  it('refuses an unknown tenant (404), an unknown or test type (422), data that is not an object (422)', async () => {
    const t = await h().tenant();
    expect((await publish({ tenant: 'nobody', type: 'invoice.paid', data: {} })).statusCode).toBe(404);
    const unknown = await publish({ tenant: t.slug, type: 'invoice.eaten', data: {} });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json().errors.type).toEqual(['Unknown event type: invoice.eaten.']);
    expect((await publish({ tenant: t.slug, type: 'webhook.test', data: {} })).statusCode).toBe(422);
    for (const data of [[1, 2], 'text', 5, null]) {
      const res = await publish({ tenant: t.slug, type: 'invoice.paid', data });
      expect(res.statusCode, JSON.stringify(data)).toBe(422);
      expect(res.json().errors.data).toEqual(['The data must be an object.']);
    }
    expect((await publish({ tenant: t.slug, type: 'invoice.paid' })).json().errors.data).toEqual([
      'The data field is required.',
    ]);
  });

  it('refuses a body over 256 KiB with 413 and writes nothing', async () => {
    const t = await h().tenant();
    const res = await publish({
      tenant: t.slug,
      type: 'invoice.paid',
      data: { blob: 'x'.repeat(256 * 1024) },
    });
    expect(res.statusCode).toBe(413);
    const events = await h()
      .store.db.selectFrom('events')
      .select('id')
      .where('tenant_id', '=', t.id)
      .execute();
    expect(events).toEqual([]);
  });

  it('publishes a batch in one go, answering per event', async () => {
    const t = await h().tenant();
    await h().api('POST', '/api/v1/webhooks', { key: t.key, body: webhookBody({ events: ['*'] }) });
    const events = [
      { tenant: t.slug, type: 'invoice.paid', data: { n: 1 } },
      { tenant: 'nobody', type: 'invoice.paid', data: {} },
      { tenant: t.slug, type: 'nope.nope', data: {} },
      { tenant: t.slug, type: 'booth.assigned', data: { n: 2 }, id: 'b-1' },
      { tenant: t.slug, type: 'booth.assigned', data: { n: 2 }, id: 'b-1' },
      { tenant: t.slug, type: 'invoice.paid', data: {}, id: 'b-1' },
    ];
    const res = await h().operator('POST', '/internal/v1/events/batch', { events });
    expect(res.statusCode).toBe(202);
    const data = res.json().data;
    expect(data).toHaveLength(6);
    expect(data[0]).toEqual({ id: expect.stringMatching(/^evt_/), deliveries: 1, duplicate: false });
    expect(data[1]).toMatchObject({ status: 404, error: "Tenant 'nobody' not found." });
    expect(data[2]).toMatchObject({ status: 422, errors: { type: ['Unknown event type: nope.nope.'] } });
    expect(data[3]).toEqual({ id: expect.stringMatching(/^evt_/), deliveries: 1, duplicate: false });
    expect(data[4]).toEqual({ ...data[3], duplicate: true });
    expect(data[5]).toMatchObject({ status: 409 });
    const stored = await h()
      .store.db.selectFrom('events')
      .select('id')
      .where('tenant_id', '=', t.id)
      .execute();
    expect(stored).toHaveLength(2);
  });

  it('answers every problem of a batch per event, shape errors too, and publishes the valid ones', async () => {
    const t = await h().tenant();
    await h().api('POST', '/api/v1/webhooks', { key: t.key, body: webhookBody({ events: ['*'] }) });
    const events = [
      { tenant: t.slug, type: 'invoice.paid', data: { n: 1 } },
      { tenant: t.slug, data: {} },
      { tenant: t.slug, type: 'invoice.paid', data: [1, 2] },
      { tenant: t.slug, type: 'invoice.paid', data: {}, colour: 'red' },
      { tenant: 'nobody', type: 'invoice.paid', data: {} },
      'not an event',
      { tenant: t.slug, type: 'contact.created', data: { n: 2 } },
    ];
    const res = await h().operator('POST', '/internal/v1/events/batch', { events });
    expect(res.statusCode).toBe(202);
    const data = res.json().data;
    const invalid = (errors: Record<string, string[]>) => ({
      status: 422,
      error: 'Validation failed',
      errors,
    });
    expect(data).toEqual([
      { id: expect.stringMatching(/^evt_/), deliveries: 1, duplicate: false },
      invalid({ type: ['The type field is required.'] }),
      invalid({ data: ['The data must be an object.'] }),
      invalid({ colour: ['The colour field is not allowed.'] }),
      { status: 404, error: "Tenant 'nobody' not found." },
      invalid({ event: ['The event must be an object.'] }),
      { id: expect.stringMatching(/^evt_/), deliveries: 1, duplicate: false },
    ]);
    // The same messages as the single publish gives.
    const single = await publish({ tenant: t.slug, type: 'invoice.paid', data: {}, colour: 'red' });
    expect(single.json().errors).toEqual(data[3].errors);
    const stored = await h()
      .store.db.selectFrom('events')
      .select('id')
      .where('tenant_id', '=', t.id)
      .execute();
    expect(stored.map((e) => e.id).sort()).toEqual([data[0].id, data[6].id].sort());
    const deliveries = await h()
      .store.db.selectFrom('deliveries')
      .select('event_id')
      .where('tenant_id', '=', t.id)
      .execute();
    expect(deliveries.map((d) => d.event_id).sort()).toEqual([data[0].id, data[6].id].sort());
    // The body as a whole is still checked as a whole.
    for (const body of [[], { events: 'x' }, { events: [{}], more: 1 }, {}]) {
      const whole = await h().operator('POST', '/internal/v1/events/batch', body);
      expect(whole.statusCode, JSON.stringify(body)).toBe(422);
      expect(whole.json().error).toBe('Validation failed');
    }
  });

  it("names the route's own body limit in a 413", async () => {
    const t = await h().tenant();
    const over = (bytes: number) => JSON.stringify({ blob: 'x'.repeat(bytes) });
    const send = (url: string, payload: string, headers: Record<string, string> = {}) =>
      h().app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json', ...headers },
        payload,
      });
    const admin = { authorization: `Bearer ${h().config.adminToken}` };
    const cases = [
      { url: '/internal/v1/events', bytes: 256 * 1024, text: '256 KiB (262144 bytes)', headers: admin },
      {
        url: '/internal/v1/events/batch',
        bytes: 32 * 1024 * 1024,
        text: '32 MiB (33554432 bytes)',
        headers: admin,
      },
      {
        url: '/api/v1/webhooks',
        bytes: 1024 * 1024,
        text: '1 MiB (1048576 bytes)',
        headers: { authorization: `Bearer ${t.key}` },
      },
    ];
    for (const c of cases) {
      const res = await send(c.url, over(c.bytes), c.headers);
      expect(res.statusCode, c.url).toBe(413);
      expect(res.json().error, c.url).toBe(`Request body is larger than ${c.text}.`);
    }
  });

  it('takes up to 1,000 events per batch', async () => {
    const t = await h().tenant();
    const hook = await h().api('POST', '/api/v1/webhooks', {
      key: t.key,
      body: webhookBody({ events: ['contact.created'] }),
    });
    const event = { tenant: t.slug, type: 'contact.created', data: {} };
    const ok = await h().operator('POST', '/internal/v1/events/batch', { events: Array(1000).fill(event) });
    expect(ok.statusCode).toBe(202);
    expect(ok.json().data).toHaveLength(1000);
    // Rows go in by chunks of 500: a whole number of them, and one over.
    const more = await h().operator('POST', '/internal/v1/events/batch', { events: Array(501).fill(event) });
    expect(more.statusCode).toBe(202);
    const ids = [...ok.json().data, ...more.json().data].map((e: { id: string }) => e.id);
    const deliveries = await h()
      .store.db.selectFrom('deliveries')
      .select(['event_id', 'webhook_id', 'tenant_id', 'event_type', 'status', 'attempts'])
      .where('tenant_id', '=', t.id)
      .execute();
    expect(deliveries).toHaveLength(1501);
    expect(new Set(deliveries.map((d) => d.event_id))).toEqual(new Set(ids));
    for (const d of deliveries) {
      expect(d).toMatchObject({
        webhook_id: hook.json().data.id,
        tenant_id: t.id,
        event_type: 'contact.created',
        status: 'pending',
        attempts: 0,
      });
    }
    const tooMany = await h().operator('POST', '/internal/v1/events/batch', {
      events: Array(1001).fill(event),
    });
    expect(tooMany.statusCode).toBe(422);
    expect(tooMany.json().errors.events).toEqual(['The events must not have more than 1000 items.']);
    const none = await h().operator('POST', '/internal/v1/events/batch', { events: [] });
    expect(none.statusCode).toBe(422);
  });

  it('needs the admin token', async () => {
    const t = await h().tenant();
    const res = await h().api('POST', '/internal/v1/events', {
      key: t.key,
      body: { tenant: t.slug, type: 'invoice.paid', data: {} },
    });
    expect(res.statusCode).toBe(401);
  });

  it('serves Prometheus metrics', async () => {
    await h().app.inject('/healthz');
    const res = await h().app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    for (const name of [
      'webhook_deliveries_total',
      'webhook_attempt_duration_seconds',
      'webhook_queue_due',
      'webhook_queue_oldest_due_age_seconds',
      'webhook_claim_size_bucket',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'http_request_duration_seconds_bucket{le="0.001",method="GET",route="/healthz",status_code="200"}',
    ]) {
      expect(res.body).toContain(name);
    }
    const due = Number(/^webhook_queue_due (\d+)$/m.exec(res.body)?.[1]);
    const pending = await h()
      .store.db.selectFrom('deliveries as d')
      .innerJoin('webhooks as w', 'w.id', 'd.webhook_id')
      .select('d.id')
      .where('d.status', '=', 'pending')
      .where('w.is_active', '=', 1)
      .execute();
    expect(due).toBe(pending.length);
    expect(due).toBeGreaterThan(0);
  });
});

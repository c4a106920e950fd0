import { expect, it } from 'vitest';
import { decryptSecret } from '../../src/domain/secrets.js';
import { ADMIN_TOKEN, describeContract, webhookBody } from '../helpers/harness.js';

const SEED_ORDER = [
  'id',
  'name',
  'url',
  'events',
  'is_active',
  'retry_count',
  'timeout_seconds',
  'last_triggered_at',
  'last_success_at',
  'last_failure_at',
  'failure_count',
];

describeContract('webhooks resource', (h) => {
  it('creates a webhook with defaults, 201, Location and the secret, fields in the seed order', async () => {
    const { key } = await h().tenant();
    const res = await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() });
    expect(res.statusCode).toBe(201);
    const { data, meta } = res.json();
    expect(res.headers.location).toBe(`/api/v1/webhooks/${data.id}`);
    expect(meta.request_id).toMatch(/^req_/);
    expect(res.headers['x-request-id']).toBe(meta.request_id);
    expect(Object.keys(data)).toEqual([
      ...SEED_ORDER,
      'secret',
      'created_at',
      'updated_at',
      'headers',
      'disabled_reason',
      'disabled_at',
      'health',
      'failing_since',
      'next_probe_at',
    ]);
    expect(data).toMatchObject({
      name: 'example.com',
      url: 'https://example.com/hooks/plandocket',
      events: ['invoice.paid'],
      is_active: true,
      retry_count: 3,
      timeout_seconds: 30,
      last_triggered_at: null,
      last_success_at: null,
      last_failure_at: null,
      failure_count: 0,
      headers: {},
      disabled_reason: null,
      disabled_at: null,
      health: 'healthy',
      failing_since: null,
      next_probe_at: null,
    });
    expect(Number.isInteger(data.id)).toBe(true);
    expect(data.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(data.secret.slice(6), 'base64')).toHaveLength(32);
    expect(new Date(data.created_at).toISOString()).toBe(data.created_at);
  });

  it('stores the secret encrypted, never in clear', async () => {
    const { key } = await h().tenant();
    const { data } = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json();
    const row = await h()
      .store.db.selectFrom('webhooks')
      .selectAll()
      .where('id', '=', data.id)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(data.secret);
    expect(JSON.stringify(row)).not.toContain(data.secret.slice(6));
    expect(row.secret_ciphertext).toMatch(/^v1\./);
    expect(decryptSecret(h().config.secretsKey, row.secret_ciphertext)).toBe(data.secret);
  });

  it('keeps every given field', async () => {
    const { key } = await h().tenant();
    const body = webhookBody({
      name: 'Invoices to ERP',
      events: ['invoice.paid', 'invoice.created', 'invoice.paid'],
      is_active: false,
      headers: { Authorization: 'Basic abc', 'X-Custom': 'yes' },
      retry_count: 0,
      timeout_seconds: 60,
    });
    const res = await h().api('POST', '/api/v1/webhooks', { key, body });
    expect(res.statusCode).toBe(201);
    expect(res.json().data).toMatchObject({
      name: 'Invoices to ERP',
      events: ['invoice.paid', 'invoice.created'],
      is_active: false,
      headers: { Authorization: 'Basic abc', 'X-Custom': 'yes' },
      retry_count: 0,
      timeout_seconds: 60,
    });
  });

  it('shows one webhook with its secret; the list never has secrets', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const shown = await h().api('GET', `/api/v1/webhooks/${created.id}`, { key });
    expect(shown.statusCode).toBe(200);
    expect(shown.json().data).toEqual(created);
    const list = await h().api('GET', '/api/v1/webhooks', { key });
    expect(list.json().data[0]).not.toHaveProperty('secret');
    expect(Object.keys(list.json().data[0]).slice(0, SEED_ORDER.length)).toEqual(SEED_ORDER);
    expect(list.body).not.toContain(created.secret);
  });

  it('paginates the list with totals in meta', async () => {
    const { key } = await h().tenant();
    for (let i = 0; i < 7; i++) {
      await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody({ name: `hook ${i}` }) });
    }
    const first = (await h().api('GET', '/api/v1/webhooks?per_page=3', { key })).json();
    expect(first.data.map((w: { name: string }) => w.name)).toEqual(['hook 0', 'hook 1', 'hook 2']);
    expect(first.meta).toMatchObject({ page: 1, per_page: 3, total: 7, total_pages: 3 });
    const last = (await h().api('GET', '/api/v1/webhooks?per_page=3&page=3', { key })).json();
    expect(last.data.map((w: { name: string }) => w.name)).toEqual(['hook 6']);
    const beyond = (await h().api('GET', '/api/v1/webhooks?per_page=3&page=9', { key })).json();
    expect(beyond.data).toEqual([]);
    expect(beyond.meta.total).toBe(7);
    const defaults = (await h().api('GET', '/api/v1/webhooks', { key })).json();
    expect(defaults.meta).toMatchObject({ page: 1, per_page: 25, total: 7, total_pages: 1 });
  });

  it('rejects bad pagination values with 422', async () => {
    const { key } = await h().tenant();
    for (const query of ['per_page=101', 'per_page=0', 'page=0', 'page=abc', 'per_page=2.5']) {
      const res = await h().api('GET', `/api/v1/webhooks?${query}`, { key });
      expect(res.statusCode, query).toBe(422);
      const field = query.split('=')[0] as string;
      expect(res.json().errors[field], query).toBeDefined();
    }
    const res = await h().api('GET', '/api/v1/webhooks?is_active=maybe', { key });
    expect(res.statusCode).toBe(422);
    expect(res.json().errors.is_active).toEqual(['The is_active must be true or false.']);
  });

  it('filters the list by is_active and by event (an explicit subscription or "*")', async () => {
    const { key } = await h().tenant();
    const make = async (name: string, events: string[], is_active = true) =>
      (
        await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody({ name, events, is_active }) })
      ).json().data.id;
    await make('paid', ['invoice.paid']);
    await make('all', ['*']);
    await make('contacts-off', ['contact.created'], false);
    const names = async (query: string) =>
      (await h().api('GET', `/api/v1/webhooks?${query}`, { key }))
        .json()
        .data.map((w: { name: string }) => w.name);
    expect(await names('is_active=true')).toEqual(['paid', 'all']);
    expect(await names('is_active=false')).toEqual(['contacts-off']);
    expect(await names('event=invoice.paid')).toEqual(['paid', 'all']);
    expect(await names('event=contact.created')).toEqual(['all', 'contacts-off']);
    expect(await names('event=contact.created&is_active=false')).toEqual(['contacts-off']);
    expect(await names('event=*')).toEqual(['all']);
    const meta = (await h().api('GET', '/api/v1/webhooks?event=invoice.paid', { key })).json().meta;
    expect(meta.total).toBe(2);
    // A type that no webhook can receive is a mistake, not an empty list.
    const unknown = await h().api('GET', '/api/v1/webhooks?event=invoice.payed', { key });
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json().errors).toEqual({
      event: ['Unknown event type: invoice.payed. GET /api/v1/webhooks/events lists the event types.'],
    });
    const test = await h().api('GET', '/api/v1/webhooks?event=webhook.test', { key });
    expect(test.json().errors).toEqual({
      event: ['No webhook receives webhook.test: it cannot be subscribed to.'],
    });
  });

  it('updates with PATCH: only the given fields, the same rules, no secret in the answer', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const res = await h().api('PATCH', `/api/v1/webhooks/${created.id}`, {
      key,
      body: { events: ['booth.assigned', '*'], timeout_seconds: 5, headers: { 'X-Env': 'prod' } },
    });
    expect(res.statusCode).toBe(200);
    const data = res.json().data;
    expect(data).not.toHaveProperty('secret');
    expect(data).toMatchObject({
      id: created.id,
      name: created.name,
      url: created.url,
      events: ['booth.assigned', '*'],
      timeout_seconds: 5,
      retry_count: 3,
      headers: { 'X-Env': 'prod' },
    });
    const bad = await h().api('PATCH', `/api/v1/webhooks/${created.id}`, {
      key,
      body: { url: 'http://example.com', retry_count: 11 },
    });
    expect(bad.statusCode).toBe(422);
    expect(Object.keys(bad.json().errors).sort()).toEqual(['retry_count', 'url']);
    const after = (await h().api('GET', `/api/v1/webhooks/${created.id}`, { key })).json().data;
    expect(after.url).toBe(created.url);
    expect(after.retry_count).toBe(3);
    expect(after.secret).toBe(created.secret);
  });

  it('deletes with 204; the webhook is then gone from show, list, patch and delete', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const res = await h().api('DELETE', `/api/v1/webhooks/${created.id}`, {
      key,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect((await h().api('GET', `/api/v1/webhooks/${created.id}`, { key })).statusCode).toBe(404);
    expect((await h().api('GET', '/api/v1/webhooks', { key })).json().meta.total).toBe(0);
    expect(
      (await h().api('PATCH', `/api/v1/webhooks/${created.id}`, { key, body: { name: 'x' } })).statusCode,
    ).toBe(404);
    expect((await h().api('DELETE', `/api/v1/webhooks/${created.id}`, { key })).statusCode).toBe(404);
  });

  it('answers 404 naming the webhook for missing and malformed ids', async () => {
    const { key } = await h().tenant();
    for (const id of ['999999', 'abc', '0', '-1', '1.5', '99999999999999999999']) {
      const res = await h().api('GET', `/api/v1/webhooks/${id}`, { key });
      expect(res.statusCode, id).toBe(404);
      expect(res.json().error).toBe(`Webhook ${id} not found.`);
    }
  });

  it("isolates tenants: another tenant's webhook is a 404 for show, patch and delete, and not listed", async () => {
    const a = await h().tenant();
    const b = await h().tenant();
    const hook = (await h().api('POST', '/api/v1/webhooks', { key: a.key, body: webhookBody() })).json().data;
    expect((await h().api('GET', `/api/v1/webhooks/${hook.id}`, { key: b.key })).statusCode).toBe(404);
    expect(
      (await h().api('PATCH', `/api/v1/webhooks/${hook.id}`, { key: b.key, body: { name: 'mine' } }))
        .statusCode,
    ).toBe(404);
    expect((await h().api('DELETE', `/api/v1/webhooks/${hook.id}`, { key: b.key })).statusCode).toBe(404);
    expect((await h().api('GET', '/api/v1/webhooks', { key: b.key })).json().data).toEqual([]);
    const stillThere = await h().api('GET', `/api/v1/webhooks/${hook.id}`, { key: a.key });
    expect(stillThere.json().data.name).toBe(hook.name);
    const bHook = (await h().api('POST', '/api/v1/webhooks', { key: b.key, body: webhookBody() })).json()
      .data;
    expect((await h().api('GET', `/api/v1/webhooks/${bHook.id}`, { key: a.key })).statusCode).toBe(404);
    expect((await h().api('GET', '/api/v1/webhooks', { key: a.key })).json().meta.total).toBe(1);
  });

  it('lists the event catalog, which is not mistaken for an id', async () => {
    const { key } = await h().tenant();
    const res = await h().api('GET', '/api/v1/webhooks/events', { key });
    expect(res.statusCode).toBe(200);
    const types = res.json().data.map((e: { type: string }) => e.type);
    expect(types).toContain('invoice.paid');
    expect(types).toContain('service_order.completed');
    expect(types).toHaveLength(19);
    const test = res.json().data.find((e: { type: string }) => e.type === 'webhook.test');
    expect(test.subscribable).toBe(false);
    expect(res.json().data[0]).toEqual({
      type: 'application.approved',
      category: 'application',
      description: expect.any(String),
      subscribable: true,
      operational: false,
    });
    const operational = res.json().data.filter((e: { operational: boolean }) => e.operational);
    expect(operational.map((e: { type: string }) => e.type)).toEqual([
      'webhook.failing',
      'webhook.recovered',
      'webhook.disabled',
      'delivery.exhausted',
    ]);
    for (const e of operational) expect(e).toMatchObject({ category: 'webhooks', subscribable: true });
  });

  it('answers 405 with Allow for a known path and a wrong method', async () => {
    const { key } = await h().tenant();
    const put = await h().api('PUT', '/api/v1/webhooks/1', { key, body: {} });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD, PATCH, DELETE');
    expect(put.json().error).toMatch(/not allowed/);
    const del = await h().api('DELETE', '/api/v1/webhooks', { key });
    expect(del.statusCode).toBe(405);
    expect(del.headers.allow).toBe('GET, HEAD, POST');
    const events = await h().api('POST', '/api/v1/webhooks/events', { key, body: {} });
    expect(events.statusCode).toBe(405);
    expect(events.headers.allow).toBe('GET, HEAD');
  });

  it('answers 400 for malformed JSON and 413 for a body over 1 MiB, writing nothing', async () => {
    const { key } = await h().tenant();
    const malformed = await h().api('POST', '/api/v1/webhooks', {
      key,
      body: '{"url": "https://a.example",',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toEqual({ error: 'Malformed JSON in request body.', meta: expect.any(Object) });
    const big = webhookBody({ name: 'x'.repeat(1024 * 1024) });
    const tooLarge = await h().api('POST', '/api/v1/webhooks', { key, body: big });
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.json().error).toMatch(/larger than/);
    expect((await h().api('GET', '/api/v1/webhooks', { key })).json().meta.total).toBe(0);
  });

  it('answers 415 for a body that is not JSON, whatever it holds, writing nothing', async () => {
    const { key, slug } = await h().tenant();
    const json = JSON.stringify(webhookBody());
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const res = await h().api('POST', '/api/v1/webhooks', {
        key,
        body: json,
        headers: { 'content-type': type },
      });
      expect(res.statusCode, type).toBe(415);
      expect(res.json().error).toBe('Content-Type must be application/json.');
    }
    // The operator API too; a body-less request needs no type (rotate-secret takes its defaults).
    const tenant = await h().app.inject({
      method: 'PATCH',
      url: `/internal/v1/tenants/${slug}`,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'text/plain' },
      payload: '{"name": "x"}',
    });
    expect(tenant.statusCode).toBe(415);
    expect((await h().api('GET', '/api/v1/webhooks', { key })).json().meta.total).toBe(0);
  });

  it('answers an unknown path with 404 and an envelope error', async () => {
    const { key } = await h().tenant();
    const res = await h().api('GET', '/api/v1/nothing-here?page=2', { key });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe('Resource not found: GET /api/v1/nothing-here is not a route of this API.');
  });

  it('keeps a sane incoming X-Request-Id and replaces an unsafe one', async () => {
    const { key } = await h().tenant();
    const kept = await h().api('GET', '/api/v1/webhooks', {
      key,
      headers: { 'x-request-id': 'trace-abc.123' },
    });
    expect(kept.headers['x-request-id']).toBe('trace-abc.123');
    expect(kept.json().meta.request_id).toBe('trace-abc.123');
    const replaced = await h().api('GET', '/api/v1/webhooks', {
      key,
      headers: { 'x-request-id': 'bad id\twith <script>' },
    });
    expect(replaced.headers['x-request-id']).toMatch(/^req_/);
    const error = await h().api('GET', '/api/v1/webhooks/999', { key, headers: { 'x-request-id': 'err-1' } });
    expect(error.json().meta.request_id).toBe('err-1');
  });
});

describeContract(
  'webhooks per tenant',
  (h) => {
    const create = (key: string, i: number) =>
      h().api('POST', '/api/v1/webhooks', {
        key,
        body: webhookBody({ url: `https://example.com/hook/${i}` }),
      });

    it('refuses one webhook more than MAX_WEBHOOKS_PER_TENANT with a 422 on url that names the limit', async () => {
      const { key } = await h().tenant();
      for (let i = 0; i < 3; i++) expect((await create(key, i)).statusCode).toBe(201);
      const over = await create(key, 3);
      expect(over.statusCode).toBe(422);
      expect(over.json().errors.url).toEqual([expect.stringMatching(/limit of 3 webhooks/)]);
      expect((await h().api('GET', '/api/v1/webhooks', { key })).json().meta.total).toBe(3);
      // A deleted webhook frees its place.
      const first = (await h().api('GET', '/api/v1/webhooks', { key })).json().data[0];
      expect((await h().api('DELETE', `/api/v1/webhooks/${first.id}`, { key })).statusCode).toBe(204);
      expect((await create(key, 4)).statusCode).toBe(201);
    });

    it('takes a limit of its own per tenant from the operator, shown by GET, and null for the default again', async () => {
      const { key, slug } = await h().tenant();
      expect((await h().operator('GET', `/internal/v1/tenants/${slug}`)).json().data.max_webhooks).toBe(3);
      const raised = await h().operator('PATCH', `/internal/v1/tenants/${slug}`, { max_webhooks: 5 });
      expect(raised.statusCode).toBe(200);
      expect(raised.json().data.max_webhooks).toBe(5);
      for (let i = 0; i < 5; i++) expect((await create(key, i)).statusCode).toBe(201);
      expect((await create(key, 5)).json().errors.url).toEqual([
        expect.stringMatching(/limit of 5 webhooks/),
      ]);
      const reset = await h().operator('PATCH', `/internal/v1/tenants/${slug}`, { max_webhooks: null });
      expect(reset.json().data.max_webhooks).toBe(3);
      for (const bad of [0, -1, 1.5, '5', 100_001]) {
        const res = await h().operator('PATCH', `/internal/v1/tenants/${slug}`, { max_webhooks: bad });
        expect(res.statusCode, String(bad)).toBe(422);
      }
    });

    it('counts creates sent at the same time in turn: never more than the limit', async () => {
      const { key } = await h().tenant();
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => create(key, i)));
      expect(answers.map((a) => a.statusCode).sort()).toEqual([201, 201, 201, 422, 422, 422, 422, 422]);
      expect((await h().api('GET', '/api/v1/webhooks', { key })).json().meta.total).toBe(3);
    });
  },
  { MAX_WEBHOOKS_PER_TENANT: '3' },
);

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';
import { verifyAllWays } from '../helpers/receiver.js';

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`delivery [${database.name}]`, () => {
    let h: DeliveryHarness;
    beforeAll(async () => {
      h = await createDeliveryHarness(database);
    });
    afterAll(async () => {
      await h?.close();
    });

    it('delivers a published event, signed both ways, to every subscribed webhook', async () => {
      const paid = await h.webhook({
        url: h.receiver.url('/paid'),
        events: ['invoice.paid'],
        headers: { 'X-Tenant-Ref': 'erp-7' },
      });
      const all = await h.webhook({ url: h.receiver.url('/all'), events: ['*'] });
      await h.webhook({ url: h.receiver.url('/contacts'), events: ['contact.created'] });
      await h.webhook({ url: h.receiver.url('/paused'), events: ['invoice.paid'], is_active: false });

      const event = await h.publish('invoice.paid', { invoice_id: 42, amount: '119.00' });
      expect(event.id).toMatch(/^evt_[0-9A-Z]{26}$/);
      expect(event.deliveries).toBe(2);

      const [received] = await waitFor(() => h.receiver.at('/paid').length === 1 && h.receiver.at('/paid'));
      await waitFor(() => h.receiver.at('/all').length === 1);
      expect(h.receiver.at('/contacts')).toHaveLength(0);
      expect(h.receiver.at('/paused')).toHaveLength(0);
      if (!received) throw new Error('nothing received');

      const body = JSON.parse(received.body);
      expect(Object.keys(body)).toEqual(['id', 'type', 'created_at', 'tenant', 'data']);
      expect(body).toMatchObject({
        id: event.id,
        type: 'invoice.paid',
        tenant: h.slug,
        data: { invoice_id: 42, amount: '119.00' },
      });
      expect(received.headers['content-type']).toBe('application/json');
      expect(received.headers['user-agent']).toMatch(/^PlanDocket-Webhooks\/\d+\.\d+\.\d+$/);
      expect(received.headers['x-webhook-event']).toBe('invoice.paid');
      expect(received.headers['x-webhook-delivery']).toMatch(/^dlv_/);
      expect(received.headers['webhook-id']).toBe(event.id);
      expect(received.headers['x-tenant-ref']).toBe('erp-7');
      verifyAllWays(paid.secret, received);
      verifyAllWays(all.secret, h.receiver.at('/all')[0] as (typeof h.receiver.requests)[number]);
      expect(() => verifyAllWays(all.secret, received)).toThrow();

      const [delivery] = await waitFor(async () => {
        const rows = await h.deliveries(paid.id);
        return rows[0]?.status === 'succeeded' && rows;
      });
      expect(delivery).toMatchObject({
        status: 'succeeded',
        attempts: 1,
        last_status_code: 200,
        locked_by: null,
      });
      expect(delivery.id).toBe(received.headers['x-webhook-delivery']);
      const attempts = await h.attempts(delivery.id);
      expect(attempts).toHaveLength(1);
      expect(attempts[0]).toMatchObject({
        number: 1,
        response_status: 200,
        response_body: '{"ok":true}',
        error: null,
      });
      const shown = (await h.tenantApi('GET', `/api/v1/webhooks/${paid.id}`)).body.data;
      expect(shown.last_triggered_at).not.toBeNull();
      expect(shown.last_success_at).not.toBeNull();
      expect(shown.failure_count).toBe(0);
    });

    it('publishes idempotently with a client id', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/idem'), events: ['booth.assigned'] });
      const first = await h.publish('booth.assigned', { booth: 'A1' }, 'order-1');
      const again = await h.publish('booth.assigned', { booth: 'A1' }, 'order-1');
      expect(again).toEqual({ ...first, duplicate: true });
      // One delivery was made, and it arrived once.
      const [delivery, ...more] = await waitFor(async () => {
        const rows = await h.deliveries(hook.id);
        return rows.length > 0 && rows.every((d) => d.status === 'succeeded') && rows;
      });
      expect(more).toEqual([]);
      expect(delivery?.attempts).toBe(1);
      expect(h.receiver.at('/idem')).toHaveLength(1);
    });
  });
}

describe('plain http:// targets with ALLOW_HTTP_TARGETS', () => {
  it('are accepted at create and delivered to', async () => {
    const { createServer } = await import('node:http');
    const got: string[] = [];
    const server = createServer((req, res) => {
      got.push(String(req.headers['x-webhook-event']));
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as import('node:net').AddressInfo).port;
    const h = await createDeliveryHarness(DATABASES[0] as (typeof DATABASES)[number], {
      ALLOW_HTTP_TARGETS: 'true',
    });
    try {
      const hook = await h.webhook({
        url: `http://receiver.test:${port}/plain`,
        events: ['contact.created'],
      });
      await h.publish('contact.created');
      await waitFor(async () => (await h.deliveries(hook.id))[0]?.status === 'succeeded');
      expect(got).toEqual(['contact.created']);
    } finally {
      await h.close();
      server.close();
    }
  });

  it('are refused at delivery without it', async () => {
    const h = await createDeliveryHarness(DATABASES[0] as (typeof DATABASES)[number], {
      ALLOW_HTTP_TARGETS: 'true',
    });
    try {
      const hook = await h.webhook({
        url: 'http://receiver.test:9/plain',
        events: ['contact.created'],
        retry_count: 0,
      });
      // The same database, a worker without the switch (as after an operator turned it off).
      await h.service.worker?.stop();
      const { DeliveryWorker } = await import('../../src/delivery/worker.js');
      const { Metrics } = await import('../../src/metrics.js');
      const strict = new DeliveryWorker({
        config: { ...h.config, allowHttpTargets: false },
        store: h.service.store,
        metrics: new Metrics(h.service.store),
        log: { info() {}, warn() {}, error() {} },
      });
      strict.start();
      await h.publish('contact.created');
      const [delivery] = await waitFor(async () => {
        const rows = await h.deliveries(hook.id);
        return rows[0]?.status === 'failed' && rows;
      });
      expect(delivery.last_error).toBe('Refused: The URL scheme http: is not allowed');
      await strict.stop();
    } finally {
      await h.close();
    }
  });
});

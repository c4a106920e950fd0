import { describe, expect, it } from 'vitest';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

/** What the endpoint answered to each event, by the event's `n`. */
class Endpoint {
  down = true;
  readonly answers = new Map<string, number[]>();

  constructor(
    h: DeliveryHarness,
    path: string,
    /** The answer to an event whatever the endpoint's state (by its `n`; `test` for a test event). */
    always: (n: string) => number | undefined = () => undefined,
  ) {
    h.receiver.on(path, (received) => {
      const body = JSON.parse(received.body);
      const n = body.type === 'webhook.test' ? 'test' : String(body.data.n);
      const status = always(n) ?? (this.down ? 503 : 200);
      this.answers.set(n, [...(this.answers.get(n) ?? []), status]);
      return { status };
    });
  }

  of(n: number | string): number[] {
    return this.answers.get(String(n)) ?? [];
  }
}

async function webhookOf(h: DeliveryHarness, id: number) {
  return (await h.tenantApi('GET', `/api/v1/webhooks/${id}`)).body.data;
}

/** The delivery of an event (to the test's one webhook). */
async function deliveryOf(h: DeliveryHarness, eventId: string) {
  const row = await h.service.store.db
    .selectFrom('deliveries')
    .selectAll()
    .where('event_id', '=', eventId)
    .executeTakeFirstOrThrow();
  return row;
}

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`circuit breaker [${database.name}]`, () => {
    it('holds the deliveries of an endpoint that is down, probes it, and catches up on what failed once it is back', async () => {
      // The default schedule and retry count, on a compressed clock: an outage of hours in seconds.
      const h = await createDeliveryHarness(database, { RECOVERY_PROBE_INTERVAL: '1s' });
      try {
        const endpoint = new Endpoint(h, '/flaky', (n) => (n === 'refused' ? 422 : undefined));
        const webhook = await h.webhook({ url: h.receiver.url('/flaky'), events: ['invoice.paid'] });
        expect(webhook).toMatchObject({ health: 'healthy', failing_since: null, next_probe_at: null });

        const refused = await h.publish('invoice.paid', { n: 'refused' });
        const first = await h.publish('invoice.paid', { n: 0 });
        // Four answers of 503 (the first attempt and three retries): the webhook is failing.
        const failing = await waitFor(
          async () => {
            const w = await webhookOf(h, webhook.id);
            return w.health === 'failing' && w;
          },
          30_000,
          'the webhook to become failing',
        );
        expect(Date.parse(failing.failing_since)).toBeGreaterThan(0);
        expect(Date.parse(failing.next_probe_at)).toBeGreaterThan(Date.parse(failing.failing_since));
        expect(endpoint.of(0)).toEqual([503, 503, 503, 503]);
        const listed = await h.tenantApi('GET', '/api/v1/webhooks?health=failing');
        expect(listed.body.data.map((w: { id: number }) => w.id)).toEqual([webhook.id]);
        expect((await h.tenantApi('GET', '/api/v1/webhooks?health=healthy')).body.data).toEqual([]);

        // Events of the outage are held: one probe a second, the oldest held first.
        const outage = [];
        for (let n = 1; n <= 4; n++) outage.push(await h.publish('invoice.paid', { n }));
        await waitFor(() => endpoint.of(1).length >= 1, 30_000, 'the first probe');
        for (const n of [2, 3, 4]) expect(endpoint.of(n)).toEqual([]);
        expect((await deliveryOf(h, outage[3]?.id as string)).attempts).toBe(0);

        // The endpoint comes back: the next probe succeeds, the held deliveries go on, and what
        // exhausted its retries in the outage is sent again, once.
        endpoint.down = false;
        await waitFor(
          async () => (await webhookOf(h, webhook.id)).health === 'healthy',
          30_000,
          'the webhook to recover',
        );
        for (const n of [0, 1, 2, 3, 4])
          await waitFor(() => endpoint.of(n).includes(200), 30_000, `event ${n} to arrive`);
        for (const event of [first, ...outage]) {
          await waitFor(
            async () => (await deliveryOf(h, event.id)).status === 'succeeded',
            30_000,
            `the delivery of ${event.id} to succeed`,
          );
        }
        // Each arrived once; what arrived more than once had been answered with a retryable failure.
        for (const n of [0, 1, 2, 3, 4]) {
          const answers = endpoint.of(n);
          expect(answers.filter((s) => s === 200)).toHaveLength(1);
          expect(answers.slice(0, -1).every((s) => s === 503)).toBe(true);
        }
        expect(endpoint.of(2)).toEqual([200]);
        // The one that exhausted its retries was caught up with its retries anew.
        expect(await deliveryOf(h, first.id)).toMatchObject({
          status: 'succeeded',
          catch_up_from: 4,
          attempts: 5,
        });
        // A refusal (422) is the event's, not the endpoint's: not sent again.
        // (Its retries may have been held with the others, and go on after the recovery.)
        await waitFor(
          async () => (await deliveryOf(h, refused.id)).status === 'failed',
          30_000,
          'the refused event to exhaust its retries',
        );
        expect(endpoint.of('refused')).toEqual([422, 422, 422, 422]);
        expect(await webhookOf(h, webhook.id)).toMatchObject({
          health: 'healthy',
          failing_since: null,
          next_probe_at: null,
        });
      } finally {
        await h.close();
      }
    });

    it('does not count one event that keeps failing while the others succeed', async () => {
      const h = await createDeliveryHarness(database);
      try {
        const endpoint = new Endpoint(h, '/picky', (n) => (n === 'poison' ? 500 : undefined));
        endpoint.down = false;
        const webhook = await h.webhook({ url: h.receiver.url('/picky'), events: ['invoice.paid'] });
        const poison = await h.publish('invoice.paid', { n: 'poison' });
        await h.publish('invoice.paid', { n: 1 });
        await waitFor(
          async () => (await deliveryOf(h, poison.id)).status === 'failed',
          30_000,
          'the poison event to exhaust its retries',
        );
        expect(await webhookOf(h, webhook.id)).toMatchObject({ health: 'healthy', failing_since: null });
      } finally {
        await h.close();
      }
    });

    it('recovers on a test event sent by hand while failing', async () => {
      const h = await createDeliveryHarness(database, { RECOVERY_PROBE_INTERVAL: '1h' });
      try {
        const endpoint = new Endpoint(h, '/hand');
        const webhook = await h.webhook({
          url: h.receiver.url('/hand'),
          events: ['invoice.paid'],
          retry_count: 0,
        });
        await h.publish('invoice.paid', { n: 0 });
        await waitFor(
          async () => (await webhookOf(h, webhook.id)).health === 'failing',
          30_000,
          'the webhook to become failing',
        );
        endpoint.down = false;
        const test = await h.tenantApi('POST', `/api/v1/webhooks/${webhook.id}/test`);
        expect(test.status).toBe(202);
        await waitFor(
          async () => (await webhookOf(h, webhook.id)).health === 'healthy',
          30_000,
          'the test event to close the breaker',
        );
        await waitFor(() => endpoint.of(0).includes(200), 30_000, 'the failed event to be caught up');
        expect(endpoint.of(0)).toEqual([503, 200]);
        expect(endpoint.of('test')).toEqual([200]);
      } finally {
        await h.close();
      }
    });

    it('refuses an unknown health in the list filter', async () => {
      const h = await createDeliveryHarness(database);
      try {
        const res = await h.tenantApi('GET', '/api/v1/webhooks?health=sick');
        expect(res.status).toBe(422);
      } finally {
        await h.close();
      }
    });
  });
}

import { afterEach, describe, expect, it } from 'vitest';
import { generateWebhookSecret } from '../../src/domain/secrets.js';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';
import { MailServer } from '../helpers/mail-server.js';
import { makeCertificate, type Received, Receiver, verifyAllWays } from '../helpers/receiver.js';

const OPERATIONAL = ['webhook.failing', 'webhook.recovered', 'webhook.disabled', 'delivery.exhausted'];

const bodies = (requests: Received[]) => requests.map((r) => JSON.parse(r.body));

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`operational events [${database.name}]`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A service whose operator webhook and mail server are real, with a tenant that gets mail. */
    async function setUp() {
      const certificate = await makeCertificate();
      const operator = await new Receiver(certificate).start();
      cleanups.push(() => operator.stop());
      const mail = new MailServer();
      const smtpPort = await mail.start();
      cleanups.push(() => mail.stop());
      const operatorSecret = generateWebhookSecret();
      const h: DeliveryHarness = await createDeliveryHarness(
        database,
        {
          RECOVERY_PROBE_INTERVAL: '500ms',
          OPERATOR_WEBHOOK_URL: operator.url('/operator'),
          OPERATOR_WEBHOOK_SECRET: operatorSecret,
          SMTP_URL: MailServer.url(smtpPort),
        },
        { certificate },
      );
      cleanups.push(() => h.close());
      const email = await h.operator('PATCH', `/internal/v1/tenants/${h.slug}`, {
        notification_email: 'ops@acme.example',
      });
      expect(email.status).toBe(200);
      return { h, operator, operatorSecret, mail };
    }

    it('tells the tenant and the operator when a webhook fails, recovers and is switched off, once each', async () => {
      const { h, operator, operatorSecret, mail } = await setUp();
      let down = true;
      h.receiver.on('/flaky', () => ({ status: down ? 503 : 200 }));
      h.receiver.on('/gone', () => ({ status: 410 }));
      const watcher = await h.webhook({ url: h.receiver.url('/watch'), events: OPERATIONAL });
      await h.webhook({ url: h.receiver.url('/star'), events: ['*'] });
      // Subscribed to its own failing: it is never told about itself through itself.
      const flaky = await h.webhook({
        name: 'ERP sync',
        url: h.receiver.url('/flaky'),
        events: ['invoice.paid', 'webhook.failing'],
      });
      // Two events: the first to exhaust its retries makes the webhook failing; the other is held
      // (or exhausted too, in the same write), and caught up either way.
      const events = [await h.publish('invoice.paid', { n: 1 }), await h.publish('invoice.paid', { n: 2 })];

      const told = (type: string) => bodies(h.receiver.at('/watch')).filter((b) => b.type === type);
      await waitFor(() => told('webhook.failing').length === 1, 30_000, 'webhook.failing at the watcher');
      await waitFor(() => told('delivery.exhausted').length >= 1, 30_000, 'delivery.exhausted');
      const [failing] = told('webhook.failing');
      expect(failing).toMatchObject({
        type: 'webhook.failing',
        tenant: h.slug,
        data: { webhook_id: flaky.id, url: flaky.url, name: 'ERP sync' },
      });
      expect(Date.parse(failing.data.failing_since)).toBeGreaterThan(0);
      expect(Date.parse(failing.data.next_probe_at)).toBeGreaterThan(Date.parse(failing.data.failing_since));
      const [exhausted] = told('delivery.exhausted');
      expect(events.map((e) => e.id)).toContain(exhausted?.data.event_id);
      expect(exhausted?.data).toMatchObject({
        webhook_id: flaky.id,
        url: flaky.url,
        name: 'ERP sync',
        event_type: 'invoice.paid',
        attempts: 4,
        last_status: 503,
        last_error: null,
      });
      expect(exhausted?.data.delivery_id).toMatch(/^dlv_/);

      // The operator gets them too, signed with its own secret, with the tenant in the envelope.
      const toOperator = (type: string) =>
        operator.at('/operator').filter((r) => JSON.parse(r.body).type === type);
      await waitFor(
        () => toOperator('webhook.failing').length === 1,
        30_000,
        'webhook.failing at the operator',
      );
      await waitFor(
        () => toOperator('delivery.exhausted').length >= 1,
        30_000,
        'delivery.exhausted at the operator',
      );
      for (const received of operator.at('/operator')) verifyAllWays(operatorSecret, received);
      expect(JSON.parse(toOperator('webhook.failing')[0]?.body ?? '{}')).toMatchObject({
        tenant: h.slug,
        data: { webhook_id: flaky.id },
      });

      // And a mail.
      await waitFor(() => mail.received.length === 1, 30_000, 'the failing mail');
      expect(mail.received[0]?.to).toEqual(['ops@acme.example']);
      expect(mail.received[0]?.headers.get('subject')).toBe('Webhook failing: ERP sync');

      // Back up: the next probe succeeds.
      down = false;
      await waitFor(() => told('webhook.recovered').length === 1, 30_000, 'webhook.recovered');
      expect(told('webhook.recovered')[0]?.data).toMatchObject({
        webhook_id: flaky.id,
        caught_up: 1,
        failing_since: failing.data.failing_since,
      });
      await waitFor(() => mail.received.length === 2, 30_000, 'the recovered mail');
      expect(mail.received[1]?.headers.get('subject')).toBe('Webhook recovered: ERP sync');

      // Switched off by a 410: disabled, with its reason.
      const gone = await h.webhook({
        name: 'Old CRM',
        url: h.receiver.url('/gone'),
        events: ['contact.created'],
      });
      await h.publish('contact.created', { n: 2 });
      await waitFor(() => told('webhook.disabled').length === 1, 30_000, 'webhook.disabled');
      expect(told('webhook.disabled')[0]?.data).toMatchObject({
        webhook_id: gone.id,
        name: 'Old CRM',
        reason: 'gone',
      });
      await waitFor(() => mail.received.length === 3, 30_000, 'the disabled mail');
      expect(mail.received[2]?.headers.get('subject')).toBe('Webhook disabled: Old CRM');
      await waitFor(
        () => toOperator('webhook.disabled').length === 1,
        30_000,
        'webhook.disabled at the operator',
      );

      // Once each: no second failing, recovered or disabled; `*` gets none of them, nor does the
      // webhook they are about.
      await waitFor(
        () => toOperator('webhook.recovered').length === 1,
        30_000,
        'webhook.recovered at the operator',
      );
      expect(told('webhook.failing')).toHaveLength(1);
      expect(told('webhook.recovered')).toHaveLength(1);
      expect(bodies(h.receiver.at('/star')).filter((b) => OPERATIONAL.includes(b.type))).toEqual([]);
      expect(bodies(h.receiver.at('/flaky')).filter((b) => OPERATIONAL.includes(b.type))).toEqual([]);
      for (const received of h.receiver.at('/watch')) verifyAllWays(watcher.secret, received);
    });

    it('refuses to publish an operational event through the API', async () => {
      const { h } = await setUp();
      const res = await h.operator('POST', '/internal/v1/events', {
        tenant: h.slug,
        type: 'webhook.failing',
        data: {},
      });
      expect(res.status).toBe(422);
      expect(res.body.errors.type[0]).toMatch(/published by the service/);
    });
  });
}

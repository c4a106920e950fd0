import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';
import { Receiver } from '../helpers/receiver.js';

const finished = async (h: DeliveryHarness, webhookId: number) =>
  waitFor(async () => {
    const [row] = await h.deliveries(webhookId);
    return row && row.status !== 'pending' && row;
  });

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`outbound safety [${database.name}]`, () => {
    describe('without an allow-list', () => {
      let h: DeliveryHarness;
      beforeAll(async () => {
        h = await createDeliveryHarness(database, { ALLOWED_TARGET_CIDRS: '' });
      });
      afterAll(async () => {
        await h?.close();
      });

      it.each([
        ['loopback.test', '127.0.0.1'],
        ['metadata.test', '169.254.169.254'],
        ['v6-loopback.test', '::1'],
        ['mapped-private.test', '::ffff:10.0.0.1'],
      ])('refuses %s (resolving to %s) after resolution, and the attempt says why', async (host, address) => {
        const hook = await h.webhook({
          url: `https://${host}:${h.receiver.port}/x`,
          events: ['contact.created'],
          retry_count: 0,
        });
        await h.publish('contact.created');
        const delivery = await finished(h, hook.id);
        expect(delivery.status).toBe('failed');
        expect(delivery.last_error).toMatch(
          new RegExp(
            `^Refused: ${host.replace(/\./g, '\\.')} resolves to ${address.replace(/\./g, '\\.')} \\(\\w+ address\\), which webhooks may not reach$`,
          ),
        );
        await h.tenantApi('DELETE', `/api/v1/webhooks/${hook.id}`);
      });

      it('refuses an IP literal at creation, before any lookup', async () => {
        const res = await h.tenantApi('POST', '/api/v1/webhooks', {
          url: `https://127.0.0.1:${h.receiver.port}/`,
          events: ['*'],
        });
        expect(res.status).toBe(422);
        expect(h.receiver.requests).toHaveLength(0);
      });
    });

    describe('with 127.0.0.0/8 and ::1/128 allow-listed', () => {
      let h: DeliveryHarness;
      let v6: Receiver;
      beforeAll(async () => {
        h = await createDeliveryHarness(database, { ALLOWED_TARGET_CIDRS: '127.0.0.0/8,::1/128' });
        v6 = await new Receiver(h.certificate).start(0, '::1');
      });
      afterAll(async () => {
        await v6?.stop();
        await h?.close();
      });

      it('delivers to names resolving to 127.0.0.1 and ::1', async () => {
        const four = await h.webhook({
          url: `https://loopback.test:${h.receiver.port}/four`,
          events: ['contact.created'],
        });
        const six = await h.webhook({
          url: `https://v6-loopback.test:${v6.port}/six`,
          events: ['contact.created'],
        });
        await h.publish('contact.created');
        expect((await finished(h, four.id)).status).toBe('succeeded');
        expect((await finished(h, six.id)).status).toBe('succeeded');
        expect(h.receiver.at('/four')).toHaveLength(1);
        expect(v6.at('/six')).toHaveLength(1);
      });

      it('still refuses what the allow-list does not cover', async () => {
        const hook = await h.webhook({
          url: `https://metadata.test:${h.receiver.port}/x`,
          events: ['booth.assigned'],
          retry_count: 0,
        });
        await h.publish('booth.assigned');
        expect((await finished(h, hook.id)).last_error).toMatch(
          /^Refused: metadata\.test resolves to 169\.254\.169\.254/,
        );
      });
    });
  });
}

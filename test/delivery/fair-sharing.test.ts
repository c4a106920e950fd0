import { describe, expect, it } from 'vitest';
import { createDeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`fair sharing between tenants [${database.name}]`, () => {
    it("keeps one tenant's hanging endpoints from holding up another tenant", async () => {
      // A worker of ten slots, six of them at most for one tenant.
      const h = await createDeliveryHarness(database, {
        DELIVERY_CONCURRENCY: '10',
        TENANT_CONCURRENCY: '6',
      });
      try {
        // The noisy tenant: three endpoints that never answer, 60 deliveries due.
        const noisyPaths = ['/noisy-1', '/noisy-2', '/noisy-3'];
        for (const path of noisyPaths) {
          h.receiver.on(path, () => ({ hang: true }));
          await h.webhook({ url: h.receiver.url(path), events: ['invoice.paid'], timeout_seconds: 30 });
        }
        for (let i = 0; i < 20; i++) await h.publish('invoice.paid');
        const noisyRequests = () => noisyPaths.reduce((n, path) => n + h.receiver.at(path).length, 0);
        await waitFor(() => noisyRequests() === 6, 20_000, "the noisy tenant's six slots to fill");

        // Another tenant, with one healthy endpoint.
        await h.operator('POST', '/internal/v1/tenants', {
          slug: 'quiet',
          name: 'Quiet',
          plan: 'business',
          features: ['webhooks'],
        });
        const key = await h.operator('POST', '/internal/v1/tenants/quiet/api-keys', {
          name: 'k',
          scopes: ['webhooks'],
        });
        const quietApi = (method: 'POST', url: string, body: unknown) =>
          h.service.app.inject({
            method,
            url,
            headers: { authorization: `Bearer ${key.body.data.key}` },
            payload: body as object,
          });
        const created = await quietApi('POST', '/api/v1/webhooks', {
          url: h.receiver.url('/quiet'),
          events: ['invoice.paid'],
        });
        expect(created.statusCode).toBe(201);
        for (let i = 0; i < 5; i++) {
          const published = await h.operator('POST', '/internal/v1/events', {
            tenant: 'quiet',
            type: 'invoice.paid',
            data: { i },
          });
          expect(published.status).toBe(202);
        }

        // Its events arrive while the noisy tenant's endpoints still hang (30 s timeouts), and the
        // noisy tenant took no slot beyond its six.
        await waitFor(() => h.receiver.at('/quiet').length === 5, 20_000, "the quiet tenant's five events");
        expect(noisyRequests()).toBe(6);
        const attempts = await h.service.store.db
          .selectFrom('attempts')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('response_status', 'is', null)
          .executeTakeFirstOrThrow();
        expect(Number(attempts.n)).toBe(0);
      } finally {
        await h.close();
      }
    });
  });
}

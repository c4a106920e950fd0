import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clockPast,
  createDeliveryHarness,
  type DeliveryHarness,
  waitFor,
} from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';
import { startServe } from '../helpers/processes.js';
import {
  plandocketDocsVerify,
  plandocketDocsVerifyPrevious,
  type Received,
  verifyAllWays,
} from '../helpers/receiver.js';

/** Whether each verifier accepts the request with this secret. */
function verdicts(secret: string, received: Received) {
  const accepts = (verify: () => unknown) => {
    try {
      verify();
      return true;
    } catch {
      return false;
    }
  };
  return {
    standardwebhooks: accepts(() => new StandardWebhook(secret).verify(received.body, received.headers)),
    svix: accepts(() => new SvixWebhook(secret).verify(received.body, received.headers)),
    docs: plandocketDocsVerify(secret, received.headers, received.body),
    docsPrevious: plandocketDocsVerifyPrevious(secret, received.headers, received.body),
  };
}

const ONLY_CURRENT = { standardwebhooks: true, svix: true, docs: true, docsPrevious: false };
const NONE = { standardwebhooks: false, svix: false, docs: false, docsPrevious: false };

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`secret rotation [${database.name}]`, () => {
    let h: DeliveryHarness;
    beforeAll(async () => {
      h = await createDeliveryHarness(database);
    });
    afterAll(async () => {
      await h?.close();
    });

    /** Publishes an event and returns what the receiver got at `path` for it. */
    async function deliver(path: string, type = 'invoice.paid'): Promise<Received> {
      const event = await h.publish(type, { n: Math.random() });
      return waitFor(
        () => h.receiver.at(path).find((r) => r.headers['webhook-id'] === event.id),
        undefined,
        `the delivery of ${event.id}`,
      );
    }

    it('signs with both secrets during the grace period, then with the new one only', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/rotating'), events: ['invoice.paid'] });
      const before = await deliver('/rotating');
      expect(before.headers['x-webhook-signature-previous']).toBeUndefined();
      expect(before.headers['webhook-signature']?.split(' ')).toHaveLength(1);

      const rotated = await h.rotateSecret(hook.id, { grace_period_seconds: 3 });
      expect(rotated.secret).not.toBe(hook.secret);
      const during = await deliver('/rotating');
      const signatures = during.headers['webhook-signature']?.split(' ') ?? [];
      expect(signatures).toHaveLength(2);
      expect(signatures.every((s) => /^v1,[A-Za-z0-9+/]{43}=$/.test(s))).toBe(true);
      expect(during.headers['x-webhook-signature']).toMatch(/^v1=[0-9a-f]{64}$/);
      expect(during.headers['x-webhook-signature-previous']).toMatch(/^v1=[0-9a-f]{64}$/);
      // The new secret passes all three checks as they are written; the old one passes the
      // Standard Webhooks libraries, and the docs' check reading X-Webhook-Signature-Previous.
      verifyAllWays(rotated.secret, during);
      expect(verdicts(rotated.secret, during)).toEqual(ONLY_CURRENT);
      expect(verdicts(hook.secret, during)).toEqual({
        standardwebhooks: true,
        svix: true,
        docs: false,
        docsPrevious: true,
      });

      // The grace period is over once the clock has passed its end.
      const { previous_secret_expires_at: expiresAt } = await h.service.store.db
        .selectFrom('webhooks')
        .select('previous_secret_expires_at')
        .where('id', '=', hook.id)
        .executeTakeFirstOrThrow();
      await clockPast(Number(expiresAt));
      const after = await deliver('/rotating');
      expect(after.headers['x-webhook-signature-previous']).toBeUndefined();
      expect(after.headers['webhook-signature']?.split(' ')).toHaveLength(1);
      verifyAllWays(rotated.secret, after);
      expect(verdicts(rotated.secret, after)).toEqual(ONLY_CURRENT);
      expect(verdicts(hook.secret, after)).toEqual(NONE);
    });

    it('with a grace period of 0 the old secret stops signing at once', async () => {
      const hook = await h.webhook({ url: h.receiver.url('/at-once'), events: ['contact.created'] });
      // A delivery first, so that the worker has the old secret in its cache.
      verifyAllWays(hook.secret, await deliver('/at-once', 'contact.created'));
      const rotated = await h.rotateSecret(hook.id, { grace_period_seconds: 0 });
      const after = await deliver('/at-once', 'contact.created');
      expect(after.headers['x-webhook-signature-previous']).toBeUndefined();
      expect(verdicts(rotated.secret, after)).toEqual(ONLY_CURRENT);
      expect(verdicts(hook.secret, after)).toEqual(NONE);
    });

    it('signs a retry after the rotation with the new secret', async () => {
      let failing = true;
      h.receiver.on('/retried', () => ({ status: failing ? 503 : 200 }));
      const hook = await h.webhook({
        url: h.receiver.url('/retried'),
        events: ['booth.assigned'],
        retry_count: 10,
      });
      await h.publish('booth.assigned');
      await waitFor(() => h.receiver.at('/retried').length >= 1);
      const rotated = await h.rotateSecret(hook.id, { grace_period_seconds: 0 });
      // A retry claimed before the rotation may still be on its way; the one that succeeds is not.
      // Of two more attempts recorded, the second was claimed after the first was written, which
      // was after the rotation.
      const attempts = Number((await h.deliveries(hook.id))[0]?.attempts);
      await waitFor(async () => (await h.deliveries(hook.id))[0]?.attempts >= attempts + 2);
      failing = false;
      await waitFor(async () => (await h.deliveries(hook.id))[0]?.status === 'succeeded');
      const last = h.receiver.at('/retried').at(-1) as Received;
      expect(verdicts(rotated.secret, last)).toEqual(ONLY_CURRENT);
    });
  });

  describe.skipIf(database.skip)(`secret rotation across processes [${database.name}]`, () => {
    it('a worker in another process signs with the new secret from its next delivery on', async () => {
      // The API here, the worker in a child process: nothing but the database is shared.
      const h = await createDeliveryHarness(database, {}, { role: 'api' });
      const worker = await startServe({ ...h.env, PORT: '0' }, 'worker', h.certificate.cert, h.dataDir);
      try {
        const hook = await h.webhook({
          url: h.receiver.url('/elsewhere', '127.0.0.1'),
          events: ['invoice.paid'],
        });
        const deliver = async () => {
          const event = await h.publish('invoice.paid');
          return waitFor(
            () => h.receiver.at('/elsewhere').find((r) => r.headers['webhook-id'] === event.id),
            undefined,
            'a delivery by the worker process',
          );
        };
        expect(verdicts(hook.secret, await deliver())).toEqual(ONLY_CURRENT);
        const rotated = await h.rotateSecret(hook.id, { grace_period_seconds: 0 });
        const after = await deliver();
        expect(verdicts(rotated.secret, after)).toEqual(ONLY_CURRENT);
        expect(verdicts(hook.secret, after)).toEqual(NONE);
      } finally {
        worker.child.kill('SIGTERM');
        await worker.exited;
        await h.close();
      }
    }, 300_000);
  });
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clockPast,
  createDeliveryHarness,
  type DeliveryHarness,
  waitFor,
} from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';
import { makeCertificate, Receiver } from '../helpers/receiver.js';

const settled = async (h: DeliveryHarness, webhookId: number, status: string, timeoutMs?: number) =>
  waitFor(
    async () => {
      const rows = await h.deliveries(webhookId);
      return rows.length > 0 && rows.every((r) => r.status === status) && rows;
    },
    timeoutMs,
    `deliveries of webhook ${webhookId} to be ${status}`,
  );

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`delivery failures and retries [${database.name}]`, () => {
    let h: DeliveryHarness;
    beforeAll(async () => {
      h = await createDeliveryHarness(database, { RETRY_SCHEDULE: '100ms,200ms' });
    });
    afterAll(async () => {
      await h?.close();
    });

    it('retries a 500 once it is answered 200, and keeps the stats', async () => {
      h.receiver.on('/flaky', (_r, n) =>
        n === 1 ? { status: 500, body: 'oops' } : { status: 204, body: '' },
      );
      const hook = await h.webhook({ url: h.receiver.url('/flaky'), events: ['invoice.paid'] });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'succeeded');
      expect(delivery.attempts).toBe(2);
      const attempts = await h.attempts(delivery.id);
      expect(attempts.map((a) => a.response_status)).toEqual([500, 204]);
      expect(attempts[0].response_body).toBe('oops');
      const ids = h.receiver.at('/flaky').map((r) => r.headers['x-webhook-delivery']);
      expect(new Set(ids).size).toBe(1);
      const webhook = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data;
      expect(webhook.failure_count).toBe(0);
      expect(webhook.last_failure_at).not.toBeNull();
      expect(webhook.last_success_at >= webhook.last_failure_at).toBe(true);
    });

    it('makes exactly retry_count + 1 attempts against a receiver that always fails, then gives up', async () => {
      h.receiver.on('/down', () => ({ status: 500 }));
      const hook = await h.webhook({
        url: h.receiver.url('/down'),
        events: ['invoice.paid'],
        retry_count: 3,
      });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'failed');
      expect(delivery.attempts).toBe(4);
      expect(delivery.next_attempt_at).toBeNull();
      expect(delivery.last_status_code).toBe(500);
      // Given up: the worker claims again, and sends it no more.
      await h.caughtUp();
      expect(h.receiver.at('/down')).toHaveLength(4);
      expect(await h.attempts(delivery.id)).toHaveLength(4);
      const webhook = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data;
      expect(webhook.failure_count).toBe(4);
      expect(webhook.last_success_at).toBeNull();
      expect(webhook.is_active).toBe(true);
    });

    it('records a timeout as a failed attempt with its reason', async () => {
      h.receiver.on('/slow', () => ({ hang: true }));
      const hook = await h.webhook({
        url: h.receiver.url('/slow'),
        events: ['invoice.paid'],
        retry_count: 0,
        timeout_seconds: 1,
      });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'failed');
      expect(delivery.last_error).toBe('Timed out after 1 s');
      const [attempt] = await h.attempts(delivery.id);
      expect(attempt.duration_ms).toBeGreaterThanOrEqual(900);
      expect(attempt.response_status).toBeNull();
    });

    it('records a refused connection', async () => {
      const hook = await h.webhook({
        url: 'https://receiver.test:1/nothing',
        events: ['invoice.paid'],
        retry_count: 0,
      });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'failed');
      expect(delivery.last_error).toBe('Connection refused');
    });

    it('says how to trust a receiver whose certificate no trusted authority signed', async () => {
      const untrusted = await new Receiver(await makeCertificate()).start();
      try {
        const hook = await h.webhook({
          url: untrusted.url('/self-signed'),
          events: ['invoice.paid'],
          retry_count: 0,
        });
        await h.publish('invoice.paid');
        const [delivery] = await settled(h, hook.id, 'failed');
        expect(delivery.last_error).toMatch(/^TLS error: .*NODE_EXTRA_CA_CERTS\.$/);
        expect(untrusted.requests).toHaveLength(0);
      } finally {
        await untrusted.stop();
      }
    });

    it('does not follow redirects: a 3xx is a failure', async () => {
      h.receiver.on('/moved', () => ({ status: 301, headers: { location: '/elsewhere' } }));
      const hook = await h.webhook({
        url: h.receiver.url('/moved'),
        events: ['invoice.paid'],
        retry_count: 0,
      });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'failed');
      expect(delivery.last_status_code).toBe(301);
      expect(h.receiver.at('/elsewhere')).toHaveLength(0);
    });

    it('waits as long as Retry-After says on 429 (within bounds)', async () => {
      h.receiver.on('/busy', (_r, n) =>
        n === 1 ? { status: 429, headers: { 'retry-after': '2' } } : { status: 200 },
      );
      const hook = await h.webhook({ url: h.receiver.url('/busy'), events: ['invoice.paid'] });
      await h.publish('invoice.paid');
      await settled(h, hook.id, 'succeeded');
      const [first, second] = h.receiver.at('/busy');
      expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(1900);
    });

    it('deactivates the webhook at once on 410 Gone', async () => {
      h.receiver.on('/gone', () => ({ status: 410 }));
      const hook = await h.webhook({ url: h.receiver.url('/gone'), events: ['invoice.paid'] });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'failed');
      expect(delivery.attempts).toBe(1);
      const [attempt] = await h.attempts(delivery.id);
      const webhook = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data;
      expect(webhook.is_active).toBe(false);
      expect(webhook.disabled_reason).toBe('The endpoint answered 410 Gone.');
      expect(Date.parse(webhook.disabled_at)).toBeGreaterThanOrEqual(Number(attempt.started_at));
      expect(Date.parse(webhook.disabled_at)).toBeLessThanOrEqual(Date.now());
      const listed = (await h.tenantApi('GET', '/api/v1/webhooks')).body.data.find(
        (w: { id: number }) => w.id === hook.id,
      );
      expect(listed.disabled_at).toBe(webhook.disabled_at);
      await h.publish('invoice.paid');
      expect(await h.deliveries(hook.id)).toHaveLength(1);
      const reactivated = await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, { is_active: true });
      expect(reactivated.body.data.disabled_reason).toBeNull();
      expect(reactivated.body.data.disabled_at).toBeNull();
      const paused = await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, { is_active: false });
      expect(paused.body.data).toMatchObject({ is_active: false, disabled_reason: null, disabled_at: null });
    });

    it('holds the retries of a paused webhook and resumes them on re-activation', async () => {
      let healthy = false;
      h.receiver.on('/paused', () => ({ status: healthy ? 200 : 503 }));
      const hook = await h.webhook({
        url: h.receiver.url('/paused'),
        events: ['invoice.paid'],
        retry_count: 5,
      });
      await h.publish('invoice.paid');
      await waitFor(() => h.receiver.at('/paused').length >= 1);
      await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, { is_active: false });
      // Claims from now on see it paused; an attempt claimed before may still be on its way.
      await h.caughtUp();
      const [due] = await waitFor(async () => {
        const rows = await h.deliveries(hook.id);
        return rows[0]?.locked_by === null && rows;
      });
      const seen = h.receiver.at('/paused').length;
      // Its retry falls due while it is paused, and the worker claims after that: it is held.
      await clockPast(Number(due.next_attempt_at));
      await h.caughtUp();
      expect(h.receiver.at('/paused')).toHaveLength(seen);
      const [held] = await h.deliveries(hook.id);
      expect(held).toMatchObject({ status: 'pending', attempts: due.attempts, locked_by: null });
      healthy = true;
      await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, { is_active: true });
      await settled(h, hook.id, 'succeeded');
    });

    it('cancels pending deliveries when the webhook is deleted', async () => {
      h.receiver.on('/deleted', () => ({ status: 500 }));
      const hook = await h.webhook({
        url: h.receiver.url('/deleted'),
        events: ['invoice.paid'],
        retry_count: 10,
      });
      await h.publish('invoice.paid');
      await waitFor(() => h.receiver.at('/deleted').length >= 1);
      expect((await h.tenantApi('DELETE', `/api/v1/webhooks/${hook.id}`)).status).toBe(204);
      await settled(h, hook.id, 'cancelled');
      const seen = h.receiver.at('/deleted').length;
      // The worker claims again, and sends it no more (an attempt claimed before may still arrive).
      await h.caughtUp();
      expect(h.receiver.at('/deleted').length).toBeLessThanOrEqual(seen + 1);
    });

    it('sends custom headers, while reserved ones cannot be set', async () => {
      const hook = await h.webhook({
        url: h.receiver.url('/headers'),
        events: ['invoice.paid'],
        headers: { Authorization: 'Bearer receiver-token', 'X-Env': 'prod' },
      });
      const refused = await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, {
        headers: { 'X-Webhook-Signature': 'v1=forged' },
      });
      expect(refused.status).toBe(422);
      await h.publish('invoice.paid');
      const [received] = await waitFor(
        () => h.receiver.at('/headers').length === 1 && h.receiver.at('/headers'),
      );
      expect(received?.headers.authorization).toBe('Bearer receiver-token');
      expect(received?.headers['x-env']).toBe('prod');
      const [delivery] = await settled(h, hook.id, 'succeeded');
      const [attempt] = await h.attempts(delivery.id);
      const recorded = JSON.parse(attempt.request_headers);
      expect(recorded.Authorization).toBe('********');
      expect(recorded['X-Env']).toBe('prod');
      expect(recorded['X-Webhook-Signature']).toMatch(/^v1=[0-9a-f]{64}$/);
    });

    it('captures at most 16 KiB of a response body', async () => {
      h.receiver.on('/big', () => ({ status: 200, body: 'x'.repeat(100_000) }));
      const hook = await h.webhook({ url: h.receiver.url('/big'), events: ['invoice.paid'] });
      await h.publish('invoice.paid');
      const [delivery] = await settled(h, hook.id, 'succeeded');
      const [attempt] = await h.attempts(delivery.id);
      expect(attempt.response_body).toHaveLength(16 * 1024);
    });
  });
}

import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

/** `count` webhooks on the receiver's host for `participant.added`, each answering after `delayMs`. */
async function webhooksOfOneHost(h: DeliveryHarness, prefix: string, count: number, delayMs: number) {
  for (let i = 0; i < count; i++) {
    h.receiver.on(`${prefix}/${i}`, () => ({ status: 200, delayMs }));
    await h.webhook({ url: h.receiver.url(`${prefix}/${i}`), events: ['participant.added'] });
  }
}

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`worker lifecycle [${database.name}]`, () => {
    it('on shutdown finishes what finishes within the grace period and releases the rest', async () => {
      const h = await createDeliveryHarness(database, { SHUTDOWN_GRACE: '5s' });
      try {
        // Answered once the shutdown has begun: in flight then, and done well within the grace period.
        let answerQuick = () => {};
        const quickAnswered = new Promise<void>((resolve) => {
          answerQuick = resolve;
        });
        h.receiver.on('/quick', () => ({ status: 200, after: quickAnswered }));
        h.receiver.on('/stuck', () => ({ hang: true }));
        const quick = await h.webhook({ url: h.receiver.url('/quick'), events: ['invoice.paid'] });
        const stuck = await h.webhook({
          url: h.receiver.url('/stuck'),
          events: ['invoice.paid'],
          timeout_seconds: 30,
        });
        await h.publish('invoice.paid');
        await waitFor(() => h.receiver.at('/quick').length === 1 && h.receiver.at('/stuck').length === 1);
        const stopping = h.service.worker?.stop();
        answerQuick();
        await stopping;
        const [done] = await h.deliveries(quick.id);
        expect(done).toMatchObject({ status: 'succeeded', attempts: 1 });
        const [released] = await h.deliveries(stuck.id);
        expect(released).toMatchObject({
          status: 'pending',
          attempts: 0,
          locked_by: null,
          locked_until: null,
        });
        expect(await h.attempts(released.id)).toEqual([]);
      } finally {
        await h.close();
      }
    });

    it('switches off a webhook that keeps failing, with the reason, and not before', async () => {
      // Failing after its first exhausted delivery, the webhook's next ones are held and sent as
      // probes, one each RECOVERY_PROBE_INTERVAL: with no retries, each probe exhausts one.
      const h = await createDeliveryHarness(database, {
        AUTO_DISABLE_AFTER: '0s',
        RECOVERY_PROBE_INTERVAL: '100ms',
      });
      try {
        h.receiver.on('/broken', () => ({ status: 500 }));
        const hook = await h.webhook({
          url: h.receiver.url('/broken'),
          events: ['contact.updated'],
          retry_count: 0,
        });
        for (let i = 1; i <= 4; i++) {
          await h.publish('contact.updated');
          await waitFor(
            async () => (await h.deliveries(hook.id)).filter((d) => d.status === 'failed').length === i,
          );
        }
        expect((await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data.is_active).toBe(true);
        await h.publish('contact.updated');
        const off = await waitFor(async () => {
          const data = (await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data;
          return !data.is_active && data;
        });
        expect(off.disabled_reason).toMatch(
          /^Disabled automatically: no successful delivery since .* and 5 deliveries failed after all retries\.$/,
        );
        // Five failed deliveries; probes sent again while none was held add failed attempts.
        expect(off.failure_count).toBeGreaterThanOrEqual(5);
        const lastAttempt = Math.max(
          ...(await Promise.all((await h.deliveries(hook.id)).map((d) => h.attempts(d.id))))
            .flat()
            .map((a) => Number(a.started_at)),
        );
        expect(Date.parse(off.disabled_at)).toBeGreaterThanOrEqual(lastAttempt);
        expect(Date.parse(off.disabled_at)).toBeLessThanOrEqual(Date.now());
        const on = (await h.tenantApi('PATCH', `/api/v1/webhooks/${hook.id}`, { is_active: true })).body.data;
        expect(on).toMatchObject({ is_active: true, disabled_reason: null, disabled_at: null });
      } finally {
        await h.close();
      }
    });

    it('does not switch off a webhook that failed for less than AUTO_DISABLE_AFTER', async () => {
      const h = await createDeliveryHarness(database, { RECOVERY_PROBE_INTERVAL: '100ms' });
      try {
        h.receiver.on('/flaky', () => ({ status: 500 }));
        const hook = await h.webhook({
          url: h.receiver.url('/flaky'),
          events: ['contact.updated'],
          retry_count: 0,
        });
        for (let i = 0; i < 6; i++) await h.publish('contact.updated');
        await waitFor(
          async () => (await h.deliveries(hook.id)).filter((d) => d.status === 'failed').length === 6,
        );
        expect((await h.tenantApi('GET', `/api/v1/webhooks/${hook.id}`)).body.data).toMatchObject({
          is_active: true,
          disabled_reason: null,
          disabled_at: null,
        });
      } finally {
        await h.close();
      }
    });

    it('drains one webhook a few slots at a time without waiting for the poll', async () => {
      // Every completion must lead to the next claim: with the poll an hour away, a missed one
      // leaves the rest waiting for it.
      const h = await createDeliveryHarness(database, { WEBHOOK_CONCURRENCY: '3' }, { pollMs: 3_600_000 });
      try {
        h.receiver.on('/serial', () => ({ status: 200, delayMs: 5 }));
        const hook = await h.webhook({ url: h.receiver.url('/serial'), events: ['participant.added'] });
        await h.operator('POST', '/internal/v1/events/batch', {
          events: Array.from({ length: 40 }, () => ({ tenant: h.slug, type: 'participant.added', data: {} })),
        });
        await waitFor(
          async () => (await h.deliveries(hook.id)).filter((d) => d.status === 'succeeded').length === 40,
          undefined,
          'forty deliveries, three at a time',
        );
      } finally {
        await h.close();
      }
    });

    it('shares a bounded set of connections among the webhooks of one host', async () => {
      const h = await createDeliveryHarness(database, { ORIGIN_CONNECTIONS: '4' });
      try {
        await webhooksOfOneHost(h, '/shared', 12, 50);
        const before = h.receiver.connections;
        await h.publish('participant.added');
        await waitFor(
          () => h.receiver.requests.filter((r) => r.path.startsWith('/shared/')).length === 12,
          undefined,
          'one delivery to each of twelve webhooks',
        );
        // Twelve at once would open twelve connections; at most four were open, and they were reused.
        expect(h.receiver.connections - before).toBeGreaterThan(0);
        expect(h.receiver.connections - before).toBeLessThanOrEqual(4);
      } finally {
        await h.close();
      }
    });

    // PostgreSQL: another session can hold up the writing of outcomes alone, claims going on.
    it.skipIf(!database.url)(
      "frees a webhook's slot once its endpoint answers, before the outcome is written",
      async () => {
        const h = await createDeliveryHarness(database, { WEBHOOK_CONCURRENCY: '1' });
        const blocker = new pg.Client({ connectionString: h.env.DATABASE_URL });
        try {
          h.receiver.on('/one', () => ({ status: 200, delayMs: 100 }));
          const hook = await h.webhook({ url: h.receiver.url('/one'), events: ['invoice.paid'] });
          await blocker.connect();
          await blocker.query('begin');
          await blocker.query('lock table attempts in exclusive mode');
          for (let i = 0; i < 3; i++) await h.publish('invoice.paid');
          await waitFor(
            () => h.receiver.at('/one').length === 3,
            undefined,
            'all three sent while no outcome is written',
          );
          expect((await h.deliveries(hook.id)).map((d) => [d.status, d.attempts])).toEqual([
            ['pending', 0],
            ['pending', 0],
            ['pending', 0],
          ]);
          // Still one at a time: each sent after the answer to the one before.
          const at = h.receiver.at('/one').map((r) => r.at);
          const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
          for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(90);
          await blocker.query('commit');
          await waitFor(
            async () => (await h.deliveries(hook.id)).every((d) => d.status === 'succeeded'),
            undefined,
            'the outcomes, once written',
          );
          expect(h.receiver.at('/one')).toHaveLength(3);
        } finally {
          await blocker.end();
          await h.close();
        }
      },
    );

    it('has many deliveries in flight without a warning of leaking shutdown listeners', async () => {
      const h = await createDeliveryHarness(database);
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      try {
        await webhooksOfOneHost(h, '/many', 12, 200);
        await h.publish('participant.added');
        await waitFor(
          async () => (await h.deliveries()).filter((d) => d.status === 'succeeded').length === 12,
          undefined,
          'twelve deliveries in flight together, then done',
        );
        expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
      } finally {
        process.off('warning', onWarning);
        await h.close();
      }
    });

    it('keeps one slow webhook from holding up the others', async () => {
      const h = await createDeliveryHarness(database, { WEBHOOK_CONCURRENCY: '2' });
      try {
        h.receiver.on('/slow', () => ({ hang: true }));
        const slow = await h.webhook({
          url: h.receiver.url('/slow'),
          events: ['participant.added'],
          timeout_seconds: 30,
        });
        const fast = await h.webhook({ url: h.receiver.url('/fast'), events: ['participant.added'] });
        for (let i = 0; i < 10; i++) await h.publish('participant.added');
        // The slow webhook's two requests are sent beside the fast ones: wait for them as well.
        await waitFor(
          () => h.receiver.at('/fast').length === 10 && h.receiver.at('/slow').length >= 2,
          undefined,
          'the fast webhook to get all ten, and the slow one two',
        );
        expect(h.receiver.at('/slow')).toHaveLength(2);
        const slowRows = await h.deliveries(slow.id);
        expect(slowRows.filter((d) => d.locked_by !== null)).toHaveLength(2);
        // The outcome is written after the answer arrives: wait for it, do not race it.
        await waitFor(
          async () => (await h.deliveries(fast.id)).every((d) => d.status === 'succeeded'),
          undefined,
          "the fast webhook's ten outcomes",
        );
      } finally {
        await h.close();
      }
    });
  });
}

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createService, type Role, type Service } from '../../src/server.js';
import { queueMail, wakeMailers } from '../../src/store/mails.js';
import { freshDatabaseUrl, waitFor } from '../helpers/delivery-harness.js';
import { ADMIN_TOKEN, DATABASES } from '../helpers/harness.js';
import { freePort, MAIL_PASSWORD, MailServer } from '../helpers/mail-server.js';

/**
 * Notification mail end to end: the service as `serve` makes it (the mailer beside the worker),
 * a real SMTP server (smtp-server) that asks for a login, on SQLite and PostgreSQL.
 */

/** Short waits, so that a retry comes within the test. */
const FAST = { retryScheduleMs: [150], pollMs: 100 };

interface MailService {
  service: Service;
  /** Every log line of the service, parsed, and the raw text (to look for the password in). */
  logs: Record<string, any>[];
  rawLogs(): string;
  operator(method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown): Promise<any>;
  /** A tenant, with a notification_email when given. */
  tenant(email?: string): Promise<{ id: number; slug: string }>;
  metric(name: string): Promise<number>;
  mails(): Promise<any[]>;
}

/** The first mail recorded as sent, then counted: waits for both. */
const sentAndCounted = (m: MailService) =>
  waitFor(
    async () =>
      (await m.mails())[0]?.status === 'sent' && (await m.metric('webhook_mails_total{outcome="sent"}')) > 0,
    undefined,
    'the mail to be sent and counted',
  );

for (const database of DATABASES) {
  describe.skipIf(database.skip)(`notification mail [${database.name}]`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A database of the test's own; services on it share it (SQLite: one file in DATA_DIR). */
    async function sharedDatabase() {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-mail-'));
      const db = await freshDatabaseUrl(database);
      cleanups.push(async () => {
        await db.drop();
        rmSync(dataDir, { recursive: true, force: true });
      });
      return {
        DATA_DIR: dataDir,
        ADMIN_TOKEN,
        SECRETS_KEY: randomBytes(32).toString('hex'),
        SHUTDOWN_GRACE: '2s',
        ...(db.url && { DATABASE_URL: db.url }),
      };
    }

    async function mailService(
      env: Record<string, string>,
      options: { role?: Role; startWorker?: boolean } = {},
    ): Promise<MailService> {
      let raw = '';
      const logs: Record<string, any>[] = [];
      const stream = new Writable({
        write(chunk, _encoding, callback) {
          raw += String(chunk);
          for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
          callback();
        },
      });
      const service = await createService(loadConfig(env), {
        role: options.role ?? 'all',
        logger: pino({ level: 'info' }, stream),
        mailer: FAST,
        ...(options.startWorker !== undefined && { startWorker: options.startWorker }),
      });
      cleanups.push(() => service.close());
      const operator = async (method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown) => {
        const res = await service.app.inject({
          method,
          url,
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          ...(body !== undefined && { payload: body as object }),
        });
        return { status: res.statusCode, body: res.json() };
      };
      return {
        service,
        logs,
        rawLogs: () => raw,
        operator,
        async tenant(email) {
          const slug = `mailed-${randomBytes(3).toString('hex')}`;
          const res = await operator('POST', '/internal/v1/tenants', {
            slug,
            name: 'Mailed Fairs',
            plan: 'business',
            ...(email && { notification_email: email }),
          });
          expect(res.status).toBe(201);
          return { id: res.body.data.id, slug };
        },
        async metric(name) {
          const text = (await service.app.inject({ method: 'GET', url: '/metrics' })).body;
          const escaped = name.replace(/[{}"=]/g, (c) => `\\${c}`);
          const match = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
          return match ? Number(match[1]) : 0;
        },
        mails: () => service.store.db.selectFrom('mails').selectAll().orderBy('id').execute(),
      };
    }

    async function mailServer(options?: ConstructorParameters<typeof MailServer>[0]) {
      const server = new MailServer(options);
      cleanups.push(() => server.stop());
      return server;
    }

    it('mails the tenant at its notification_email, once per dedupe key, queued in a transaction', async () => {
      const server = await mailServer();
      const port = await server.start();
      const m = await mailService({
        ...(await sharedDatabase()),
        SMTP_URL: MailServer.url(port),
        MAIL_FROM: 'PlanDocket Webhooks <webhooks@plandocket.test>',
      });
      const { id: tenantId } = await m.tenant('ops@acme.example');
      const mail = {
        tenantId,
        subject: 'Your webhook "ERP sync" is failing',
        text: 'Deliveries to https://erp.acme.example/hooks have failed since 09:00 UTC.',
        dedupeKey: 'webhook:7:failing:1764579600000',
      };
      const db = m.service.store.db;
      // Asked twice for the same change (two calls, two transactions): one mail.
      expect(await db.transaction().execute((trx) => queueMail(trx, mail))).toBe(true);
      expect(await db.transaction().execute((trx) => queueMail(trx, mail))).toBe(false);
      wakeMailers(m.service.store);

      await sentAndCounted(m);
      expect(server.received).toHaveLength(1);
      const [received] = server.received;
      expect(received?.from).toBe('webhooks@plandocket.test');
      expect(received?.to).toEqual(['ops@acme.example']);
      expect(received?.user).toBe('mailer');
      expect(received?.headers.get('to')).toBe('ops@acme.example');
      expect(received?.headers.get('from')).toBe('PlanDocket Webhooks <webhooks@plandocket.test>');
      expect(received?.headers.get('subject')).toBe(mail.subject);
      expect(received?.headers.get('auto-submitted')).toBe('auto-generated');
      expect(received?.body).toContain(mail.text);

      const rows = await m.mails();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        tenant_id: tenantId,
        recipient: 'ops@acme.example',
        status: 'sent',
        attempts: 1,
        next_attempt_at: null,
        last_error: null,
        dedupe_key: mail.dedupeKey,
      });
      expect(Number(rows[0].sent_at)).toBeGreaterThan(0);
      expect(await m.metric('webhook_mails_total{outcome="sent"}')).toBe(1);
      expect(await m.metric('webhook_mails_pending')).toBe(0);
      // Asked again after it was sent: still one.
      expect(await queueMail(db, mail)).toBe(false);
    });

    it('queues nothing for a tenant without a notification_email, or once it is cleared', async () => {
      const m = await mailService({
        ...(await sharedDatabase()),
        SMTP_URL: MailServer.url(await freePort()),
      });
      const without = await m.tenant();
      expect(await queueMail(m.service.store.db, { tenantId: without.id, subject: 's', text: 't' })).toBe(
        false,
      );
      const cleared = await m.tenant('ops@acme.example');
      const patched = await m.operator('PATCH', `/internal/v1/tenants/${cleared.slug}`, {
        notification_email: null,
      });
      expect(patched.body.data.notification_email).toBeNull();
      expect(await queueMail(m.service.store.db, { tenantId: cleared.id, subject: 's', text: 't' })).toBe(
        false,
      );
      expect(await m.mails()).toEqual([]);
    });

    it('keeps a mail queued while the mail server is down, logs and counts each failure, and sends it once the server is up', async () => {
      const port = await freePort();
      const m = await mailService({ ...(await sharedDatabase()), SMTP_URL: MailServer.url(port) });
      const { id: tenantId } = await m.tenant('ops@acme.example');
      expect(
        await queueMail(m.service.store.db, {
          tenantId,
          subject: 'Your webhook is disabled',
          text: 'It kept failing for 5 days.',
          dedupeKey: 'webhook:8:disabled:1',
        }),
      ).toBe(true);
      wakeMailers(m.service.store);

      // Tried, refused, due again: still pending. Each try is recorded, then counted and logged.
      const warned = () => m.logs.filter((l) => l.msg === 'mail not sent; trying again later');
      const [failing] = await waitFor(
        async () => {
          const rows = await m.mails();
          return rows[0]?.attempts >= 2 && warned().length >= 2 ? rows : undefined;
        },
        undefined,
        'two failed tries',
      );
      expect(failing).toMatchObject({ status: 'pending', sent_at: null });
      expect(failing.last_error).toMatch(/ECONNREFUSED/);
      const warnings = warned();
      expect(warnings.length).toBeGreaterThanOrEqual(2);
      expect(warnings[0]).toMatchObject({
        component: 'mailer',
        level: 40,
        mail_id: failing.id,
        tenant_id: tenantId,
        attempt: 1,
        smtp_server: `127.0.0.1:${port}`,
      });
      expect(await m.metric('webhook_mails_total{outcome="retrying"}')).toBeGreaterThanOrEqual(2);
      expect(await m.metric('webhook_mails_pending')).toBe(1);
      // Deliveries do not wait for mail: the worker's loop goes on.
      expect((await m.service.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);

      const server = await mailServer();
      await server.start(port);
      await sentAndCounted(m);
      expect(server.received.map((r) => r.to)).toEqual([['ops@acme.example']]);
      expect(await m.metric('webhook_mails_total{outcome="sent"}')).toBe(1);
      expect(await m.metric('webhook_mails_pending')).toBe(0);
      // The password is in SMTP_URL only: never in a log line or a stored error.
      expect(m.rawLogs()).not.toContain(MAIL_PASSWORD);
      expect(m.rawLogs()).not.toContain(encodeURIComponent(MAIL_PASSWORD));
    });

    it('gives up at once on a recipient the server refuses for good', async () => {
      const server = await mailServer({ refuse: (recipient) => recipient.startsWith('gone@') });
      const m = await mailService({
        ...(await sharedDatabase()),
        SMTP_URL: MailServer.url(await server.start()),
      });
      const { id: tenantId } = await m.tenant('gone@acme.example');
      await queueMail(m.service.store.db, { tenantId, subject: 'Recovered', text: 'Deliveries flow again.' });
      wakeMailers(m.service.store);
      // Recorded as given up, then counted and logged: wait for all of it.
      await waitFor(
        async () =>
          (await m.mails())[0]?.status === 'failed' &&
          m.logs.some((l) => l.msg === 'mail not sent; given up'),
        undefined,
        'the mail to be given up',
      );
      const [row] = await m.mails();
      expect(row).toMatchObject({ attempts: 1, next_attempt_at: null });
      expect(row.last_error).toMatch(/550/);
      expect(await m.metric('webhook_mails_total{outcome="failed"}')).toBe(1);
      expect(m.logs.find((l) => l.msg === 'mail not sent; given up')).toMatchObject({
        component: 'mailer',
        level: 50,
        response_code: 550,
      });
      expect(server.received).toEqual([]);
    });

    it('two worker processes send each mail once', async () => {
      const server = await mailServer();
      const env = { ...(await sharedDatabase()), SMTP_URL: MailServer.url(await server.start()) };
      const one = await mailService(env);
      const two = await mailService(env, { role: 'worker' });
      const { id: tenantId } = await one.tenant('ops@acme.example');
      const count = 25;
      for (let i = 0; i < count; i++) {
        await queueMail(one.service.store.db, {
          tenantId,
          subject: `mail ${i}`,
          text: 'x',
          dedupeKey: `k${i}`,
        });
      }
      wakeMailers(one.service.store);
      wakeMailers(two.service.store);
      await waitFor(
        async () => (await one.mails()).every((row) => row.status === 'sent'),
        30_000,
        'every mail to be sent',
      );
      const subjects = server.received.map((r) => r.headers.get('subject'));
      expect(subjects).toHaveLength(count);
      expect(new Set(subjects).size).toBe(count);
    });

    it('without SMTP_URL sends nothing and gives queued mails up, saying why', async () => {
      const m = await mailService(await sharedDatabase(), { startWorker: false });
      expect(m.service.mailer?.enabled).toBe(false);
      const { id: tenantId } = await m.tenant('ops@acme.example');
      expect(await queueMail(m.service.store.db, { tenantId, subject: 's', text: 't' })).toBe(true);
      // Given up at upkeep: when the mailer starts, and every few minutes after.
      m.service.mailer?.start();
      await waitFor(
        async () =>
          (await m.mails())[0]?.status === 'failed' &&
          m.logs.some((l) => l.component === 'mailer' && /SMTP_URL is not set/.test(l.msg)),
        undefined,
        'the mail to be given up',
      );
      expect((await m.mails())[0]).toMatchObject({ attempts: 0, last_error: 'SMTP_URL is not set' });
      expect(m.logs.some((l) => l.component === 'mailer' && /SMTP_URL is not set/.test(l.msg))).toBe(true);
    });
  });
}

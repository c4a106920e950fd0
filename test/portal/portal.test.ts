import { copyFileSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  describeViolations,
  ensurePortalBuilt,
  launchChromium,
  screenshot,
  seriousViolations,
  watchProblems,
} from '../helpers/browser.js';
import { createDeliveryHarness, type DeliveryHarness, waitFor } from '../helpers/delivery-harness.js';
import { DATABASES } from '../helpers/harness.js';

/**
 * The portal in a real browser against a real service: the API and the worker listening on an
 * ephemeral port, delivering to the test HTTPS receiver. The tests run in order and share the
 * webhooks they make.
 */

const TIMEOUT = 90_000;
const WIDTHS = [1280, 390] as const;
const DOCS_SCREENSHOTS = path.resolve(import.meta.dirname, '../../docs/screenshots');

/**
 * Run in the page before its scripts: records each text drawn on a canvas with the box it covers
 * (in the canvas's pixels), as `window.drawnText`. uPlot draws its axis labels this way.
 */
const RECORD_CANVAS_TEXT = `(() => {
  const drawn = [];
  window.drawnText = drawn;
  const fillText = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
    const m = this.measureText(text);
    const align = this.textAlign;
    const left = align === 'right' || align === 'end' ? x - m.width : align === 'center' ? x - m.width / 2 : x;
    drawn.push({
      canvas: this.canvas, text: String(text),
      left, right: left + m.width, top: y - m.actualBoundingBoxAscent, bottom: y + m.actualBoundingBoxDescent,
    });
    return fillText.call(this, text, x, y, ...rest);
  };
})()`;

interface ChartText {
  /** The value axis's labels, and the highest of them. */
  values: string[];
  top: string;
  /** Texts drawn past the canvas's edges, with where they begin. */
  clipped: string[];
  /** Whether the canvas lies within its card (nothing hides part of it). */
  inCard: boolean;
}

/** What the page drew on each chart (labels of both axes), in the order of the charts. */
const chartText = `[...document.querySelectorAll('.plot canvas')].map((canvas) => {
  const drawn = window.drawnText.filter((t) => t.canvas === canvas);
  // The value axis is on the left: its labels end before the plot begins, the time axis's are below.
  const values = drawn.filter((t) => /^[0-9.,]+( ms| s)?$/.test(t.text) && !/[/:]|am|pm/.test(t.text));
  const clipped = drawn.filter((t) => t.left < 0 || t.top < 0 || t.right > canvas.width || t.bottom > canvas.height);
  const top = values.reduce((a, t) => (a && a.top <= t.top ? a : t), undefined);
  const chart = canvas.getBoundingClientRect();
  const card = canvas.closest('.card').getBoundingClientRect();
  return {
    values: [...new Set(values.map((t) => t.text))],
    top: top ? top.text : '',
    clipped: [...new Set(clipped.map((t) => t.text + ' at ' + Math.round(t.left) + ',' + Math.round(t.top)))],
    inCard: chart.left >= card.left && chart.right <= card.right && chart.top >= card.top && chart.bottom <= card.bottom,
  };
})`;

describe('tenant portal in Chromium', () => {
  let h: DeliveryHarness;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;
  let base: string;
  let key: string;
  let webhookId: string;
  const contexts: BrowserContext[] = [];
  const problems: string[] = [];
  const requested: string[] = [];

  async function newPage(width = 1280): Promise<Page> {
    const context = await browser.newContext({ viewport: { width, height: width > 600 ? 900 : 844 } });
    contexts.push(context);
    const page = await context.newPage();
    problems.push(...watchProblems(page));
    page.on('request', (request) => requested.push(request.url()));
    page.setDefaultTimeout(15_000);
    return page;
  }

  async function signedIn(
    width = 1280,
    at = '/portal/',
    prepare?: (page: Page) => Promise<unknown>,
  ): Promise<Page> {
    const page = await newPage(width);
    await prepare?.(page);
    await page.goto(base + at);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Acme', { exact: true }).waitFor();
    return page;
  }

  beforeAll(async () => {
    ensurePortalBuilt();
    h = await createDeliveryHarness(DATABASES[0] as (typeof DATABASES)[number]);
    const app = h.service.app;
    if (!app) throw new Error('no API');
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const created = await h.operator('POST', `/internal/v1/tenants/${h.slug}/api-keys`, {
      name: 'Portal test',
      scopes: ['webhooks'],
    });
    key = created.body.data.key;
    chromium = await launchChromium();
    browser = chromium.browser;
  }, TIMEOUT);

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await chromium?.close();
    await h?.close();
  });

  it(
    'signs in with a pasted API key, kept in sessionStorage and never in a URL',
    async () => {
      const page = await newPage();
      const response = await page.goto(`${base}/portal/`);
      const headers = response?.headers() ?? {};
      expect(headers['content-security-policy']).toContain("default-src 'self'");
      expect(headers['content-security-policy']).toContain("script-src 'self'");
      expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(headers['x-content-type-options']).toBe('nosniff');
      expect(headers['referrer-policy']).toBe('no-referrer');
      expect(headers['x-frame-options']).toBe('DENY');
      await expect(page.getByRole('heading', { name: 'Sign in to your webhooks' }).isVisible()).resolves.toBe(
        true,
      );

      await page.getByLabel('API key').fill('pdk_wrong-key');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('Invalid API key.').waitFor();
      expect(await page.getByLabel('API key').getAttribute('aria-invalid')).toBe('true');

      await page.getByLabel('API key').fill(key);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Webhooks', exact: true }).waitFor();
      await page.getByText('No webhooks yet').waitFor();
      await page.getByText('Acme', { exact: true }).waitFor();
      expect(await page.evaluate('Object.values(sessionStorage)')).toEqual([key]);
      expect(await page.evaluate('Object.values(localStorage)')).toEqual([]);
      expect(requested.filter((url) => url.includes(key))).toEqual([]);

      // A reload keeps the session of this tab; signing out forgets it.
      await page.reload();
      await page.getByText('No webhooks yet').waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: 'Sign in to your webhooks' }).waitFor();
      expect(await page.evaluate('Object.values(sessionStorage)')).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'signs in once with a portal link, takes the token out of the address bar, and refuses it the second time',
    async () => {
      const minted = await h.operator('POST', `/internal/v1/tenants/${h.slug}/portal-links`);
      expect(minted.status).toBe(201);
      const link = (minted.body.data.url as string).replace(/^https?:\/\/[^/]+/, base);
      const token = new URL(link).hash.slice('#token='.length);

      const page = await newPage();
      await page.goto(link);
      await page.getByRole('heading', { name: 'Webhooks', exact: true }).waitFor();
      await page.getByText('Acme', { exact: true }).waitFor();
      expect(page.url()).toBe(`${base}/portal/`);
      expect(requested.filter((url) => url.includes(token))).toEqual([]);
      const sessionKey = (await page.evaluate('Object.values(sessionStorage)[0]')) as string;
      expect(sessionKey).toMatch(/^pdk_/);
      expect(sessionKey).not.toBe(key);

      const again = await newPage();
      await again.goto(link);
      await again.getByRole('heading', { name: 'Sign in to your webhooks' }).waitFor();
      await again.getByText(/expired or was already used/).waitFor();
      expect(again.url()).toBe(`${base}/portal/`);

      const mangled = await newPage();
      await mangled.goto(`${base}/portal/#token=${token.slice(0, 10)}%20cut`);
      await mangled.getByText(/This portal link is not valid/).waitFor();
      expect(mangled.url()).toBe(`${base}/portal/`);

      // Signing out of a portal session ends its key on the server.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: 'Sign in to your webhooks' }).waitFor();
      const refused = await fetch(`${base}/api/v1/webhooks`, {
        headers: { authorization: `Bearer ${sessionKey}` },
      });
      expect(refused.status).toBe(401);
    },
    TIMEOUT,
  );

  it(
    'creates a webhook with two events and a custom header, which deliveries then carry',
    async () => {
      const page = await signedIn();
      await page.getByRole('link', { name: 'Create your first webhook' }).click();
      await page.getByRole('heading', { name: 'New webhook' }).waitFor();
      await page.getByLabel('Endpoint URL').fill(h.receiver.url('/portal-hook'));
      await page.getByLabel('Name', { exact: true }).fill('Portal receiver');
      await page.getByRole('checkbox', { name: /invoice\.paid/ }).check();
      await page.getByRole('checkbox', { name: /booth\.assigned/ }).check();
      await page.getByRole('button', { name: 'Add header' }).click();
      await page.getByLabel('Header 1 name').fill('X-Portal-Test');
      await page.getByLabel('Header 1 value').fill('from-the-portal');
      await page.getByRole('button', { name: 'Create webhook' }).click();

      await page.getByRole('heading', { name: 'Portal receiver' }).waitFor();
      webhookId = /\/portal\/webhooks\/(\d+)$/.exec(page.url())?.[1] as string;
      expect(webhookId).toMatch(/^\d+$/);
      const saved = (await h.tenantApi('GET', `/api/v1/webhooks/${webhookId}`)).body.data;
      expect(saved).toMatchObject({
        name: 'Portal receiver',
        url: h.receiver.url('/portal-hook'),
        events: ['invoice.paid', 'booth.assigned'],
        headers: { 'X-Portal-Test': 'from-the-portal' },
        retry_count: 3,
        timeout_seconds: 30,
        is_active: true,
      });

      // The secret is hidden until revealed.
      expect(await page.locator('.secret').textContent()).not.toContain(saved.secret);
      await page.getByRole('button', { name: 'Reveal' }).click();
      await page.getByText(saved.secret).waitFor();
      await page.getByRole('button', { name: 'Hide' }).click();

      await h.publish('booth.assigned', { booth: 'A12' });
      const received = await waitFor(() => h.receiver.at('/portal-hook')[0], undefined, 'a delivery');
      expect(received.headers['x-portal-test']).toBe('from-the-portal');
      expect(received.headers['x-webhook-event']).toBe('booth.assigned');
    },
    TIMEOUT,
  );

  it(
    'sends a test event, sees it succeed in the live log, and opens its payload view',
    async () => {
      const page = await signedIn(1280, `/portal/webhooks/${webhookId}`);
      await page.getByRole('heading', { name: 'Portal receiver' }).waitFor();
      await page.getByRole('button', { name: 'Send test event' }).click();
      await page.getByText('A test event was queued').waitFor();
      const row = page.locator('.log-table tbody tr', { hasText: 'webhook.test' });
      await row.getByText('Succeeded').waitFor();
      await row.getByText('200').waitFor();

      await row.getByRole('link', { name: /View delivery/ }).click();
      await page.getByRole('heading', { name: 'webhook.test delivery' }).waitFor();
      const payload = await page.locator('pre.payload').textContent();
      expect(payload).toContain('\n  "type": "webhook.test",\n');
      expect(JSON.parse(payload as string).tenant).toBe(h.slug);
      await page.getByRole('heading', { name: 'Attempt 1' }).waitFor();
      await page.locator('.attempt').getByText('200').waitFor();
      await page.getByText('Response body').waitFor();
      await page.getByText('Request headers').click();
      await page.locator('.header-list').getByText('x-webhook-delivery').first().waitFor();
    },
    TIMEOUT,
  );

  it(
    'shows a failing webhook under Failed, and a retry from the page succeeds once the receiver is fixed',
    async () => {
      let healthy = false;
      h.receiver.on('/flaky', () =>
        healthy ? { status: 200 } : { status: 503, body: '{"error":"down for maintenance"}' },
      );
      const webhook = await h.webhook({
        url: h.receiver.url('/flaky'),
        name: 'Flaky receiver',
        events: ['invoice.paid'],
        retry_count: 0,
      });
      await h.publish('invoice.paid', { invoice_id: 42 });
      await waitFor(
        async () => (await h.deliveries(webhook.id)).some((d) => d.status === 'failed'),
        undefined,
        'a failed delivery',
      );

      const page = await signedIn();
      await page.getByRole('link', { name: 'Flaky receiver' }).click();
      await page.getByRole('heading', { name: 'Flaky receiver' }).waitFor();
      await page.getByRole('tab', { name: 'Failed' }).click();
      expect(await page.getByRole('tab', { name: 'Failed' }).getAttribute('aria-selected')).toBe('true');
      const row = page.locator('.log-table tbody tr', { hasText: 'invoice.paid' });
      await row.getByText('Failed').waitFor();
      await row.getByText('503').waitFor();
      await page.getByRole('tab', { name: 'Pending' }).click();
      await page.getByText('Nothing pending').waitFor();
      await page.getByRole('tab', { name: 'Failed' }).click();

      healthy = true;
      await page
        .locator('.log-table tbody tr', { hasText: 'invoice.paid' })
        .getByRole('link', { name: /View delivery/ })
        .click();
      await page.getByRole('heading', { name: 'invoice.paid delivery' }).waitFor();
      await page.getByText('down for maintenance').waitFor();
      await page.getByRole('button', { name: 'Retry now' }).click();
      await page.getByRole('heading', { name: 'Attempt 2' }).waitFor();
      await page.locator('.subtitle').getByText('Succeeded').waitFor();
      expect(h.receiver.at('/flaky')).toHaveLength(2);
    },
    TIMEOUT,
  );

  it(
    "shows the API's 422 messages next to their fields",
    async () => {
      const before = (await h.tenantApi('GET', '/api/v1/webhooks')).body.meta.total;
      const page = await signedIn(1280, '/portal/webhooks/new');
      await page.getByRole('heading', { name: 'New webhook' }).waitFor();
      await page.getByLabel('Endpoint URL').fill('http://example.com/hooks');
      await page.getByRole('checkbox', { name: /invoice\.paid/ }).check();
      await page.getByLabel('Retries', { exact: true }).fill('11');
      await page.getByRole('button', { name: 'Create webhook' }).click();
      await page.getByText('Please correct the fields marked below.').waitFor();

      const messageFor = async (label: string) => {
        const input = page.getByLabel(label, { exact: true });
        expect(await input.getAttribute('aria-invalid')).toBe('true');
        const ids = ((await input.getAttribute('aria-describedby')) ?? '').split(' ');
        const errorId = ids.find((id) => id.endsWith('-error'));
        return page.locator(`#${errorId}`).textContent();
      };
      expect(await messageFor('Endpoint URL')).toMatch(/HTTPS/);
      expect(await messageFor('Retries')).toMatch(/not be greater than 10/);
      expect(await page.getByLabel('Timeout (seconds)').getAttribute('aria-invalid')).toBeNull();
      expect((await h.tenantApi('GET', '/api/v1/webhooks')).body.meta.total).toBe(before);
    },
    TIMEOUT,
  );

  it(
    'pauses and activates a webhook',
    async () => {
      const page = await signedIn(1280, `/portal/webhooks/${webhookId}`);
      const header = page.locator('.page-header');
      await header.getByText('Active', { exact: true }).waitFor();
      await page.getByRole('button', { name: 'Pause' }).click();
      await header.getByText('Paused', { exact: true }).waitFor();
      expect((await h.tenantApi('GET', `/api/v1/webhooks/${webhookId}`)).body.data.is_active).toBe(false);
      await page.getByRole('button', { name: 'Activate' }).click();
      await header.getByText('Active', { exact: true }).waitFor();
      expect((await h.tenantApi('GET', `/api/v1/webhooks/${webhookId}`)).body.data.is_active).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'rotates the secret with a grace period',
    async () => {
      const before = (await h.tenantApi('GET', `/api/v1/webhooks/${webhookId}`)).body.data.secret;
      const page = await signedIn(1280, `/portal/webhooks/${webhookId}`);
      await page.getByRole('button', { name: 'Rotate secret…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Rotate the signing secret' });
      await dialog.getByLabel('Grace period').selectOption({ label: '1 hour' });
      await dialog.getByRole('button', { name: 'Rotate secret' }).click();
      await page.getByText('The old one keeps signing for 1 hour').waitFor();
      const after = (await h.tenantApi('GET', `/api/v1/webhooks/${webhookId}`)).body.data.secret;
      expect(after).not.toBe(before);
      await page.getByText(after).waitFor();
    },
    TIMEOUT,
  );

  it(
    'shows a failing webhook as failing in the list, and on its page what happened and what comes next',
    async () => {
      const flaky = (await h.tenantApi('GET', '/api/v1/webhooks')).body.data.find(
        (w: { name: string }) => w.name === 'Flaky receiver',
      );
      // Failing for two hours, its next probe in one: as the breaker leaves it (src/store/breaker.ts).
      // It stays failing for the views below: nothing is sent to it any more.
      const since = Date.now() - 2 * 3_600_000;
      const probe = Date.now() + 80 * 60_000;
      await h.service.store.db
        .updateTable('webhooks')
        .set({ breaker_opened_at: since, next_probe_at: probe })
        .where('id', '=', flaky.id)
        .execute();
      // And one switched off by the service, as a 410 Gone leaves it.
      const gone = await h.webhook({
        url: h.receiver.url('/gone'),
        name: 'Gone receiver',
        events: ['invoice.paid'],
      });
      await h.service.store.db
        .updateTable('webhooks')
        .set({ is_active: 0, disabled_reason: 'The endpoint answered 410 Gone.', disabled_at: since })
        .where('id', '=', gone.id)
        .execute();

      const page = await signedIn();
      const row = (name: string) => page.locator('.webhook-table tbody tr', { hasText: name });
      await row('Flaky receiver').getByText('Failing', { exact: true }).waitFor();
      await row('Flaky receiver')
        .getByText(/Endpoint down, noticed 2 hours ago/)
        .waitFor();
      await row('Gone receiver').getByText('Auto-disabled', { exact: true }).waitFor();
      await row('Gone receiver').getByText('The endpoint answered 410 Gone.').waitFor();
      await row('Portal receiver').getByText('Active', { exact: true }).waitFor();
      expect(describeViolations(await seriousViolations(page)), 'list').toBe('');

      await page.getByRole('link', { name: 'Flaky receiver' }).click();
      const banner = page.getByRole('region', { name: 'This webhook is failing' });
      await banner.waitFor();
      const text = await banner.textContent();
      expect(text).toContain('2 hours ago');
      expect(text).toContain('its endpoint did not answer successfully');
      expect(text).toMatch(/one is sent as a probe at .+\(in 1 hour\)/);
      expect(text).toContain('those that failed during the outage');
      await page.locator('.page-header').getByText('Failing', { exact: true }).waitFor();
      expect(describeViolations(await seriousViolations(page)), 'failing page').toBe('');

      await page.goto(`${base}/portal/webhooks/${gone.id}`);
      const off = page.getByRole('region', { name: 'Switched off by the service' });
      await off.waitFor();
      expect(await off.textContent()).toMatch(/410 Gone\. Switched off on .+\(2 hours ago\)/);
      await off.getByText(/activate the webhook: deliveries resume/).waitFor();
      expect(describeViolations(await seriousViolations(page)), 'disabled page').toBe('');
      // Activated again, it is healthy: the banner goes.
      await page.getByRole('button', { name: 'Activate' }).click();
      await page.locator('.page-header').getByText('Active', { exact: true }).waitFor();
      await off.waitFor({ state: 'detached' });
    },
    TIMEOUT,
  );

  it(
    'recovers the events a webhook missed while paused, from the recovery form',
    async () => {
      await h.tenantApi('PATCH', `/api/v1/webhooks/${webhookId}`, { is_active: false });
      const missed = await h.publish('invoice.paid', { invoice_id: 99 });
      expect((await h.deliveries(Number(webhookId))).some((d) => d.event_id === missed.id)).toBe(false);
      await h.tenantApi('PATCH', `/api/v1/webhooks/${webhookId}`, { is_active: true });

      const page = await signedIn(1280, `/portal/webhooks/${webhookId}`);
      await page.getByRole('heading', { name: 'Portal receiver' }).waitFor();
      const option = page.getByRole('checkbox', { name: /Also send the events this webhook missed/ });
      expect(await option.isChecked()).toBe(false);
      await option.check();
      await page.getByRole('button', { name: 'Recover failed deliveries' }).click();
      await page.getByText('No failed deliveries in this window; 1 missed event queued.').waitFor();
      const received = await waitFor(
        () => h.receiver.at('/portal-hook').find((r) => JSON.parse(r.body).id === missed.id),
        undefined,
        'the missed event',
      );
      expect(received.headers['x-webhook-event']).toBe('invoice.paid');
      // Newest first: the missed event's delivery heads the log.
      await page
        .locator('.log-table tbody tr', { hasText: 'invoice.paid' })
        .first()
        .getByText('Succeeded')
        .waitFor();

      // Sent once: asked again, nothing is missing.
      await page.getByRole('button', { name: 'Recover failed deliveries' }).click();
      await page.getByText('No failed deliveries in this window; no missed events.').waitFor();
    },
    TIMEOUT,
  );

  it(
    'updates the cards and charts with the live log when a delivery settles, one statistics request per refresh at most',
    async () => {
      // Slow enough answers that the duration axis reads hundreds of milliseconds ("150 ms").
      h.receiver.on('/portal-hook', () => ({ status: 200, delayMs: 150 }));
      const statsUrl = `/api/v1/webhooks/${webhookId}/stats`;
      const logUrl = `/api/v1/webhooks/${webhookId}/deliveries?`;
      const page = await signedIn(1280, `/portal/webhooks/${webhookId}`);
      const asked = { stats: 0, log: 0 };
      page.on('request', (request) => {
        const url = request.url();
        if (url.includes(statsUrl)) asked.stats++;
        if (url.includes(logUrl)) asked.log++;
      });
      const card = (label: string) =>
        page.locator('.counts li', { has: page.getByText(label, { exact: true }) }).locator('.count-value');
      await card('succeeded').waitFor();
      const before = (await h.tenantApi('GET', statsUrl)).body.data.counts;
      await card('succeeded').getByText(String(before.succeeded), { exact: true }).waitFor();

      // Of the webhooks made so far, only this one takes booth.assigned.
      const published = await h.publish('booth.assigned', { booth: 'C7' });
      expect(published.deliveries).toBe(1);
      // The page is not reloaded: the cards and the chart follow the log's refresh.
      const after = String(before.succeeded + 1);
      await page
        .locator('.log-table tbody tr', { hasText: 'booth.assigned' })
        .first()
        .getByText('Succeeded')
        .waitFor();
      await card('succeeded').getByText(after, { exact: true }).waitFor();
      await page.getByRole('img', { name: new RegExp(`: ${after} succeeded, `) }).waitFor();
      const data = (await h.tenantApi('GET', statsUrl)).body.data;
      expect(data.counts.succeeded).toBe(before.succeeded + 1);
      expect(asked.stats).toBeGreaterThanOrEqual(1);
      // Each refresh asks for the log and the statistics (the statistics first), once each at most.
      expect(asked.stats).toBeLessThanOrEqual(asked.log + 1);
    },
    TIMEOUT,
  );

  it.each(WIDTHS)(
    "draws the charts' axis labels whole, the attempt-duration axis's top one too, at %i pixels wide",
    async (width) => {
      const page = await signedIn(width, `/portal/webhooks/${webhookId}`, (p) =>
        p.addInitScript(RECORD_CANVAS_TEXT),
      );
      await page.locator('.plot canvas').nth(1).waitFor();
      const [deliveries, durations] = (await waitFor(async () => {
        const charts = (await page.evaluate(chartText)) as ChartText[];
        return charts.length === 2 && charts.every((c) => c.top !== '') && charts;
      })) as ChartText[];
      if (!deliveries || !durations) throw new Error('no charts');
      // The previous test's answers took 150 ms: the top label is at least as wide as "100 ms".
      expect(durations.top, durations.values.join(', ')).toMatch(/^(\d{3} ms|[\d.]+ s)$/);
      expect(durations.clipped).toEqual([]);
      expect(deliveries.clipped).toEqual([]);
      expect([deliveries.inCard, durations.inCard]).toEqual([true, true]);

      // Days instead of hours: other time labels, as whole.
      await page.getByLabel('Window', { exact: true }).selectOption('30d');
      await page.getByText('Deliveries by day of creation').waitFor();
      const daily = (await waitFor(async () => {
        const charts = (await page.evaluate(chartText)) as ChartText[];
        return charts.length === 2 && charts.every((c) => c.top !== '') && charts;
      })) as ChartText[];
      expect(daily.flatMap((c) => c.clipped)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'has no serious or critical accessibility violations on any main view, at 1280 and 390 pixels wide; takes screenshots',
    async () => {
      const flaky = (await h.tenantApi('GET', '/api/v1/webhooks')).body.data.find(
        (w: { name: string }) => w.name === 'Flaky receiver',
      );
      const delivery = (await h.tenantApi('GET', `/api/v1/webhooks/${webhookId}/deliveries`)).body.data[0];
      const shots: string[] = [];
      for (const width of WIDTHS) {
        const views: [string, string, (page: Page) => Promise<unknown>][] = [
          ['webhooks', '/portal/', (p) => p.locator('.sparkline').first().waitFor()],
          [
            'webhook',
            `/portal/webhooks/${webhookId}`,
            (p) =>
              Promise.all([p.locator('.plot canvas').first().waitFor(), p.locator('.log-table').waitFor()]),
          ],
          ['webhook-failing', `/portal/webhooks/${flaky.id}`, (p) => p.locator('.log-table').waitFor()],
          [
            'delivery',
            `/portal/webhooks/${webhookId}/deliveries/${delivery.id}`,
            (p) => p.locator('.attempt').first().waitFor(),
          ],
          ['new-webhook', '/portal/webhooks/new', (p) => p.getByText('All events').waitFor()],
        ];
        const signIn = await newPage(width);
        await signIn.goto(`${base}/portal/`);
        await signIn.getByLabel('API key').waitFor();
        expect(describeViolations(await seriousViolations(signIn)), `sign-in at ${width}`).toBe('');
        shots.push(await screenshot(signIn, `sign-in-${width}`));

        const page = await signedIn(width);
        for (const [name, url, ready] of views) {
          await page.goto(base + url);
          await page.locator('h1').first().waitFor();
          await ready(page);
          await page.waitForLoadState('networkidle').catch(() => undefined);
          expect(describeViolations(await seriousViolations(page)), `${name} at ${width}`).toBe('');
          const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
          expect(overflow, `${name} at ${width} is wider than the window`).toBeLessThanOrEqual(0);
          shots.push(await screenshot(page, `${name}-${width}`));
        }
      }
      if (process.env.UPDATE_SCREENSHOTS) {
        mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
        for (const file of shots) copyFileSync(file, path.join(DOCS_SCREENSHOTS, path.basename(file)));
      }
    },
    TIMEOUT * 2,
  );

  it('reported no script errors and no Content-Security-Policy violations', () => {
    expect(problems).toEqual([]);
  });
});

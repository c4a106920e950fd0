import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PORTAL_CSP, portalFiles } from '../../src/api/portal-files.js';
import { createHarness, DATABASES, type Harness } from '../helpers/harness.js';

const INDEX =
  '<!doctype html><title>portal</title><script type="module" src="/portal/assets/app-1a2b.js"></script>';

describe('portal files', () => {
  let root: string;
  let app: FastifyInstance;

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'pdw-portal-'));
    mkdirSync(path.join(root, 'assets'));
    writeFileSync(path.join(root, 'index.html'), INDEX);
    writeFileSync(path.join(root, 'assets', 'app-1a2b.js'), 'console.log(1);');
    writeFileSync(path.join(root, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    app = Fastify();
    await app.register(portalFiles(root), { prefix: '/portal' });
  });

  afterAll(async () => {
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('answers every page of the portal with index.html, never cached, with the security headers', async () => {
    for (const url of [
      '/portal',
      '/portal/',
      '/portal/webhooks/12',
      '/portal/webhooks/12/deliveries/dlv_1?x=1',
    ]) {
      const res = await app.inject(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type'], url).toMatch(/^text\/html/);
      expect(res.body, url).toBe(INDEX);
      expect(res.headers['cache-control'], url).toBe('no-cache');
      expect(res.headers['content-security-policy'], url).toBe(PORTAL_CSP);
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['referrer-policy'], url).toBe('no-referrer');
      expect(res.headers['x-frame-options'], url).toBe('DENY');
    }
    expect(PORTAL_CSP).not.toMatch(/unsafe-inline|unsafe-eval/);
  });

  it('serves hashed assets cached for good, and 404 for a file that does not exist', async () => {
    const asset = await app.inject('/portal/assets/app-1a2b.js');
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toMatch(/javascript/);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(asset.headers['content-security-policy']).toBe(PORTAL_CSP);
    const icon = await app.inject('/portal/favicon.svg');
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).toBe('no-cache');
    for (const url of ['/portal/assets/missing-9z9z.js', '/portal/robots.txt']) {
      const res = await app.inject(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.body, url).not.toBe(INDEX);
    }
    const outside = await app.inject('/portal/..%2f..%2fetc%2fpasswd');
    expect([403, 404]).toContain(outside.statusCode);
    expect(outside.body).not.toContain('root:');
  });

  it('says how to build the portal when it has not been built', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'pdw-portal-empty-'));
    const bare = Fastify();
    await bare.register(portalFiles(empty), { prefix: '/portal' });
    const res = await bare.inject('/portal/webhooks');
    expect(res.statusCode).toBe(503);
    expect(res.body).toMatch(/npm run build/);
    await bare.close();
    rmSync(empty, { recursive: true, force: true });
  });
});

describe('the service and its portal', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(DATABASES[0] as (typeof DATABASES)[number]);
  });
  afterAll(async () => {
    await h.close();
  });

  it('leads from / to the portal and keeps the API out of its headers', async () => {
    const root = await h.app.inject('/');
    expect(root.statusCode).toBe(302);
    expect(root.headers.location).toBe('/portal/');
    const api = await h.app.inject('/api/v1/webhooks');
    expect(api.statusCode).toBe(401);
    expect(api.headers['content-security-policy']).toBeUndefined();
  });
});

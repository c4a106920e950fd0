import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeContract, webhookBody } from '../helpers/harness.js';
import { withinOneHour } from '../helpers/wait.js';

describeContract('authentication and access', (h) => {
  it('accepts the key three ways: Bearer, X-API-Key and ?api_key=', async () => {
    const { key } = await h().tenant();
    expect((await h().api('GET', '/api/v1/webhooks', { key })).statusCode).toBe(200);
    expect((await h().api('GET', '/api/v1/webhooks', { headers: { 'x-api-key': key } })).statusCode).toBe(
      200,
    );
    expect((await h().api('GET', `/api/v1/webhooks?api_key=${encodeURIComponent(key)}`)).statusCode).toBe(
      200,
    );
    expect(
      (await h().api('GET', '/api/v1/webhooks', { headers: { authorization: `bearer   ${key}` } }))
        .statusCode,
    ).toBe(200);
  });

  it('answers 401 without a key, with an unknown key, and with a malformed Authorization header', async () => {
    const { key } = await h().tenant();
    const none = await h().api('GET', '/api/v1/webhooks');
    expect(none.statusCode).toBe(401);
    expect(none.json().error).toMatch(/Authentication required/);
    const unknown = await h().api('GET', '/api/v1/webhooks', { key: `${key}x` });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json().error).toBe('Invalid API key.');
    const basic = await h().api('GET', '/api/v1/webhooks', { headers: { authorization: `Basic ${key}` } });
    expect(basic.statusCode).toBe(401);
    expect(basic.json().error).toMatch(/Bearer/);
    const post = await h().api('POST', '/api/v1/webhooks', { body: webhookBody() });
    expect(post.statusCode).toBe(401);
  });

  it('checks authentication before the body: an anonymous malformed body is a 401', async () => {
    const res = await h().api('POST', '/api/v1/webhooks', { body: '{not json' });
    expect(res.statusCode).toBe(401);
  });

  it('answers 403 for a key without the webhooks scope, naming the scope', async () => {
    const { key } = await h().tenant({ scopes: ['events', 'invoices'] });
    const res = await h().api('GET', '/api/v1/webhooks', { key });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toBe("This API key does not have the 'webhooks' scope.");
  });

  it('answers 403 below the Business plan, naming the plans', async () => {
    for (const plan of ['standard', 'professional']) {
      const { key } = await h().tenant({ plan });
      const res = await h().api('GET', '/api/v1/webhooks', { key });
      expect(res.statusCode, plan).toBe(403);
      expect(res.json().error).toMatch(
        /requires the Business plan or higher; this tenant is on the \w+ plan/,
      );
    }
    for (const plan of ['business', 'enterprise']) {
      const { key } = await h().tenant({ plan });
      expect((await h().api('GET', '/api/v1/webhooks', { key })).statusCode, plan).toBe(200);
    }
  });

  it('answers 403 without the webhooks feature flag', async () => {
    const { key } = await h().tenant({ features: ['reports'] });
    const res = await h().api('GET', '/api/v1/webhooks', { key });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toBe("The 'webhooks' feature is not enabled for this tenant.");
  });

  it('follows plan and flag changes at once', async () => {
    const { slug, key } = await h().tenant({ plan: 'professional', features: [] });
    expect((await h().api('GET', '/api/v1/webhooks', { key })).statusCode).toBe(403);
    await h().operator('PATCH', `/internal/v1/tenants/${slug}`, { plan: 'business', features: ['webhooks'] });
    expect((await h().api('GET', '/api/v1/webhooks', { key })).statusCode).toBe(200);
  });

  it('takes the tenant from the Host subdomain and rejects a key used on another tenant’s host', async () => {
    const a = await h().tenant();
    const b = await h().tenant();
    const own = await h().api('GET', '/api/v1/webhooks', {
      key: a.key,
      headers: { host: `${a.slug}.plandocket.com` },
    });
    expect(own.statusCode).toBe(200);
    const withPort = await h().api('GET', '/api/v1/webhooks', {
      key: a.key,
      headers: { host: `${a.slug.toUpperCase()}.PlanDocket.com:443` },
    });
    expect(withPort.statusCode).toBe(200);
    const other = await h().api('GET', '/api/v1/webhooks', {
      key: a.key,
      headers: { host: `${b.slug}.plandocket.com` },
    });
    expect(other.statusCode).toBe(401);
    expect(other.json().error).toBe('This API key does not belong to this tenant.');
    for (const host of ['localhost', '127.0.0.1:8080', 'plandocket.com', 'webhooks.internal.example']) {
      const res = await h().api('GET', '/api/v1/webhooks', { key: a.key, headers: { host } });
      expect(res.statusCode, host).toBe(200);
    }
  });

  it('stores keys hashed, records last_used_at, and revokes at once', async () => {
    const { slug, key } = await h().tenant();
    const rows = await h().store.db.selectFrom('api_keys').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(key);
    const hash = createHash('sha256').update(key).digest('hex');
    const row = rows.find((r) => r.key_hash === hash);
    expect(row).toBeDefined();
    expect(row?.last_used_at).toBeNull();
    await h().api('GET', '/api/v1/webhooks', { key });
    const shown = (await h().operator('GET', `/internal/v1/tenants/${slug}`)).json().data;
    expect(shown.api_keys).toHaveLength(1);
    expect(shown.api_keys[0].last_used_at).not.toBeNull();
    expect(shown.api_keys[0].key_prefix).toBe(key.slice(0, 12));
    expect(JSON.stringify(shown)).not.toContain(key);
    const revoked = await h().operator('DELETE', `/internal/v1/tenants/${slug}/api-keys/${row?.id}`);
    expect(revoked.statusCode).toBe(204);
    // A revoked key is told so, unlike a mistyped one.
    const refused = await h().api('GET', '/api/v1/webhooks', { key });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error).toMatch(
      /^This API key was revoked on \d{4}-\d\d-\d\dT[\d:.]+Z: ask for a new one\.$/,
    );
    const again = await h().operator('DELETE', `/internal/v1/tenants/${slug}/api-keys/${row?.id}`);
    expect(again.statusCode).toBe(404);
    expect(again.json().error).toBe(`API key ${row?.id} of tenant '${slug}' not found.`);
  });

  it('does not let one tenant revoke another tenant’s key', async () => {
    const a = await h().tenant();
    const b = await h().tenant();
    const aKey = (await h().operator('GET', `/internal/v1/tenants/${a.slug}`)).json().data.api_keys[0];
    expect(
      (await h().operator('DELETE', `/internal/v1/tenants/${b.slug}/api-keys/${aKey.id}`)).statusCode,
    ).toBe(404);
    expect((await h().api('GET', '/api/v1/webhooks', { key: a.key })).statusCode).toBe(200);
  });

  it('sends X-RateLimit headers, counted per tenant', async () => {
    const { key } = await h().tenant();
    await withinOneHour();
    const first = await h().api('GET', '/api/v1/webhooks', { key });
    const second = await h().api('GET', '/api/v1/webhooks', { key });
    expect(first.headers['x-ratelimit-limit']).toBe('10000');
    expect(
      Number(first.headers['x-ratelimit-remaining']) - Number(second.headers['x-ratelimit-remaining']),
    ).toBe(1);
    const reset = Number(first.headers['x-ratelimit-reset']);
    expect(reset % 3600).toBe(0);
    expect(reset * 1000).toBeGreaterThan(Date.now());
    expect(reset * 1000 - Date.now()).toBeLessThanOrEqual(3600_000);
  });

  it('sends no rate limit headers on the unlimited Enterprise plan', async () => {
    const { key } = await h().tenant({ plan: 'enterprise' });
    const res = await h().api('GET', '/api/v1/webhooks', { key });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-ratelimit-limit']).toBeUndefined();
  });
});

describeContract(
  'rate limits',
  (h) => {
    it('answers 429 with Retry-After past the hourly limit, per tenant, shared by app instances', async () => {
      const a = await h().tenant();
      const b = await h().tenant();
      await withinOneHour();
      for (let i = 0; i < 3; i++) {
        const res = await h().api('GET', '/api/v1/webhooks', { key: a.key });
        expect(res.statusCode).toBe(200);
        expect(res.headers['x-ratelimit-remaining']).toBe(String(2 - i));
      }
      const limited = await h().api('POST', '/api/v1/webhooks', { key: a.key, body: webhookBody() });
      expect(limited.statusCode).toBe(429);
      expect(limited.json().error).toBe('Rate limit exceeded');
      expect(limited.headers['x-ratelimit-remaining']).toBe('0');
      const retryAfter = Number(limited.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(3600);
      const written = await h()
        .store.db.selectFrom('webhooks')
        .select('id')
        .where('tenant_id', '=', a.id)
        .execute();
      expect(written).toEqual([]);
      // The count lives in the database: a second app on the same database sees it.
      const { buildApp } = await import('../../src/api/app.js');
      const second = await buildApp({ config: h().config, store: h().store });
      const fromSecond = await second.inject({
        method: 'GET',
        url: '/api/v1/webhooks',
        headers: { authorization: `Bearer ${a.key}` },
      });
      expect(fromSecond.statusCode).toBe(429);
      await second.close();
      // Another tenant has its own budget.
      expect((await h().api('GET', '/api/v1/webhooks', { key: b.key })).statusCode).toBe(200);
    });
  },
  { RATE_LIMIT_BUSINESS: '3' },
);

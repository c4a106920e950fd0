import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeContract, webhookBody } from '../helpers/harness.js';

const MINUTE = 60_000;
const tokenOf = (url: string) => new URL(url).hash.replace(/^#token=/, '');

describeContract('portal links and sessions', (h) => {
  async function mint(slug: string) {
    const res = await h().operator('POST', `/internal/v1/tenants/${slug}/portal-links`);
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data as { url: string; expires_at: string };
  }

  const exchange = (token: unknown) => h().api('POST', '/api/v1/portal/sessions', { body: { token } });

  it('mints a one-time link whose token is in the fragment, stored only as a hash', async () => {
    const { slug } = await h().tenant();
    const before = Date.now();
    const link = await mint(slug);
    const url = new URL(link.url);
    expect(url.pathname).toBe('/portal/');
    expect(url.search).toBe('');
    expect(url.hash).toMatch(/^#token=pdp_[A-Za-z0-9_-]{43}$/);
    const expires = Date.parse(link.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 15 * MINUTE);
    expect(expires).toBeLessThanOrEqual(Date.now() + 15 * MINUTE);

    const token = tokenOf(link.url);
    const rows = await h().store.db.selectFrom('portal_links').selectAll().execute();
    const hash = createHash('sha256').update(token).digest('hex');
    expect(rows.some((row) => row.token_hash === hash)).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(token);
  });

  it('needs the admin token and an existing tenant', async () => {
    const { slug, key } = await h().tenant();
    const asTenant = await h().api('POST', `/internal/v1/tenants/${slug}/portal-links`, { key });
    expect(asTenant.statusCode).toBe(401);
    const missing = await h().operator('POST', '/internal/v1/tenants/no-such-tenant/portal-links');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error).toBe("Tenant 'no-such-tenant' not found.");
  });

  it('exchanges a link once for a session key scoped to webhooks that expires', async () => {
    const { slug } = await h().tenant();
    const token = tokenOf((await mint(slug)).url);
    const before = Date.now();
    const first = await exchange(token);
    expect(first.statusCode, first.body).toBe(201);
    const session = first.json().data;
    expect(session.key).toMatch(/^pdk_/);
    const expires = Date.parse(session.expires_at);
    expect(expires).toBeGreaterThanOrEqual(before + 8 * 60 * MINUTE);
    expect(expires).toBeLessThanOrEqual(Date.now() + 8 * 60 * MINUTE);

    const list = await h().api('GET', '/api/v1/webhooks', { key: session.key });
    expect(list.statusCode).toBe(200);
    const who = await h().api('GET', '/api/v1/portal/session', { key: session.key });
    expect(who.statusCode).toBe(200);
    expect(who.json().data).toEqual({
      tenant: { slug, name: expect.any(String), plan: 'business' },
      key: {
        name: 'Portal session',
        key_prefix: session.key.slice(0, 12),
        expires_at: session.expires_at,
        is_portal_session: true,
      },
    });

    const second = await exchange(token);
    expect(second.statusCode).toBe(401);
    expect(second.json().error).toMatch(/expired or was already used/);
  });

  it('refuses an unknown token, an expired link and a malformed body', async () => {
    expect((await exchange('pdp_not-a-real-token')).statusCode).toBe(401);
    const { slug } = await h().tenant();
    const token = tokenOf((await mint(slug)).url);
    await h()
      .store.db.updateTable('portal_links')
      .set({ expires_at: Date.now() - 1 })
      .where('token_hash', '=', createHash('sha256').update(token).digest('hex'))
      .execute();
    expect((await exchange(token)).statusCode).toBe(401);

    const empty = await exchange('');
    expect(empty.statusCode).toBe(422);
    expect(empty.json().errors.token).toBeDefined();
    const missing = await h().api('POST', '/api/v1/portal/sessions', { body: {} });
    expect(missing.statusCode).toBe(422);
  });

  it('lets exactly one of many concurrent exchanges of a link succeed', async () => {
    const { slug } = await h().tenant();
    const token = tokenOf((await mint(slug)).url);
    const answers = await Promise.all(Array.from({ length: 12 }, () => exchange(token)));
    const statuses = answers.map((a) => a.statusCode).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 401)).toHaveLength(11);
    const keys = await h()
      .store.db.selectFrom('api_keys')
      .selectAll()
      .where('name', '=', 'Portal session')
      .execute();
    const linked = await h()
      .store.db.selectFrom('portal_links')
      .select('session_key_id')
      .where('token_hash', '=', createHash('sha256').update(token).digest('hex'))
      .executeTakeFirstOrThrow();
    expect(keys.filter((k) => k.id === linked.session_key_id)).toHaveLength(1);
  });

  it('refuses a session key once it has expired, and hides it from the key list', async () => {
    const { slug } = await h().tenant();
    const session = (await exchange(tokenOf((await mint(slug)).url))).json().data;
    const shown = (await h().operator('GET', `/internal/v1/tenants/${slug}`)).json().data.api_keys;
    expect(shown.map((k: { name: string }) => k.name)).toEqual(['test', 'Portal session']);
    expect(shown[1].expires_at).toBe(session.expires_at);
    expect(shown[0].expires_at).toBeNull();

    await h()
      .store.db.updateTable('api_keys')
      .set({ expires_at: Date.now() - 1 })
      .where('key_prefix', '=', session.key.slice(0, 12))
      .execute();
    const refused = await h().api('GET', '/api/v1/webhooks', { key: session.key });
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error).toBe('This session has expired: sign in again.');
    const after = (await h().operator('GET', `/internal/v1/tenants/${slug}`)).json().data.api_keys;
    expect(after.map((k: { name: string }) => k.name)).toEqual(['test']);
  });

  it("gives a key of the link's tenant only", async () => {
    const mine = await h().tenant();
    const other = await h().tenant();
    const theirs = await h().api('POST', '/api/v1/webhooks', { key: other.key, body: webhookBody() });
    expect(theirs.statusCode).toBe(201);
    const session = (await exchange(tokenOf((await mint(mine.slug)).url))).json().data;
    const res = await h().api('GET', `/api/v1/webhooks/${theirs.json().data.id}`, { key: session.key });
    expect(res.statusCode).toBe(404);
    const list = await h().api('GET', '/api/v1/webhooks', { key: session.key });
    expect(list.json().data).toEqual([]);
  });

  it('signs out: a portal session key ends, an ordinary API key is left alone', async () => {
    const { slug, key } = await h().tenant();
    const session = (await exchange(tokenOf((await mint(slug)).url))).json().data;
    expect((await h().api('DELETE', '/api/v1/portal/session', { key: session.key })).statusCode).toBe(204);
    expect((await h().api('GET', '/api/v1/webhooks', { key: session.key })).statusCode).toBe(401);

    const who = await h().api('GET', '/api/v1/portal/session', { key });
    expect(who.json().data.key).toMatchObject({ name: 'test', expires_at: null, is_portal_session: false });
    expect((await h().api('DELETE', '/api/v1/portal/session', { key })).statusCode).toBe(204);
    expect((await h().api('GET', '/api/v1/webhooks', { key })).statusCode).toBe(200);
  });

  it('makes links with PUBLIC_URL when it is set, else with the request host', async () => {
    const { slug } = await h().tenant();
    const res = await h().app.inject({
      method: 'POST',
      url: `/internal/v1/tenants/${slug}/portal-links`,
      headers: { authorization: 'Bearer test-admin-token-0123456789', host: 'hooks.example.net:8443' },
    });
    expect(res.json().data.url).toMatch(/^http:\/\/hooks\.example\.net:8443\/portal\/#token=/);
  });
});

describeContract(
  'portal links with PUBLIC_URL',
  (h) => {
    it('names the public URL in the link', async () => {
      const { slug } = await h().tenant();
      const res = await h().operator('POST', `/internal/v1/tenants/${slug}/portal-links`);
      expect(res.json().data.url).toMatch(/^https:\/\/webhooks\.example\.com\/portal\/#token=pdp_/);
    });
  },
  { PUBLIC_URL: 'https://webhooks.example.com/' },
);

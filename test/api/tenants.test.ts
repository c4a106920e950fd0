import { expect, it } from 'vitest';
import { ADMIN_TOKEN, describeContract } from '../helpers/harness.js';

describeContract('operator API: tenants and keys', (h) => {
  it('requires the admin token', async () => {
    for (const authorization of [
      undefined,
      'Bearer wrong-token-0123456789',
      ADMIN_TOKEN,
      `Basic ${ADMIN_TOKEN}`,
    ]) {
      const res = await h().app.inject({
        method: 'GET',
        url: '/internal/v1/tenants/acme',
        headers: authorization ? { authorization } : {},
      });
      expect(res.statusCode, String(authorization)).toBe(401);
    }
  });

  it('does not take a tenant API key as the admin token', async () => {
    const { slug, key } = await h().tenant();
    const res = await h().app.inject({
      method: 'GET',
      url: `/internal/v1/tenants/${slug}`,
      headers: { authorization: `Bearer ${key}` },
    });
    expect(res.statusCode).toBe(401);
  });

  it('creates, shows and updates a tenant', async () => {
    const created = await h().operator('POST', '/internal/v1/tenants', {
      slug: 'acme-fairs',
      name: 'Acme Fairs',
      plan: 'business',
      features: ['webhooks', 'reports', 'webhooks'],
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers.location).toBe('/internal/v1/tenants/acme-fairs');
    const tenant = created.json().data;
    expect(Object.keys(tenant)).toEqual([
      'id',
      'slug',
      'name',
      'plan',
      'features',
      'max_webhooks',
      'notification_email',
      'created_at',
      'updated_at',
    ]);
    expect(tenant).toMatchObject({
      slug: 'acme-fairs',
      name: 'Acme Fairs',
      plan: 'business',
      features: ['webhooks', 'reports'],
      max_webhooks: 50,
      notification_email: null,
    });
    const shown = (await h().operator('GET', '/internal/v1/tenants/acme-fairs')).json().data;
    expect(shown).toEqual({ ...tenant, api_keys: [] });
    const updated = await h().operator('PATCH', '/internal/v1/tenants/acme-fairs', {
      plan: 'enterprise',
      name: 'Acme',
    });
    expect(updated.statusCode).toBe(200);
    expect(updated.json().data).toMatchObject({
      plan: 'enterprise',
      name: 'Acme',
      features: ['webhooks', 'reports'],
    });
    const cleared = await h().operator('PATCH', '/internal/v1/tenants/acme-fairs', { features: [] });
    expect(cleared.json().data.features).toEqual([]);
  });

  it('refuses a taken slug and invalid tenant fields with 422 per field', async () => {
    await h().operator('POST', '/internal/v1/tenants', { slug: 'taken', name: 'T', plan: 'business' });
    const dup = await h().operator('POST', '/internal/v1/tenants', {
      slug: 'taken',
      name: 'T2',
      plan: 'standard',
    });
    expect(dup.statusCode).toBe(422);
    expect(dup.json().errors).toEqual({ slug: ['The slug has already been taken.'] });
    const bad = await h().operator('POST', '/internal/v1/tenants', {
      slug: 'Not A Slug',
      name: '',
      plan: 'gold',
      features: ['webhooks', 'webhook'],
    });
    expect(bad.statusCode).toBe(422);
    expect(Object.keys(bad.json().errors).sort()).toEqual(['features.1', 'name', 'plan', 'slug']);
    expect(bad.json().errors['features.1'][0]).toMatch(
      /^The features\.1 must be one of: events, .*\bwebhooks\b/,
    );
    // A misspelt flag is refused on a change too, and the tenant keeps its flags.
    const misspelt = await h().operator('PATCH', '/internal/v1/tenants/taken', { features: ['webhook'] });
    expect(misspelt.statusCode).toBe(422);
    expect(Object.keys(misspelt.json().errors)).toEqual(['features.0']);
    expect((await h().operator('GET', '/internal/v1/tenants/taken')).json().data.features).toEqual([]);
    expect(bad.json().errors.plan).toEqual([
      'The plan must be one of: standard, professional, business, enterprise.',
    ]);
    const missing = await h().operator('POST', '/internal/v1/tenants', {});
    expect(Object.keys(missing.json().errors).sort()).toEqual(['name', 'plan', 'slug']);
    const patch = await h().operator('PATCH', '/internal/v1/tenants/taken', { slug: 'renamed' });
    expect(patch.statusCode).toBe(422);
  });

  it('takes a notification_email on create and update, shows it, and clears it with null', async () => {
    const created = await h().operator('POST', '/internal/v1/tenants', {
      slug: 'mailed',
      name: 'Mailed',
      plan: 'business',
      notification_email: 'ops@mailed.example',
    });
    expect(created.statusCode).toBe(201);
    expect(created.json().data.notification_email).toBe('ops@mailed.example');
    const shown = async () => (await h().operator('GET', '/internal/v1/tenants/mailed')).json().data;
    expect((await shown()).notification_email).toBe('ops@mailed.example');

    const changed = await h().operator('PATCH', '/internal/v1/tenants/mailed', {
      notification_email: 'webhooks+alerts@mailed.example',
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.json().data.notification_email).toBe('webhooks+alerts@mailed.example');
    // A change of something else leaves it as it is.
    await h().operator('PATCH', '/internal/v1/tenants/mailed', { name: 'Mailed Fairs' });
    expect((await shown()).notification_email).toBe('webhooks+alerts@mailed.example');

    const cleared = await h().operator('PATCH', '/internal/v1/tenants/mailed', { notification_email: null });
    expect(cleared.json().data.notification_email).toBeNull();
    expect((await shown()).notification_email).toBeNull();
  });

  it('refuses a notification_email that is not an address with a 422 on the field', async () => {
    await h().operator('POST', '/internal/v1/tenants', { slug: 'unmailed', name: 'U', plan: 'business' });
    const message = 'The notification_email must be an e-mail address such as ops@example.com.';
    for (const bad of [
      '',
      'ops',
      'ops@',
      '@example.com',
      'ops at example.com',
      'Ops <ops@example.com>',
      'a@example.com, b@example.com',
      'ops@example.com\r\nBcc: all@example.com',
      `${'a'.repeat(250)}@example.com`,
    ]) {
      const patched = await h().operator('PATCH', '/internal/v1/tenants/unmailed', {
        notification_email: bad,
      });
      expect(patched.statusCode, bad).toBe(422);
      expect(patched.json().errors, bad).toEqual({ notification_email: [message] });
    }
    const created = await h().operator('POST', '/internal/v1/tenants', {
      slug: 'never-made',
      name: 'N',
      plan: 'business',
      notification_email: 'nobody',
    });
    expect(created.statusCode).toBe(422);
    expect(created.json().errors).toEqual({ notification_email: [message] });
    expect((await h().operator('GET', '/internal/v1/tenants/never-made')).statusCode).toBe(404);
    const wrongType = await h().operator('PATCH', '/internal/v1/tenants/unmailed', {
      notification_email: 42,
    });
    expect(wrongType.statusCode).toBe(422);
    expect(Object.keys(wrongType.json().errors)).toEqual(['notification_email']);
    expect(
      (await h().operator('GET', '/internal/v1/tenants/unmailed')).json().data.notification_email,
    ).toBeNull();
  });

  it('answers 404 for an unknown tenant', async () => {
    expect((await h().operator('GET', '/internal/v1/tenants/nobody')).statusCode).toBe(404);
    expect((await h().operator('PATCH', '/internal/v1/tenants/nobody', { name: 'x' })).statusCode).toBe(404);
    expect(
      (
        await h().operator('POST', '/internal/v1/tenants/nobody/api-keys', {
          name: 'k',
          scopes: ['webhooks'],
        })
      ).statusCode,
    ).toBe(404);
    expect((await h().operator('DELETE', '/internal/v1/tenants/nobody/api-keys/1')).statusCode).toBe(404);
  });

  it('creates a key shown once, with only documented scopes', async () => {
    const { slug } = await h().tenant();
    const res = await h().operator('POST', `/internal/v1/tenants/${slug}/api-keys`, {
      name: 'ERP sync',
      scopes: ['webhooks', 'invoices', 'calendar-feed'],
    });
    expect(res.statusCode).toBe(201);
    const data = res.json().data;
    expect(Object.keys(data)).toEqual(['id', 'name', 'scopes', 'key', 'created_at']);
    expect(data.key).toMatch(/^pdk_[A-Za-z0-9_-]{43}$/);
    expect(data.scopes).toEqual(['webhooks', 'invoices', 'calendar-feed']);
    const shown = (await h().operator('GET', `/internal/v1/tenants/${slug}`)).json().data;
    expect(JSON.stringify(shown)).not.toContain(data.key);
    const bad = await h().operator('POST', `/internal/v1/tenants/${slug}/api-keys`, {
      name: 'x',
      scopes: ['root'],
    });
    expect(bad.statusCode).toBe(422);
    expect(bad.json().errors['scopes.0'][0]).toMatch(/must be one of: events, contacts/);
    const none = await h().operator('POST', `/internal/v1/tenants/${slug}/api-keys`, {
      name: 'x',
      scopes: [],
    });
    expect(none.json().errors.scopes).toEqual(['The scopes must have at least 1 item.']);
  });

  it('serves health, readiness, the OpenAPI 3.1 document and the docs page', async () => {
    expect((await h().app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await h().app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    const doc = (await h().app.inject('/api/v1/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/v1/portal/session',
      '/api/v1/portal/sessions',
      '/api/v1/webhooks',
      '/api/v1/webhooks/events',
      '/api/v1/webhooks/{id}',
      '/api/v1/webhooks/{id}/deliveries',
      '/api/v1/webhooks/{id}/deliveries/{delivery_id}',
      '/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry',
      '/api/v1/webhooks/{id}/recover',
      '/api/v1/webhooks/{id}/rotate-secret',
      '/api/v1/webhooks/{id}/stats',
      '/api/v1/webhooks/{id}/test',
    ]);
    expect(Object.keys(doc.paths['/api/v1/webhooks/{id}']).sort()).toEqual(['delete', 'get', 'patch']);
    const created = doc.paths['/api/v1/webhooks'].post;
    const schema = created.requestBody.content['application/json'].schema;
    expect(schema.required).toEqual(['url', 'events']);
    const response = created.responses['201'].content['application/json'].schema;
    expect(Object.keys(response.properties.data.properties)).toContain('secret');
    const docs = await h().app.inject('/docs');
    expect([200, 302]).toContain(docs.statusCode);
    const page = await h().app.inject('/docs/');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('swagger');
  });
});

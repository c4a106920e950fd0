import { expect, it } from 'vitest';
import { decryptSecret } from '../../src/domain/secrets.js';
import { describeContract, type Harness, webhookBody } from '../helpers/harness.js';

const storedRow = (h: Harness, id: number) =>
  h.store.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

describeContract('rotating a webhook secret', (h) => {
  it('answers with the webhook (the shape of show) and a new secret; show then has the new one', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const before = Date.now();
    const res = await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, {
      key,
      body: { grace_period_seconds: 3600 },
    });
    expect(res.statusCode).toBe(200);
    const { data, meta } = res.json();
    expect(meta.request_id).toMatch(/^req_/);
    const shown = (await h().api('GET', `/api/v1/webhooks/${created.id}`, { key })).json().data;
    expect(Object.keys(data)).toEqual(Object.keys(shown));
    expect(data.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(data.secret).not.toBe(created.secret);
    expect(shown.secret).toBe(data.secret);
    expect({ ...data, updated_at: null }).toEqual({ ...created, secret: data.secret, updated_at: null });

    // Both secrets are stored encrypted; the previous one with the end of its grace period.
    const row = await storedRow(h(), created.id);
    const text = JSON.stringify(row);
    for (const secret of [created.secret, data.secret]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice(6));
    }
    expect(decryptSecret(h().config.secretsKey, row.secret_ciphertext)).toBe(data.secret);
    expect(decryptSecret(h().config.secretsKey, row.previous_secret_ciphertext as string)).toBe(
      created.secret,
    );
    expect(Number(row.previous_secret_expires_at)).toBeGreaterThanOrEqual(before + 3600_000);
    expect(Number(row.previous_secret_expires_at)).toBeLessThanOrEqual(Date.now() + 3600_000);
  });

  it('keeps the old secret for 24 hours when no body is sent, and with an empty object', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    for (const options of [
      { key },
      { key, body: {} },
      { key, body: '', headers: { 'content-type': 'application/json' } },
    ]) {
      const before = Date.now();
      const res = await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, options);
      expect(res.statusCode, res.body).toBe(200);
      const row = await storedRow(h(), created.id);
      expect(Number(row.previous_secret_expires_at)).toBeGreaterThanOrEqual(before + 86_400_000);
      expect(Number(row.previous_secret_expires_at)).toBeLessThanOrEqual(Date.now() + 86_400_000);
    }
  });

  it('drops the old secret at once with a grace period of 0', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, {
      key,
      body: { grace_period_seconds: 60 },
    });
    const res = await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, {
      key,
      body: { grace_period_seconds: 0 },
    });
    expect(res.statusCode).toBe(200);
    const row = await storedRow(h(), created.id);
    expect(row.previous_secret_ciphertext).toBeNull();
    expect(row.previous_secret_expires_at).toBeNull();
  });

  it('keeps one previous secret: rotating during a grace period replaces it', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const second = (await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, { key })).json()
      .data;
    const third = (
      await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, {
        key,
        body: { grace_period_seconds: 600 },
      })
    ).json().data;
    expect(new Set([created.secret, second.secret, third.secret]).size).toBe(3);
    const row = await storedRow(h(), created.id);
    expect(decryptSecret(h().config.secretsKey, row.secret_ciphertext)).toBe(third.secret);
    expect(decryptSecret(h().config.secretsKey, row.previous_secret_ciphertext as string)).toBe(
      second.secret,
    );
    expect(Number(row.previous_secret_expires_at)).toBeLessThanOrEqual(Date.now() + 600_000);
  });

  it.each([
    [{ grace_period_seconds: -1 }, /must be at least 0/],
    [{ grace_period_seconds: 604_801 }, /must not be greater than 604800/],
    [{ grace_period_seconds: 1.5 }, /must be an integer/],
    [{ grace_period_seconds: '60' }, /must be an integer/],
    [{ grace_period_seconds: null }, /must be an integer/],
  ])('refuses %j with 422 naming the field, and keeps the secret', async (body, message) => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const res = await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, { key, body });
    expect(res.statusCode).toBe(422);
    expect(res.json().error).toBe('Validation failed');
    expect(res.json().errors.grace_period_seconds[0]).toMatch(message);
    expect((await h().api('GET', `/api/v1/webhooks/${created.id}`, { key })).json().data.secret).toBe(
      created.secret,
    );
  });

  it('refuses unknown fields with 422', async () => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const res = await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, {
      key,
      body: { secret: 'whsec_mine' },
    });
    expect(res.statusCode).toBe(422);
    expect(res.json().errors.secret).toEqual(['The secret field is not allowed.']);
  });

  it("answers 404 for another tenant's webhook, a deleted one and a missing one, and changes nothing", async () => {
    const owner = await h().tenant();
    const other = await h().tenant();
    const created = (
      await h().api('POST', '/api/v1/webhooks', { key: owner.key, body: webhookBody() })
    ).json().data;
    const ciphertext = (await storedRow(h(), created.id)).secret_ciphertext;
    const res = await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, { key: other.key });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe(`Webhook ${created.id} not found.`);
    expect((await storedRow(h(), created.id)).secret_ciphertext).toBe(ciphertext);
    expect(
      (await h().api('POST', '/api/v1/webhooks/999999/rotate-secret', { key: owner.key })).statusCode,
    ).toBe(404);
    await h().api('DELETE', `/api/v1/webhooks/${created.id}`, { key: owner.key });
    expect(
      (await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`, { key: owner.key })).statusCode,
    ).toBe(404);
  });

  it('needs an API key', async () => {
    const owner = await h().tenant();
    const created = (
      await h().api('POST', '/api/v1/webhooks', { key: owner.key, body: webhookBody() })
    ).json().data;
    expect((await h().api('POST', `/api/v1/webhooks/${created.id}/rotate-secret`)).statusCode).toBe(401);
  });

  it('is in the OpenAPI document with its body', async () => {
    const doc = (await h().api('GET', '/api/v1/openapi.json')).json();
    const rotate = doc.paths['/api/v1/webhooks/{id}/rotate-secret'].post;
    const body = rotate.requestBody.content['application/json'].schema;
    expect(body.properties.grace_period_seconds).toMatchObject({
      minimum: 0,
      maximum: 604800,
      default: 86400,
    });
    expect(
      Object.keys(rotate.responses['200'].content['application/json'].schema.properties.data.properties),
    ).toContain('secret');
  });
});

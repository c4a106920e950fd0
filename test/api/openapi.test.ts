import { createConfig, lintFromString } from '@redocly/openapi-core';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentBackend, problemsOf } from '../helpers/contract.js';
import { ADMIN_TOKEN, createHarness, DATABASES, type Harness } from '../helpers/harness.js';

/**
 * The two OpenAPI documents pass Redocly's recommended rules without an error or a warning; the
 * API tests check every answer they get against them (test/helpers/contract.ts), and this file
 * checks that that check can fail.
 */
describe('the OpenAPI documents', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(DATABASES[0] as (typeof DATABASES)[number], {
      PUBLIC_URL: 'https://webhooks.plandocket.com',
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  const fetchDocument = async (url: string) => {
    const res = await h.app.inject({ url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.statusCode, url).toBe(200);
    return res.json();
  };

  it.each([['/api/v1/openapi.json'], ['/internal/v1/openapi.json']])(
    '%s passes the recommended rules of Redocly with no error or warning',
    async (url) => {
      const doc = await fetchDocument(url);
      const config = await createConfig({ extends: ['recommended'] });
      const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: url, config });
      const readable = problems.map(
        (p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`,
      );
      expect(readable).toEqual([]);
    },
  );

  it('splits the API: tenants see theirs, the operator API is a document of its own behind the admin token', async () => {
    const tenants = await fetchDocument('/api/v1/openapi.json');
    const operators = await fetchDocument('/internal/v1/openapi.json');
    expect(Object.keys(tenants.paths).every((p) => p.startsWith('/api/v1/'))).toBe(true);
    expect(Object.keys(operators.paths).every((p) => p.startsWith('/internal/v1/'))).toBe(true);
    expect(Object.keys(operators.paths)).toEqual(
      expect.arrayContaining(['/internal/v1/tenants', '/internal/v1/events', '/internal/v1/events/batch']),
    );
    expect(tenants.servers).toEqual([
      { url: 'https://webhooks.plandocket.com', description: 'This service.' },
    ]);
    expect(Object.keys(tenants.components.securitySchemes)).toEqual([
      'bearer',
      'apiKeyHeader',
      'apiKeyQuery',
    ]);
    expect(Object.keys(operators.components.securitySchemes)).toEqual(['adminToken']);
    const anonymous = await h.app.inject('/internal/v1/openapi.json');
    expect(anonymous.statusCode).toBe(401);
    const withKey = await h.app.inject({
      url: '/internal/v1/openapi.json',
      headers: { authorization: `Bearer ${(await h.tenant()).key}` },
    });
    expect(withKey.statusCode).toBe(401);
  });

  it('says what may be left out: parameters with defaults, the body of rotate-secret, the key of a portal sign-in', async () => {
    const doc = await fetchDocument('/api/v1/openapi.json');
    const query = (path: string, method: string) =>
      Object.fromEntries(
        (doc.paths[path][method].parameters as { in: string; name: string; required: boolean }[])
          .filter((p) => p.in === 'query')
          .map((p) => [p.name, p.required]),
      );
    expect(query('/api/v1/webhooks', 'get')).toMatchObject({ page: false, per_page: false });
    expect(query('/api/v1/webhooks/{id}/deliveries', 'get')).toMatchObject({ limit: false });
    expect(query('/api/v1/webhooks/{id}/stats', 'get')).toEqual({ window: false });
    expect(doc.paths['/api/v1/webhooks/{id}/rotate-secret'].post.requestBody.required).toBe(false);
    expect(doc.paths['/api/v1/webhooks'].post.requestBody.required).toBe(true);
    expect(doc.paths['/api/v1/portal/sessions'].post.security).toEqual([]);
    // Without a body, rotate-secret takes the defaults, as documented.
    const { key } = await h.tenant();
    const created = await h.api('POST', '/api/v1/webhooks', {
      key,
      body: { url: 'https://example.com/hook', events: ['*'] },
    });
    const rotated = await h.app.inject({
      method: 'POST',
      url: `/api/v1/webhooks/${created.json().data.id}/rotate-secret?api_key=${key}`,
    });
    expect(rotated.statusCode).toBe(200);
  });

  it('documents every status of every operation with the error schema and the request id', async () => {
    const doc = await fetchDocument('/api/v1/openapi.json');
    const create = doc.paths['/api/v1/webhooks'].post.responses;
    expect(Object.keys(create).sort()).toEqual(
      ['201', '400', '401', '403', '405', '413', '415', '422', '429', '500', '503'].sort(),
    );
    expect(create['201'].headers.Location).toBeDefined();
    expect(create['429'].headers['Retry-After'].required).toBe(true);
    expect(create['415'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    for (const [path, operations] of Object.entries(
      doc.paths as Record<
        string,
        Record<string, { responses: Record<string, { headers: Record<string, unknown> }> }>
      >,
    )) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          expect(response.headers['X-Request-Id'], `${method} ${path} ${status}`).toBeDefined();
        }
      }
    }
  });

  it('is checked for real: an answer that breaks the document is caught', async () => {
    const api = await documentBackend(await fetchDocument('/api/v1/openapi.json'));
    const operation = api.getOperation('getWebhook');
    if (!operation) throw new Error('getWebhook is not in the document');
    const answer = (
      statusCode: number,
      body: unknown,
      headers: Record<string, string> = { 'x-request-id': 'req_1' },
    ) =>
      ({
        statusCode,
        headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
        body: JSON.stringify(body),
        json: () => body,
      }) as unknown as LightMyRequestResponse;
    const error = { error: 'Webhook 1 not found.', meta: { request_id: 'req_1' } };
    expect(problemsOf(api, operation, answer(404, error))).toEqual([]);
    expect(problemsOf(api, operation, answer(418, error))).toEqual([
      expect.stringMatching(/^status 418 is not documented/),
    ]);
    expect(problemsOf(api, operation, answer(404, error, {}))).toEqual([
      'the required header X-Request-Id is missing',
    ]);
    expect(problemsOf(api, operation, answer(404, { message: 'no' }))).toEqual([
      expect.stringMatching(/^body: /),
    ]);
    expect(
      problemsOf(api, operation, answer(200, { data: { id: 'one' }, meta: { request_id: 'r' } })),
    ).toEqual([expect.stringMatching(/^body: /)]);
  });
});

import { expect, it } from 'vitest';
import { describeContract, webhookBody } from '../helpers/harness.js';

/** Each rule of SPEC section 4, broken once: 422, `Validation failed`, a message on the field. */
const CASES: [string, Record<string, unknown>, string, RegExp][] = [
  ['url missing', { url: undefined }, 'url', /The url field is required/],
  ['url not a string', { url: 42 }, 'url', /must be a string/],
  ['url not a URL', { url: 'not-a-url' }, 'url', /valid absolute URL/],
  ['url with a line break', { url: 'https://exam\nple.com/' }, 'url', /spaces or control characters/],
  ['url with a space', { url: 'https://example.com/a b' }, 'url', /spaces or control characters/],
  ['url relative', { url: '/hooks' }, 'url', /valid absolute URL/],
  ['url over 2048', { url: `https://example.com/${'a'.repeat(2040)}` }, 'url', /greater than 2048/],
  ['url plain http', { url: 'http://example.com/hook' }, 'url', /The url must use HTTPS\./],
  ['url ftp', { url: 'ftp://example.com/hook' }, 'url', /HTTPS/],
  ['url with credentials', { url: 'https://user:pw@example.com/' }, 'url', /username or password/],
  ['url localhost', { url: 'https://localhost/hook' }, 'url', /private, loopback/],
  ['url sub.localhost', { url: 'https://api.localhost/hook' }, 'url', /private, loopback/],
  ['url localhost with a trailing dot', { url: 'https://api.localhost./hook' }, 'url', /private, loopback/],
  ['url loopback', { url: 'https://127.0.0.1/hook' }, 'url', /loopback/],
  ['url loopback decimal', { url: 'https://2130706433/hook' }, 'url', /loopback/],
  ['url loopback hex', { url: 'https://0x7f.1/hook' }, 'url', /loopback/],
  ['url private 10/8', { url: 'https://10.1.2.3/hook' }, 'url', /private/],
  ['url private 192.168', { url: 'https://192.168.1.1/hook' }, 'url', /private/],
  ['url link-local metadata', { url: 'https://169.254.169.254/latest' }, 'url', /linkLocal/],
  ['url CGNAT', { url: 'https://100.64.0.1/' }, 'url', /carrierGradeNat/],
  ['url IPv6 loopback', { url: 'https://[::1]/hook' }, 'url', /loopback/],
  ['url IPv4-mapped IPv6', { url: 'https://[::ffff:127.0.0.1]/hook' }, 'url', /loopback/],
  ['url IPv6 unique local', { url: 'https://[fd00::1]/hook' }, 'url', /uniqueLocal/],
  ['url unspecified', { url: 'https://0.0.0.0/hook' }, 'url', /unspecified/],
  ['events missing', { events: undefined }, 'events', /The events field is required/],
  ['events empty', { events: [] }, 'events', /at least 1 item/],
  ['events not an array', { events: 'invoice.paid' }, 'events', /must be an array/],
  ['events entry not a string', { events: ['invoice.paid', 7] }, 'events.1', /must be a string/],
  [
    'events unknown',
    { events: ['invoice.paid', 'invoice.eaten', 'nope'] },
    'events',
    /unknown event types: invoice\.eaten, nope\./,
  ],
  [
    'events not subscribable',
    { events: ['webhook.test'] },
    'events',
    /cannot be subscribed to: webhook\.test/,
  ],
  ['name empty', { name: '' }, 'name', /must not be empty/],
  ['name too long', { name: 'n'.repeat(256) }, 'name', /greater than 255 characters/],
  ['name with a NUL character', { name: 'a\u0000b' }, 'name', /must not contain NUL characters/],
  ['name not a string', { name: ['a'] }, 'name', /must be a string/],
  ['is_active not boolean', { is_active: 'yes' }, 'is_active', /must be true or false/],
  ['headers not an object', { headers: ['a'] }, 'headers', /must be an object/],
  ['headers value not a string', { headers: { 'X-A': 1 } }, 'headers.X-A', /must be a string/],
  [
    'headers over 20',
    { headers: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`X-H${i}`, 'v'])) },
    'headers',
    /more than 20 entries/,
  ],
  ['headers invalid name', { headers: { 'Bad Name': 'v' } }, 'headers', /not a valid HTTP header name/],
  ['headers CRLF in value', { headers: { 'X-A': 'v\r\nX-Injected: 1' } }, 'headers', /line breaks/],
  ['headers value beyond ASCII', { headers: { 'X-Team': '日本' } }, 'headers', /printable ASCII/],
  [
    'headers over 8 KiB',
    { headers: { 'X-A': 'a'.repeat(5000), 'X-B': 'b'.repeat(5000) } },
    'headers',
    /8192 bytes/,
  ],
  ['headers Host', { headers: { Host: 'evil.example' } }, 'headers', /set by the service/],
  ['headers content-type', { headers: { 'content-type': 'text/plain' } }, 'headers', /set by the service/],
  ['headers Content-Length', { headers: { 'Content-Length': '1' } }, 'headers', /set by the service/],
  ['headers User-Agent', { headers: { 'User-Agent': 'x' } }, 'headers', /set by the service/],
  [
    'headers Transfer-Encoding',
    { headers: { 'Transfer-Encoding': 'chunked' } },
    'headers',
    /set by the service/,
  ],
  ['headers Connection', { headers: { Connection: 'close' } }, 'headers', /set by the service/],
  [
    'headers X-Webhook-*',
    { headers: { 'X-Webhook-Signature': 'v1=forged' } },
    'headers',
    /set by the service/,
  ],
  ['headers webhook-*', { headers: { 'Webhook-Id': 'forged' } }, 'headers', /set by the service/],
  ['headers same name twice', { headers: { 'X-A': '1', 'x-a': '2' } }, 'headers', /more than once/],
  ['retry_count below 0', { retry_count: -1 }, 'retry_count', /at least 0/],
  ['retry_count above 10', { retry_count: 11 }, 'retry_count', /greater than 10/],
  ['retry_count fraction', { retry_count: 2.5 }, 'retry_count', /must be an integer/],
  ['retry_count string', { retry_count: '3' }, 'retry_count', /must be an integer/],
  ['timeout_seconds 0', { timeout_seconds: 0 }, 'timeout_seconds', /at least 1/],
  ['timeout_seconds 61', { timeout_seconds: 61 }, 'timeout_seconds', /greater than 60/],
  ['timeout_seconds null', { timeout_seconds: null }, 'timeout_seconds', /must be an integer/],
  ['secret given', { secret: 'whsec_mine' }, 'secret', /The secret field is not allowed/],
  ['unknown field', { colour: 'blue' }, 'colour', /not allowed/],
  ['a field named like an Object method', { toString: [] }, 'toString', /not allowed/],
];

describeContract('webhook validation', (h) => {
  it.each(CASES)('%s: 422 on the field, nothing written', async (_name, override, field, message) => {
    const { key } = await h().tenant();
    const res = await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody(override) });
    expect(res.statusCode).toBe(422);
    const body = res.json();
    expect(body.error).toBe('Validation failed');
    expect(body.errors[field]).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
    expect((await h().api('GET', '/api/v1/webhooks', { key })).json().meta.total).toBe(0);
  });

  it.each(
    CASES.filter(
      ([, override]) =>
        !('url' in override && override.url === undefined) &&
        !('events' in override && override.events === undefined),
    ),
  )('%s: the same rule applies to PATCH', async (_name, override, field, message) => {
    const { key } = await h().tenant();
    const created = (await h().api('POST', '/api/v1/webhooks', { key, body: webhookBody() })).json().data;
    const res = await h().api('PATCH', `/api/v1/webhooks/${created.id}`, { key, body: override });
    expect(res.statusCode).toBe(422);
    expect(res.json().errors[field]).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
    expect((await h().api('GET', `/api/v1/webhooks/${created.id}`, { key })).json().data).toEqual(created);
  });

  it('reports every broken field at once, schema and rules together', async () => {
    const { key } = await h().tenant();
    const res = await h().api('POST', '/api/v1/webhooks', {
      key,
      body: {
        url: 'http://10.0.0.1/',
        events: ['nope'],
        retry_count: 99,
        headers: { Host: 'x' },
        extra: true,
      },
    });
    expect(res.statusCode).toBe(422);
    expect(Object.keys(res.json().errors).sort()).toEqual([
      'events',
      'extra',
      'headers',
      'retry_count',
      'url',
    ]);
  });

  it('answers 422 for a body that is not an object, or missing', async () => {
    const { key } = await h().tenant();
    for (const body of ['[]', '"text"', '42', 'null']) {
      const res = await h().api('POST', '/api/v1/webhooks', { key, body });
      expect(res.statusCode, body).toBe(422);
      expect(res.json().errors.body, body).toEqual(['The request body must be an object.']);
    }
    const empty = await h().api('POST', '/api/v1/webhooks', {
      key,
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.statusCode).toBe(422);
  });

  it('accepts the edges of every range, public IP literals, "*" and 20 headers', async () => {
    const { key } = await h().tenant();
    const body = webhookBody({
      url: `https://93.184.216.34/${'p'.repeat(2048 - 'https://93.184.216.34/'.length)}`,
      events: ['*'],
      name: 'n'.repeat(255),
      headers: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`X-H${i}`, 'v\tw'])),
      retry_count: 10,
      timeout_seconds: 1,
    });
    const res = await h().api('POST', '/api/v1/webhooks', { key, body });
    expect(res.statusCode, res.body).toBe(201);
    const v6 = await h().api('POST', '/api/v1/webhooks', {
      key,
      body: webhookBody({ url: 'https://[2606:4700::1111]/hook', retry_count: 0, timeout_seconds: 60 }),
    });
    expect(v6.statusCode, v6.body).toBe(201);
  });
});

describeContract(
  'webhook validation with ALLOW_HTTP_TARGETS and ALLOWED_TARGET_CIDRS',
  (h) => {
    it('accepts http:// and allow-listed private ranges, still refusing other private ones', async () => {
      const { key } = await h().tenant();
      const ok = await h().api('POST', '/api/v1/webhooks', {
        key,
        body: webhookBody({ url: 'http://127.0.0.1:9999/hook' }),
      });
      expect(ok.statusCode, ok.body).toBe(201);
      const localhost = await h().api('POST', '/api/v1/webhooks', {
        key,
        body: webhookBody({ url: 'http://localhost:9999/' }),
      });
      expect(localhost.statusCode, localhost.body).toBe(201);
      const other = await h().api('POST', '/api/v1/webhooks', {
        key,
        body: webhookBody({ url: 'https://10.0.0.1/' }),
      });
      expect(other.statusCode).toBe(422);
    });
  },
  { ALLOW_HTTP_TARGETS: 'true', ALLOWED_TARGET_CIDRS: '127.0.0.0/8' },
);

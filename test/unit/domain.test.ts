import { describe, expect, it } from 'vitest';
import { slugFromHost } from '../../src/api/auth.js';
import { fieldErrorsFromSchema } from '../../src/api/errors.js';
import { AddressPolicy } from '../../src/domain/address-policy.js';
import { coveredByWildcard, EVENT_TYPES, isSubscribable } from '../../src/domain/events.js';
import {
  apiKeyPrefix,
  decryptSecret,
  encryptSecret,
  generateApiKey,
  generateWebhookSecret,
  hashApiKey,
} from '../../src/domain/secrets.js';

describe('address policy', () => {
  const policy = new AddressPolicy();
  it.each([
    '127.0.0.1',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '192.0.2.1',
    '198.18.0.1',
    '240.0.0.1',
    '::1',
    '::',
    'fe80::1',
    'fc00::1',
    'ff02::1',
    '2001:db8::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '64:ff9b::a00:1',
    '2002:a00:1::',
  ])('refuses %s', (ip) => {
    expect(policy.refusal(ip)).not.toBeNull();
  });

  it.each(['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8'])('allows %s', (ip) => {
    expect(policy.refusal(ip)).toBeNull();
  });

  it('lets an operator allow-list ranges, only those', () => {
    const local = new AddressPolicy(['127.0.0.0/8', 'fd00::/8']);
    expect(local.refusal('127.0.0.2')).toBeNull();
    expect(local.refusal('::ffff:127.0.0.1')).toBeNull();
    expect(local.refusal('fd12::1')).toBeNull();
    expect(local.refusal('10.0.0.1')).not.toBeNull();
    expect(local.hostRefusal('localhost')).toBeNull();
    expect(policy.hostRefusal('localhost')).toBe('loopback name');
  });

  it('checks IP literals in URL form and leaves host names to resolution', () => {
    expect(policy.hostRefusal('[::1]')).toBe('loopback address');
    expect(policy.hostRefusal('example.com')).toBeNull();
    expect(policy.hostRefusal('foo.LOCALHOST')).toBe('loopback name');
  });
});

describe('secrets and keys', () => {
  const key = Buffer.alloc(32, 7);

  it('encrypts with AES-256-GCM, a fresh IV each time, and detects tampering', () => {
    const secret = generateWebhookSecret();
    const a = encryptSecret(key, secret);
    const b = encryptSecret(key, secret);
    expect(a).not.toBe(b);
    expect(decryptSecret(key, a)).toBe(secret);
    const parts = a.split('.');
    const flipped = Buffer.from(parts[3] as string, 'base64url');
    flipped[0] = (flipped[0] as number) ^ 1;
    parts[3] = flipped.toString('base64url');
    expect(() => decryptSecret(key, parts.join('.'))).toThrow();
    expect(() => decryptSecret(Buffer.alloc(32, 8), a)).toThrow();
  });

  it('makes Standard Webhooks secrets and unguessable API keys', () => {
    expect(generateWebhookSecret()).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const apiKey = generateApiKey();
    expect(apiKey).toMatch(/^pdk_[A-Za-z0-9_-]{43}$/);
    expect(hashApiKey(apiKey)).toMatch(/^[0-9a-f]{64}$/);
    expect(apiKeyPrefix(apiKey)).toBe(apiKey.slice(0, 12));
    expect(generateApiKey()).not.toBe(apiKey);
  });
});

describe('event catalog', () => {
  it('has the documented types, each once, with descriptions', () => {
    const types = EVENT_TYPES.map((e) => e.type);
    expect(new Set(types).size).toBe(types.length);
    expect(types).toEqual(
      expect.arrayContaining([
        'application.approved',
        'participant.confirmed',
        'booth.unassigned',
        'webhook.test',
      ]),
    );
    for (const e of EVENT_TYPES) expect(e.description.length).toBeGreaterThan(5);
    expect(isSubscribable('*')).toBe(true);
    expect(isSubscribable('webhook.test')).toBe(false);
    // The service's own events: by name, not by `*`.
    expect(isSubscribable('webhook.failing')).toBe(true);
    expect(coveredByWildcard('webhook.failing')).toBe(false);
    expect(coveredByWildcard('invoice.paid')).toBe(true);
    expect(coveredByWildcard('webhook.test')).toBe(false);
  });
});

describe('tenant from host', () => {
  it.each([
    ['acme.plandocket.com', 'acme'],
    ['ACME.plandocket.com.', 'acme'],
    ['plandocket.com', undefined],
    ['a.b.plandocket.com', undefined],
    ['acme.plandocket.com.evil.example', undefined],
    ['evilplandocket.com', undefined],
    ['localhost', undefined],
  ])('%s -> %s', (host, slug) => {
    expect(slugFromHost(host, 'plandocket.com')).toBe(slug);
  });
});

describe('schema error messages', () => {
  it('names fields with dotted paths and merges repeats', () => {
    expect(
      fieldErrorsFromSchema([
        { keyword: 'required', instancePath: '', schemaPath: '', params: { missingProperty: 'url' } },
        { keyword: 'type', instancePath: '/events/2', schemaPath: '', params: { type: 'string' } },
        { keyword: 'maximum', instancePath: '/retry_count', schemaPath: '', params: { limit: 10 } },
        { keyword: 'anyOf', instancePath: '/x', schemaPath: '', params: {} },
      ]),
    ).toEqual({
      url: ['The url field is required.'],
      'events.2': ['The events.2 must be a string.'],
      retry_count: ['The retry_count must not be greater than 10.'],
    });
  });
});

describe('time-ordered ids', () => {
  it('are 26 Crockford base32 characters after the prefix, sorted by time, unique', async () => {
    const { timeOrderedId, newEventId } = await import('../../src/domain/ids.js');
    expect(newEventId()).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(timeOrderedId('x', 0).slice(2, 12)).toBe('0000000000');
    const earlier = timeOrderedId('dlv', 1_700_000_000_000);
    const later = timeOrderedId('dlv', 1_700_000_000_001);
    expect(earlier < later).toBe(true);
    const many = new Set(Array.from({ length: 10_000 }, () => newEventId()));
    expect(many.size).toBe(10_000);
  });
});

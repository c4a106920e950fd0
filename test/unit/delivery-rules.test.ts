import { describe, expect, it } from 'vitest';
import { checkedLookup, RefusedAddressError } from '../../src/delivery/safe-agent.js';
import { AddressPolicy } from '../../src/domain/address-policy.js';
import { decide } from '../../src/domain/outcome.js';
import {
  parseDuration,
  parseSchedule,
  plannedDelay,
  withRetryAfter,
} from '../../src/domain/retry-schedule.js';
import { plandocketSignature, signatureHeaders, standardSignature } from '../../src/domain/signing.js';
import { plandocketDocsVerify } from '../helpers/receiver.js';

describe('signatures', () => {
  it('matches the published Standard Webhooks test vector', () => {
    expect(
      standardSignature(
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'msg_p5jXN8AQM9LWM0D4loKWxJek',
        1614265330,
        '{"test": 2432232314}',
      ),
    ).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it("signs PlanDocket's way with the secret string as shown, accepted by the docs' receiver", () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const now = Math.floor(Date.now() / 1000);
    const body = '{"id":"evt_1"}';
    const headers = signatureHeaders([secret], 'evt_1', now, body);
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    expect(plandocketDocsVerify(secret, lower, body)).toBe(true);
    expect(plandocketDocsVerify(secret, lower, `${body} `)).toBe(false);
    expect(plandocketDocsVerify('whsec_other', lower, body)).toBe(false);
    const old: Record<string, string> = { ...lower, 'x-webhook-timestamp': String(now - 301) };
    old['x-webhook-signature'] = plandocketSignature(secret, now - 301, body);
    expect(plandocketDocsVerify(secret, old, body)).toBe(false);
  });

  it('signs with every secret during a rotation, newest first', () => {
    const headers = signatureHeaders(['whsec_bmV3bmV3bmV3', 'whsec_b2xkb2xkb2xk'], 'evt_1', 1700000000, '{}');
    expect(headers['webhook-signature']?.split(' ')).toHaveLength(2);
    expect(headers['X-Webhook-Signature']).toBe(plandocketSignature('whsec_bmV3bmV3bmV3', 1700000000, '{}'));
    expect(headers['X-Webhook-Signature-Previous']).toBe(
      plandocketSignature('whsec_b2xkb2xkb2xk', 1700000000, '{}'),
    );
  });
});

describe('retry schedule', () => {
  it('parses durations and schedules', () => {
    expect(parseDuration('1500ms')).toBe(1500);
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('5d')).toBe(432_000_000);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseSchedule('10s,1m,5m')).toEqual([10_000, 60_000, 300_000]);
    expect(parseSchedule('10s,,1m')).toBeUndefined();
  });

  it('waits by the schedule with +-20 % jitter, repeating the last wait', () => {
    const schedule = [10_000, 60_000];
    expect(plannedDelay(schedule, 1, 0)).toBe(8_000);
    expect(plannedDelay(schedule, 1, 0.5)).toBe(10_000);
    expect(plannedDelay(schedule, 1, 0.999999)).toBeCloseTo(12_000, -1);
    expect(plannedDelay(schedule, 2, 0.5)).toBe(60_000);
    expect(plannedDelay(schedule, 7, 0.5)).toBe(60_000);
  });

  it('honours Retry-After between the planned wait and an hour', () => {
    expect(withRetryAfter(10_000, '120', 0)).toBe(120_000);
    expect(withRetryAfter(10_000, '1', 0)).toBe(10_000);
    expect(withRetryAfter(10_000, '999999', 0)).toBe(3_600_000);
    expect(withRetryAfter(36_000_000, '60', 0)).toBe(36_000_000);
    expect(withRetryAfter(10_000, new Date(90_000).toUTCString(), 0)).toBe(90_000);
    expect(withRetryAfter(10_000, 'soon', 0)).toBe(10_000);
  });
});

describe('outcome of an attempt', () => {
  const schedule = [1000, 2000];
  const now = 1_000_000;
  const ok = { statusCode: 200, error: null };
  const fail = { statusCode: 500, error: null };

  it('succeeds on 2xx only', () => {
    expect(decide(ok, 1, 3, schedule, now)).toEqual({ status: 'succeeded' });
    expect(decide({ statusCode: 299, error: null }, 1, 3, schedule, now).status).toBe('succeeded');
    expect(decide({ statusCode: 302, error: null }, 1, 3, schedule, now).status).toBe('pending');
  });

  it('retries at most retry_count times after the first attempt', () => {
    expect(decide(fail, 1, 2, schedule, now, 0.5)).toEqual({ status: 'pending', nextAttemptAt: now + 1000 });
    expect(decide(fail, 2, 2, schedule, now, 0.5)).toEqual({ status: 'pending', nextAttemptAt: now + 2000 });
    expect(decide(fail, 3, 2, schedule, now, 0.5)).toEqual({ status: 'failed' });
    expect(decide({ statusCode: null, error: 'Connection refused' }, 1, 0, schedule, now)).toEqual({
      status: 'failed',
    });
  });

  it('gives up at once on 410 and switches the webhook off', () => {
    expect(decide({ statusCode: 410, error: null }, 1, 5, schedule, now)).toEqual({
      status: 'failed',
      deactivateWebhook: 'The endpoint answered 410 Gone.',
    });
  });

  it('honours Retry-After on 429 and 503 only', () => {
    const slow = (statusCode: number) =>
      decide({ statusCode, error: null, retryAfter: '30' }, 1, 3, schedule, now, 0.5);
    expect(slow(429)).toEqual({ status: 'pending', nextAttemptAt: now + 30_000 });
    expect(slow(503)).toEqual({ status: 'pending', nextAttemptAt: now + 30_000 });
    expect(slow(500)).toEqual({ status: 'pending', nextAttemptAt: now + 1000 });
  });
});

describe('checked DNS lookup', () => {
  const lookupWith = (policy: AddressPolicy, addresses: string[]) =>
    new Promise<{ error: Error | null; address: unknown }>((resolve) => {
      checkedLookup(policy, async () =>
        addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
      )('host.test', { all: true }, (error, address) => resolve({ error, address }));
    });

  it.each([['127.0.0.1'], ['169.254.169.254'], ['::1'], ['::ffff:10.0.0.1'], ['93.184.216.34', '10.0.0.1']])(
    'refuses a name resolving to %s without the allow-list, and says why',
    async (...addresses) => {
      const { error } = await lookupWith(new AddressPolicy(), addresses);
      expect(error).toBeInstanceOf(RefusedAddressError);
      expect(error?.message).toMatch(/^host\.test resolves to .* which webhooks may not reach$/);
    },
  );

  it.each([
    ['127.0.0.1', '127.0.0.0/8'],
    ['169.254.169.254', '169.254.0.0/16'],
    ['::1', '::1/128'],
    ['::ffff:10.0.0.1', '10.0.0.0/8'],
  ])('lets %s through when %s is allow-listed, handing over the checked address', async (address, cidr) => {
    const { error, address: given } = await lookupWith(new AddressPolicy([cidr]), [address]);
    expect(error).toBeNull();
    expect(given).toEqual([{ address, family: address.includes(':') ? 6 : 4 }]);
  });
});

describe('due times', () => {
  it('tells how long until the next one, dropping those already looked for', async () => {
    const { DueTimes } = await import('../../src/delivery/due-times.js');
    const times = new DueTimes();
    expect(times.untilNext(0, 0, 5000)).toBe(5000);
    for (const t of [300, 100, 200, 100]) times.add(t);
    expect(times.untilNext(0, 0, 5000)).toBe(100);
    expect(times.untilNext(150, 150, 5000)).toBe(50);
    expect(times.untilNext(250, 250, 40)).toBe(40);
    // Due after the last look but before now: look again at once, and keep it until then.
    expect(times.untilNext(250, 320, 5000)).toBe(0);
    expect(times.untilNext(320, 320, 5000)).toBe(5000);
  });
});

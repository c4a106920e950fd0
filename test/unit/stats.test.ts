import { describe, expect, it } from 'vitest';
import { bucketStarts, percentile, statsBuckets } from '../../src/domain/stats.js';

describe('statistics buckets', () => {
  const now = Date.parse('2026-11-26T21:11:23.456Z');

  it('24h: 24 whole UTC hours, the last holding now', () => {
    const b = statsBuckets('24h', now);
    expect(b).toMatchObject({ bucket: 'hour', size: 3_600_000, count: 24 });
    expect(new Date(b.start).toISOString()).toBe('2026-11-25T22:00:00.000Z');
    expect(b.start + 23 * b.size).toBe(Date.parse('2026-11-26T21:00:00.000Z'));
  });

  it.each([
    ['7d', 7, '2026-11-20T00:00:00.000Z'],
    ['30d', 30, '2026-10-28T00:00:00.000Z'],
  ] as const)('%s: %i whole UTC days, the last one today', (window, count, first) => {
    const b = statsBuckets(window, now);
    expect(b).toMatchObject({ bucket: 'day', size: 86_400_000, count });
    expect(new Date(b.start).toISOString()).toBe(first);
  });

  it('lists the start of every bucket, in order, the last one holding now', () => {
    const b = statsBuckets('7d', now);
    const starts = bucketStarts(b);
    expect(starts).toHaveLength(7);
    expect(starts[0]).toBe(b.start);
    expect(starts.map((s) => new Date(s).toISOString().slice(0, 10))).toEqual([
      '2026-11-20',
      '2026-11-21',
      '2026-11-22',
      '2026-11-23',
      '2026-11-24',
      '2026-11-25',
      '2026-11-26',
    ]);
    const last = starts[6] as number;
    expect(last <= now && now < last + b.size).toBe(true);
  });

  it('on the first millisecond of an hour, that hour is the last bucket', () => {
    const b = statsBuckets('24h', Date.parse('2026-11-26T21:00:00.000Z'));
    expect(b.start + 23 * b.size).toBe(Date.parse('2026-11-26T21:00:00.000Z'));
  });
});

describe('percentile', () => {
  it('is null without values', () => {
    expect(percentile([], 0.5)).toBeNull();
    expect(percentile([[10, 0]], 0.5)).toBeNull();
  });

  it('takes the nearest rank over counted values, in any order', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => [100 - i, 1] as const);
    expect(percentile(hundred, 0.5)).toBe(50);
    expect(percentile(hundred, 0.95)).toBe(95);
    expect(percentile([[7, 1]], 0.95)).toBe(7);
    expect(
      percentile(
        [
          [300, 1],
          [20, 9],
        ],
        0.95,
      ),
    ).toBe(300);
    expect(
      percentile(
        [
          [300, 1],
          [20, 19],
        ],
        0.95,
      ),
    ).toBe(20);
  });
});

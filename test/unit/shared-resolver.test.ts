import { describe, expect, it } from 'vitest';
import { type ResolvedAddress, sharedResolver } from '../../src/delivery/safe-agent.js';
import { clockPast } from '../helpers/wait.js';

describe('sharedResolver', () => {
  const answer: ResolvedAddress[] = [{ address: '203.0.113.7', family: 4 }];

  it('asks once for connections opened at the same time, and again after the reuse period', async () => {
    const asked: string[] = [];
    const resolve = sharedResolver(async (host) => {
      asked.push(host);
      return answer;
    }, 50);
    const all = await Promise.all(Array.from({ length: 20 }, () => resolve('hooks.test')));
    const askedAt = Date.now();
    expect(all.every((a) => a === answer)).toBe(true);
    await resolve('other.test');
    expect(asked).toEqual(['hooks.test', 'other.test']);
    // Once the reuse period is over.
    await clockPast(askedAt + 50);
    await resolve('hooks.test');
    expect(asked).toEqual(['hooks.test', 'other.test', 'hooks.test']);
  });

  it('does not keep a failed lookup', async () => {
    let calls = 0;
    const resolve = sharedResolver(async () => {
      calls += 1;
      if (calls === 1) throw Object.assign(new Error('lookup failed'), { code: 'EAI_AGAIN' });
      return answer;
    });
    await expect(resolve('hooks.test')).rejects.toThrow('lookup failed');
    await expect(resolve('hooks.test')).resolves.toBe(answer);
    expect(calls).toBe(2);
  });
});

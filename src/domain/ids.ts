import { randomFillSync } from 'node:crypto';

/**
 * Ids that sort by creation time, ULID style: 10 characters of millisecond time, then 16 random
 * ones, in Crockford's base32. `evt_01J...` for events, `dlv_01J...` for deliveries.
 * Random bytes come from a pool: one system call per 4 KiB, not one per id.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const pool = Buffer.alloc(4096);
let offset = pool.length;

function randomPart(): string {
  if (offset + 16 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  let out = '';
  for (let i = 0; i < 16; i++) out += ALPHABET[(pool[offset + i] as number) & 31];
  offset += 16;
  return out;
}

function timePart(ms: number): string {
  let out = '';
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

export function timeOrderedId(prefix: string, now: number = Date.now()): string {
  return `${prefix}_${timePart(now)}${randomPart()}`;
}

export const newEventId = (now: number = Date.now()) => timeOrderedId('evt', now);
export const newDeliveryId = (now: number = Date.now()) => timeOrderedId('dlv', now);

/**
 * The smallest id of `prefix` made at millisecond `ms` or later: ids made before it sort below,
 * the others at or above, so a time range is a range of ids.
 */
export const firstIdAt = (prefix: string, ms: number) => `${prefix}_${timePart(Math.max(0, ms))}`;

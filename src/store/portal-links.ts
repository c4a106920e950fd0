import type { Store } from './db.js';
import { type ApiKey, insertApiKey, type NewApiKey } from './tenants.js';

/**
 * Portal links: one-time sign-in links to the portal. Only the token's hash is stored; a link is
 * exchanged once, before it expires, for a session key that expires too.
 */

export interface PortalLink {
  id: number;
  tenant_id: number;
  created_at: number;
  expires_at: number;
}

export async function createPortalLink(
  store: Store,
  input: { tenant_id: number; token_hash: string; expires_at: number },
): Promise<PortalLink> {
  return store.db
    .insertInto('portal_links')
    .values({ ...input, created_at: Date.now() })
    .returning(['id', 'tenant_id', 'created_at', 'expires_at'])
    .executeTakeFirstOrThrow();
}

/**
 * Uses the link with this token hash, if it is unused and unexpired, and makes its session key,
 * in one transaction. The use is one conditional UPDATE, so that of two concurrent exchanges
 * only one finds the link unused (on PostgreSQL the second waits for the first's row lock and
 * then sees `used_at` set). Undefined when there is no usable link.
 */
export async function exchangePortalLink(
  store: Store,
  tokenHash: string,
  now: number,
  sessionKey: (tenantId: number) => Omit<NewApiKey, 'tenant_id'>,
): Promise<ApiKey | undefined> {
  return store.db.transaction().execute(async (tx) => {
    const link = await tx
      .updateTable('portal_links')
      .set({ used_at: now })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returning(['id', 'tenant_id'])
      .executeTakeFirst();
    if (!link) return undefined;
    const key = await insertApiKey(tx, { ...sessionKey(link.tenant_id), tenant_id: link.tenant_id });
    await tx.updateTable('portal_links').set({ session_key_id: key.id }).where('id', '=', link.id).execute();
    return key;
  });
}

/** True when the key was made by exchanging a portal link (and so may be ended by signing out). */
export async function isPortalSessionKey(store: Store, keyId: number): Promise<boolean> {
  const row = await store.db
    .selectFrom('portal_links')
    .select('id')
    .where('session_key_id', '=', keyId)
    .executeTakeFirst();
  return row !== undefined;
}

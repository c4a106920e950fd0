import type { Plan, Scope } from '../domain/plans.js';
import type { Store } from './db.js';
import type { TenantTable } from './schema.js';

export interface Tenant {
  id: number;
  slug: string;
  name: string;
  plan: Plan;
  features: string[];
  /** The operator's limit on this tenant's webhooks; null: the service's default. */
  max_webhooks: number | null;
  /** Where notification mails go (see src/store/mails.ts); null: none are sent. */
  notification_email: string | null;
  created_at: number;
  updated_at: number;
}

export interface ApiKey {
  id: number;
  tenant_id: number;
  name: string;
  scopes: Scope[];
  key_prefix: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  /** A key that ends by itself (a portal session); null for keys that last until revoked. */
  expires_at: number | null;
}

/** A key found by its hash, with the tenant it belongs to. */
export interface KeyWithTenant {
  key: ApiKey;
  tenant: Tenant;
}

function toTenant(row: Omit<TenantTable, 'id'> & { id: number }): Tenant {
  return { ...row, plan: row.plan as Plan, features: JSON.parse(row.features) };
}

export async function findTenantBySlug(store: Store, slug: string): Promise<Tenant | undefined> {
  const row = await store.db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst();
  return row && toTenant(row);
}

/** Creates a tenant; undefined when the slug is taken. */
export async function createTenant(
  store: Store,
  input: { slug: string; name: string; plan: Plan; features: string[]; notification_email?: string | null },
): Promise<Tenant | undefined> {
  const now = Date.now();
  const row = await store.db
    .insertInto('tenants')
    .values({ ...input, features: JSON.stringify(input.features), created_at: now, updated_at: now })
    .onConflict((oc) => oc.column('slug').doNothing())
    .returningAll()
    .executeTakeFirst();
  return row && toTenant(row);
}

export async function updateTenant(
  store: Store,
  slug: string,
  changes: {
    name?: string;
    plan?: Plan;
    features?: string[];
    max_webhooks?: number | null;
    notification_email?: string | null;
  },
): Promise<Tenant | undefined> {
  const row = await store.db
    .updateTable('tenants')
    .set({
      ...(changes.name !== undefined && { name: changes.name }),
      ...(changes.plan !== undefined && { plan: changes.plan }),
      ...(changes.features !== undefined && { features: JSON.stringify(changes.features) }),
      ...(changes.max_webhooks !== undefined && { max_webhooks: changes.max_webhooks }),
      ...(changes.notification_email !== undefined && { notification_email: changes.notification_email }),
      updated_at: Date.now(),
    })
    .where('slug', '=', slug)
    .returningAll()
    .executeTakeFirst();
  return row && toTenant(row);
}

export interface NewApiKey {
  tenant_id: number;
  name: string;
  scopes: Scope[];
  key_hash: string;
  key_prefix: string;
  expires_at?: number;
}

export async function createApiKey(store: Store, input: NewApiKey): Promise<ApiKey> {
  return insertApiKey(store.db, input);
}

/** Inserts a key with `db`, which may be a transaction. */
export async function insertApiKey(db: Store['db'], input: NewApiKey): Promise<ApiKey> {
  const row = await db
    .insertInto('api_keys')
    .values({ ...input, scopes: JSON.stringify(input.scopes), created_at: Date.now() })
    .returningAll()
    .executeTakeFirstOrThrow();
  const { key_hash: _hash, ...key } = row;
  return { ...key, scopes: JSON.parse(row.scopes) };
}

/** Revokes a tenant's key; false when there is no such live key. */
export async function revokeApiKey(store: Store, tenantId: number, keyId: number): Promise<boolean> {
  const result = await store.db
    .updateTable('api_keys')
    .set({ revoked_at: Date.now() })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', keyId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** The key with this hash (revoked ones too: the caller says which it was), and its tenant. */
export async function findKeyByHash(store: Store, keyHash: string): Promise<KeyWithTenant | undefined> {
  const row = await store.db
    .selectFrom('api_keys as k')
    .innerJoin('tenants as t', 't.id', 'k.tenant_id')
    .select([
      'k.id as key_id',
      'k.name as key_name',
      'k.scopes',
      'k.key_prefix',
      'k.created_at as key_created_at',
      'k.last_used_at',
      'k.expires_at',
      'k.revoked_at',
      't.id',
      't.slug',
      't.name',
      't.plan',
      't.features',
      't.max_webhooks',
      't.notification_email',
      't.created_at',
      't.updated_at',
    ])
    .where('k.key_hash', '=', keyHash)
    .executeTakeFirst();
  if (!row) return undefined;
  const {
    key_id,
    key_name,
    scopes,
    key_prefix,
    key_created_at,
    last_used_at,
    expires_at,
    revoked_at,
    ...tenant
  } = row;
  return {
    key: {
      id: key_id,
      tenant_id: tenant.id,
      name: key_name,
      scopes: JSON.parse(scopes),
      key_prefix,
      created_at: key_created_at,
      last_used_at,
      revoked_at,
      expires_at,
    },
    tenant: toTenant(tenant),
  };
}

export async function touchApiKey(store: Store, keyId: number, at: number): Promise<void> {
  await store.db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', keyId).execute();
}

/** A tenant's live keys (not revoked, not expired), oldest first; never their hashes. */
export async function listApiKeys(store: Store, tenantId: number): Promise<ApiKey[]> {
  const rows = await store.db
    .selectFrom('api_keys')
    .select([
      'id',
      'tenant_id',
      'name',
      'scopes',
      'key_prefix',
      'created_at',
      'last_used_at',
      'revoked_at',
      'expires_at',
    ])
    .where('tenant_id', '=', tenantId)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', Date.now())]))
    .orderBy('id')
    .execute();
  return rows.map((row) => ({ ...row, scopes: JSON.parse(row.scopes) }));
}

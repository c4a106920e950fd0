import { sql } from 'kysely';
import type { OperatorWebhook } from '../config.js';
import { decryptSecret, encryptSecret } from '../domain/secrets.js';
import type { Store } from './db.js';
import { OPERATOR_TENANT } from './operational-events.js';

/** How the operator's webhook retries: the default schedule, a few more times than a tenant's default. */
const RETRY_COUNT = 5;
const TIMEOUT_SECONDS = 30;

/** The stored secret, or undefined when it was encrypted with another key (then it is replaced). */
function storedSecret(secretsKey: Buffer, ciphertext: string): string | undefined {
  try {
    return decryptSecret(secretsKey, ciphertext);
  } catch {
    return undefined;
  }
}

/**
 * Makes the operator's webhook (OPERATOR_WEBHOOK_URL) what the configuration says, at start: a
 * webhook of the hidden operator tenant, created or updated; switched off when the configuration
 * has none, so that no more operational events are queued for it. Its deliveries then go through
 * the same queue, retries, outbound checks and breaker as any other.
 */
export async function configureOperatorWebhook(
  store: Store,
  secretsKey: Buffer,
  operator: OperatorWebhook | undefined,
): Promise<void> {
  const now = Date.now();
  await store.db.transaction().execute(async (trx) => {
    await trx
      .insertInto('tenants')
      .values({
        slug: OPERATOR_TENANT,
        name: 'Operator',
        plan: 'enterprise',
        features: '[]',
        max_webhooks: null,
        notification_email: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('slug').doNothing())
      .execute();
    // Processes that start together change the one row in turn.
    const tenant = await (store.dialect === 'postgres'
      ? sql<{ id: number }>`select id from tenants where slug = ${OPERATOR_TENANT} for update`
          .execute(trx)
          .then((r) => r.rows[0])
      : trx.selectFrom('tenants').select('id').where('slug', '=', OPERATOR_TENANT).executeTakeFirst());
    if (!tenant) throw new Error('the operator tenant is missing');
    const existing = await trx
      .selectFrom('webhooks')
      .select(['id', 'url', 'secret_ciphertext', 'is_active'])
      .where('tenant_id', '=', tenant.id)
      .where('deleted_at', 'is', null)
      .orderBy('id')
      .executeTakeFirst();
    if (!operator) {
      if (existing?.is_active === 1) {
        await trx
          .updateTable('webhooks')
          .set({ is_active: 0, updated_at: now })
          .where('id', '=', existing.id)
          .execute();
      }
      return;
    }
    if (!existing) {
      await trx
        .insertInto('webhooks')
        .values({
          tenant_id: tenant.id,
          name: 'Operator',
          url: operator.url,
          is_active: 1,
          headers: '{}',
          events: '[]',
          retry_count: RETRY_COUNT,
          timeout_seconds: TIMEOUT_SECONDS,
          secret_ciphertext: encryptSecret(secretsKey, operator.secret),
          failure_count: 0,
          created_at: now,
          updated_at: now,
        })
        .execute();
      return;
    }
    const same =
      existing.is_active === 1 &&
      existing.url === operator.url &&
      storedSecret(secretsKey, existing.secret_ciphertext) === operator.secret;
    if (same) return;
    await trx
      .updateTable('webhooks')
      .set({
        url: operator.url,
        secret_ciphertext: encryptSecret(secretsKey, operator.secret),
        is_active: 1,
        disabled_reason: null,
        disabled_at: null,
        updated_at: now,
      })
      .where('id', '=', existing.id)
      .execute();
  });
}

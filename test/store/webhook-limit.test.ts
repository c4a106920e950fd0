import { describe, expect, it } from 'vitest';
import { migrate, openStore } from '../../src/store/db.js';
import { createTenant } from '../../src/store/tenants.js';
import { createWebhook, WebhookLimitReached } from '../../src/store/webhooks.js';
import { freshDatabaseUrl } from '../helpers/delivery-harness.js';
import { DATABASES, storedWebhook } from '../helpers/harness.js';

// SQLite is one process whose transactions run one at a time; PostgreSQL serves several.
const postgres = DATABASES.find((d) => d.name === 'postgres') as (typeof DATABASES)[number];

describe.skipIf(postgres.skip)('webhooks per tenant in the store [postgres]', () => {
  it('creates from two API processes at once never pass the limit', async () => {
    const fresh = await freshDatabaseUrl(postgres);
    // Two pools, as two API processes have.
    const one = await openStore({ databaseUrl: fresh.url });
    const two = await openStore({ databaseUrl: fresh.url });
    try {
      await migrate(one);
      const tenant = await createTenant(one, {
        slug: 'limit',
        name: 'L',
        plan: 'enterprise',
        features: [],
      });
      if (!tenant) throw new Error('no tenant');
      const create = (store: typeof one, i: number) =>
        createWebhook(store, tenant.id, storedWebhook(i), 3).then(
          () => 'created',
          (error: unknown) => (error instanceof WebhookLimitReached ? 'refused' : Promise.reject(error)),
        );
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => create(i % 2 ? one : two, i)));
      expect(results.filter((r) => r === 'created')).toHaveLength(3);
      const { n } = await one.db
        .selectFrom('webhooks')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('tenant_id', '=', tenant.id)
        .executeTakeFirstOrThrow();
      expect(Number(n)).toBe(3);
    } finally {
      await one.close();
      await two.close();
      await fresh.drop();
    }
  });
});

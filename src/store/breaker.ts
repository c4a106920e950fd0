import { sql, type Transaction } from 'kysely';
import { isRetryableFailure } from '../domain/outcome.js';
import type { Store } from './db.js';
import type { Outcome } from './deliveries.js';
import type { Database } from './schema.js';
import { wakeWorkers } from './wakeups.js';

/**
 * The circuit breaker of each webhook. Its states:
 *
 * - HEALTHY: deliveries go out and retry on the schedule.
 * - FAILING: a delivery exhausted its retries on a failure that says the endpoint is down (no
 *   answer, a TLS error, 408, 429, 5xx) and no delivery to the webhook has succeeded since that
 *   delivery's first attempt; one event that keeps failing while others succeed does not count.
 *   Its deliveries are then held, not burned through their retries against an endpoint known to
 *   be down: claims skip them. Every RECOVERY_PROBE_INTERVAL one of them is let through as a
 *   probe: the oldest held one or, when none is held, the oldest that exhausted its retries in
 *   the outage (sent once more, by hand).
 * - back to HEALTHY when any delivery to it succeeds (a probe, a retry by hand, a test event): the
 *   held deliveries go on, and those that failed retryably in the outage, up to CATCH_UP_WINDOW
 *   back, are queued again, oldest first, each with its retries anew; a delivery is caught up
 *   once at most.
 *
 * Switching off (410 Gone, AUTO_DISABLE_AFTER) is apart from this: switched off is switched off.
 * The transitions are written in the transaction that records the outcomes which cause them.
 */

export interface BreakerSettings {
  probeIntervalMs: number;
  catchUpWindowMs: number;
}

/** What a batch of outcomes did to the breakers of its webhooks. */
export interface BreakerChanges {
  failing: { webhookId: number; since: number; nextProbeAt: number }[];
  recovered: { webhookId: number; failingSince: number; caughtUp: number }[];
}

/** A webhook as the breaker sees it, after the stats of the batch were written. */
export interface BreakerWebhook {
  id: number;
  is_active: number;
  breaker_opened_at: number | null;
  probe_delivery_id: string | null;
  last_success_at: number | null;
}

/** Probes chosen at once, at most, by one worker. */
const PROBE_BATCH = 100;

/**
 * Opens and closes the breakers of the webhooks of a batch of written outcomes, given as they
 * are after its stats were updated (so a success in the batch counts) and switched off if it was.
 */
export async function applyBreaker(
  trx: Transaction<Database>,
  outcomes: Outcome[],
  webhooks: BreakerWebhook[],
  now: number,
  settings: BreakerSettings,
): Promise<BreakerChanges> {
  const changes: BreakerChanges = { failing: [], recovered: [] };
  for (const webhook of webhooks) {
    const own = outcomes.filter((o) => o.delivery.webhook_id === webhook.id);
    if (webhook.breaker_opened_at !== null) {
      const openedAt = Number(webhook.breaker_opened_at);
      if (own.some((o) => o.decision.status === 'succeeded')) {
        const caughtUp = await recover(trx, webhook.id, openedAt, now, settings);
        changes.recovered.push({ webhookId: webhook.id, failingSince: openedAt, caughtUp });
      } else if (own.some((o) => o.delivery.id === webhook.probe_delivery_id)) {
        // The probe went and failed: the next one goes at the next probe time.
        await trx
          .updateTable('webhooks')
          .set({ probe_delivery_id: null })
          .where('id', '=', webhook.id)
          .execute();
      }
      continue;
    }
    if (webhook.is_active !== 1) continue;
    const lastSuccess = webhook.last_success_at === null ? null : Number(webhook.last_success_at);
    for (const o of own) {
      if (!opensBreaker(o)) continue;
      const firstAttemptAt = await firstAttemptOfRun(trx, o);
      if (lastSuccess !== null && lastSuccess >= firstAttemptAt) continue;
      await trx
        .updateTable('webhooks')
        .set({
          breaker_opened_at: now,
          next_probe_at: now + settings.probeIntervalMs,
          probe_delivery_id: null,
        })
        .where('id', '=', webhook.id)
        .execute();
      changes.failing.push({
        webhookId: webhook.id,
        since: now,
        nextProbeAt: now + settings.probeIntervalMs,
      });
      break;
    }
  }
  return changes;
}

/** Exhausted its retries (not one attempt by hand) on a failure that says the endpoint is down. */
function opensBreaker({ delivery, attempt, decision }: Outcome): boolean {
  return (
    decision.status === 'failed' &&
    decision.deactivateWebhook === undefined &&
    delivery.manual !== 1 &&
    isRetryableFailure(attempt.statusCode)
  );
}

/** When the delivery's current run of retries began: its first attempt, or since it was caught up. */
async function firstAttemptOfRun(
  trx: Transaction<Database>,
  { delivery, attempt }: Outcome,
): Promise<number> {
  const number = (delivery.catch_up_from ?? 0) + 1;
  if (number === delivery.attempts + 1) return attempt.startedAt;
  const row = await trx
    .selectFrom('attempts')
    .select('started_at')
    .where('delivery_id', '=', delivery.id)
    .where('number', '=', number)
    .executeTakeFirst();
  return row ? Number(row.started_at) : attempt.startedAt;
}

/**
 * Closes the breaker and queues again what failed retryably in the outage (since it opened, and
 * within the catch-up window), oldest first (due at its creation), each with its retries anew.
 * Returns how many were queued.
 */
async function recover(
  trx: Transaction<Database>,
  webhookId: number,
  openedAt: number,
  now: number,
  settings: BreakerSettings,
): Promise<number> {
  await trx
    .updateTable('webhooks')
    .set({ breaker_opened_at: null, next_probe_at: null, probe_delivery_id: null })
    .where('id', '=', webhookId)
    .execute();
  const result = await trx
    .updateTable('deliveries')
    .set({
      status: 'pending',
      next_attempt_at: sql<number>`created_at`,
      catch_up_from: sql<number>`attempts`,
      manual: 0,
      updated_at: now,
    })
    .where('webhook_id', '=', webhookId)
    .where('status', '=', 'failed')
    .where('catch_up_from', 'is', null)
    .where('updated_at', '>=', Math.max(openedAt, now - settings.catchUpWindowMs))
    .where(retryableStatus)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The stored form of isRetryableFailure: no status (timeout, connection, TLS), 408, 429, 5xx. */
const retryableStatus = sql<boolean>`(last_status_code is null or last_status_code in (408, 429) or last_status_code >= 500)`;

/**
 * Chooses the next probe of each failing webhook whose probe time has come, and moves its time on
 * (one worker does each: the webhook's probe time is taken in an update that checks it). Returns
 * how many probes were queued; workers are woken for them.
 */
export async function queueProbes(store: Store, now: number, probeIntervalMs: number): Promise<number> {
  const due = await store.db
    .selectFrom('webhooks')
    .select(['id', 'breaker_opened_at'])
    .where('breaker_opened_at', 'is not', null)
    .where('next_probe_at', '<=', now)
    .where('is_active', '=', 1)
    .where('deleted_at', 'is', null)
    .limit(PROBE_BATCH)
    .execute();
  let queued = 0;
  for (const webhook of due) {
    const probe = await store.db.transaction().execute(async (trx) => {
      const turn = await trx
        .updateTable('webhooks')
        .set({ next_probe_at: now + probeIntervalMs, probe_delivery_id: null })
        .where('id', '=', webhook.id)
        .where('breaker_opened_at', 'is not', null)
        .where('next_probe_at', '<=', now)
        .executeTakeFirst();
      if (Number(turn.numUpdatedRows) === 0) return undefined;
      const held = await trx
        .selectFrom('deliveries')
        .select('id')
        .where('webhook_id', '=', webhook.id)
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
        .orderBy('id')
        .limit(1)
        .executeTakeFirst();
      let probe = held?.id;
      if (held) {
        await trx
          .updateTable('deliveries')
          .set({
            next_attempt_at: sql<number>`case when next_attempt_at > ${now} then ${now} else next_attempt_at end`,
          })
          .where('id', '=', held.id)
          .execute();
      } else {
        const exhausted = await trx
          .selectFrom('deliveries')
          .select('id')
          .where('webhook_id', '=', webhook.id)
          .where('status', '=', 'failed')
          .where('updated_at', '>=', Number(webhook.breaker_opened_at))
          .where(retryableStatus)
          .orderBy('id')
          .limit(1)
          .executeTakeFirst();
        if (!exhausted) return undefined;
        probe = exhausted.id;
        await trx
          .updateTable('deliveries')
          .set({ status: 'pending', manual: 1, next_attempt_at: now, updated_at: now })
          .where('id', '=', probe)
          .execute();
      }
      await trx
        .updateTable('webhooks')
        .set({ probe_delivery_id: probe })
        .where('id', '=', webhook.id)
        .execute();
      return probe;
    });
    if (probe === undefined) continue;
    queued += 1;
  }
  if (queued > 0) await wakeWorkers(store);
  return queued;
}

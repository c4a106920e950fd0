import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type { Agent } from 'undici';
import type { Config } from '../config.js';
import { AddressPolicy } from '../domain/address-policy.js';
import { decide } from '../domain/outcome.js';
import { decryptSecret } from '../domain/secrets.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/db.js';
import {
  type ClaimedDelivery,
  claimDeliveries,
  type Outcome,
  recordOutcomes,
  refreshQueueStatistics,
  releaseDeliveries,
} from '../store/deliveries.js';
import { pruneOldDeliveries } from '../store/retention.js';
import { listenForDeliveries } from '../store/wakeups.js';
import { DueTimes } from './due-times.js';
import { deliveryAgent, type Resolver } from './safe-agent.js';
import { type SendResult, send } from './sender.js';

export interface WorkerLog {
  info(obj: object | string, msg?: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WorkerOptions {
  config: Config;
  store: Store;
  metrics: Metrics;
  log: WorkerLog;
  /** Tests: map host names to addresses of their choosing, and trust their CA. */
  resolve?: Resolver;
  ca?: string[];
}

/**
 * A worker knows when the retries it scheduled fall due, and is told of new deliveries (NOTIFY,
 * or in process); it still looks for other due work this often (retries of a worker that died,
 * expired leases).
 */
const POLL_MS = 5_000;
const CLAIM_BATCH = 100;
/** How long freed slots gather before the claim that fills them. */
const GATHER_MS = 2;
const STATISTICS_EVERY_MS = 60_000;
/** At most this many outcomes in one write. */
const FLUSH_BATCH = 500;
/** Old deliveries are pruned at start and this often (see RETENTION_DAYS). */
const PRUNE_EVERY_MS = 5 * 60_000;
const DAY_MS = 86_400_000;
/** Deliveries that exhaust their retries before a failing webhook is switched off. */
const AUTO_DISABLE_MIN_FAILED = 5;

/** Upkeep beside the claims, one run at a time; a failed run is logged and tried again later. */
class Upkeep {
  private running: Promise<void> | undefined;

  constructor(
    private readonly what: string,
    private readonly log: WorkerLog,
  ) {}

  get busy(): boolean {
    return this.running !== undefined;
  }

  start(work: () => Promise<void>): void {
    if (this.running) return;
    this.running = work()
      .catch((error) => this.log.warn({ err: error }, `${this.what} failed; trying again later`))
      .finally(() => {
        this.running = undefined;
      });
  }

  async done(): Promise<void> {
    await this.running;
  }
}

/**
 * The delivery worker: claims due deliveries with a lease, sends them with at most
 * `concurrency` in flight (and at most `webhookConcurrency` to one webhook, so that a slow
 * endpoint cannot hold up the others), records each attempt and schedules the next.
 */
export class DeliveryWorker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly perWebhook = new Map<number, number>();
  private readonly agent: Agent;
  private readonly policy: AddressPolicy;
  private readonly shutdown = new AbortController();
  private running = false;
  private woken = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private stopListening: (() => Promise<void>) | undefined;
  private readonly secrets = new Map<string, string>();
  private readonly retryTimes = new DueTimes();
  /** Whether the last claim may have left due work behind (caps, a full batch). */
  private backlog = false;
  private claiming = false;
  private claimedSinceAnalyze = 0;
  private analyzedAt = 0;
  private vacuumNoted = false;
  private readonly outbox: { outcome: Outcome; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private pruneTimer: NodeJS.Timeout | undefined;
  /** Slots freed since the last claim, and the timer that claims them if no more come. */
  private freed = 0;
  private gathering: NodeJS.Timeout | undefined;
  private readonly pruning: Upkeep;
  private readonly refreshing: Upkeep;
  /** Whether the last write of outcomes failed (the database away): no claims until one succeeds. */
  private recordingFails = false;
  /** When the cycle under way began: a claim and the launch of what it took. */
  private cycleStartedAt: number | undefined;
  /**
   * A cycle makes at most three queries, each bounded by the store's answer timeout: one that
   * takes longer than this is stuck, and readiness says so.
   */
  readonly cycleBoundMs: number;

  constructor(private readonly options: WorkerOptions) {
    // Every delivery in flight listens for shutdown: up to `concurrency` listeners, not a leak.
    setMaxListeners(0, this.shutdown.signal);
    this.pruning = new Upkeep('pruning old deliveries', options.log);
    this.refreshing = new Upkeep('refreshing queue statistics', options.log);
    this.cycleBoundMs = 3 * options.store.answerTimeoutMs + 5_000;
    this.policy = new AddressPolicy(options.config.allowedTargetCidrs);
    this.agent = deliveryAgent({
      policy: this.policy,
      connectionsPerOrigin: options.config.delivery.originConnections,
      ...(options.resolve && { resolve: options.resolve }),
      ...(options.ca && { ca: options.ca }),
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopListening = listenForDeliveries(this.options.store, this.wake, this.options.log);
    this.loop = this.run();
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS).unref();
  }

  /** Removes deliveries older than the retention period, in small batches, one run at a time. */
  private prune(): void {
    if (!this.running) return;
    const { config, store, log } = this.options;
    this.pruning.start(async () => {
      const pruned = await pruneOldDeliveries(store, Date.now() - config.retentionDays * DAY_MS, {
        keepGoing: () => this.running,
      });
      if (pruned.deliveries > 0 || pruned.events > 0) log.info(pruned, 'pruned old deliveries and events');
    });
  }

  /**
   * Why the loop counts as stuck, when a cycle has been under way for longer than its bound
   * (see `/readyz`); undefined while it goes round.
   */
  stalled(now = Date.now()): string | undefined {
    if (!this.running || this.cycleStartedAt === undefined) return undefined;
    const ms = now - this.cycleStartedAt;
    if (ms <= this.cycleBoundMs) return undefined;
    return `The worker's loop has not completed a cycle for ${Math.round(ms / 1000)} s (bound: ${Math.round(this.cycleBoundMs / 1000)} s).`;
  }

  /** Look for due work now. */
  readonly wake = (): void => {
    this.woken = true;
    this.wakeUp?.();
  };

  /**
   * Stops claiming, lets deliveries in flight finish for up to the grace period, then aborts
   * the rest and gives up their leases so that another worker (or the next start) takes them.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.pruneTimer);
    clearTimeout(this.gathering);
    this.wake();
    await this.loop;
    await this.pruning.done();
    await this.refreshing.done();
    await this.stopListening?.();
    const grace = new Promise((resolve) =>
      setTimeout(resolve, this.options.config.delivery.shutdownGraceMs).unref(),
    );
    await Promise.race([Promise.allSettled([...this.inFlight.values()]), grace]);
    if (this.inFlight.size > 0) {
      this.shutdown.abort();
      await Promise.allSettled([...this.inFlight.values()]);
    }
    await releaseDeliveries(this.options.store, this.id).catch((error) =>
      this.options.log.warn({ err: error }, 'could not release leases; they will expire'),
    );
    await this.agent.close();
  }

  private async run(): Promise<void> {
    const { delivery } = this.options.config;
    let failures = 0;
    while (this.running) {
      this.woken = false;
      this.backlog = false;
      this.cycleStartedAt = Date.now();
      try {
        // While outcomes cannot be written, nothing more is claimed: what it took could not be
        // recorded before its lease expired, and another worker would send it again.
        const free = this.recordingFails ? 0 : delivery.concurrency - this.inFlight.size;
        const claimedAt = Date.now();
        let full = false;
        if (free > 0) {
          const limit = Math.min(free, CLAIM_BATCH);
          this.freed = 0;
          clearTimeout(this.gathering);
          this.gathering = undefined;
          this.claiming = true;
          const claimed = await claimDeliveries(this.options.store, {
            workerId: this.id,
            now: claimedAt,
            limit,
            perWebhook: delivery.webhookConcurrency,
            busy: this.perWebhook,
            leaseMarginMs: delivery.leaseMarginMs,
          });
          this.claiming = false;
          this.options.metrics.claimSize.observe(claimed.length);
          await this.launch(claimed);
          this.keepStatisticsFresh(claimed.length);
          full = claimed.length === limit;
          // More may be due than one claim took: then a freed slot is worth another claim.
          this.backlog ||=
            full || [...this.perWebhook.values()].some((n) => n >= delivery.webhookConcurrency);
        } else {
          this.backlog = true;
        }
        this.cycleCompleted();
        failures = 0;
        if (full || this.woken || !this.running) continue;
        await this.sleep(this.retryTimes.untilNext(claimedAt, Date.now(), POLL_MS));
      } catch (error) {
        this.claiming = false;
        this.cycleCompleted();
        failures += 1;
        // Once per outage, then every tenth try: the database may be away for minutes.
        if (failures === 1 || failures % 10 === 0) {
          this.options.log.warn({ err: error, failures }, 'claiming deliveries failed; retrying');
        }
        this.woken = false;
        await this.sleep(Math.min(30_000, 100 * 2 ** Math.min(failures, 9)));
      }
    }
  }

  private cycleCompleted(): void {
    this.cycleStartedAt = undefined;
    this.options.metrics.workerLastCycle.set(Date.now() / 1000);
  }

  /**
   * Every minute of steady work, the queue's planner statistics are refreshed (PostgreSQL); the
   * first time as soon as work flows, since a new queue may have none. Claiming goes on meanwhile:
   * a vacuum of a large queue takes seconds.
   */
  private keepStatisticsFresh(claimed: number): void {
    this.claimedSinceAnalyze += claimed;
    const enough = this.analyzedAt === 0 ? CLAIM_BATCH : 1000;
    if (this.claimedSinceAnalyze < enough || Date.now() - this.analyzedAt < STATISTICS_EVERY_MS) return;
    if (this.refreshing.busy) return;
    this.claimedSinceAnalyze = 0;
    this.analyzedAt = Date.now();
    this.refreshing.start(async () => {
      const { vacuumed } = await refreshQueueStatistics(this.options.store);
      if (vacuumed && !this.vacuumNoted) {
        this.vacuumNoted = true;
        this.options.log.info(
          'autovacuum is off: the worker vacuums the delivery queue every minute of steady work',
        );
      }
    });
  }

  /** Waits `ms`, or less when woken or stopped. */
  private sleep(ms: number): Promise<void> {
    if (this.woken || !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  /** Starts sending what was claimed; what would pass a webhook's cap is handed back at once. */
  private async launch(claimed: ClaimedDelivery[]): Promise<void> {
    const cap = this.options.config.delivery.webhookConcurrency;
    const excess: string[] = [];
    for (const delivery of claimed) {
      const busy = this.perWebhook.get(delivery.webhook_id) ?? 0;
      if (busy >= cap) {
        excess.push(delivery.id);
        continue;
      }
      this.perWebhook.set(delivery.webhook_id, busy + 1);
      const done = this.deliver(delivery)
        .catch((error) => this.options.log.error({ err: error, delivery: delivery.id }, 'delivery failed'))
        .finally(() => {
          this.inFlight.delete(delivery.id);
          // Near the worker's own limit, its slots too hold claims back.
          if (this.inFlight.size >= this.options.config.delivery.concurrency - CLAIM_BATCH) this.slotFreed();
        });
      this.inFlight.set(delivery.id, done);
    }
    if (excess.length > 0) this.backlog = true;
    await releaseDeliveries(this.options.store, this.id, excess);
  }

  /**
   * A claim under way counted a slot as busy, or due work was left behind: look again once half a
   * webhook's worth of slots is free, or a moment later, so that one claim fills several slots (a
   * claim costs about as much for one delivery as for twenty).
   */
  private slotFreed(): void {
    if (!(this.backlog || this.claiming)) return;
    this.freed += 1;
    if (this.freed >= Math.ceil(this.options.config.delivery.webhookConcurrency / 2)) {
      this.wake();
      return;
    }
    this.gathering ??= setTimeout(() => {
      this.gathering = undefined;
      this.wake();
    }, GATHER_MS);
  }

  /** Gives back a webhook's slot. */
  private freeWebhookSlot(webhookId: number): void {
    const left = (this.perWebhook.get(webhookId) ?? 1) - 1;
    if (left > 0) this.perWebhook.set(webhookId, left);
    else this.perWebhook.delete(webhookId);
    this.slotFreed();
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const { config, metrics } = this.options;
    let result: SendResult;
    try {
      result = await send(
        {
          deliveryId: delivery.id,
          eventId: delivery.event_id,
          eventType: delivery.event_type,
          url: delivery.url,
          body: delivery.payload,
          customHeaders: delivery.headers,
          secrets: this.signingSecrets(delivery, Date.now()),
          timeoutMs: delivery.timeout_seconds * 1000,
        },
        { agent: this.agent, policy: this.policy, allowHttp: config.allowHttpTargets },
        this.shutdown.signal,
      );
    } finally {
      // The webhook's slot is free once its endpoint has answered (or failed to); the worker's slot
      // and the lease are held until the outcome is written.
      this.freeWebhookSlot(delivery.webhook_id);
    }
    // Aborted by shutdown: not the receiver's fault; the lease is released and it is sent again.
    if (this.shutdown.signal.aborted && result.statusCode === null) return;
    // An attempt asked for by hand is one attempt: when it fails, the delivery is failed again.
    const decision = decide(
      result,
      delivery.attempts + 1,
      delivery.manual === 1 ? 0 : delivery.retry_count,
      config.delivery.retrySchedule,
      Date.now(),
    );
    metrics.attemptDuration.observe(result.durationMs / 1000);
    await this.record({ delivery, attempt: result, decision });
    // Known once written; the loop then sleeps until it is due.
    if (decision.status === 'pending') {
      this.retryTimes.add(decision.nextAttemptAt);
      this.wake();
    }
    metrics.deliveries.inc({ outcome: decision.status === 'pending' ? 'retrying' : decision.status });
    if (decision.status === 'failed' && decision.deactivateWebhook) {
      this.options.log.warn({ webhook: delivery.webhook_id }, decision.deactivateWebhook);
    }
  }

  /**
   * The secrets to sign with, newest first: the webhook's secret, and during a rotation's grace
   * period the one it replaced. Both come with the claimed row, so a rotation made by any process
   * applies from the next claim on (the cache below is keyed by ciphertext, which a rotation changes).
   */
  private signingSecrets(delivery: ClaimedDelivery, now: number): string[] {
    const current = this.secret(delivery.secret_ciphertext);
    const previous = delivery.previous_secret_ciphertext;
    const expiresAt = delivery.previous_secret_expires_at;
    return previous && expiresAt !== null && now < expiresAt ? [current, this.secret(previous)] : [current];
  }

  /** Decrypted secrets by ciphertext: decrypting once per webhook, not once per delivery. */
  private secret(ciphertext: string): string {
    let secret = this.secrets.get(ciphertext);
    if (secret === undefined) {
      if (this.secrets.size > 10_000) this.secrets.clear();
      secret = decryptSecret(this.options.config.secretsKey, ciphertext);
      this.secrets.set(ciphertext, secret);
    }
    return secret;
  }

  /**
   * Outcomes are written in batches: those that finish while a write is under way go together
   * in the next one. A delivery keeps its slot in the worker (and its lease) until its outcome is
   * written; its webhook's slot is free once the endpoint has answered.
   */
  private record(outcome: Outcome): Promise<void> {
    return new Promise((resolve, reject) => {
      this.outbox.push({ outcome, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.outbox.length > 0) this.scheduleFlush();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.outbox.splice(0, FLUSH_BATCH);
    const { config, store, log } = this.options;
    // The outcome must be written: retry while the database is away, unless shutting down
    // (then the lease expires and the delivery is sent again: at least once).
    for (let tries = 0; ; tries++) {
      try {
        const { dropped } = await recordOutcomes(
          store,
          this.id,
          batch.map((b) => b.outcome),
          { afterMs: config.delivery.autoDisableAfterMs, minFailedDeliveries: AUTO_DISABLE_MIN_FAILED },
        );
        // Written already (a commit whose answer was lost), or taken over by another worker after
        // the lease expired: that worker records its own attempt.
        if (dropped > 0)
          log.info({ dropped, tries: tries + 1 }, "outcomes not written: no longer this worker's");
        for (const b of batch) b.resolve();
        if (this.recordingFails) {
          this.recordingFails = false;
          this.wake();
        }
        return;
      } catch (error) {
        this.recordingFails = true;
        if (!this.running && tries >= 2) {
          for (const b of batch) b.reject(error);
          return;
        }
        if (tries === 0 || tries % 10 === 9) {
          log.warn(
            { err: error, deliveries: batch.length, tries: tries + 1 },
            'recording attempts failed; retrying',
          );
        }
        // Soon: outcomes wait behind this batch, and their leases run out.
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 100 * 2 ** tries)));
      }
    }
  }
}

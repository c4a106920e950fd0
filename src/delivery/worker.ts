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
import { type ClaimedDelivery, claimDeliveries, releaseDeliveries } from '../store/deliveries.js';
import { listenForDeliveries } from '../store/wakeups.js';
import { Breaker } from './breaker.js';
import { BusyCounts } from './busy-counts.js';
import { DueTimes } from './due-times.js';
import { OutcomeWriter } from './outcome-writer.js';
import { deliveryAgent, type Resolver } from './safe-agent.js';
import { type SendResult, send } from './sender.js';
import { Upkeep } from './upkeep.js';
import type { WorkerLog } from './worker-log.js';

export interface WorkerOptions {
  config: Config;
  store: Store;
  metrics: Metrics;
  log: WorkerLog;
  /** Tests: map host names to addresses of their choosing, and trust their CA. */
  resolve?: Resolver;
  ca?: string[];
  /** How long the worker waits for due work without a wake-up (tests lengthen it: see POLL_MS). */
  pollMs?: number;
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
/** Deliveries that exhaust their retries before a failing webhook is switched off. */
const AUTO_DISABLE_MIN_FAILED = 5;

/**
 * The delivery worker: claims due deliveries with a lease, sends them with at most
 * `concurrency` in flight (and at most `webhookConcurrency` to one webhook, so that a slow
 * endpoint cannot hold up the others), records each attempt and schedules the next.
 */
export class DeliveryWorker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly busyWebhooks: BusyCounts;
  private readonly busyTenants: BusyCounts;
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
  /** Slots freed since the last claim, and the timer that claims them if no more come. */
  private freed = 0;
  private gathering: NodeJS.Timeout | undefined;
  private readonly upkeep: Upkeep;
  private readonly outcomes: OutcomeWriter;
  private readonly breaker: Breaker;
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
    this.busyWebhooks = new BusyCounts(options.config.delivery.webhookConcurrency);
    this.busyTenants = new BusyCounts(options.config.delivery.tenantConcurrency);
    this.upkeep = new Upkeep(options.config, options.store, options.log);
    const { delivery } = options.config;
    this.outcomes = new OutcomeWriter(
      options.store,
      this.id,
      {
        autoDisable: { afterMs: delivery.autoDisableAfterMs, minFailedDeliveries: AUTO_DISABLE_MIN_FAILED },
        breaker: {
          probeIntervalMs: delivery.recoveryProbeIntervalMs,
          catchUpWindowMs: delivery.catchUpWindowMs,
        },
      },
      options.log,
      {
        running: () => this.running,
        recovered: this.wake,
        breakerChanged: (changes) => this.breaker.changed(changes),
      },
    );
    this.breaker = new Breaker(options.config, options.store, options.log);
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
    this.upkeep.start();
    this.breaker.start();
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
    clearTimeout(this.gathering);
    this.wake();
    await this.loop;
    await this.upkeep.stop();
    await this.breaker.stop();
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
        const free = this.outcomes.failing ? 0 : delivery.concurrency - this.inFlight.size;
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
            perTenant: delivery.tenantConcurrency,
            busyWebhooks: this.busyWebhooks.counts,
            busyTenants: this.busyTenants.counts,
            leaseMarginMs: delivery.leaseMarginMs,
          });
          this.claiming = false;
          this.options.metrics.claimSize.observe(claimed.length);
          await this.launch(claimed);
          this.upkeep.claimed(claimed.length);
          full = claimed.length === limit;
          // More may be due than one claim took: then a freed slot is worth another claim.
          this.backlog ||= full || this.busyWebhooks.anyFull() || this.busyTenants.anyFull();
        } else {
          this.backlog = true;
        }
        this.cycleCompleted();
        failures = 0;
        if (full || this.woken || !this.running) continue;
        await this.sleep(this.retryTimes.untilNext(claimedAt, Date.now(), this.options.pollMs ?? POLL_MS));
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

  /**
   * Starts sending what was claimed; what would pass a webhook's or a tenant's cap (a claim under
   * way when others were launched) is handed back at once.
   */
  private async launch(claimed: ClaimedDelivery[]): Promise<void> {
    const excess: string[] = [];
    for (const delivery of claimed) {
      if (this.busyWebhooks.full(delivery.webhook_id) || this.busyTenants.full(delivery.tenant_id)) {
        excess.push(delivery.id);
        continue;
      }
      this.busyWebhooks.take(delivery.webhook_id);
      this.busyTenants.take(delivery.tenant_id);
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

  /** Gives back the slots a delivery held of its webhook and its tenant. */
  private freeSlots(delivery: ClaimedDelivery): void {
    this.busyWebhooks.give(delivery.webhook_id);
    this.busyTenants.give(delivery.tenant_id);
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
      // The webhook's and the tenant's slots are free once the endpoint has answered (or failed
      // to); the worker's slot and the lease are held until the outcome is written.
      this.freeSlots(delivery);
    }
    // Aborted by shutdown: not the receiver's fault; the lease is released and it is sent again.
    if (this.shutdown.signal.aborted && result.statusCode === null) return;
    // An attempt asked for by hand is one attempt: when it fails, the delivery is failed again.
    // A delivery caught up after an outage has its retries anew.
    const decision = decide(
      result,
      delivery.attempts + 1 - (delivery.catch_up_from ?? 0),
      delivery.manual === 1 ? 0 : delivery.retry_count,
      config.delivery.retrySchedule,
      Date.now(),
    );
    metrics.attemptDuration.observe(result.durationMs / 1000);
    await this.outcomes.record({ delivery, attempt: result, decision });
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
}

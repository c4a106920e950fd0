import type { Config } from '../config.js';
import { type BreakerChanges, queueProbes } from '../store/breaker.js';
import type { Store } from '../store/db.js';
import { wakeWorkers } from '../store/wakeups.js';
import type { WorkerLog } from './worker-log.js';

/** How often a worker looks for failing webhooks whose probe is due (or the interval, if shorter). */
const LOOK_EVERY_MS = 5_000;

/**
 * A worker's part of the circuit breakers (the states and transitions are in
 * src/store/breaker.ts): it queues the probes of failing webhooks when their time comes, and logs
 * the webhooks that became failing or recovered in its writes.
 */
export class Breaker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: WorkerLog,
  ) {}

  start(): void {
    const every = Math.min(LOOK_EVERY_MS, this.config.delivery.recoveryProbeIntervalMs);
    this.timer = setInterval(() => this.probe(), every).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private probe(): void {
    if (this.running) return;
    this.running = queueProbes(this.store, Date.now(), this.config.delivery.recoveryProbeIntervalMs)
      .then((queued) => {
        if (queued > 0) this.log.info({ probes: queued }, 'probing failing webhooks');
      })
      .catch((error) => this.log.warn({ err: error }, 'queueing probes failed; trying again later'))
      .finally(() => {
        this.running = undefined;
      });
  }

  changed(changes: BreakerChanges): void {
    const interval = this.config.delivery.recoveryProbeIntervalMs / 1000;
    for (const { webhookId } of changes.failing) {
      this.log.warn(
        { webhook: webhookId, probe_interval_seconds: interval },
        'webhook is failing: its deliveries are held and one is sent as a probe at each interval',
      );
    }
    for (const { webhookId, caughtUp } of changes.recovered) {
      this.log.info({ webhook: webhookId, caught_up: caughtUp }, 'webhook recovered: its deliveries go on');
    }
    // Its held and caught-up deliveries are due now, in this worker and others.
    if (changes.recovered.length > 0) {
      wakeWorkers(this.store).catch((error) => this.log.warn({ err: error }, 'waking workers failed'));
    }
  }
}

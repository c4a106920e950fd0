import type { Config } from '../config.js';
import { type BreakerChanges, queueProbes } from '../store/breaker.js';
import type { Store } from '../store/db.js';
import { BackgroundJob } from './upkeep.js';
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
  private readonly probing: BackgroundJob;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: WorkerLog,
  ) {
    this.probing = new BackgroundJob('queueing probes', log);
  }

  start(): void {
    const every = Math.min(LOOK_EVERY_MS, this.config.delivery.recoveryProbeIntervalMs);
    this.timer = setInterval(() => this.probe(), every).unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.probing.done();
  }

  private probe(): void {
    this.probing.start(async () => {
      const queued = await queueProbes(this.store, Date.now(), this.config.delivery.recoveryProbeIntervalMs);
      if (queued > 0) this.log.info({ probes: queued }, 'probing failing webhooks');
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
  }
}

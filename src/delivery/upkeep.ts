import type { Config } from '../config.js';
import { DAY_MS } from '../domain/retry-schedule.js';
import type { Store } from '../store/db.js';
import { refreshQueueStatistics } from '../store/deliveries.js';
import { pruneOldDeliveries } from '../store/retention.js';
import type { WorkerLog } from './worker-log.js';

/** Old deliveries are pruned at start and this often (see RETENTION_DAYS). */
const PRUNE_EVERY_MS = 5 * 60_000;
const STATISTICS_EVERY_MS = 60_000;
/** Deliveries claimed before the first refresh of a new queue's statistics, then between refreshes. */
const FIRST_REFRESH_AFTER = 100;
const REFRESH_AFTER = 1000;

/** One job beside the claims, one run at a time; a failed run is logged and tried again later. */
export class BackgroundJob {
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
 * A worker's upkeep: pruning deliveries past their retention, and keeping the queue's planner
 * statistics fresh (PostgreSQL). Neither holds up claims.
 */
export class Upkeep {
  private readonly pruning: BackgroundJob;
  private readonly refreshing: BackgroundJob;
  private pruneTimer: NodeJS.Timeout | undefined;
  private running = false;
  private claimedSinceAnalyze = 0;
  private analyzedAt = 0;
  private vacuumNoted = false;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly log: WorkerLog,
  ) {
    this.pruning = new BackgroundJob('pruning old deliveries', log);
    this.refreshing = new BackgroundJob('refreshing queue statistics', log);
  }

  start(): void {
    this.running = true;
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS).unref();
  }

  /** Stops the timer and waits for a run under way. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.pruneTimer);
    await this.pruning.done();
    await this.refreshing.done();
  }

  /** Removes deliveries older than the retention period, in small batches, one run at a time. */
  private prune(): void {
    if (!this.running) return;
    this.pruning.start(async () => {
      const pruned = await pruneOldDeliveries(this.store, Date.now() - this.config.retentionDays * DAY_MS, {
        keepGoing: () => this.running,
      });
      if (pruned.deliveries > 0 || pruned.events > 0)
        this.log.info(pruned, 'pruned old deliveries and events');
    });
  }

  /**
   * Every minute of steady work, the queue's planner statistics are refreshed (PostgreSQL); the
   * first time as soon as work flows, since a new queue may have none. Claiming goes on meanwhile:
   * a vacuum of a large queue takes seconds.
   */
  claimed(count: number): void {
    this.claimedSinceAnalyze += count;
    const enough = this.analyzedAt === 0 ? FIRST_REFRESH_AFTER : REFRESH_AFTER;
    if (this.claimedSinceAnalyze < enough || Date.now() - this.analyzedAt < STATISTICS_EVERY_MS) return;
    if (this.refreshing.busy) return;
    this.claimedSinceAnalyze = 0;
    this.analyzedAt = Date.now();
    this.refreshing.start(async () => {
      const { vacuumed } = await refreshQueueStatistics(this.store);
      if (vacuumed && !this.vacuumNoted) {
        this.vacuumNoted = true;
        this.log.info('autovacuum is off: the worker vacuums the delivery queue every minute of steady work');
      }
    });
  }
}

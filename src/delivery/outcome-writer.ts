import type { BreakerChanges } from '../store/breaker.js';
import type { Store } from '../store/db.js';
import { type Outcome, type OutcomeRules, recordOutcomes } from '../store/deliveries.js';
import { wakeMailers } from '../store/mails.js';
import { wakeWorkers } from '../store/wakeups.js';
import type { WorkerLog } from './worker-log.js';

/** At most this many outcomes in one write. */
const FLUSH_BATCH = 500;

interface Pending {
  outcome: Outcome;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Writes a worker's outcomes in batches: those that finish while a write is under way go together
 * in the next one. A write that fails (the database away) is retried, soon, until it succeeds;
 * meanwhile `failing` is true and the worker claims nothing, since what it took could not be
 * recorded before its lease expired and another worker would send it again.
 */
export class OutcomeWriter {
  private readonly outbox: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  /** Whether the last write failed: no claims until one succeeds. */
  failing = false;

  constructor(
    private readonly store: Store,
    private readonly workerId: string,
    private readonly rules: OutcomeRules,
    private readonly log: WorkerLog,
    private readonly hooks: {
      /** Whether to keep retrying a failed write; when not, a batch is given up after 3 tries. */
      running: () => boolean;
      /** Told when writes succeed again after failing. */
      recovered: () => void;
      /** Told of webhooks that became failing or recovered in a write. */
      breakerChanged: (changes: BreakerChanges) => void;
    },
  ) {}

  /** Resolves once the outcome is written (or dropped: no longer this worker's). */
  record(outcome: Outcome): Promise<void> {
    return new Promise((resolve, reject) => {
      this.outbox.push({ outcome, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.outbox.length > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.outbox.splice(0, FLUSH_BATCH);
    // The outcome must be written: retry while the database is away, unless shutting down
    // (then the lease expires and the delivery is sent again: at least once).
    for (let tries = 0; ; tries++) {
      try {
        const { dropped, breaker, announced } = await recordOutcomes(
          this.store,
          this.workerId,
          batch.map((b) => b.outcome),
          this.rules,
        );
        if (breaker.failing.length > 0 || breaker.recovered.length > 0) this.hooks.breakerChanged(breaker);
        // Due now, in this worker or others: deliveries of operational events, and a recovered
        // webhook's held and caught-up ones. Operational events may also have queued mails.
        if (announced.deliveries > 0 || breaker.recovered.length > 0)
          wakeWorkers(this.store).catch((error) => this.log.warn({ err: error }, 'waking workers failed'));
        if (announced.mails > 0) wakeMailers(this.store);
        // Written already (a commit whose answer was lost), or taken over by another worker after
        // the lease expired: that worker records its own attempt.
        if (dropped > 0)
          this.log.info({ dropped, tries: tries + 1 }, "outcomes not written: no longer this worker's");
        for (const b of batch) b.resolve();
        if (this.failing) {
          this.failing = false;
          this.hooks.recovered();
        }
        return;
      } catch (error) {
        this.failing = true;
        if (!this.hooks.running() && tries >= 2) {
          for (const b of batch) b.reject(error);
          return;
        }
        if (tries === 0 || tries % 10 === 9) {
          this.log.warn(
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

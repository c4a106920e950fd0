import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from './store/db.js';
import { queueHealth } from './store/deliveries.js';
import { pendingMailCount } from './store/mails.js';

/** The Prometheus metrics of one process, served at `/metrics`. */
export class Metrics {
  readonly registry = new Registry();

  readonly deliveries = new Counter({
    name: 'webhook_deliveries_total',
    help: 'Delivery attempts by outcome: succeeded, retrying (failed, will be retried) or failed (gave up).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly claimSize = new Histogram({
    name: 'webhook_claim_size',
    help: 'Deliveries leased per claim of a worker (each claim is one query).',
    buckets: [0, 1, 2, 5, 10, 25, 50, 100],
    registers: [this.registry],
  });

  readonly attemptDuration = new Histogram({
    name: 'webhook_attempt_duration_seconds',
    help: 'Time from sending a delivery to its answer (or error).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly httpRequests = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'API requests by method, route and status.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly mails = new Counter({
    name: 'webhook_mails_total',
    help: 'Notification mails to tenants by outcome of a try: sent, retrying (failed, will be tried again) or failed (given up).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly workerLastCycle = new Gauge({
    name: 'webhook_worker_last_cycle_timestamp_seconds',
    help: "Unix time at which the worker's loop last completed a cycle (a claim, or a failed one); stays still while the loop is stuck.",
    registers: [this.registry],
  });

  constructor(store: Store) {
    // The process's own: memory, heap, event-loop delay, CPU, open handles.
    collectDefaultMetrics({ register: this.registry });
    let health: Promise<{ due: number; oldestDueAgeSeconds: number }> | undefined;
    // One query serves both gauges of a scrape.
    const read = () => {
      health ??= queueHealth(store, Date.now()).finally(() => {
        setImmediate(() => {
          health = undefined;
        });
      });
      return health;
    };
    new Gauge({
      name: 'webhook_queue_due',
      help: 'Pending deliveries due now.',
      registers: [this.registry],
      async collect() {
        this.set((await read()).due);
      },
    });
    new Gauge({
      name: 'webhook_queue_oldest_due_age_seconds',
      help: 'How long the oldest due delivery has been waiting.',
      registers: [this.registry],
      async collect() {
        this.set((await read()).oldestDueAgeSeconds);
      },
    });
    new Gauge({
      name: 'webhook_mails_pending',
      help: 'Notification mails waiting to be sent (a mail server away makes them pile up).',
      registers: [this.registry],
      async collect() {
        this.set(await pendingMailCount(store));
      },
    });
  }
}

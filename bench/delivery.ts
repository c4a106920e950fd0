/**
 * Delivery benchmark: deliveries per second to a local HTTPS receiver (SQLite; PostgreSQL with
 * one and two worker processes), and publish-to-arrival latency at a steady publish rate.
 *
 *   npm run bench:delivery -- [--events 20000] [--rate 500] [--seconds 20] [--runs 3] [--only NAME]
 *
 * PostgreSQL runs when BENCH_DATABASE_URL is set. Results go to bench/results/.
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  BenchReceiver,
  call,
  certificate,
  type Deployment,
  deploy,
  percentile,
  ROOT,
  tenantWithWebhooks,
  writeCa,
} from './lib.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '20' },
    only: { type: 'string', default: '' },
    runs: { type: 'string', default: '1' },
  },
});
const EVENTS = Number(values.events);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const pgUrl = process.env.BENCH_DATABASE_URL;

const tls = await certificate();
const caFile = writeCa(tls.cert);
const receiver = await new BenchReceiver().start(tls);

const until = (check: () => boolean, timeoutMs: number) =>
  new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error('timed out'));
      setTimeout(tick, 5);
    };
    tick();
  });

async function throughput(label: string, deployment: Deployment): Promise<Record<string, number | string>> {
  receiver.reset();
  const slug = await tenantWithWebhooks(deployment.apiPort, receiver.port, 1);
  const started = performance.now();
  for (let sent = 0; sent < EVENTS; sent += 1000) {
    const events = Array.from({ length: Math.min(1000, EVENTS - sent) }, (_, i) => ({
      tenant: slug,
      type: 'invoice.paid',
      data: { invoice_id: sent + i, amount: '119.00', currency: 'EUR' },
    }));
    await call(deployment.apiPort, 'POST', '/internal/v1/events/batch', { events });
  }
  const published = performance.now();
  await until(() => receiver.arrivals.size >= EVENTS, 600_000);
  const last = Math.max(...receiver.arrivals.values());
  const seconds = (last - started) / 1000;
  return {
    scenario: `throughput ${label}`,
    events: EVENTS,
    publish_seconds: +((published - started) / 1000).toFixed(2),
    seconds: +seconds.toFixed(2),
    deliveries_per_second: Math.round(EVENTS / seconds),
  };
}

async function latency(label: string, deployment: Deployment): Promise<Record<string, number | string>> {
  receiver.reset();
  const slug = await tenantWithWebhooks(deployment.apiPort, receiver.port, 1);
  const total = RATE * SECONDS;
  const publishedAt = new Map<string, number>();
  const answered: number[] = [];
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const sentAt = performance.now();
    pending.push(
      call(deployment.apiPort, 'POST', '/internal/v1/events', {
        tenant: slug,
        type: 'invoice.paid',
        data: { n: i },
      }).then((res) => {
        publishedAt.set(res.data.id, sentAt);
        answered.push(performance.now() - sentAt);
      }),
    );
  }
  await Promise.all(pending);
  const achieved = total / ((performance.now() - start) / 1000);
  await until(() => receiver.arrivals.size >= total, 120_000);
  const latencies = [...publishedAt]
    .map(([id, at]) => (receiver.arrivals.get(id) as number) - at)
    .sort((a, b) => a - b);
  return {
    scenario: `latency ${label} at ${RATE}/s for ${SECONDS}s`,
    events: total,
    achieved_rate: Math.round(achieved),
    p50_ms: +percentile(latencies, 50).toFixed(1),
    p95_ms: +percentile(latencies, 95).toFixed(1),
    p99_ms: +percentile(latencies, 99).toFixed(1),
    max_ms: +(latencies.at(-1) as number).toFixed(1),
    publish_p50_ms: +percentile(
      answered.sort((a, b) => a - b),
      50,
    ).toFixed(1),
    publish_p99_ms: +percentile(answered, 99).toFixed(1),
  };
}

type Row = Record<string, number | string>;
const runs: Row[][] = [];
const setups: [string, () => Promise<Deployment>][] = [['sqlite', () => deploy({ caFile })]];
if (pgUrl) {
  setups.push(['postgres, 1 worker', () => deploy({ caFile, databaseUrl: pgUrl, workers: 1 })]);
  setups.push(['postgres, 2 workers', () => deploy({ caFile, databaseUrl: pgUrl, workers: 2 })]);
}
for (let run = 0; run < Number(values.runs); run++) {
  const rows: Row[] = [];
  for (const [label, start] of setups) {
    for (const scenario of [throughput, latency]) {
      if (!`${scenario.name} ${label}`.includes(values.only ?? '')) continue;
      const deployment = await start();
      try {
        const row = await scenario(label, deployment);
        console.log(JSON.stringify(row));
        rows.push(row);
      } finally {
        await deployment.stop();
      }
    }
  }
  runs.push(rows);
}

/** Each scenario's median over the runs, field by field. */
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};
const rows: Row[] = (runs[0] ?? []).map((first, i) =>
  Object.fromEntries(
    Object.entries(first).map(([key, value]) =>
      typeof value === 'number' ? [key, median(runs.map((r) => r[i]?.[key] as number))] : [key, value],
    ),
  ),
);
await receiver.stop();

const machine = {
  cpu: os.cpus()[0]?.model,
  cores: os.cpus().length,
  memory_gib: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  commit: execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim(),
  date: new Date().toISOString(),
};
console.log(`medians of ${runs.length} run(s):`);
console.table(rows);
console.log(machine);
const dir = path.join(ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = path.join(dir, `delivery-${machine.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ machine, runs: runs.length, medians: rows, all: runs }, null, 2)}\n`);
console.log(`written to ${path.relative(ROOT, file)}`);
process.exit(0);

/**
 * The benchmark suite: the service (built `dist/`, separate processes) against a local HTTPS
 * receiver, beside the ceiling of the same machine.
 *
 *   npm run bench                 full run, medians of 3
 *   npm run bench -- --quick      smaller sizes, one run, under 3 minutes
 *   npm run bench -- --only NAME  scenarios whose name contains NAME (or one of NAME,NAME2)
 *
 * PostgreSQL scenarios run when BENCH_DATABASE_URL is set. Results: a table on the terminal,
 * bench/results/*.json and docs/benchmarks.md.
 */
import { execSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { Agent, request } from 'undici';
import { signatureHeaders } from '../src/domain/signing.js';
import {
  ADMIN_TOKEN,
  BenchReceiver,
  call,
  certificate,
  type Deployment,
  deploy,
  freePort,
  publishMany,
  ROOT,
  type Role,
  rss,
  tenantWithWebhooks,
  until,
  writeCa,
} from './lib.js';
import { type Row, writeReport } from './report.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string', default: '' },
  },
});
const QUICK = values.quick ?? false;
const RUNS = Number(values.runs ?? (QUICK ? 1 : 3));
const SIZE = {
  ceiling: QUICK ? 10_000 : 50_000,
  throughput: QUICK ? 10_000 : 50_000,
  latencySeconds: QUICK ? 5 : 20,
  fanout: 1000,
  isolationSeconds: QUICK ? 5 : 10,
  /** Noisy neighbour: B's seconds at its rate, A's hanging deliveries, and how long B's may take. */
  noisySeconds: QUICK ? 5 : 20,
  noisyDeliveries: 3000,
  noisyWaitSeconds: QUICK ? 60 : 120,
  backlog: QUICK ? 20_000 : 200_000,
  apiSeconds: QUICK ? 3 : 10,
  /** Deliveries in the database of the start scenario, and how many times it starts. */
  startDeliveries: QUICK ? 10_000 : 50_000,
  starts: QUICK ? 5 : 9,
};
const pgUrl = process.env.BENCH_DATABASE_URL;
const DATABASES: { name: string; url?: string; workers: number }[] = [
  { name: 'sqlite', workers: 1 },
  ...(pgUrl
    ? [
        { name: 'postgres 1 worker', url: pgUrl, workers: 1 },
        { name: 'postgres 2 workers', url: pgUrl, workers: 2 },
      ]
    : []),
];

const tls = await certificate();
const caFile = writeCa(tls.cert);
const receiver = await new BenchReceiver().start(tls);

const roles = (db: { url?: string; workers: number }): Role[] =>
  db.url ? ['api', ...Array<Role>(db.workers).fill('worker')] : ['all'];
const up = (db: { url?: string; workers: number }, env: Record<string, string> = {}) =>
  deploy({ databaseUrl: db.url, roles: roles(db), caFile, env });

async function withDeployment<T>(deployment: Deployment, work: (d: Deployment) => Promise<T>): Promise<T> {
  try {
    return await work(deployment);
  } finally {
    await deployment.stop();
  }
}

const secs = (ms: number) => +(ms / 1000).toFixed(2);
const ms = (value: number) => +value.toFixed(1);

// ---- 1. Ceiling: the same receiver, payload and signing, sent by a plain loop with undici ----
async function ceiling(): Promise<Row> {
  receiver.reset();
  const agent = new Agent({ connections: 25, keepAliveTimeout: 30_000, connect: { ca: [tls.cert] } });
  const secret = `whsec_${randomSecret()}`;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 25 }, async () => {
      while (next < SIZE.ceiling) {
        const n = next++;
        const id = `evt_ceiling_${n}`;
        const body = JSON.stringify({
          id,
          type: 'invoice.paid',
          created_at: new Date().toISOString(),
          tenant: 'bench',
          data: { invoice_id: n, amount: '119.00', currency: 'EUR' },
        });
        const res = await request(`https://localhost:${receiver.port}/w/0`, {
          method: 'POST',
          dispatcher: agent,
          body,
          headers: {
            'content-type': 'application/json',
            'x-webhook-delivery': `dlv_${n}`,
            ...signatureHeaders([secret], id, Math.floor(Date.now() / 1000), body),
          },
        });
        await res.body.text();
      }
    }),
  );
  await agent.close();
  const seconds = (performance.now() - started) / 1000;
  return {
    scenario: 'ceiling (undici loop, 25 connections)',
    deliveries_per_second: Math.round(SIZE.ceiling / seconds),
  };
}

function randomSecret(): string {
  return Buffer.from(Array.from({ length: 32 }, () => Math.floor(Math.random() * 256))).toString('base64');
}

// ---- 1b. The API's ceiling: Fastify answering the list's own bytes, nothing else ----
async function apiCeiling(): Promise<Row> {
  const body = await withDeployment(await deploy({ roles: ['api'], caFile }), async (d) => {
    const { key } = await tenantWithWebhooks(d.apiPort, receiver.port, 50);
    return JSON.stringify(await call(d.apiPort, 'GET', '/api/v1/webhooks', undefined, key));
  });
  const file = path.join(path.dirname(caFile), 'webhooks.json');
  writeFileSync(file, body);
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'bench', 'api-ceiling.mjs'), file, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise((resolve, reject) => {
      child.stdout.once('data', resolve);
      child.once('exit', (code) => reject(new Error(`the API ceiling server exited with ${code}`)));
    });
    const result = await cannon(`http://127.0.0.1:${port}/api/v1/webhooks`, {});
    return {
      scenario: 'api ceiling (Fastify answering the same bytes)',
      per_second: Math.round(result.requests.average),
      p99_ms: result.latency.p99,
    };
  } finally {
    child.kill();
  }
}

// ---- 2. Throughput: N events to one webhook, from first publish to last arrival ----
async function throughput(db: (typeof DATABASES)[number]): Promise<Row> {
  return withDeployment(await up(db), async (d) => {
    receiver.reset();
    const { slug } = await tenantWithWebhooks(d.apiPort, receiver.port, 1);
    const started = performance.now();
    await publishMany(d.apiPort, slug, SIZE.throughput);
    const published = performance.now();
    await until(() => receiver.arrivals.size >= SIZE.throughput, 900_000, 'every delivery');
    const seconds = (Math.max(...receiver.arrivals.values()) - started) / 1000;
    return {
      scenario: `throughput ${db.name}`,
      events: SIZE.throughput,
      publish_seconds: secs(published - started),
      deliveries_per_second: Math.round(SIZE.throughput / seconds),
    };
  });
}

// ---- 3. Latency: a steady rate (a batch every 10 ms); publish call to arrival ----
/**
 * The first seconds at the rate warm the processes up (compiled code, connections, statements):
 * their events are sent but measured apart, as `cold_max_ms`; the percentiles are of the steady
 * seconds after them.
 */
const WARMUP_SECONDS = 2;

async function latency(db: (typeof DATABASES)[number], rate: number): Promise<Row> {
  return withDeployment(await up(db), async (d) => {
    receiver.reset();
    const { slug } = await tenantWithWebhooks(d.apiPort, receiver.port, 1);
    const sentAt = new Map<string, number>();
    const coldAt = new Map<string, number>();
    const perTick = rate / 100;
    const warmupTicks = 100 * WARMUP_SECONDS;
    const ticks = warmupTicks + 100 * SIZE.latencySeconds;
    const begin = performance.now();
    let start = begin;
    const calls: Promise<void>[] = [];
    for (let tick = 0; tick < ticks; tick++) {
      const wait = begin + tick * 10 - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      const at = performance.now();
      const events = Array.from({ length: perTick }, (_, i) => ({
        tenant: slug,
        type: 'invoice.paid',
        data: { n: tick * perTick + i },
      }));
      if (tick === warmupTicks) start = at;
      const sent = tick < warmupTicks ? coldAt : sentAt;
      calls.push(
        call(d.apiPort, 'POST', '/internal/v1/events/batch', { events }).then((res) => {
          for (const event of res.data) sent.set(event.id, at);
        }),
      );
    }
    await Promise.all(calls);
    const total = (ticks - warmupTicks) * perTick;
    const achieved = total / ((performance.now() - start) / 1000);
    await until(() => receiver.arrivals.size >= ticks * perTick, 300_000, 'every delivery');
    const histogram = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 600_000_000,
      numberOfSignificantValueDigits: 3,
    });
    for (const [id, at] of sentAt) {
      const arrival = receiver.arrivals.get(`${id} /w/0`) ?? at;
      histogram.recordValue(Math.max(1, Math.round((arrival - at) * 1000)));
    }
    const p = (q: number) => ms(histogram.getValueAtPercentile(q) / 1000);
    return {
      scenario: `latency ${db.name} at ${rate}/s`,
      events: total,
      achieved_rate: Math.round(achieved),
      p50_ms: p(50),
      p95_ms: p(95),
      p99_ms: p(99),
      max_ms: ms(histogram.maxValue / 1000),
      cold_max_ms: ms(
        Math.max(...[...coldAt].map(([id, at]) => (receiver.arrivals.get(`${id} /w/0`) ?? at) - at)),
      ),
    };
  });
}

// ---- 4. Fan-out: one event to 1,000 webhooks of one tenant ----
async function fanout(db: (typeof DATABASES)[number]): Promise<Row> {
  return withDeployment(await up(db), async (d) => {
    receiver.reset();
    const { slug } = await tenantWithWebhooks(d.apiPort, receiver.port, SIZE.fanout);
    const started = performance.now();
    await call(d.apiPort, 'POST', '/internal/v1/events', {
      tenant: slug,
      type: 'booth.assigned',
      data: { booth: 'A1' },
    });
    await until(() => receiver.arrivals.size >= SIZE.fanout, 120_000, 'every webhook');
    return {
      scenario: `fan-out ${db.name} to ${SIZE.fanout} webhooks`,
      last_arrival_ms: ms(Math.max(...receiver.arrivals.values()) - started),
    };
  });
}

// ---- 5. Isolation: 20 webhooks, one never answers; p99 of the other 19 ----
async function isolationRun(db: (typeof DATABASES)[number], withBad: boolean): Promise<number> {
  return withDeployment(await up(db), async (d) => {
    receiver.reset();
    receiver.hang.clear();
    const { slug } = await tenantWithWebhooks(d.apiPort, receiver.port, withBad ? 20 : 19, {
      timeout_seconds: 5,
    });
    if (withBad) receiver.hang.add('/w/19');
    const rate = 100;
    const total = rate * SIZE.isolationSeconds;
    const sentAt = new Map<string, number>();
    const start = performance.now();
    const calls: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / rate - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      const at = performance.now();
      calls.push(
        call(d.apiPort, 'POST', '/internal/v1/events', {
          tenant: slug,
          type: 'invoice.paid',
          data: { n: i },
        }).then((res) => {
          sentAt.set(res.data.id, at);
        }),
      );
    }
    await Promise.all(calls);
    await until(
      () => [...receiver.arrivals.keys()].filter((k) => !k.endsWith(' /w/19')).length >= total * 19,
      120_000,
      'the healthy webhooks',
    );
    const latencies: number[] = [];
    for (const [key, at] of receiver.arrivals) {
      const [id, path] = key.split(' ');
      if (path !== '/w/19') latencies.push(at - (sentAt.get(id as string) ?? at));
    }
    latencies.sort((a, b) => a - b);
    receiver.hang.clear();
    return latencies[Math.floor(latencies.length * 0.99)] as number;
  });
}

async function isolation(db: (typeof DATABASES)[number]): Promise<Row> {
  const without = await isolationRun(db, false);
  const withBad = await isolationRun(db, true);
  return {
    scenario: `isolation ${db.name} (19 healthy + 1 hanging)`,
    p99_without_ms: ms(without),
    p99_with_ms: ms(withBad),
    ratio: +(withBad / without).toFixed(2),
  };
}

// ---- 5b. Noisy neighbour: tenant B's latency while tenant A's deliveries hang ----
/**
 * Tenant A has 30 webhooks that never answer (timeout 30 s) with 3,000 deliveries due, on a
 * receiver of their own (another origin, as another customer's endpoints would be); tenant B then
 * publishes 50 events a second to one healthy webhook. Measured: B's publish call to arrival, in
 * a run with A and one without. B's first seconds at the rate (before A's deliveries are queued)
 * warm the processes up in both runs and are not measured. Events of B that have not arrived
 * within the bound count with the time waited for them (a lower bound).
 */
const NOISY_WEBHOOKS = 30;
const NOISY_RATE = 50;

async function noisyRun(
  db: (typeof DATABASES)[number],
  withA: boolean,
): Promise<{ latencies: number[]; arrived: number }> {
  return withDeployment(await up(db), async (d) => {
    const noisy = await new BenchReceiver().start(tls);
    try {
      receiver.reset();
      const b = await tenantWithWebhooks(d.apiPort, receiver.port, 1);
      /** B's events at its rate for `seconds`: id -> when its publish call was made. */
      const publish = async (seconds: number) => {
        const total = NOISY_RATE * seconds;
        const sentAt = new Map<string, number>();
        const start = performance.now();
        const calls: Promise<void>[] = [];
        for (let i = 0; i < total; i++) {
          const wait = start + (i * 1000) / NOISY_RATE - performance.now();
          if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
          const at = performance.now();
          calls.push(
            call(d.apiPort, 'POST', '/internal/v1/events', {
              tenant: b.slug,
              type: 'invoice.paid',
              data: { n: i },
            }).then((res) => {
              sentAt.set(res.data.id, at);
            }),
          );
        }
        await Promise.all(calls);
        return sentAt;
      };
      const warm = await publish(WARMUP_SECONDS);
      await until(() => receiver.arrivals.size >= warm.size, 30_000, "B's warm-up deliveries");
      if (withA) {
        const a = await tenantWithWebhooks(d.apiPort, noisy.port, NOISY_WEBHOOKS, { timeout_seconds: 30 });
        for (let i = 0; i < NOISY_WEBHOOKS; i++) noisy.hang.add(`/w/${i}`);
        await publishMany(d.apiPort, a.slug, SIZE.noisyDeliveries / NOISY_WEBHOOKS);
        // A's deliveries are due and being sent before B starts.
        await until(() => noisy.count > 0, 10_000, "A's first delivery");
      }
      const sentAt = await publish(SIZE.noisySeconds);
      await until(
        () => receiver.arrivals.size >= warm.size + sentAt.size,
        SIZE.noisyWaitSeconds * 1000,
        "B's deliveries",
      ).catch(() => {}); // counted below
      const waited = performance.now();
      let arrived = 0;
      const latencies = [...sentAt].map(([id, at]) => {
        const arrival = receiver.arrivals.get(`${id} /w/0`);
        if (arrival !== undefined) arrived += 1;
        return (arrival ?? waited) - at;
      });
      return { latencies, arrived };
    } finally {
      // Ends A's requests in flight, so the service stops without waiting for them.
      await noisy.stop();
    }
  });
}

async function noisyNeighbour(db: (typeof DATABASES)[number]): Promise<Row> {
  const without = await noisyRun(db, false);
  const withA = await noisyRun(db, true);
  const percentiles = (latencies: number[]) => {
    const histogram = hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 600_000_000,
      numberOfSignificantValueDigits: 3,
    });
    for (const latency of latencies) histogram.recordValue(Math.max(1, Math.round(latency * 1000)));
    const p = (q: number) => ms(histogram.getValueAtPercentile(q) / 1000);
    return { p50: p(50), p99: p(99), max: ms(histogram.maxValue / 1000) };
  };
  const a = percentiles(without.latencies);
  const b = percentiles(withA.latencies);
  const target = 1.5 * a.p99 + 20;
  return {
    scenario: `noisy neighbour ${db.name} (B at ${NOISY_RATE}/s; A: ${SIZE.noisyDeliveries} to ${NOISY_WEBHOOKS} hanging)`,
    events: without.latencies.length,
    arrived_without: without.arrived,
    p50_without_ms: a.p50,
    p99_without_ms: a.p99,
    arrived_with: withA.arrived,
    p50_with_ms: b.p50,
    p99_with_ms: b.p99,
    max_with_ms: b.max,
    ratio: +(b.p99 / a.p99).toFixed(2),
    target_ms: ms(target),
    target_met: b.p99 <= target ? 'yes' : 'no',
  };
}

// ---- 6. Backlog: deliveries queued while nothing delivers, then drained ----
async function backlog(db: (typeof DATABASES)[number]): Promise<Row> {
  // The API alone queues the backlog (as if the receiver had been down); then the workers start.
  const d = await deploy({ databaseUrl: db.url, roles: ['api'], caFile });
  return withDeployment(d, async () => {
    receiver.reset();
    const { slug } = await tenantWithWebhooks(d.apiPort, receiver.port, 1);
    await publishMany(d.apiPort, slug, SIZE.backlog);
    await d.stopProcesses();
    const started = performance.now();
    const workers = db.url
      ? await Promise.all(Array.from({ length: db.workers }, () => d.start('worker')))
      : [await d.start('all')];
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(workers.reduce((sum, w) => sum + rss(w.pid), 0)), 100);
    await until(() => receiver.arrivals.size >= SIZE.backlog, 1_800_000, 'the backlog to drain');
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    const quarter = (i: number) =>
      samples[Math.min(samples.length - 1, Math.floor((samples.length * i) / 4))] ?? 0;
    const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
    return {
      scenario: `backlog ${db.name} of ${SIZE.backlog}`,
      drain_per_second: Math.round(SIZE.backlog / seconds),
      peak_rss_mb: mb(Math.max(...samples)),
      rss_at_25_50_75_100_mb: [1, 2, 3, 4].map((i) => mb(quarter(i))).join('/'),
    };
  });
}

// ---- 7. API: autocannon against reads and batch publishing ----
async function cannon(url: string, options: Partial<autocannon.Options>): Promise<autocannon.Result> {
  return autocannon({ url, connections: 20, duration: SIZE.apiSeconds, ...options });
}

async function api(db: (typeof DATABASES)[number]): Promise<Row[]> {
  return withDeployment(await deploy({ databaseUrl: db.url, roles: ['api'], caFile }), async (d) => {
    const { key, ids } = await tenantWithWebhooks(d.apiPort, receiver.port, 50);
    const base = `http://127.0.0.1:${d.apiPort}`;
    const auth = { authorization: `Bearer ${key}` };
    const list = await cannon(`${base}/api/v1/webhooks`, { headers: auth });
    const show = await cannon(`${base}/api/v1/webhooks/${ids[0]}`, { headers: auth });
    // Batch publishing for a tenant with one webhook: events in, deliveries queued.
    const other = await tenantWithWebhooks(d.apiPort, receiver.port, 1);
    const events = Array.from({ length: 100 }, (_, i) => ({
      tenant: other.slug,
      type: 'contact.created',
      data: { n: i },
    }));
    const batch = await cannon(`${base}/internal/v1/events/batch`, {
      method: 'POST',
      connections: 4,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    const row = (name: string, r: autocannon.Result, per = 1): Row => ({
      scenario: `api ${db.name} ${name}`,
      per_second: Math.round(r.requests.average * per),
      p99_ms: r.latency.p99,
      errors: r.errors + r.non2xx,
    });
    return [
      row('GET /api/v1/webhooks (50)', list),
      row('GET /api/v1/webhooks/{id}', show),
      row('batch publish, events', batch, 100),
    ];
  });
}

// ---- 8. Start: restarts of `serve --role all` on an existing SQLite database ----
/** From spawning `serve` to its first 200 on `/healthz`, and on `/readyz`, in milliseconds. */
async function timeStart(
  env: Record<string, string>,
  port: number,
): Promise<{ healthz: number; readyz: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['dist/cli.js', 'serve', '--role', 'all'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const ok = async (url: string) => {
    try {
      const res = await request(`http://127.0.0.1:${port}${url}`, { reset: true });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false; // not listening yet
    }
  };
  try {
    let healthz: number | undefined;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
      if (performance.now() - started > 60_000) throw new Error('serve was not ready within 60 s');
      if (healthz === undefined && (await ok('/healthz'))) healthz = performance.now() - started;
      if (healthz !== undefined && (await ok('/readyz'))) {
        return { healthz, readyz: performance.now() - started };
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

async function start(): Promise<Row> {
  return withDeployment(await deploy({ roles: ['all'], caFile }), async (d) => {
    receiver.reset();
    const { slug } = await tenantWithWebhooks(d.apiPort, receiver.port, 1);
    await publishMany(d.apiPort, slug, SIZE.startDeliveries);
    await until(() => receiver.arrivals.size >= SIZE.startDeliveries, 600_000, 'every delivery');
    await d.stopProcesses();
    const times: { healthz: number; readyz: number }[] = [];
    for (let i = 0; i < SIZE.starts; i++) times.push(await timeStart(d.env, d.apiPort));
    const middle = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] as number;
    return {
      scenario: `start sqlite, restart with ${SIZE.startDeliveries} deliveries (median of ${SIZE.starts})`,
      healthz_ms: ms(middle(times.map((t) => t.healthz))),
      readyz_ms: ms(middle(times.map((t) => t.readyz))),
      max_readyz_ms: ms(Math.max(...times.map((t) => t.readyz))),
    };
  });
}

// ---- The run ----
type Step = [string, () => Promise<Row | Row[]>];
const steps: Step[] = [
  ['ceiling', ceiling],
  ['api ceiling', apiCeiling],
];
for (const db of DATABASES) {
  steps.push([`throughput ${db.name}`, () => throughput(db)]);
  steps.push([`latency ${db.name} 500`, () => latency(db, 500)]);
  steps.push([`latency ${db.name} 2000`, () => latency(db, 2000)]);
  steps.push([`fan-out ${db.name}`, () => fanout(db)]);
  steps.push([`isolation ${db.name}`, () => isolation(db)]);
  if (!db.url || db.workers === 2) steps.push([`noisy neighbour ${db.name}`, () => noisyNeighbour(db)]);
  steps.push([`backlog ${db.name}`, () => backlog(db)]);
  steps.push([`api ${db.name}`, () => api(db)]);
}
steps.push(['start sqlite', start]);
const only = (values.only ?? '').split(',');
const chosen = steps.filter(([name]) => only.some((part) => name.includes(part)));
const total = chosen.length * RUNS;
let done = 0;
const progress = (label: string) => {
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(
    `\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total} ${label.padEnd(40)}`,
  );
};

const runs: Row[][] = [];
for (let run = 0; run < RUNS; run++) {
  const rows: Row[] = [];
  for (const [name, step] of chosen) {
    progress(`${name} (run ${run + 1})`);
    rows.push(...[await step()].flat());
    done += 1;
  }
  runs.push(rows);
}
progress('done');
process.stderr.write('\n');
await receiver.stop();

const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] as number;
const medians: Row[] = (runs[0] ?? []).map((first, i) => {
  const row: Row = { scenario: first.scenario };
  for (const [key, value] of Object.entries(first)) {
    if (key === 'scenario') continue;
    row[key] = typeof value === 'number' ? median(runs.map((r) => r[i]?.[key] as number)) : value;
  }
  return row;
});
const ceilingRate = medians.find((r) => r.scenario.startsWith('ceiling'))?.deliveries_per_second as
  | number
  | undefined;
const apiCeilingRate = medians.find((r) => r.scenario.startsWith('api ceiling'))?.per_second as
  | number
  | undefined;
for (const row of medians) {
  if (ceilingRate && row.scenario.startsWith('throughput')) {
    row.x_ceiling = +((row.deliveries_per_second as number) / ceilingRate).toFixed(2);
  }
  // Of the medians, as the other figures of the row (the runs' own verdicts may differ).
  if (row.scenario.startsWith('noisy neighbour')) {
    row.target_met = (row.p99_with_ms as number) <= (row.target_ms as number) ? 'yes' : 'no';
  }
  if (apiCeilingRate && row.scenario.endsWith('GET /api/v1/webhooks (50)')) {
    row.x_api_ceiling = +((row.per_second as number) / apiCeilingRate).toFixed(2);
  }
}

const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memory_gib: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  commit: execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim(),
  date: new Date().toISOString(),
  mode: QUICK ? 'quick' : 'full',
  runs: RUNS,
};
console.table(medians);
console.log(machine);

const dir = path.join(ROOT, 'bench', 'results');
mkdirSync(dir, { recursive: true });
const file = path.join(dir, `bench-${machine.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ machine, medians, runs }, null, 2)}\n`);

// docs/benchmarks.md holds full runs of every scenario only; quick and partial runs stay in results/.
const complete = !QUICK && !values.only;
if (complete) writeReport(machine, medians, file, pgUrl !== undefined);
console.log(`written to ${path.relative(ROOT, file)}${complete ? ' and docs/benchmarks.md' : ''}`);
process.exit(0);

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Agent, request } from 'undici';
import { makeCertificate } from '../test/helpers/receiver.js';

/** Helpers of the benchmarks: a receiver, the service as child processes, an HTTP client. */

export const ROOT = path.resolve(import.meta.dirname, '..');
export const ADMIN_TOKEN = `bench-${randomBytes(12).toString('hex')}`;

/** The same test certificate as the test suite's receiver (made here, trusted by the service). */
export const certificate = makeCertificate;

/**
 * An HTTPS receiver that answers 200 at once (or never, on `hang` paths) and notes when each
 * delivery arrived, by `webhook-id` (the event) and path (the webhook).
 */
export class BenchReceiver {
  /** `eventId path` -> first arrival (performance.now()). */
  readonly arrivals = new Map<string, number>();
  readonly hang = new Set<string>();
  count = 0;
  private server: Server | undefined;
  /** Every connection, those still in their TLS handshake too (which closeAllConnections misses). */
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  async start(tls: { cert: string; key: string }, port = 0): Promise<this> {
    this.server = createServer({ ...tls, keepAliveTimeout: 60_000 }, (req, res) => {
      req.resume();
      req.on('end', () => {
        const key = `${req.headers['webhook-id']} ${req.url}`;
        if (!this.arrivals.has(key)) this.arrivals.set(key, performance.now());
        this.count += 1;
        if (this.hang.has(req.url ?? '')) return;
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      });
    });
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  reset(): void {
    this.arrivals.clear();
    this.count = 0;
  }

  /**
   * Closes every connection at once: a request on a `hang` path that arrived after
   * closeAllConnections (its handshake under way) would otherwise hold the close until the
   * sender's timeout.
   */
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export type Role = 'all' | 'api' | 'worker';

/** The service on one database, as processes that can be added and stopped. */
export interface Deployment {
  apiPort: number;
  /** The service's environment (DATA_DIR, PORT, ...), for processes started by other means. */
  env: Record<string, string>;
  processes: ChildProcess[];
  /** Starts one more `serve --role ROLE` process. */
  start(role: Role): Promise<ChildProcess>;
  /** Stops every process (SIGTERM), keeping the database. */
  stopProcesses(): Promise<void>;
  /** Stops everything and removes the database. */
  stop(): Promise<void>;
}

function serve(role: Role, env: Record<string, string>): Promise<ChildProcess> {
  // BENCH_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=prof`) profiles the service.
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, 'dist/cli.js', 'serve', '--role', role], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (/is listening on port|worker started/.test(output)) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    child.on('exit', (code) => reject(new Error(`serve --role ${role} exited with ${code}:\n${output}`)));
  });
}

/**
 * Sets up a database (a SQLite file, or a fresh PostgreSQL schema) and starts the service on it
 * as the operator would (built `dist/`, separate processes): the given roles, one process each.
 */
export async function deploy(options: {
  databaseUrl?: string | undefined;
  roles: Role[];
  caFile: string;
  env?: Record<string, string>;
}): Promise<Deployment> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-bench-'));
  const apiPort = await freePort();
  let databaseUrl = options.databaseUrl;
  let dropSchema = async () => {};
  if (databaseUrl) {
    const schema = `bench_${randomBytes(4).toString('hex')}`;
    const base = databaseUrl;
    const run = async (query: string) => {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(query);
      await client.end();
    };
    await run(`create schema ${schema}`);
    dropSchema = () => run(`drop schema ${schema} cascade`);
    databaseUrl = `${databaseUrl}${databaseUrl.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  }
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    PORT: String(apiPort),
    HOST: '127.0.0.1',
    ADMIN_TOKEN,
    SECRETS_KEY: randomBytes(32).toString('hex'),
    ALLOWED_TARGET_CIDRS: '127.0.0.0/8',
    NODE_EXTRA_CA_CERTS: options.caFile,
    LOG_LEVEL: 'info',
    RATE_LIMIT_ENTERPRISE: 'unlimited',
    ...(databaseUrl && { DATABASE_URL: databaseUrl }),
    // BENCH_SERVICE_ENV=NAME=value&NAME=value sets more of the service's configuration.
    ...(process.env.BENCH_SERVICE_ENV &&
      Object.fromEntries(new URLSearchParams(process.env.BENCH_SERVICE_ENV))),
    ...options.env,
  };
  const processes: ChildProcess[] = [];
  const deployment: Deployment = {
    apiPort,
    env,
    processes,
    async start(role) {
      // A worker serves its health and metrics on a port of its own.
      const child = await serve(role, role === 'worker' ? { ...env, PORT: '0' } : env);
      processes.push(child);
      return child;
    },
    async stopProcesses() {
      const running = processes.splice(0);
      await Promise.all(
        running.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null) return resolve();
              p.once('exit', () => resolve());
              p.kill('SIGTERM');
            }),
        ),
      );
    },
    async stop() {
      await deployment.stopProcesses();
      await dropSchema();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  for (const role of options.roles) await deployment.start(role);
  return deployment;
}

/** Resident memory of a process in bytes (Linux). */
export function rss(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const agent = new Agent({ connections: 16, keepAliveTimeout: 30_000 });

/** A JSON request to the service. */
export async function call(
  port: number,
  method: string,
  url: string,
  body: unknown,
  token = ADMIN_TOKEN,
): Promise<any> {
  const res = await request(`http://127.0.0.1:${port}${url}`, {
    method: method as 'POST',
    dispatcher: agent,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${url}: ${res.statusCode} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** A tenant with `webhooks` webhooks pointing at the receiver (paths `/w/0`...). */
export async function tenantWithWebhooks(
  port: number,
  receiverPort: number,
  webhooks: number,
  options: { timeout_seconds?: number } = {},
): Promise<{ slug: string; key: string; ids: number[] }> {
  const slug = `bench-${randomBytes(3).toString('hex')}`;
  await call(port, 'POST', '/internal/v1/tenants', {
    slug,
    name: 'Bench',
    plan: 'enterprise',
    features: ['webhooks'],
  });
  const key = (
    await call(port, 'POST', `/internal/v1/tenants/${slug}/api-keys`, { name: 'b', scopes: ['webhooks'] })
  ).data.key;
  // The fan-out scenario's 1,000 webhooks are more than a tenant may have by default.
  await call(port, 'PATCH', `/internal/v1/tenants/${slug}`, { max_webhooks: Math.max(webhooks, 1) });
  const ids: number[] = [];
  for (let i = 0; i < webhooks; i++) {
    const created = await call(
      port,
      'POST',
      '/api/v1/webhooks',
      { url: `https://localhost:${receiverPort}/w/${i}`, events: ['*'], ...options },
      key,
    );
    ids.push(created.data.id);
  }
  return { slug, key, ids };
}

/** Publishes `count` events of a tenant in batches of 1,000. */
export async function publishMany(port: number, slug: string, count: number): Promise<void> {
  for (let sent = 0; sent < count; sent += 1000) {
    const events = Array.from({ length: Math.min(1000, count - sent) }, (_, i) => ({
      tenant: slug,
      type: 'invoice.paid',
      data: { invoice_id: sent + i, amount: '119.00', currency: 'EUR' },
    }));
    await call(port, 'POST', '/internal/v1/events/batch', { events });
  }
}

export function writeCa(cert: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pdw-bench-ca-'));
  const file = path.join(dir, 'ca.pem');
  writeFileSync(file, cert);
  return file;
}

/** Waits until `check` holds, polling every few milliseconds. */
export function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

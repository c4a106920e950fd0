import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Agent, request } from 'undici';
import { makeCertificate } from '../test/helpers/receiver.js';

/** Helpers shared by the benchmarks: a receiver, the service as child processes, an HTTP client. */

export const ROOT = path.resolve(import.meta.dirname, '..');
export const ADMIN_TOKEN = `bench-${randomBytes(12).toString('hex')}`;

/** The same test certificate as the test suite's receiver (made here, trusted by the service). */
export const certificate = makeCertificate;

/** An HTTPS receiver that answers 200 at once and notes when each event arrived. */
export class BenchReceiver {
  readonly arrivals = new Map<string, number>();
  count = 0;
  private server: Server | undefined;
  port = 0;
  onArrival: (() => void) | undefined;

  async start(tls: { cert: string; key: string }): Promise<this> {
    this.server = createServer({ ...tls, keepAliveTimeout: 60_000 }, (req, res) => {
      req.resume();
      req.on('end', () => {
        const id = req.headers['webhook-id'] as string;
        if (!this.arrivals.has(id)) this.arrivals.set(id, performance.now());
        this.count += 1;
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        this.onArrival?.();
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  reset(): void {
    this.arrivals.clear();
    this.count = 0;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Deployment {
  apiPort: number;
  processes: ChildProcess[];
  stop(): Promise<void>;
}

function serve(role: string, env: Record<string, string>): Promise<ChildProcess> {
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
 * Starts the service as the operator would (built `dist/`, separate processes): on SQLite one
 * process for everything; on PostgreSQL one API process and `workers` worker processes.
 */
export async function deploy(options: {
  databaseUrl?: string;
  workers?: number;
  caFile: string;
  env?: Record<string, string>;
}): Promise<Deployment> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-bench-'));
  const apiPort = await freePort();
  let databaseUrl = options.databaseUrl;
  let dropSchema = async () => {};
  if (databaseUrl) {
    const schema = `bench_${randomBytes(4).toString('hex')}`;
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query(`create schema ${schema}`);
    await client.end();
    const base = databaseUrl;
    dropSchema = async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`drop schema ${schema} cascade`);
      await c.end();
    };
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
    LOG_LEVEL: 'warn',
    RATE_LIMIT_ENTERPRISE: 'unlimited',
    ...(process.env.BENCH_SERVICE_ENV &&
      Object.fromEntries(new URLSearchParams(process.env.BENCH_SERVICE_ENV))),
    ...(databaseUrl && { DATABASE_URL: databaseUrl }),
    ...options.env,
  };
  const processes: ChildProcess[] = [];
  if (!databaseUrl) {
    processes.push(await serve('all', { ...env, LOG_LEVEL: 'info' }));
  } else {
    processes.push(await serve('api', { ...env, LOG_LEVEL: 'info' }));
    for (let i = 0; i < (options.workers ?? 1); i++)
      processes.push(await serve('worker', { ...env, LOG_LEVEL: 'info' }));
  }
  return {
    apiPort,
    processes,
    async stop() {
      await Promise.all(
        processes.map(
          (p) =>
            new Promise<void>((resolve) => {
              p.once('exit', () => resolve());
              p.kill('SIGTERM');
            }),
        ),
      );
      await dropSchema();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
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

/** A tenant with `webhooks` webhooks pointing at the receiver; returns its slug. */
export async function tenantWithWebhooks(
  port: number,
  receiverPort: number,
  webhooks: number,
): Promise<string> {
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
  for (let i = 0; i < webhooks; i++) {
    await call(
      port,
      'POST',
      '/api/v1/webhooks',
      { url: `https://localhost:${receiverPort}/w/${i}`, events: ['*'] },
      key,
    );
  }
  return slug;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function writeCa(cert: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pdw-bench-ca-'));
  const file = path.join(dir, 'ca.pem');
  writeFileSync(file, cert);
  return file;
}

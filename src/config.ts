import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { invalidCidr } from './domain/address-policy.js';
import { type Mailbox, parseMailbox } from './domain/mail-address.js';
import { PLANS, type Plan } from './domain/plans.js';
import {
  DAY_MS,
  DEFAULT_RETRY_SCHEDULE,
  formatDuration,
  parseDuration,
  parseSchedule,
} from './domain/retry-schedule.js';

/** A rate limit per hour; `null` means unlimited. */
export type RateLimits = Record<Plan, number | null>;

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** `postgres://...` or absent for the embedded SQLite file. */
  databaseUrl: string | undefined;
  sqlitePath: string;
  adminToken: string;
  baseDomain: string;
  /** 32 bytes that encrypt webhook secrets at rest. */
  secretsKey: Buffer;
  rateLimits: RateLimits;
  logLevel: string;
  allowHttpTargets: boolean;
  allowedTargetCidrs: string[];
  database: DatabaseConfig;
  delivery: DeliveryConfig;
  /** Webhooks a tenant may have, unless the operator set its own limit (`max_webhooks`). */
  maxWebhooksPerTenant: number;
  /** Deliveries that are over, and their attempts, are kept this many days. */
  retentionDays: number;
  portal: PortalConfig;
  mail: MailConfig;
  /** Where every tenant's operational events also go (OPERATOR_WEBHOOK_URL); undefined: nowhere. */
  operatorWebhook: OperatorWebhook | undefined;
}

/** Notification mail to tenants (their `notification_email`). */
export interface MailConfig {
  /**
   * `smtp://user:pass@host:587` or `smtps://...`; undefined: no mail is sent. Never log it: it
   * holds the mail server's password.
   */
  smtpUrl: string | undefined;
  /** The sender of every mail. */
  from: Mailbox;
}

export interface OperatorWebhook {
  url: string;
  /** A `whsec_` secret: deliveries are signed with it in both signature families. */
  secret: string;
}

export interface PortalConfig {
  /** Where tenants reach this service (`https://webhooks.example.com`); links are made with it. */
  publicUrl: string | undefined;
  /** How long a portal link may wait to be opened. */
  linkTtlMs: number;
  /** How long the session key that a portal link gives lasts. */
  sessionTtlMs: number;
}

/** Bounds on every wait on the database (PostgreSQL; SQLite runs in process). */
export interface DatabaseConfig {
  /** Opening a connection, and waiting for a free one of the pool. */
  connectTimeoutMs: number;
  /**
   * One statement: the server cancels it after this long, and the client gives up on the
   * connection a little later when no answer comes (a partition), so that nothing waits forever.
   */
  statementTimeoutMs: number;
  /**
   * A transaction left open without a statement is ended by the server after this long, and its
   * locks freed: one cut off by a partition would otherwise hold its rows until TCP gives up.
   */
  idleInTransactionTimeoutMs: number;
}

export interface DeliveryConfig {
  /** Waits after the 1st, 2nd, ... failed attempt, in milliseconds; the last repeats. */
  retrySchedule: number[];
  /** Deliveries in flight at once in one worker process. */
  concurrency: number;
  /** Deliveries in flight at once to one webhook, per worker process. */
  webhookConcurrency: number;
  /** Deliveries of one tenant in flight at once, per worker process: the rest is left to others. */
  tenantConcurrency: number;
  /**
   * Connections open at once to one origin (scheme, host and port), per worker process; more
   * deliveries to it wait for a free connection. Many webhooks often share a host.
   */
  originConnections: number;
  /** Added to a webhook's timeout to make a worker's lease on a delivery. */
  leaseMarginMs: number;
  /** A webhook failing this long, with several deliveries exhausted, is switched off. */
  autoDisableAfterMs: number;
  /** While a webhook is failing, one of its deliveries is sent as a probe this often. */
  recoveryProbeIntervalMs: number;
  /** When a failing webhook recovers, what failed in its outage up to this far back is sent again. */
  catchUpWindowMs: number;
  /** How long shutdown waits for deliveries in flight. */
  shutdownGraceMs: number;
}

/** A configuration value that cannot be used: the process stops with this one line. */
export class ConfigError extends Error {}

const DEFAULT_RATE_LIMITS: RateLimits = {
  standard: 1000,
  professional: 5000,
  business: 10000,
  enterprise: null,
};

type Env = Record<string, string | undefined>;

function port(env: Env): number {
  const raw = env.PORT ?? '8080';
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value > 65535) {
    throw new ConfigError(`PORT must be an integer from 0 to 65535, got "${raw}"`);
  }
  return value;
}

function rateLimit(env: Env, plan: Plan): number | null {
  const name = `RATE_LIMIT_${plan.toUpperCase()}`;
  const raw = env[name];
  if (raw === undefined || raw === '') return DEFAULT_RATE_LIMITS[plan];
  if (raw === 'unlimited') return null;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) {
    throw new ConfigError(`${name} must be a positive integer or "unlimited", got "${raw}"`);
  }
  return Number(raw);
}

function boolean(env: Env, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be "true" or "false", got "${raw}"`);
}

function cidrs(env: Env): string[] {
  const list = (env.ALLOWED_TARGET_CIDRS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = invalidCidr(list);
  if (bad !== undefined) {
    throw new ConfigError(
      `ALLOWED_TARGET_CIDRS must be comma-separated CIDRs such as 10.0.0.0/8, got "${bad}"`,
    );
  }
  return list;
}

function duration(env: Env, name: string, fallback: string): number {
  const raw = env[name] || fallback;
  const ms = parseDuration(raw);
  if (ms === undefined)
    throw new ConfigError(`${name} must be a duration such as 500ms, 10s, 5m, 2h or 5d, got "${raw}"`);
  return ms;
}

function count(env: Env, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new ConfigError(`${name} must be an integer from 1 to ${max}, got "${raw}"`);
  }
  return Number(raw);
}

/** A duration from `min` to `max` milliseconds. */
function boundedDuration(env: Env, name: string, fallback: string, min: number, max: number): number {
  const ms = duration(env, name, fallback);
  if (ms < min || ms > max) {
    throw new ConfigError(
      `${name} must be from ${formatDuration(min)} to ${formatDuration(max)}, got "${env[name]}"`,
    );
  }
  return ms;
}

function delivery(env: Env): DeliveryConfig {
  const raw = env.RETRY_SCHEDULE || DEFAULT_RETRY_SCHEDULE;
  const retrySchedule = parseSchedule(raw);
  if (!retrySchedule) {
    throw new ConfigError(
      `RETRY_SCHEDULE must be comma-separated durations such as 10s,1m,5m,30m, got "${raw}"`,
    );
  }
  const concurrency = count(env, 'DELIVERY_CONCURRENCY', 500, 10_000);
  // At most DELIVERY_CONCURRENCY: a smaller worker takes the default down with it.
  const tenantConcurrency = count(env, 'TENANT_CONCURRENCY', Math.min(100, concurrency), 10_000);
  if (tenantConcurrency > concurrency) {
    throw new ConfigError(
      `TENANT_CONCURRENCY must be at most DELIVERY_CONCURRENCY (${concurrency}), got "${env.TENANT_CONCURRENCY}"`,
    );
  }
  return {
    retrySchedule,
    concurrency,
    webhookConcurrency: count(env, 'WEBHOOK_CONCURRENCY', 25, 1000),
    tenantConcurrency,
    originConnections: count(env, 'ORIGIN_CONNECTIONS', 100, 10_000),
    leaseMarginMs: duration(env, 'LEASE_MARGIN', '30s'),
    autoDisableAfterMs: duration(env, 'AUTO_DISABLE_AFTER', '5d'),
    recoveryProbeIntervalMs: boundedDuration(env, 'RECOVERY_PROBE_INTERVAL', '1h', 100, DAY_MS),
    catchUpWindowMs: boundedDuration(env, 'CATCH_UP_WINDOW', '3d', 60_000, 14 * DAY_MS),
    shutdownGraceMs: duration(env, 'SHUTDOWN_GRACE', '10s'),
  };
}

function database(env: Env): DatabaseConfig {
  return {
    connectTimeoutMs: boundedDuration(env, 'DATABASE_CONNECT_TIMEOUT', '5s', 100, 3_600_000),
    statementTimeoutMs: boundedDuration(env, 'DATABASE_STATEMENT_TIMEOUT', '15s', 100, 3_600_000),
    idleInTransactionTimeoutMs: boundedDuration(
      env,
      'DATABASE_IDLE_IN_TRANSACTION_TIMEOUT',
      '10s',
      100,
      3_600_000,
    ),
  };
}

export const DEFAULT_DATABASE_TIMEOUTS: DatabaseConfig = database({});

function portal(env: Env): PortalConfig {
  const raw = env.PUBLIC_URL || undefined;
  let publicUrl: string | undefined;
  if (raw !== undefined) {
    const url = URL.canParse(raw) ? new URL(raw) : undefined;
    if (!url || !/^https?:$/.test(url.protocol) || url.search || url.hash || url.username) {
      throw new ConfigError(
        `PUBLIC_URL must be an http(s) URL such as https://webhooks.example.com, got "${raw}"`,
      );
    }
    publicUrl = url.href.replace(/\/+$/, '');
  }
  return {
    publicUrl,
    linkTtlMs: duration(env, 'PORTAL_LINK_TTL', '15m'),
    sessionTtlMs: duration(env, 'PORTAL_SESSION_TTL', '8h'),
  };
}

/** A `whsec_` secret as the service makes them: base64 of 24 to 64 bytes. */
function isWebhookSecret(value: string): boolean {
  const body = value.startsWith('whsec_') ? value.slice(6) : '';
  const bytes = Buffer.from(body, 'base64');
  return /^[A-Za-z0-9+/]+={0,2}$/.test(body) && bytes.length >= 24 && bytes.length <= 64;
}

function operatorWebhook(env: Env, allowHttp: boolean): OperatorWebhook | undefined {
  const raw = env.OPERATOR_WEBHOOK_URL || undefined;
  if (raw === undefined) return undefined;
  const url = URL.canParse(raw) ? new URL(raw) : undefined;
  const schemes = allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!url || !schemes.includes(url.protocol) || url.username || url.password) {
    throw new ConfigError(
      `OPERATOR_WEBHOOK_URL must be an ${allowHttp ? 'http(s)' : 'https'} URL such as https://ops.example.com/webhooks, got "${raw}"`,
    );
  }
  const secret = env.OPERATOR_WEBHOOK_SECRET ?? '';
  // The value is not echoed: it is a secret.
  if (!isWebhookSecret(secret)) {
    throw new ConfigError(
      'OPERATOR_WEBHOOK_SECRET must be a whsec_ secret (whsec_ and the base64 of 24 to 64 random bytes) when OPERATOR_WEBHOOK_URL is set',
    );
  }
  return { url: url.href, secret };
}

function mail(env: Env, baseDomain: string): MailConfig {
  const smtpUrl = env.SMTP_URL || undefined;
  if (smtpUrl !== undefined) {
    // The value is not echoed: it holds the mail server's password.
    const url = URL.canParse(smtpUrl) ? new URL(smtpUrl) : undefined;
    if (
      !url ||
      !/^smtps?:$/.test(url.protocol) ||
      !url.hostname ||
      (url.pathname !== '' && url.pathname !== '/')
    ) {
      throw new ConfigError(
        'SMTP_URL must be an smtp:// or smtps:// URL such as smtp://user:pass@mail.example.com:587',
      );
    }
  }
  const rawFrom = env.MAIL_FROM || `PlanDocket Webhooks <webhooks@${baseDomain}>`;
  const from = parseMailbox(rawFrom);
  if (!from) {
    throw new ConfigError(
      `MAIL_FROM must be an address such as webhooks@example.com or Name <webhooks@example.com>, got "${rawFrom}"`,
    );
  }
  return { smtpUrl, from };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(env: Env): string {
  const level = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** Reads a generated value from `file`, creating it on first use; `onCreate` sees a new one. */
function generatedFile(file: string, make: () => string, onCreate?: (value: string) => void): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(path.dirname(file), { recursive: true });
  const value = make();
  writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  onCreate?.(value);
  return value;
}

function secretsKey(raw: string, name: string): Buffer {
  const key = /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
  if (key.length !== 32) {
    throw new ConfigError(`${name} must be 32 bytes as 64 hex characters or base64`);
  }
  return key;
}

export interface LoadOptions {
  /** Told once when an admin token was generated, so that it can be printed. */
  onAdminTokenCreated?: (token: string, file: string) => void;
  /**
   * False: nothing is written to DATA_DIR (commands that must leave nothing behind). An admin
   * token that is neither set nor stored is then made for this process only (enough for requests
   * made in process), and a secrets key that is neither set nor stored is refused when used: what
   * a key of this process alone encrypted could never be read again. Default true.
   */
  createFiles?: boolean;
}

const newAdminToken = () => `adm_${randomBytes(24).toString('base64url')}`;

/** Environment -> typed, validated configuration. Throws `ConfigError` naming the variable. */
export function loadConfig(env: Env = process.env, options: LoadOptions = {}): Config {
  // Every plain value is checked before anything is written to DATA_DIR.
  const dataDir = path.resolve(env.DATA_DIR || './data');
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const baseDomain = (env.BASE_DOMAIN || 'plandocket.com').toLowerCase();
  if (!/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(baseDomain)) {
    throw new ConfigError(`BASE_DOMAIN must be a domain name such as plandocket.com, got "${baseDomain}"`);
  }
  if (env.ADMIN_TOKEN && env.ADMIN_TOKEN.length < 16) {
    throw new ConfigError('ADMIN_TOKEN must be at least 16 characters long');
  }
  const allowHttpTargets = boolean(env, 'ALLOW_HTTP_TARGETS');
  const plain = {
    port: port(env),
    host: env.HOST || '0.0.0.0',
    dataDir,
    databaseUrl,
    sqlitePath: path.join(dataDir, 'webhooks.db'),
    baseDomain,
    rateLimits: Object.fromEntries(PLANS.map((plan) => [plan, rateLimit(env, plan)])) as RateLimits,
    logLevel: logLevel(env),
    allowHttpTargets,
    allowedTargetCidrs: cidrs(env),
    database: database(env),
    delivery: delivery(env),
    maxWebhooksPerTenant: count(env, 'MAX_WEBHOOKS_PER_TENANT', 50, 100_000),
    retentionDays: count(env, 'RETENTION_DAYS', 30, 3650),
    portal: portal(env),
    mail: mail(env, baseDomain),
    operatorWebhook: operatorWebhook(env, allowHttpTargets),
  };
  const secrets = env.SECRETS_KEY ? secretsKey(env.SECRETS_KEY, 'SECRETS_KEY') : undefined;

  const create = options.createFiles ?? true;
  const adminTokenFile = path.join(dataDir, 'admin-token');
  const adminToken =
    env.ADMIN_TOKEN ||
    (create || existsSync(adminTokenFile)
      ? generatedFile(adminTokenFile, newAdminToken, (token) =>
          options.onAdminTokenCreated?.(token, adminTokenFile),
        )
      : newAdminToken());
  const keyFile = path.join(dataDir, 'secrets.key');
  if (!secrets && !create && !existsSync(keyFile)) {
    const config = { ...plain, adminToken } as Config;
    return Object.defineProperty(config, 'secretsKey', {
      enumerable: true,
      get() {
        throw new ConfigError(`SECRETS_KEY is not set and there is no key file ${keyFile}`);
      },
    });
  }
  const key =
    secrets ??
    secretsKey(
      generatedFile(keyFile, () => randomBytes(32).toString('base64')),
      `the key file ${keyFile}`,
    );
  return { ...plain, adminToken, secretsKey: key };
}

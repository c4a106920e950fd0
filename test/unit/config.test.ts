import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const dir = () => mkdtempSync(path.join(tmpdir(), 'pdw-config-'));

describe('configuration', () => {
  it('has working defaults and generates the admin token and secrets key once', () => {
    const dataDir = dir();
    const told: string[] = [];
    const config = loadConfig({ DATA_DIR: dataDir }, { onAdminTokenCreated: (token) => told.push(token) });
    expect(config).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      databaseUrl: undefined,
      sqlitePath: path.join(dataDir, 'webhooks.db'),
      baseDomain: 'plandocket.com',
      rateLimits: { standard: 1000, professional: 5000, business: 10000, enterprise: null },
      allowHttpTargets: false,
      allowedTargetCidrs: [],
      retentionDays: 30,
      delivery: { concurrency: 500, webhookConcurrency: 25, originConnections: 100 },
      database: { connectTimeoutMs: 5000, statementTimeoutMs: 15_000, idleInTransactionTimeoutMs: 10_000 },
    });
    expect(told).toEqual([config.adminToken]);
    expect(readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim()).toBe(config.adminToken);
    expect(statSync(path.join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(config.secretsKey).toHaveLength(32);
    const again = loadConfig({ DATA_DIR: dataDir }, { onAdminTokenCreated: (token) => told.push(token) });
    expect(told).toHaveLength(1);
    expect(again.adminToken).toBe(config.adminToken);
    expect(again.secretsKey.equals(config.secretsKey)).toBe(true);
  });

  it('keeps a tenant within the worker: TENANT_CONCURRENCY is 100, or DELIVERY_CONCURRENCY when smaller', () => {
    expect(loadConfig({ DATA_DIR: dir() }).delivery).toMatchObject({
      concurrency: 500,
      tenantConcurrency: 100,
    });
    expect(loadConfig({ DATA_DIR: dir(), DELIVERY_CONCURRENCY: '10' }).delivery.tenantConcurrency).toBe(10);
    expect(() =>
      loadConfig({ DATA_DIR: dir(), DELIVERY_CONCURRENCY: '10', TENANT_CONCURRENCY: '11' }),
    ).toThrow('TENANT_CONCURRENCY must be at most DELIVERY_CONCURRENCY (10), got "11"');
  });

  it('sends operational events to OPERATOR_WEBHOOK_URL, signed with a whsec_ OPERATOR_WEBHOOK_SECRET', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    expect(loadConfig({ DATA_DIR: dir() }).operatorWebhook).toBeUndefined();
    expect(
      loadConfig({
        DATA_DIR: dir(),
        OPERATOR_WEBHOOK_URL: 'https://ops.example.com/hooks',
        OPERATOR_WEBHOOK_SECRET: secret,
      }).operatorWebhook,
    ).toEqual({ url: 'https://ops.example.com/hooks', secret });
    // Plain http only where ALLOW_HTTP_TARGETS allows it.
    expect(
      loadConfig({
        DATA_DIR: dir(),
        ALLOW_HTTP_TARGETS: 'true',
        OPERATOR_WEBHOOK_URL: 'http://ops.internal/hooks',
        OPERATOR_WEBHOOK_SECRET: secret,
      }).operatorWebhook?.url,
    ).toBe('http://ops.internal/hooks');
    for (const bad of [undefined, 'whsec_short', 'hunter2', `whsec_${'!'.repeat(44)}`]) {
      const load = () =>
        loadConfig({
          DATA_DIR: dir(),
          OPERATOR_WEBHOOK_URL: 'https://ops.example.com/hooks',
          ...(bad !== undefined && { OPERATOR_WEBHOOK_SECRET: bad }),
        });
      expect(load).toThrow(/^OPERATOR_WEBHOOK_SECRET must be a whsec_ secret/);
      try {
        load();
      } catch (error) {
        if (bad) expect((error as Error).message).not.toContain(bad);
      }
    }
  });

  it('takes every variable', () => {
    const config = loadConfig({
      DATA_DIR: dir(),
      PORT: '9000',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://u@db/x',
      ADMIN_TOKEN: 'a-long-enough-admin-token',
      BASE_DOMAIN: 'Example.ORG',
      SECRETS_KEY: 'ab'.repeat(32),
      RATE_LIMIT_BUSINESS: 'unlimited',
      RATE_LIMIT_STANDARD: '10',
      ALLOW_HTTP_TARGETS: 'true',
      ALLOWED_TARGET_CIDRS: '127.0.0.0/8, ::1/128',
      RETENTION_DAYS: '7',
      ORIGIN_CONNECTIONS: '8',
      TENANT_CONCURRENCY: '20',
      RECOVERY_PROBE_INTERVAL: '10m',
      CATCH_UP_WINDOW: '7d',
      DATABASE_CONNECT_TIMEOUT: '2s',
      DATABASE_STATEMENT_TIMEOUT: '1m',
      DATABASE_IDLE_IN_TRANSACTION_TIMEOUT: '500ms',
    });
    expect(config).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      databaseUrl: 'postgres://u@db/x',
      adminToken: 'a-long-enough-admin-token',
      baseDomain: 'example.org',
      rateLimits: { standard: 10, business: null },
      allowHttpTargets: true,
      allowedTargetCidrs: ['127.0.0.0/8', '::1/128'],
      retentionDays: 7,
      delivery: {
        originConnections: 8,
        tenantConcurrency: 20,
        recoveryProbeIntervalMs: 600_000,
        catchUpWindowMs: 7 * 86_400_000,
      },
      database: { connectTimeoutMs: 2000, statementTimeoutMs: 60_000, idleInTransactionTimeoutMs: 500 },
    });
    expect(config.secretsKey.toString('hex')).toBe('ab'.repeat(32));
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['ADMIN_TOKEN', 'short'],
    ['BASE_DOMAIN', 'not a domain'],
    ['SECRETS_KEY', 'too-short'],
    ['RATE_LIMIT_PROFESSIONAL', '-5'],
    ['ALLOW_HTTP_TARGETS', 'yes'],
    ['ALLOWED_TARGET_CIDRS', '10.0.0.0'],
    ['ALLOWED_TARGET_CIDRS', '999.0.0.0/8'],
    ['LOG_LEVEL', 'loud'],
    ['RETENTION_DAYS', '0'],
    ['RETENTION_DAYS', '2.5'],
    ['RETENTION_DAYS', 'forever'],
    ['RETENTION_DAYS', '3651'],
    ['ORIGIN_CONNECTIONS', '0'],
    ['TENANT_CONCURRENCY', '0'],
    ['TENANT_CONCURRENCY', '501'],
    ['RECOVERY_PROBE_INTERVAL', '10ms'],
    ['RECOVERY_PROBE_INTERVAL', '2d'],
    ['RECOVERY_PROBE_INTERVAL', 'hourly'],
    ['CATCH_UP_WINDOW', '30s'],
    ['CATCH_UP_WINDOW', '15d'],
    ['OPERATOR_WEBHOOK_URL', 'http://ops.example.com/hooks'],
    ['OPERATOR_WEBHOOK_URL', 'not a url'],
    ['DATABASE_STATEMENT_TIMEOUT', '15'],
    ['DATABASE_STATEMENT_TIMEOUT', '10ms'],
    ['DATABASE_CONNECT_TIMEOUT', '2h'],
    ['DATABASE_IDLE_IN_TRANSACTION_TIMEOUT', 'never'],
    ['SMTP_URL', 'mail.example.com:587'],
    ['SMTP_URL', 'http://mail.example.com'],
    ['SMTP_URL', 'smtp://'],
    ['SMTP_URL', 'smtp://mail.example.com/inbox'],
    ['MAIL_FROM', 'webhooks'],
    ['MAIL_FROM', 'Webhooks <webhooks@>'],
    ['MAIL_FROM', 'a@example.com, b@example.com'],
    ['MAIL_FROM', 'Webhooks, Inc. <webhooks@example.com>'],
  ])('stops on a bad %s (%s) with one line naming it', (name, value) => {
    const load = () => loadConfig({ DATA_DIR: dir(), [name]: value });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(new RegExp(`^${name}`));
    try {
      load();
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('sends no mail by default, from the base domain; SMTP_URL and MAIL_FROM change that', () => {
    expect(loadConfig({ DATA_DIR: dir(), BASE_DOMAIN: 'example.org' }).mail).toEqual({
      smtpUrl: undefined,
      from: { name: 'PlanDocket Webhooks', address: 'webhooks@example.org' },
    });
    const smtpUrl = 'smtps://user:p%40ss@mail.example.com:465';
    expect(
      loadConfig({ DATA_DIR: dir(), SMTP_URL: smtpUrl, MAIL_FROM: 'Fair Ops <ops@fair.example>' }).mail,
    ).toEqual({ smtpUrl, from: { name: 'Fair Ops', address: 'ops@fair.example' } });
    expect(loadConfig({ DATA_DIR: dir(), MAIL_FROM: 'ops@fair.example' }).mail.from).toEqual({
      name: '',
      address: 'ops@fair.example',
    });
  });

  it('never shows the password of a bad SMTP_URL', () => {
    expect(() => loadConfig({ DATA_DIR: dir(), SMTP_URL: 'smtp://user:hunter2@mail.example.com/x' })).toThrow(
      /^SMTP_URL must be an smtp:\/\/ or smtps:\/\/ URL such as smtp:\/\/user:pass@mail\.example\.com:587$/,
    );
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clockPast } from './helpers/wait.js';

/**
 * The command line as an operator uses it: `npx tsx src/cli.ts ...` in child processes, each test
 * with a fresh DATA_DIR and the embedded SQLite database. Every run costs about a second.
 */

const ROOT = path.resolve(import.meta.dirname, '..');
// Each run takes about a second on an idle machine, many times that on a busy one.
const TIMEOUT = 300_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a clean shell: no configuration variables from the test run (DATABASE_URL,
 * ADMIN_TOKEN, PORT...) leak in; only what these tests set.
 */
function cleanEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'TERM'];
  const env: NodeJS.ProcessEnv = {};
  for (const name of keep) if (process.env[name] !== undefined) env[name] = process.env[name];
  return { ...env, npm_config_update_notifier: 'false', DATA_DIR: dataDir, ...extra };
}

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A run that must succeed; its stdout parsed as JSON. */
async function cliJson(args: string[], env: NodeJS.ProcessEnv): Promise<Record<string, any>> {
  const run = await cli(args, env);
  expect(run.code, `${args.join(' ')}\n${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout);
}

/** A failed run: exit code 1, nothing on stdout, a message on stderr and no stack trace. */
function expectFailure(run: Run, label: string): void {
  expect(run.code, `${label}: ${run.stderr}`).toBe(1);
  expect(run.stdout, label).toBe('');
  expect(run.stderr.trim().length, label).toBeGreaterThan(0);
  expect(run.stderr, label).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

const isoTime = (value: unknown) => typeof value === 'string' && new Date(value).toISOString() === value;

/** A port that was free a moment ago: `serve` does not report the port it got for PORT=0. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('command line', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;

  beforeEach(() => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'pdw-cli-'));
    env = cleanEnv(dataDir);
  });

  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    'migrate applies the migrations on the first run and says the database is up to date on the next',
    async () => {
      const first = await cli(['migrate'], env);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/^Applied: \d{4}_\w+(, \d{4}_\w+)*\n$/);
      expect(existsSync(path.join(dataDir, 'webhooks.db'))).toBe(true);

      const second = await cli(['migrate'], env);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toBe('The database is up to date.\n');
    },
    TIMEOUT,
  );

  it(
    'generates the admin token on first use, prints it once to stderr and stores it in DATA_DIR/admin-token',
    async () => {
      const tokenFile = path.join(dataDir, 'admin-token');
      expect(existsSync(tokenFile)).toBe(false);

      const first = await cli(['migrate'], env);
      expect(first.code, first.stderr).toBe(0);
      const token = readFileSync(tokenFile, 'utf8').trim();
      expect(token).toMatch(/^adm_[A-Za-z0-9_-]{32}$/);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      expect(first.stderr).toContain(token);
      expect(first.stderr).toContain(tokenFile);
      expect(first.stdout).not.toContain(token);

      const second = await cli(['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business'], env);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).not.toContain(token);
      expect(second.stderr).not.toMatch(/admin token/i);
      expect(second.stdout).not.toContain(token);
      expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    },
    TIMEOUT,
  );

  it(
    'manages a tenant and its API keys: create, show, update, key create, key revoke',
    async () => {
      const created = await cliJson(
        [
          'tenant',
          'create',
          'acme',
          '--name',
          'Acme',
          '--plan',
          'business',
          '--features',
          'webhooks',
          '--notification-email',
          'ops@acme.example',
        ],
        env,
      );
      expect(created).toEqual({
        id: expect.any(Number),
        slug: 'acme',
        name: 'Acme',
        plan: 'business',
        features: ['webhooks'],
        max_webhooks: 50,
        notification_email: 'ops@acme.example',
        created_at: expect.any(String),
        updated_at: expect.any(String),
      });
      expect(isoTime(created.created_at)).toBe(true);

      const shown = await cliJson(['tenant', 'show', 'acme'], env);
      expect(shown).toEqual({ ...created, api_keys: [] });

      const updated = await cliJson(['tenant', 'update', 'acme', '--plan', 'enterprise'], env);
      expect(updated).toMatchObject({
        id: created.id,
        slug: 'acme',
        name: 'Acme',
        plan: 'enterprise',
        features: ['webhooks'],
        created_at: created.created_at,
      });
      expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(created.updated_at));
      const raised = await cliJson(['tenant', 'update', 'acme', '--max-webhooks', '120'], env);
      expect(raised.max_webhooks).toBe(120);
      const reset = await cliJson(['tenant', 'update', 'acme', '--max-webhooks', 'default'], env);
      expect(reset.max_webhooks).toBe(50);
      const unmailed = await cliJson(['tenant', 'update', 'acme', '--notification-email', 'none'], env);
      expect(unmailed.notification_email).toBeNull();
      const notAnAddress = await cli(
        ['tenant', 'update', 'acme', '--notification-email', 'ops at acme'],
        env,
      );
      expect(notAnAddress.code).toBe(1);
      expect(notAnAddress.stderr).toContain(
        'notification_email: The notification_email must be an e-mail address',
      );

      const key = await cliJson(['key', 'create', 'acme', '--name', 'ci', '--scopes', 'webhooks'], env);
      expect(key).toEqual({
        id: expect.any(Number),
        name: 'ci',
        scopes: ['webhooks'],
        key: expect.stringMatching(/^pdk_[A-Za-z0-9_-]{20,}$/),
        created_at: expect.any(String),
      });

      const withKey = await cli(['tenant', 'show', 'acme'], env);
      expect(withKey.code, withKey.stderr).toBe(0);
      expect(withKey.stdout).not.toContain(key.key);
      const keys = JSON.parse(withKey.stdout).api_keys;
      expect(keys).toEqual([
        {
          id: key.id,
          name: 'ci',
          scopes: ['webhooks'],
          key_prefix: expect.any(String),
          created_at: key.created_at,
          last_used_at: null,
          expires_at: null,
        },
      ]);
      expect(key.key.startsWith(keys[0].key_prefix)).toBe(true);
      expect(keys[0].key_prefix.length).toBeLessThan(key.key.length);

      const revoked = await cli(['key', 'revoke', 'acme', String(key.id)], env);
      expect(revoked.code, revoked.stderr).toBe(0);
      expect(revoked.stdout).toBe('Done.\n');
      expect((await cliJson(['tenant', 'show', 'acme'], env)).api_keys).toEqual([]);

      const again = await cli(['key', 'revoke', 'acme', String(key.id)], env);
      expectFailure(again, 'revoking a revoked key');
      expect(again.stderr).toBe('Resource not found\n');
    },
    TIMEOUT,
  );

  it(
    'portal-link prints a one-time link to the portal for a tenant; an unknown tenant exits 1',
    async () => {
      await cliJson(
        ['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business', '--features', 'webhooks'],
        env,
      );
      const link = await cliJson(['portal-link', 'acme'], { ...env, PORT: '9123' });
      expect(link.url).toMatch(/^http:\/\/localhost:9123\/portal\/#token=pdp_[A-Za-z0-9_-]{43}$/);
      expect(Date.parse(link.expires_at)).toBeGreaterThan(Date.now());
      const atPublicUrl = await cliJson(['portal-link', 'acme'], {
        ...env,
        PUBLIC_URL: 'https://webhooks.example.com',
      });
      expect(atPublicUrl.url).toMatch(/^https:\/\/webhooks\.example\.com\/portal\/#token=pdp_/);
      expect(atPublicUrl.url).not.toBe(link.url);

      const unknown = await cli(['portal-link', 'nobody'], env);
      expectFailure(unknown, 'portal link for an unknown tenant');
      expect(unknown.stderr).toBe('Resource not found\n');
    },
    TIMEOUT,
  );

  it(
    'bad input exits 1 with a readable message',
    async () => {
      // Sequentially first: the first command creates the admin token, the database and the tenant.
      await cliJson(['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business'], env);

      const cases: [string, string[], RegExp][] = [
        [
          'an invalid plan',
          ['tenant', 'create', 'other', '--name', 'Other', '--plan', 'gold'],
          /'gold' is invalid\. Choose one of: standard, professional, business, enterprise\./,
        ],
        [
          'an invalid plan on update',
          ['tenant', 'update', 'acme', '--plan', 'platinum'],
          /'platinum' is invalid\. Choose one of: standard, professional, business, enterprise\./,
        ],
        ['an unknown tenant (show)', ['tenant', 'show', 'nope'], /^Resource not found\n$/],
        ['an unknown tenant (update)', ['tenant', 'update', 'nope', '--name', 'X'], /^Resource not found\n$/],
        [
          'an unknown tenant (key create)',
          ['key', 'create', 'nope', '--name', 'ci'],
          /^Resource not found\n$/,
        ],
        ['an unknown key', ['key', 'revoke', 'acme', '999'], /^Resource not found\n$/],
        ['a key id that is not a number', ['key', 'revoke', 'acme', 'abc'], /^Resource not found\n$/],
        [
          'a duplicate slug',
          ['tenant', 'create', 'acme', '--name', 'Again', '--plan', 'business'],
          /^Validation failed\n {2}slug: The slug has already been taken\.\n$/,
        ],
        [
          'an invalid slug',
          ['tenant', 'create', 'Not_A_Slug', '--name', 'X', '--plan', 'business'],
          /^Validation failed\n {2}slug: /,
        ],
        ['an unknown scope', ['key', 'create', 'acme', '--name', 'ci', '--scopes', 'nope'], /scopes/],
        [
          'a missing required option',
          ['tenant', 'create', 'other', '--plan', 'business'],
          /required option '--name <name>' not specified/,
        ],
        ['an unknown command', ['tenants', 'list'], /unknown command 'tenants'/],
        [
          'event data that is not JSON',
          ['emit', 'acme', 'invoice.paid', '--data', '{bad'],
          /--data must be JSON/,
        ],
      ];
      const runs = await Promise.all(cases.map(([, args]) => cli(args, env)));
      cases.forEach(([label, , message], i) => {
        const run = runs[i] as Run;
        expectFailure(run, label);
        expect(run.stderr, label).toMatch(message);
      });

      // Nothing was changed by the failed commands.
      const acme = await cliJson(['tenant', 'show', 'acme'], env);
      expect(acme).toMatchObject({ name: 'Acme', plan: 'business', api_keys: [] });
    },
    TIMEOUT,
  );

  it(
    'a bad configuration value stops with exit code 1 and one line naming it, before writing anything',
    async () => {
      const cases: [string, string, RegExp][] = [
        ['PORT', 'abc', /^PORT .*"abc"/],
        ['PORT', '70000', /^PORT .*"70000"/],
        ['LOG_LEVEL', 'loud', /^LOG_LEVEL /],
        ['ALLOW_HTTP_TARGETS', 'yes', /^ALLOW_HTTP_TARGETS .*"yes"/],
        ['DATABASE_URL', 'mysql://localhost/db', /^DATABASE_URL /],
        ['RATE_LIMIT_BUSINESS', '0', /^RATE_LIMIT_BUSINESS .*"0"/],
        ['ALLOWED_TARGET_CIDRS', '10.0.0.0/33', /^ALLOWED_TARGET_CIDRS .*"10\.0\.0\.0\/33"/],
      ];
      const dirs = cases.map((_, i) => path.join(dataDir, `case-${i}`));
      for (const dir of dirs) mkdirSync(dir);
      const runs = await Promise.all(
        cases.map(([name, value], i) => cli(['migrate'], cleanEnv(dirs[i] as string, { [name]: value }))),
      );
      cases.forEach(([name, value], i) => {
        const run = runs[i] as Run;
        const label = `${name}=${value}`;
        expectFailure(run, label);
        const lines = run.stderr.trimEnd().split('\n');
        expect(lines, label).toHaveLength(1);
        expect(lines[0], label).toMatch(cases[i]?.[2] as RegExp);
        expect(readdirSync(dirs[i] as string), `${label}: nothing written to DATA_DIR`).toEqual([]);
      });
    },
    TIMEOUT,
  );

  it(
    'inspects, retries and recovers deliveries, sends a test event and prunes: tables, or JSON with --json',
    async () => {
      await cliJson(
        ['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business', '--features', 'webhooks'],
        env,
      );
      const { key } = await cliJson(['key', 'create', 'acme', '--name', 'ci'], env);
      // A webhook (there is no CLI command for them: tenants make them) and three events for it.
      const { buildApp } = await import('../src/api/app.js');
      const { loadConfig } = await import('../src/config.js');
      const { openStore } = await import('../src/store/db.js');
      const config = loadConfig({ DATA_DIR: dataDir });
      const store = await openStore({ sqlitePath: config.sqlitePath });
      const app = await buildApp({ config, store });
      const webhook = (
        await app.inject({
          method: 'POST',
          url: '/api/v1/webhooks',
          headers: { authorization: `Bearer ${key}` },
          payload: { url: 'https://example.com/hooks', events: ['*'] },
        })
      ).json().data;
      const hook = String(webhook.id);
      const since = new Date(Date.now() - 60_000).toISOString();
      for (const n of [1, 2, 3]) {
        const published = await app.inject({
          method: 'POST',
          url: '/internal/v1/events',
          headers: { authorization: `Bearer ${config.adminToken}` },
          payload: { tenant: 'acme', type: 'invoice.paid', data: { n } },
        });
        expect(published.statusCode).toBe(202);
        await clockPast(); // ids made in the same millisecond have no order among them
      }
      await app.close();
      // No worker runs here: the deliveries are made to have failed, as a worker would record it.
      await store.db
        .updateTable('deliveries')
        .set({ status: 'failed', attempts: 4, next_attempt_at: null })
        .execute();
      await store.close();

      // Commands that only read run side by side (each CLI run costs about a second).
      const [listed, page, tableRun] = await Promise.all([
        cliJson(['deliveries', 'list', 'acme', hook, '--status', 'failed', '--json'], env),
        cliJson(['deliveries', 'list', 'acme', hook, '--limit', '2', '--json'], env),
        cli(['deliveries', 'list', 'acme', hook], env),
      ]);
      expect(listed.next_cursor).toBeNull();
      expect(listed.data).toHaveLength(3);
      expect(listed.data.map((d: { status: string }) => d.status)).toEqual(['failed', 'failed', 'failed']);
      const [newest, , oldest] = listed.data;
      expect(page.data.map((d: { id: string }) => d.id)).toEqual([newest.id, listed.data[1].id]);

      expect(tableRun.code, tableRun.stderr).toBe(0);
      const lines = tableRun.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(4);
      expect(lines[0]).toMatch(/^ID +STATUS +EVENT +ATTEMPTS +CODE +CREATED +NEXT ATTEMPT \/ LAST ERROR$/);
      const statusColumn = (lines[0] as string).indexOf('STATUS');
      for (const line of lines.slice(1)) {
        expect(line.slice(statusColumn, statusColumn + 6)).toBe('failed');
        expect(line).toContain('invoice.paid');
      }

      const [rest, shown, shownText] = await Promise.all([
        cliJson(
          ['deliveries', 'list', 'acme', hook, '--limit', '2', '--cursor', page.next_cursor, '--json'],
          env,
        ),
        cliJson(['deliveries', 'show', 'acme', hook, oldest.id, '--json'], env),
        cli(['deliveries', 'show', 'acme', hook, oldest.id], env),
      ]);
      expect(rest.data.map((d: { id: string }) => d.id)).toEqual([oldest.id]);
      expect(JSON.parse(shown.payload)).toMatchObject({
        id: oldest.event_id,
        type: 'invoice.paid',
        data: { n: 1 },
      });
      expect(shown.attempt_history).toEqual([]);
      expect(shownText.stdout).toMatch(/^Delivery: +dlv_/);
      expect(shownText.stdout).toContain(shown.payload);

      const retried = await cliJson(['deliveries', 'retry', 'acme', hook, oldest.id, '--json'], env);
      expect(retried).toMatchObject({ id: oldest.id, status: 'pending', attempts: 4 });

      const recovered = await cli(['recover', 'acme', hook, '--since', since], env);
      expect(recovered.code, recovered.stderr).toBe(0);
      expect(recovered.stdout).toBe('Queued 2 failed deliveries again.\n');
      expect(recovered.stderr).toBe('');

      const [again, test, pruned, prunedJson] = await Promise.all([
        cliJson(['recover', 'acme', hook, '--since', since, '--json'], env),
        cliJson(['deliveries', 'test', 'acme', hook, '--json'], env),
        cli(['prune'], env),
        cliJson(['prune', '--json'], env),
      ]);
      expect(again).toEqual({ queued: 0, failed: 0, missing: 0 });
      expect(test).toMatchObject({ event_type: 'webhook.test', status: 'pending', is_test: true });
      expect(pruned.code, pruned.stderr).toBe(0);
      expect(pruned.stdout).toBe('Pruned 0 deliveries and 0 events.\n');
      expect(prunedJson).toEqual({ deliveries: 0, events: 0 });

      const cases: [string, string[], RegExp][] = [
        ['an unknown webhook', ['deliveries', 'list', 'acme', '999'], /^Resource not found\n$/],
        ['an unknown tenant', ['deliveries', 'list', 'nope', hook], /^Resource not found\n$/],
        ['an unknown delivery', ['deliveries', 'show', 'acme', hook, 'dlv_nope'], /^Resource not found\n$/],
        [
          'bad list options',
          ['deliveries', 'list', 'acme', hook, '--limit', '0', '--status', 'done'],
          /^Validation failed\n {2}limit: .*\n {2}status: /,
        ],
        [
          'a recovery reaching too far back',
          ['recover', 'acme', hook, '--since', '2020-01-01T00:00:00Z'],
          /^Validation failed\n {2}since: The since must be within the last 14 days\.\n$/,
        ],
        ['a recovery without --since', ['recover', 'acme', hook], /required option '--since <time>'/],
      ];
      const [pending, ...runs] = await Promise.all([
        cliJson(['deliveries', 'list', 'acme', hook, '--status', 'pending', '--json'], env),
        ...cases.map(([, args]) => cli(args, env)),
      ]);
      expect(pending.data).toHaveLength(4);
      cases.forEach(([label, , message], i) => {
        const run = runs[i] as Run;
        expectFailure(run, label);
        expect(run.stderr, label).toMatch(message);
      });
    },
    3 * TIMEOUT,
  );

  describe('serve', () => {
    let server: ChildProcess | undefined;

    afterEach(() => {
      // Only if the test failed before stopping it.
      if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
      server = undefined;
    });

    it(
      'serves the API until SIGTERM, then exits 0',
      async () => {
        const port = await freePort();
        const base = `http://127.0.0.1:${port}`;
        // Run as a process manager runs `node dist/cli.js serve`: the signal goes to the service
        // itself. (`npx` would not pass SIGTERM on: npm exits and leaves the server running.)
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
          cwd: ROOT,
          env: cleanEnv(dataDir, { PORT: String(port), HOST: '127.0.0.1' }),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        server = child;
        let output = '';
        child.stdout.on('data', (chunk) => {
          output += chunk;
        });
        child.stderr.on('data', (chunk) => {
          output += chunk;
        });
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
          child.on('exit', (code, signal) => resolve({ code, signal })),
        );

        const deadline = Date.now() + 120_000;
        for (;;) {
          if (child.exitCode !== null) throw new Error(`serve exited early:\n${output}`);
          if (Date.now() > deadline) throw new Error(`serve did not answer /healthz:\n${output}`);
          const health = await fetch(`${base}/healthz`).catch(() => undefined);
          if (health?.status === 200) break;
          await sleep(100);
        }
        const ready = await fetch(`${base}/readyz`);
        expect(ready.status).toBe(200);
        expect(await ready.json()).toMatchObject({ status: 'ready' });

        // The CLI works on the same DATA_DIR while the server runs.
        await cliJson(
          ['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business', '--features', 'webhooks'],
          env,
        );
        const { key, id: keyId } = await cliJson(['key', 'create', 'acme', '--name', 'ci'], env);
        const auth = { authorization: `Bearer ${key}` };

        const created = await fetch(`${base}/api/v1/webhooks`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ url: 'https://example.com/hooks/plandocket', events: ['invoice.paid'] }),
        });
        const createdBody: any = await created.json();
        expect(created.status, JSON.stringify(createdBody)).toBe(201);
        const webhook = createdBody.data;
        expect(created.headers.get('location')).toBe(`/api/v1/webhooks/${webhook.id}`);
        expect(created.headers.get('x-request-id')).toBe(createdBody.meta.request_id);
        expect(webhook).toMatchObject({
          name: 'example.com',
          url: 'https://example.com/hooks/plandocket',
          events: ['invoice.paid'],
          is_active: true,
          retry_count: 3,
          timeout_seconds: 30,
          secret: expect.stringMatching(/^whsec_/),
        });

        const list = await fetch(`${base}/api/v1/webhooks`, { headers: auth });
        expect(list.status).toBe(200);
        const listBody: any = await list.json();
        expect(listBody.meta).toMatchObject({ page: 1, per_page: 25, total: 1, total_pages: 1 });
        expect(listBody.data).toHaveLength(1);
        const { secret: _secret, ...withoutSecret } = webhook;
        expect(listBody.data[0]).toEqual(withoutSecret);

        // A key revoked with the CLI stops working at once.
        const revoked = await cli(['key', 'revoke', 'acme', String(keyId)], env);
        expect(revoked.code, revoked.stderr).toBe(0);
        expect((await fetch(`${base}/api/v1/webhooks`, { headers: auth })).status).toBe(401);

        child.kill('SIGTERM');
        const result = await Promise.race([
          exited,
          sleep(120_000).then(() => {
            throw new Error(`serve did not stop within 120 s of SIGTERM:\n${output}`);
          }),
        ]);
        expect(result, output).toEqual({ code: 0, signal: null });
        await expect(fetch(`${base}/healthz`)).rejects.toThrow();
      },
      TIMEOUT,
    );
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeDatabaseUrl } from '../src/cli/database.js';
import { buildProgram } from '../src/cli/program.js';
import { clockPast, waitFor } from './helpers/wait.js';

/**
 * The command line as an operator uses it: `src/cli.ts` run by tsx in child processes, each test
 * with a fresh DATA_DIR and the embedded SQLite database. Every run costs about a second.
 */

const ROOT = path.resolve(import.meta.dirname, '..');
/** tsx's loader by its full address: the CLI also runs from folders where `tsx` cannot be found. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const CLI = path.join(ROOT, 'src', 'cli.ts');
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
function cleanEnv(dataDir: string | undefined, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'LC_ALL', 'TERM'];
  const env: NodeJS.ProcessEnv = {};
  for (const name of keep) if (process.env[name] !== undefined) env[name] = process.env[name];
  return {
    ...env,
    npm_config_update_notifier: 'false',
    ...(dataDir !== undefined && { DATA_DIR: dataDir }),
    ...extra,
  };
}

/** Runs the CLI in `cwd` (the project's folder unless told), as `plandocket-webhooks ...` would. */
function cli(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
      cwd,
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
async function cliJson(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<Record<string, any>> {
  const run = await cli(args, env, cwd);
  expect(run.code, `${args.join(' ')}\n${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout);
}

/** `migrate`, as an operator runs it first: only it and `serve` create the database. */
async function migrateFirst(env: NodeJS.ProcessEnv): Promise<void> {
  const run = await cli(['migrate'], env);
  expect(run.code, `migrate\n${run.stderr}`).toBe(0);
}

/** A failed run: exit code 1, nothing on stdout, a message on stderr and no stack trace. */
function expectFailure(run: Run, label: string): void {
  expect(run.code, `${label}: ${run.stderr}`).toBe(1);
  expect(run.stdout, label).toBe('');
  expect(run.stderr.trim().length, label).toBeGreaterThan(0);
  expect(run.stderr, label).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

/**
 * A 404's message, printed as the API gives it, naming what was not found (`Tenant 'nope' not
 * found.`, `Webhook 999 not found.`, `API key 999 of tenant 'acme' not found.`).
 */
const notFound = (name: string) =>
  new RegExp(`^[A-Z][^\\n]*[ ']${name.replace(/\W/g, '\\$&')}'?( [^\\n]*)? not found\\.\n$`);

const noDatabase = (sqlitePath: string) =>
  `No database at ${sqlitePath}. Run this command from the folder the service was started in, ` +
  "set DATA_DIR to the service's data folder, or create one with 'plandocket-webhooks migrate'.\n";

/** Every command of the tree, as the words that name it (the program itself first: []). */
function commandPaths(command: Command, prefix: string[] = []): { path: string[]; command: Command }[] {
  return [
    { path: prefix, command },
    ...command.commands.flatMap((c) => commandPaths(c, [...prefix, c.name()])),
  ];
}

/** A command's `--help`, as the CLI prints it (with the text added after it). */
function helpOf(command: Command): string {
  let help = '';
  command.configureOutput({
    writeOut: (text) => {
      help += text;
    },
  });
  command.outputHelp();
  return help;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ');

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
    'run where there is no database, a command exits 1 naming where it looked and leaves the folder empty; migrate creates the database',
    async () => {
      // A folder where the service never ran, and nothing set: the database would be ./data here.
      const folder = realpathSync(dataDir);
      const shell = cleanEnv(undefined);
      const commands = [
        ['tenant', 'show', 'acme'],
        ['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business'],
        ['key', 'revoke', 'acme', '1'],
        ['emit', 'acme', 'invoice.paid'],
        ['portal-link', 'acme'],
        ['deliveries', 'list', 'acme', '1'],
        ['recover', 'acme', '1', '--since', new Date().toISOString()],
        ['prune'],
      ];
      const runs = await Promise.all(commands.map((args) => cli(args, shell, folder)));
      runs.forEach((run, i) => {
        const label = (commands[i] as string[]).join(' ');
        expectFailure(run, label);
        expect(run.stderr, label).toBe(noDatabase(path.join(folder, 'data', 'webhooks.db')));
      });
      expect(readdirSync(folder), 'no data folder, admin token or secrets key made').toEqual([]);

      // DATA_DIR naming a folder that does not exist (relative: from the current folder), or an
      // empty one: the same message naming it, and nothing made or written into it.
      const [named, empty] = await Promise.all([
        cli(['tenant', 'show', 'acme'], cleanEnv('srv/data'), folder),
        (async () => {
          mkdirSync(path.join(folder, 'empty'));
          return cli(['tenant', 'show', 'acme'], cleanEnv(path.join(folder, 'empty')), folder);
        })(),
      ]);
      expectFailure(named, 'a DATA_DIR that does not exist');
      expect(named.stderr).toBe(noDatabase(path.join(folder, 'srv', 'data', 'webhooks.db')));
      expectFailure(empty, 'an empty DATA_DIR');
      expect(empty.stderr).toBe(noDatabase(path.join(folder, 'empty', 'webhooks.db')));
      expect(readdirSync(folder)).toEqual(['empty']);
      expect(readdirSync(path.join(folder, 'empty'))).toEqual([]);

      const migrated = await cli(['migrate'], shell, folder);
      expect(migrated.code, migrated.stderr).toBe(0);
      expect(migrated.stdout).toMatch(/^Applied: /);
      expect(migrated.stderr).toContain(path.join(folder, 'data', 'admin-token'));
      expect(readdirSync(path.join(folder, 'data'))).toEqual(
        expect.arrayContaining(['admin-token', 'secrets.key', 'webhooks.db']),
      );

      // Now the same commands reach the database, and say what they did not find in the API's own
      // words: the CLI prints the operator API's message as it is.
      const { buildApp } = await import('../src/api/app.js');
      const { loadConfig } = await import('../src/config.js');
      const { openStore } = await import('../src/store/db.js');
      const config = loadConfig({ DATA_DIR: path.join(folder, 'data') });
      await cliJson(['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business'], shell, folder);
      // The command, the same request to the API, and what was not found.
      const cases: [string[], 'GET' | 'POST' | 'DELETE', string, string][] = [
        [['tenant', 'show', 'nope'], 'GET', '/internal/v1/tenants/nope', 'nope'],
        [['key', 'revoke', 'acme', '999'], 'DELETE', '/internal/v1/tenants/acme/api-keys/999', '999'],
        [
          ['deliveries', 'list', 'acme', '42'],
          'GET',
          '/internal/v1/tenants/acme/webhooks/42/deliveries',
          '42',
        ],
        [['portal-link', 'nope'], 'POST', '/internal/v1/tenants/nope/portal-links', 'nope'],
      ];
      const [created, ...unknown] = await Promise.all([
        cli(['tenant', 'show', 'acme'], shell, folder),
        ...cases.map(([args]) => cli(args, shell, folder)),
      ]);
      expect(created?.code, created?.stderr).toBe(0);
      const store = await openStore({ sqlitePath: config.sqlitePath });
      const app = await buildApp({ config, store });
      try {
        for (const [i, [args, method, url, missing]] of cases.entries()) {
          const label = args.join(' ');
          const answer = await app.inject({
            method,
            url,
            headers: { authorization: `Bearer ${config.adminToken}` },
          });
          expect(answer.statusCode, label).toBe(404);
          const run = unknown[i] as Run;
          expectFailure(run, label);
          expect(run.stderr, label).toBe(`${answer.json().error}\n`);
          expect(run.stderr, label).toMatch(notFound(missing));
        }
      } finally {
        await app.close();
        await store.close();
      }
    },
    2 * TIMEOUT,
  );

  it(
    'only migrate and serve write to DATA_DIR: with the admin token and secrets key given to the service, other commands make neither',
    async () => {
      const service = {
        ADMIN_TOKEN: `adm_${'x'.repeat(32)}`,
        SECRETS_KEY: Buffer.alloc(32, 7).toString('hex'),
      };
      const migrated = await cli(['migrate'], { ...env, ...service });
      expect(migrated.code, migrated.stderr).toBe(0);
      const files = readdirSync(dataDir).sort();
      expect(files).toContain('webhooks.db');
      expect(files).not.toContain('admin-token');
      expect(files).not.toContain('secrets.key');

      // The operator's shell lacks both: the command works all the same and writes neither.
      const created = await cli(['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business'], env);
      expect(created.code, created.stderr).toBe(0);
      expect(JSON.parse(created.stdout)).toMatchObject({ slug: 'acme' });
      expect(created.stderr).toBe('');
      const after = readdirSync(dataDir);
      expect(after).not.toContain('admin-token');
      expect(after).not.toContain('secrets.key');
    },
    TIMEOUT,
  );

  it('names a PostgreSQL database without its password', () => {
    expect(
      describeDatabaseUrl(
        'postgres://webhooks:s3cret@db.internal:5432/webhooks?options=-c%20search_path%3Dhooks&sslmode=require',
      ),
    ).toBe('postgres://webhooks@db.internal:5432/webhooks');
    expect(describeDatabaseUrl('postgresql://db.internal/webhooks')).toBe(
      'postgresql://db.internal/webhooks',
    );
  });

  it.skipIf(!process.env.TEST_DATABASE_URL)(
    'on PostgreSQL, a command other than migrate and serve creates no tables: it says the database has not been migrated',
    async () => {
      const base = process.env.TEST_DATABASE_URL as string;
      const schema = `cli_${Date.now().toString(36)}_${process.pid}`;
      const admin = new pg.Client({ connectionString: base });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      const tables = async () =>
        (await admin.query('select tablename from pg_catalog.pg_tables where schemaname = $1', [schema])).rows
          .length;
      try {
        const url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
        const folder = realpathSync(dataDir);
        const shell = cleanEnv(undefined, { DATABASE_URL: url });
        const [shown, link] = await Promise.all([
          cli(['tenant', 'show', 'acme'], shell, folder),
          cli(['portal-link', 'acme'], shell, folder),
        ]);
        const message =
          `The database ${describeDatabaseUrl(base)} (schema ${schema}) has not been migrated. ` +
          "Check that DATABASE_URL names the service's database, or create its tables with 'plandocket-webhooks migrate'.\n";
        for (const [label, run] of [
          ['tenant show', shown],
          ['portal-link', link],
        ] as const) {
          expectFailure(run, label);
          expect(run.stderr, label).toBe(message);
        }
        const password = URL.canParse(base) ? new URL(base).password : '';
        if (password) expect(shown.stderr).not.toContain(password);
        expect(await tables(), 'no table created').toBe(0);
        expect(readdirSync(folder), 'nothing written here').toEqual([]);

        const migrated = await cli(['migrate'], shell, folder);
        expect(migrated.code, migrated.stderr).toBe(0);
        expect(await tables()).toBeGreaterThan(0);
        const unknown = await cli(['tenant', 'show', 'acme'], shell, folder);
        expectFailure(unknown, 'an unknown tenant once migrated');
        expect(unknown.stderr).toMatch(notFound('acme'));
      } finally {
        await admin.query(`drop schema ${schema} cascade`);
        await admin.end();
      }
    },
    TIMEOUT,
  );

  it(
    '--help of every command and subcommand has a description and an example',
    async () => {
      // Every command's help, from the command tree itself (in process: one CLI run each would
      // cost a second apiece); a few of them also from the CLI, to show they are what it prints.
      const commands = commandPaths(buildProgram());
      expect(commands.length).toBeGreaterThan(15);
      const helps = commands.map(({ command }) => helpOf(command));
      commands.forEach(({ path: words, command }, i) => {
        const help = helps[i] as string;
        const name = ['plandocket-webhooks', ...words].join(' ');
        expect(help, name).toMatch(new RegExp(`^Usage: ${name} `));
        expect(command.description().length, `${name}: a description`).toBeGreaterThan(10);
        expect(oneLine(help), name).toContain(oneLine(command.description()));
        expect(help, `${name}: an example`).toMatch(/\nExamples?:\n {2}\$ /);
        const example = help.slice(help.search(/\nExamples?:\n/));
        expect(example, `${name}: its example runs it`).toMatch(new RegExp(`\\$ .*${name}( |\n)`));
      });

      const sample = [[], ['tenant'], ['key', 'revoke'], ['portal-link'], ['deliveries', 'list']];
      const runs = await Promise.all(sample.map((words) => cli([...words, '--help'], env)));
      sample.forEach((words, i) => {
        const run = runs[i] as Run;
        const label = `${words.join(' ')} --help`;
        expect(run.code, `${label}: ${run.stderr}`).toBe(0);
        const index = commands.findIndex(({ path: p }) => p.join(' ') === words.join(' '));
        expect(oneLine(run.stdout), label).toBe(oneLine(helps[index] as string));
      });
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
      await migrateFirst(env);
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
      expect(again.stderr).toMatch(notFound(String(key.id)));
    },
    TIMEOUT,
  );

  it(
    'portal-link prints a one-time link to the portal for a tenant; an unknown tenant exits 1',
    async () => {
      await migrateFirst(env);
      await cliJson(
        ['tenant', 'create', 'acme', '--name', 'Acme', '--plan', 'business', '--features', 'webhooks'],
        env,
      );
      // Links name PUBLIC_URL, else http://localhost:$PORT (8080 when PORT is not set).
      const [link, atDefaultPort, atPublicUrl, publicUrlOverPort] = await Promise.all([
        cliJson(['portal-link', 'acme'], { ...env, PORT: '9123' }),
        cliJson(['portal-link', 'acme'], env),
        cliJson(['portal-link', 'acme'], { ...env, PUBLIC_URL: 'https://webhooks.example.com' }),
        cliJson(['portal-link', 'acme'], {
          ...env,
          PORT: '9123',
          PUBLIC_URL: 'https://example.com/webhooks/',
        }),
      ]);
      expect(link.url).toMatch(/^http:\/\/localhost:9123\/portal\/#token=pdp_[A-Za-z0-9_-]{43}$/);
      expect(Date.parse(link.expires_at)).toBeGreaterThan(Date.now());
      expect(atDefaultPort.url).toMatch(/^http:\/\/localhost:8080\/portal\/#token=pdp_/);
      expect(atPublicUrl.url).toMatch(/^https:\/\/webhooks\.example\.com\/portal\/#token=pdp_/);
      expect(publicUrlOverPort.url).toMatch(/^https:\/\/example\.com\/webhooks\/portal\/#token=pdp_/);
      expect(new Set([link, atDefaultPort, atPublicUrl, publicUrlOverPort].map((l) => l.url)).size).toBe(4);

      const help = await cli(['portal-link', '--help'], env);
      expect(help.code, help.stderr).toBe(0);
      expect(oneLine(help.stdout)).toContain('Links name PUBLIC_URL, else http://localhost:$PORT');

      const unknown = await cli(['portal-link', 'nobody'], env);
      expectFailure(unknown, 'portal link for an unknown tenant');
      expect(unknown.stderr).toMatch(notFound('nobody'));
    },
    TIMEOUT,
  );

  it(
    'bad input exits 1 with a readable message',
    async () => {
      // Sequentially first: the database, the admin token and the tenant.
      await migrateFirst(env);
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
        ['an unknown tenant (show)', ['tenant', 'show', 'nope'], notFound('nope')],
        ['an unknown tenant (update)', ['tenant', 'update', 'nope', '--name', 'X'], notFound('nope')],
        ['an unknown tenant (key create)', ['key', 'create', 'nope', '--name', 'ci'], notFound('nope')],
        ['an unknown key', ['key', 'revoke', 'acme', '999'], notFound('999')],
        ['a key id that is not a number', ['key', 'revoke', 'acme', 'abc'], notFound('abc')],
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
    2 * TIMEOUT,
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
      await migrateFirst(env);
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
        ['an unknown webhook', ['deliveries', 'list', 'acme', '999'], notFound('999')],
        ['an unknown tenant', ['deliveries', 'list', 'nope', hook], notFound('nope')],
        ['an unknown delivery', ['deliveries', 'show', 'acme', hook, 'dlv_nope'], notFound('dlv_nope')],
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
        let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
        child.on('exit', (code, signal) => {
          exit = { code, signal };
        });
        /** Waits for `state` of the process, its output in the error when it does not come. */
        const serveTo = <T>(what: string, state: () => Promise<T> | T) =>
          waitFor(state, 120_000, `serve to ${what}`).catch((error: Error) => {
            throw new Error(`${error.message}:\n${output}`);
          });

        await serveTo('answer /healthz', async () => {
          if (exit) throw new Error(`serve exited early:\n${output}`);
          return (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200;
        });
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
        const result = await serveTo('stop after SIGTERM', () => exit);
        expect(result, output).toEqual({ code: 0, signal: null });
        await expect(fetch(`${base}/healthz`)).rejects.toThrow();
      },
      TIMEOUT,
    );
  });
});

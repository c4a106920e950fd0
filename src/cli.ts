#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import type { AppOptions } from './api/app.js';
import { deliveriesCommand, pruneCommand, recoverCommand } from './cli/deliveries.js';
import { type Config, loadConfig } from './config.js';
import { PLANS } from './domain/plans.js';
import { openConfiguredStore, ROLES, type Role, serve } from './server.js';
import { migrate } from './store/db.js';
import { VERSION } from './version.js';

/**
 * The operator's command line. Tenant and key commands go through the operator API in process
 * (`inject`), so they share its validation, messages and output exactly.
 */

function config(): Config {
  return loadConfig(process.env, {
    onAdminTokenCreated: (token, file) => {
      process.stderr.write(
        `Generated an admin token, stored in ${file}. It is shown only this once:\n\n  ${token}\n\n`,
      );
    },
  });
}

const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function plan(value: string): string {
  if (!(PLANS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`Choose one of: ${PLANS.join(', ')}.`);
  }
  return value;
}

/** `--max-webhooks`: a count, or `default` (the service's MAX_WEBHOOKS_PER_TENANT). */
function maxWebhooks(value: string): number | 'default' {
  if (value === 'default') return value;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('A positive integer, or "default".');
  return Number(value);
}

/**
 * `--notification-email`: an address (the API checks it), or `none` for no mail. Mapped in the
 * action, not by an option parser: Commander turns a parser's null into an empty string.
 */
const notificationEmail = (value: string | undefined): string | null | undefined =>
  value === 'none' ? null : value;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/**
 * Sends one operator API request in process. A failed request prints its error (and the field
 * errors) to stderr, sets exit code 1 and gives undefined; otherwise the answer's body.
 */
async function request(
  method: Method,
  url: string,
  body?: object,
  appOptions: Pick<AppOptions, 'onRecoverProgress'> = {},
): Promise<{ data?: unknown; meta?: Record<string, unknown> } | undefined> {
  const cfg = config();
  const store = await openConfiguredStore(cfg);
  try {
    await migrate(store);
    // Loaded here, not at the top: `serve --role worker` needs none of the API.
    const { buildApp } = await import('./api/app.js');
    const app = await buildApp({ config: cfg, store, ...appOptions });
    const response = await app.inject({
      method,
      url,
      // Links the API makes (portal links) name this host when PUBLIC_URL is not set.
      headers: { authorization: `Bearer ${cfg.adminToken}`, host: `localhost:${cfg.port}` },
      ...(body && { payload: body }),
    });
    await app.close();
    if (response.statusCode >= 400) {
      const { error, errors } = response.json();
      process.stderr.write(`${error}\n`);
      for (const [field, messages] of Object.entries((errors ?? {}) as Record<string, string[]>)) {
        for (const message of messages) process.stderr.write(`  ${field}: ${message}\n`);
      }
      process.exitCode = 1;
      return undefined;
    }
    return response.statusCode === 204 ? {} : response.json();
  } finally {
    await store.close();
  }
}

/** Sends one operator API request and prints the answer's data as JSON. */
async function operator(method: Method, url: string, body?: object): Promise<void> {
  const answer = await request(method, url, body);
  if (!answer) return;
  process.stdout.write(answer.data === undefined ? 'Done.\n' : `${JSON.stringify(answer.data, null, 2)}\n`);
}

const program = new Command('plandocket-webhooks')
  .description('PlanDocket Webhooks: deliver platform events to tenants’ HTTPS endpoints')
  .version(VERSION);

program
  .command('serve')
  .description('apply migrations, then serve the API and deliver events')
  .addOption(
    new Option('--role <role>', 'api: HTTP only; worker: deliveries only; all: both')
      .choices(ROLES)
      .default('all'),
  )
  .action(async (o: { role: Role }) => serve(config(), o.role));

program
  .command('migrate')
  .description('apply pending database migrations')
  .action(async () => {
    const store = await openConfiguredStore(config());
    try {
      const applied = await migrate(store);
      process.stdout.write(
        applied.length ? `Applied: ${applied.join(', ')}\n` : 'The database is up to date.\n',
      );
    } finally {
      await store.close();
    }
  });

const tenant = program.command('tenant').description('manage tenants');
tenant
  .command('create <slug>')
  .requiredOption('--name <name>', 'display name')
  .requiredOption('--plan <plan>', `one of ${PLANS.join(', ')}`, plan)
  .option('--features <list>', 'comma-separated feature flags, e.g. webhooks', list, [])
  .option('--notification-email <address>', 'where mails about its webhooks go')
  .action(
    (slug: string, o: { name: string; plan: string; features: string[]; notificationEmail?: string }) => {
      const email = notificationEmail(o.notificationEmail);
      return operator('POST', '/internal/v1/tenants', {
        slug,
        name: o.name,
        plan: o.plan,
        features: o.features,
        ...(email !== undefined && { notification_email: email }),
      });
    },
  );
tenant
  .command('show <slug>')
  .action((slug: string) => operator('GET', `/internal/v1/tenants/${encodeURIComponent(slug)}`));
tenant
  .command('update <slug>')
  .option('--name <name>', 'display name')
  .option('--plan <plan>', `one of ${PLANS.join(', ')}`, plan)
  .option('--features <list>', 'comma-separated feature flags (replaces the set)', list)
  .option(
    '--max-webhooks <n>',
    'webhooks the tenant may have, or "default" for MAX_WEBHOOKS_PER_TENANT',
    maxWebhooks,
  )
  .option('--notification-email <address>', 'where mails about its webhooks go, or "none" for no mail')
  .action(
    (
      slug: string,
      o: {
        name?: string;
        plan?: string;
        features?: string[];
        maxWebhooks?: number | 'default';
        notificationEmail?: string;
      },
    ) => {
      const { maxWebhooks: max, notificationEmail: given, ...rest } = o;
      const email = notificationEmail(given);
      return operator('PATCH', `/internal/v1/tenants/${encodeURIComponent(slug)}`, {
        ...rest,
        ...(max !== undefined && { max_webhooks: max === 'default' ? null : max }),
        ...(email !== undefined && { notification_email: email }),
      });
    },
  );

program
  .command('emit <tenant> <type>')
  .description('publish an event, as the platform does')
  .option('--data <json>', 'the event data, a JSON object', '{}')
  .option('--id <id>', 'your id for the event: publishing it again is a no-op')
  .action((slug: string, type: string, o: { data: string; id?: string }) => {
    let data: unknown;
    try {
      data = JSON.parse(o.data);
    } catch {
      throw new InvalidArgumentError('--data must be JSON, e.g. \'{"invoice_id": 42}\'.');
    }
    return operator('POST', '/internal/v1/events', { tenant: slug, type, data, ...(o.id && { id: o.id }) });
  });

const key = program.command('key').description('manage API keys');
key
  .command('create <tenant>')
  .requiredOption('--name <name>', 'what the key is for')
  .option('--scopes <list>', 'comma-separated scopes', list, ['webhooks'])
  .action((slug: string, o: { name: string; scopes: string[] }) =>
    operator('POST', `/internal/v1/tenants/${encodeURIComponent(slug)}/api-keys`, o),
  );
key
  .command('revoke <tenant> <id>')
  .action((slug: string, id: string) =>
    operator('DELETE', `/internal/v1/tenants/${encodeURIComponent(slug)}/api-keys/${encodeURIComponent(id)}`),
  );

program
  .command('portal-link <tenant>')
  .description(
    'make a one-time link that signs the tenant in to the portal (PUBLIC_URL sets its host; valid for PORTAL_LINK_TTL)',
  )
  .action((slug: string) =>
    operator('POST', `/internal/v1/tenants/${encodeURIComponent(slug)}/portal-links`),
  );

program.addCommand(deliveriesCommand(request));
program.addCommand(recoverCommand(request));
program.addCommand(pruneCommand(request));

// better-sqlite3 13 crashes on older Node.js lines (a segmentation fault, no message): say why instead.
const nodeMajor = Number(process.versions.node.split('.')[0]);
if (nodeMajor < 22) {
  process.stderr.write(`PlanDocket Webhooks needs Node.js 22 or newer; this is ${process.version}.\n`);
  process.exit(1);
}

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

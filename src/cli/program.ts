import { Command, InvalidArgumentError, Option } from 'commander';
import type { AppOptions } from '../api/app.js';
import { type Config, type LoadOptions, loadConfig } from '../config.js';
import { PLANS } from '../domain/plans.js';
import { openConfiguredStore, ROLES, type Role, serve } from '../server.js';
import { migrate } from '../store/db.js';
import { VERSION } from '../version.js';
import { openExistingStore } from './database.js';
import { deliveriesCommand, pruneCommand, recoverCommand } from './deliveries.js';
import { examples } from './output.js';

/**
 * The operator's command line. Tenant and key commands go through the operator API in process
 * (`inject`), so they share its validation, messages and output exactly. It reads the same
 * configuration as the server (DATA_DIR, DATABASE_URL, ...); only `migrate` and `serve` create a
 * database, or anything in DATA_DIR.
 */

function config(options: Pick<LoadOptions, 'createFiles'> = {}): Config {
  return loadConfig(process.env, {
    ...options,
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

/** The message of an error answer: the API's own (`Tenant 'acme' not found.`), as it is. */
function errorMessage(statusCode: number, body: { error?: unknown; message?: unknown }): string {
  if (typeof body.error === 'string') return body.error;
  if (typeof body.message === 'string') return body.message;
  return `The operator API answered HTTP ${statusCode}.`;
}

/**
 * Sends one operator API request in process, on the existing database (see openExistingStore). A
 * failed request prints its error (and the field errors) to stderr, sets exit code 1 and gives
 * undefined; otherwise the answer's body.
 */
async function request(
  method: Method,
  url: string,
  body?: object,
  appOptions: Pick<AppOptions, 'onRecoverProgress'> = {},
): Promise<{ data?: unknown; meta?: Record<string, unknown> } | undefined> {
  const cfg = config({ createFiles: false });
  const store = await openExistingStore(cfg);
  try {
    // Loaded here, not at the top: `serve --role worker` needs none of the API.
    const { buildApp } = await import('../api/app.js');
    const app = await buildApp({ config: cfg, store, ...appOptions });
    const response = await app.inject({
      method,
      url,
      // Links the API makes (portal links) name this host when PUBLIC_URL is not set:
      // http://localhost:$PORT, the port the service listens on when it runs with this PORT.
      headers: { authorization: `Bearer ${cfg.adminToken}`, host: `localhost:${cfg.port}` },
      ...(body && { payload: body }),
    });
    await app.close();
    if (response.statusCode >= 400) {
      let answer: { error?: unknown; message?: unknown; errors?: unknown } = {};
      try {
        answer = response.json();
      } catch {
        // Not JSON: the status says it.
      }
      process.stderr.write(`${errorMessage(response.statusCode, answer)}\n`);
      for (const [field, messages] of Object.entries((answer.errors ?? {}) as Record<string, string[]>)) {
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

const tenantPath = (slug: string) => `/internal/v1/tenants/${encodeURIComponent(slug)}`;

/** The whole command tree; `src/cli.ts` runs it. */
export function buildProgram(): Command {
  const program = new Command('plandocket-webhooks')
    .description('PlanDocket Webhooks: deliver platform events to tenants’ HTTPS endpoints')
    .version(VERSION)
    .addHelpText(
      'after',
      `${examples(
        'migrate',
        'tenant create acme --name "Acme Inc." --plan business --features webhooks',
        'portal-link acme',
      )}
Every command reads the service's configuration from the environment, as the service does: the
SQLite database in DATA_DIR (default ./data, from the current folder), or DATABASE_URL. Run it
from the folder the service was started in, or with the service's DATA_DIR or DATABASE_URL. Only
'migrate' and 'serve' create a database.
`,
    );

  program
    .command('serve')
    .description('apply migrations, then serve the API and deliver events')
    .addOption(
      new Option('--role <role>', 'api: HTTP only; worker: deliveries only; all: both')
        .choices(ROLES)
        .default('all'),
    )
    .addHelpText('after', examples('serve', 'PORT=8081 serve --role worker'))
    .action(async (o: { role: Role }) => serve(config(), o.role));

  program
    .command('migrate')
    .description('apply pending database migrations, creating the database when there is none')
    .addHelpText(
      'after',
      examples('migrate', 'DATABASE_URL=postgres://webhooks@db.internal:5432/webhooks migrate'),
    )
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

  const tenant = program
    .command('tenant')
    .description('manage tenants: create one, show it with its API keys, update its plan, features or limits')
    .addHelpText(
      'after',
      examples(
        'tenant create acme --name "Acme Inc." --plan business --features webhooks',
        'tenant show acme',
        'tenant update acme --plan enterprise',
      ),
    );
  tenant
    .command('create <slug>')
    .description('create a tenant; prints it as JSON')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--plan <plan>', `one of ${PLANS.join(', ')}`, plan)
    .option('--features <list>', 'comma-separated feature flags, e.g. webhooks', list, [])
    .option('--notification-email <address>', 'where mails about its webhooks go')
    .addHelpText(
      'after',
      examples(
        'tenant create acme --name "Acme Inc." --plan business --features webhooks --notification-email ops@acme.example',
      ),
    )
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
    .description('show a tenant and its live API keys (their prefixes, never the keys), as JSON')
    .addHelpText('after', examples('tenant show acme'))
    .action((slug: string) => operator('GET', tenantPath(slug)));
  tenant
    .command('update <slug>')
    .description("change a tenant's name, plan, features, webhook limit or notification address")
    .option('--name <name>', 'display name')
    .option('--plan <plan>', `one of ${PLANS.join(', ')}`, plan)
    .option('--features <list>', 'comma-separated feature flags (replaces the set)', list)
    .option(
      '--max-webhooks <n>',
      'webhooks the tenant may have, or "default" for MAX_WEBHOOKS_PER_TENANT',
      maxWebhooks,
    )
    .option('--notification-email <address>', 'where mails about its webhooks go, or "none" for no mail')
    .addHelpText(
      'after',
      examples(
        'tenant update acme --plan enterprise --max-webhooks 200',
        'tenant update acme --notification-email none',
      ),
    )
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
        return operator('PATCH', tenantPath(slug), {
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
    .addHelpText('after', examples(`emit acme invoice.paid --data '{"invoice_id": 42}' --id invoice-42-paid`))
    .action((slug: string, type: string, o: { data: string; id?: string }) => {
      let data: unknown;
      try {
        data = JSON.parse(o.data);
      } catch {
        throw new InvalidArgumentError('--data must be JSON, e.g. \'{"invoice_id": 42}\'.');
      }
      return operator('POST', '/internal/v1/events', {
        tenant: slug,
        type,
        data,
        ...(o.id && { id: o.id }),
      });
    });

  const key = program
    .command('key')
    .description("manage a tenant's API keys: create one (shown only once), revoke one")
    .addHelpText('after', examples('key create acme --name ci', 'key revoke acme 7'));
  key
    .command('create <tenant>')
    .description('make an API key for a tenant; the key is printed only this once')
    .requiredOption('--name <name>', 'what the key is for')
    .option('--scopes <list>', 'comma-separated scopes', list, ['webhooks'])
    .addHelpText('after', examples('key create acme --name ci --scopes webhooks'))
    .action((slug: string, o: { name: string; scopes: string[] }) =>
      operator('POST', `${tenantPath(slug)}/api-keys`, o),
    );
  key
    .command('revoke <tenant> <id>')
    .description("revoke an API key at once (its id is in 'tenant show')")
    .addHelpText('after', examples('key revoke acme 7'))
    .action((slug: string, id: string) =>
      operator('DELETE', `${tenantPath(slug)}/api-keys/${encodeURIComponent(id)}`),
    );

  program
    .command('portal-link <tenant>')
    .description(
      'make a one-time link that signs the tenant in to the portal (PUBLIC_URL, else http://localhost:$PORT; valid for PORTAL_LINK_TTL)',
    )
    .addHelpText(
      'after',
      `${examples('portal-link acme', 'PUBLIC_URL=https://webhooks.example.com portal-link acme', 'PORT=8081 portal-link acme')}
Links name PUBLIC_URL, else http://localhost:$PORT (PORT default 8080): run this command with the
service's PUBLIC_URL or PORT, or the link points where the service is not.
`,
    )
    .action((slug: string) => operator('POST', `${tenantPath(slug)}/portal-links`));

  program.addCommand(deliveriesCommand(request));
  program.addCommand(recoverCommand(request));
  program.addCommand(pruneCommand(request));
  return program;
}

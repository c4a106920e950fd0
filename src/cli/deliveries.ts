import { Command } from 'commander';
import type { presentDelivery, presentDeliveryDetail } from '../api/present.js';
import type { RecoverProgress } from '../store/delivery-log.js';
import { examples, fields, json, progressBar, type Row, table } from './output.js';

/**
 * Operator commands for the delivery log: they call the operator API in process, the same
 * handlers as the tenants' routes, so validation and answers are identical.
 */

export type OperatorRequest = (
  method: 'GET' | 'POST',
  url: string,
  body?: object,
  appOptions?: { onRecoverProgress?: (progress: RecoverProgress) => void },
) => Promise<{ data?: unknown; meta?: Record<string, unknown> } | undefined>;

/** What the operator routes answer, as the API presents it. */
type Delivery = ReturnType<typeof presentDelivery>;
type DeliveryDetail = ReturnType<typeof presentDeliveryDetail>;

const COLUMNS = ['id', 'status', 'event', 'attempts', 'code', 'created', 'next attempt / last error'];

function row(d: Delivery): Row {
  return {
    id: d.id,
    status: d.status,
    event: d.is_test ? `${d.event_type} (test)` : d.event_type,
    attempts: String(d.attempts),
    code: d.last_status_code === null ? '-' : String(d.last_status_code),
    created: d.created_at,
    'next attempt / last error': d.next_attempt_at ?? d.last_error ?? '',
  };
}

const webhookPath = (tenant: string, webhookId: string) =>
  `/internal/v1/tenants/${encodeURIComponent(tenant)}/webhooks/${encodeURIComponent(webhookId)}`;

const jsonOption = ['--json', 'print JSON instead of a table'] as const;

function showDelivery(d: DeliveryDetail): string {
  const parts = [
    fields([
      ['Delivery', d.id],
      ['Event', `${d.event_id} (${d.event_type}${d.is_test ? ', test' : ''})`],
      ['Status', d.status],
      ['Attempts', String(d.attempts)],
      ['Next attempt', d.next_attempt_at ?? '-'],
      ['Created', d.created_at],
    ]),
    `\nPayload:\n${d.payload}\n`,
  ];
  for (const a of d.attempt_history) {
    const outcome = a.response_status === null ? (a.error ?? 'no answer') : `HTTP ${a.response_status}`;
    parts.push(`\nAttempt ${a.number}  ${a.started_at}  ${a.duration_ms} ms  ${outcome}\n`);
    parts.push(fields(Object.entries(a.request_headers).map(([k, v]) => [`  > ${k}`, v])));
    if (a.response_headers) {
      parts.push(fields(Object.entries(a.response_headers).map(([k, v]) => [`  < ${k}`, v])));
    }
    if (a.response_body) parts.push(`  Body: ${a.response_body}\n`);
  }
  return parts.join('');
}

export function deliveriesCommand(request: OperatorRequest): Command {
  const command = new Command('deliveries')
    .description("inspect and retry a webhook's deliveries")
    .addHelpText(
      'after',
      examples(
        'deliveries list acme 42 --status failed',
        'deliveries show acme 42 dlv_01J9ZQ4T6V8X2N3M5K7P9R1S3T',
        'deliveries retry acme 42 dlv_01J9ZQ4T6V8X2N3M5K7P9R1S3T',
        'deliveries test acme 42',
      ),
    );

  command
    .command('list <tenant> <webhook-id>')
    .description('the delivery log, newest first')
    .option('--status <status>', 'pending, succeeded, failed or cancelled')
    .option('--event <type>', 'an event type')
    .option('--since <time>', 'created at or after (RFC 3339)')
    .option('--until <time>', 'created at or before (RFC 3339)')
    .option('--limit <n>', 'at most this many (1 to 100)', '25')
    .option('--cursor <cursor>', 'the next page, as printed below the previous one')
    .option(...jsonOption)
    .addHelpText(
      'after',
      examples(
        'deliveries list acme 42 --status failed --since 2025-06-01T00:00:00Z',
        'deliveries list acme 42 --limit 100 --json',
      ),
    )
    .action(async (tenant: string, webhookId: string, o: Record<string, string | boolean | undefined>) => {
      const query = new URLSearchParams();
      for (const name of ['status', 'event', 'since', 'until', 'limit', 'cursor']) {
        const value = o[name];
        if (typeof value === 'string') query.set(name, value);
      }
      const answer = await request('GET', `${webhookPath(tenant, webhookId)}/deliveries?${query}`);
      if (!answer) return;
      const next = (answer.meta?.next_cursor ?? null) as string | null;
      if (o.json) {
        process.stdout.write(json({ data: answer.data, next_cursor: next }));
        return;
      }
      process.stdout.write(table((answer.data as Delivery[]).map(row), COLUMNS));
      if (next) process.stdout.write(`\nMore: --cursor ${next}\n`);
    });

  command
    .command('show <tenant> <webhook-id> <delivery-id>')
    .description('one delivery: the exact body sent and every attempt')
    .option(...jsonOption)
    .addHelpText('after', examples('deliveries show acme 42 dlv_01J9ZQ4T6V8X2N3M5K7P9R1S3T'))
    .action(async (tenant: string, webhookId: string, deliveryId: string, o: { json?: boolean }) => {
      const answer = await request(
        'GET',
        `${webhookPath(tenant, webhookId)}/deliveries/${encodeURIComponent(deliveryId)}`,
      );
      if (answer)
        process.stdout.write(o.json ? json(answer.data) : showDelivery(answer.data as DeliveryDetail));
    });

  command
    .command('retry <tenant> <webhook-id> <delivery-id>')
    .description('deliver again now')
    .option(...jsonOption)
    .addHelpText('after', examples('deliveries retry acme 42 dlv_01J9ZQ4T6V8X2N3M5K7P9R1S3T'))
    .action(async (tenant: string, webhookId: string, deliveryId: string, o: { json?: boolean }) => {
      const answer = await request(
        'POST',
        `${webhookPath(tenant, webhookId)}/deliveries/${encodeURIComponent(deliveryId)}/retry`,
      );
      if (answer)
        process.stdout.write(o.json ? json(answer.data) : table([row(answer.data as Delivery)], COLUMNS));
    });

  command
    .command('test <tenant> <webhook-id>')
    .description('send a webhook.test event to this webhook')
    .option(...jsonOption)
    .addHelpText('after', examples('deliveries test acme 42'))
    .action(async (tenant: string, webhookId: string, o: { json?: boolean }) => {
      const answer = await request('POST', `${webhookPath(tenant, webhookId)}/test`);
      if (answer)
        process.stdout.write(o.json ? json(answer.data) : table([row(answer.data as Delivery)], COLUMNS));
    });

  return command;
}

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function recoverCommand(request: OperatorRequest): Command {
  return new Command('recover')
    .argument('<tenant>')
    .argument('<webhook-id>')
    .description("queue again a webhook's failed deliveries of a time window (at most 14 days back)")
    .requiredOption('--since <time>', 'created at or after (RFC 3339)')
    .option('--until <time>', 'created at or before (RFC 3339); default now')
    .option('--missing', 'also send the events of the window it missed while it was paused or switched off')
    .option(...jsonOption)
    .addHelpText(
      'after',
      examples(
        'recover acme 42 --since 2025-06-01T00:00:00Z',
        'recover acme 42 --since 2025-06-01T00:00:00Z --until 2025-06-02T12:00:00Z --missing',
      ),
    )
    .action(
      async (
        tenant: string,
        webhookId: string,
        o: { since: string; until?: string; missing?: boolean; json?: boolean },
      ) => {
        // One bar per step: the failed deliveries, then the window's events looked through.
        let step: RecoverProgress['kind'] = 'failed';
        let bar = progressBar();
        const answer = await request(
          'POST',
          `${webhookPath(tenant, webhookId)}/recover`,
          {
            since: o.since,
            ...(o.until !== undefined && { until: o.until }),
            ...(o.missing && { missing: true }),
          },
          {
            onRecoverProgress: (p) => {
              if (p.kind !== step) {
                bar.end();
                bar = progressBar();
                step = p.kind;
              }
              if (p.kind === 'failed') bar.update(p.queued, p.total, 'failed deliveries queued');
              else bar.update(p.scanned, p.total, `events looked at, ${p.queued} missed queued`);
            },
          },
        );
        bar.end();
        if (!answer) return;
        const { failed, missing } = answer.data as { failed: number; missing: number };
        const again = `Queued ${count(failed, 'failed delivery', 'failed deliveries')} again`;
        process.stdout.write(
          o.json
            ? json(answer.data)
            : o.missing
              ? `${again}, and ${count(missing, 'event', 'events')} the webhook missed.\n`
              : `${again}.\n`,
        );
      },
    );
}

export function pruneCommand(request: OperatorRequest): Command {
  return new Command('prune')
    .description('remove deliveries, attempts and events older than RETENTION_DAYS (pending work stays)')
    .option(...jsonOption)
    .addHelpText('after', examples('prune', 'RETENTION_DAYS=7 prune --json'))
    .action(async (o: { json?: boolean }) => {
      const answer = await request('POST', '/internal/v1/prune');
      if (!answer) return;
      const { deliveries, events } = answer.data as { deliveries: number; events: number };
      process.stdout.write(
        o.json ? json(answer.data) : `Pruned ${deliveries} deliveries and ${events} events.\n`,
      );
    });
}

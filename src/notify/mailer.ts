import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import nodemailer, { type NodemailerError, type Transporter } from 'nodemailer';
import type { Config } from '../config.js';
import { settledWithin } from '../deadline.js';
import { DAY_MS, plannedDelay } from '../domain/retry-schedule.js';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/db.js';
import {
  abandonPendingMails,
  type ClaimedMail,
  claimMails,
  MAILS_QUEUED,
  markMailFailed,
  markMailSent,
  pruneMails,
} from '../store/mails.js';

/**
 * The mailer: sends the notification mails queued in the outbox (src/store/mails.ts) to the
 * mail server at SMTP_URL. One runs beside the delivery worker in each worker process; none in
 * an API process. It never holds up deliveries: it has its own loop, its own connections, and
 * every wait on the mail server is bounded.
 *
 * Its modes:
 * - SENDING: claims up to CLAIM_BATCH due mails with a lease (PostgreSQL skips the rows other
 *   mailers claim, so two processes do not send the same mail), sends them at once, records each
 *   result: `sent`; or a failed try, due again after the next wait of the retry schedule; or
 *   `failed` (given up) when the server refused the message or recipient for good, or the next
 *   try would come more than GIVE_UP_AFTER_MS after the mail was queued. A full batch is
 *   followed by another claim at once.
 * - WAITING: no due mail; sleeps POLL_MS, or less when woken (`wake()`, or a `wakeMailers` of
 *   this process after a mail was queued).
 * - OFF: SMTP_URL is not set. Nothing is sent and nothing connects; queued mails are given up at
 *   upkeep (`last_error` says why), so that they neither pile up nor go out days late once a
 *   server is configured. Set SMTP_URL on every worker process, or on none.
 * - STOPPING: `stop()`: no more claims; sends in flight have the grace period, then are cut off
 *   and left due again at once (a cut-off send may have arrived: mail is at least once).
 *
 * Upkeep, at start and every PRUNE_EVERY_MS: sent and given-up mails older than RETENTION_DAYS
 * are deleted.
 */

export interface MailerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MailerOptions {
  config: Pick<Config, 'mail' | 'retentionDays' | 'delivery'>;
  store: Store;
  metrics: Metrics;
  log: MailerLog;
  /** Waits after the 1st, 2nd, ... failed try; past its end the last repeats (tests shorten it). */
  retryScheduleMs?: readonly number[];
  /** How often the outbox is looked at without a wake-up (tests shorten it). */
  pollMs?: number;
}

export const MAIL_RETRY_SCHEDULE_MS = [30_000, 60_000, 5 * 60_000, 15 * 60_000, 60 * 60_000] as const;
/** A mail not sent within a day of the change it tells of is given up: it would be stale news. */
export const GIVE_UP_AFTER_MS = 24 * 3_600_000;
const POLL_MS = 5_000;
const CLAIM_BATCH = 10;
/** Bounds on each wait on the mail server, and on one send as a whole. */
const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 30_000;
const SEND_BOUND_MS = 60_000;
/** The lease outlasts a send, so that no other mailer takes over a mail still being sent. */
const LEASE_MS = SEND_BOUND_MS + 30_000;
const PRUNE_EVERY_MS = 10 * 60_000;
/** Rejections of this message or recipient, as opposed to the session or the login. */
const MESSAGE_REJECTIONS = new Set(['EENVELOPE', 'EMESSAGE']);

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export class Mailer {
  readonly id = `${hostname()}:${process.pid}:mail:${randomBytes(4).toString('hex')}`;
  private readonly transport: Transporter | undefined;
  /** The mail server's host and port, for logs: never the URL, which holds the password. */
  private readonly server: string | undefined;
  /** The password as written in SMTP_URL and as decoded, kept out of what is logged and stored. */
  private readonly passwords: string[] = [];
  private readonly schedule: readonly number[];
  private readonly pollMs: number;
  private readonly cutOff = new AbortController();
  private running = false;
  private loop: Promise<void> | undefined;
  private woken = false;
  private wakeUp: (() => void) | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private pruning: Promise<void> | undefined;
  private readonly onQueued = () => this.wake();

  constructor(private readonly options: MailerOptions) {
    this.schedule = options.retryScheduleMs ?? MAIL_RETRY_SCHEDULE_MS;
    this.pollMs = options.pollMs ?? POLL_MS;
    const smtpUrl = options.config.mail.smtpUrl;
    if (smtpUrl) {
      const url = new URL(smtpUrl);
      this.server = url.host;
      if (url.password) this.passwords.push(url.password, safeDecode(url.password));
      this.transport = nodemailer.createTransport({
        url: smtpUrl,
        connectionTimeout: CONNECTION_TIMEOUT_MS,
        greetingTimeout: GREETING_TIMEOUT_MS,
        socketTimeout: SOCKET_TIMEOUT_MS,
        dnsTimeout: CONNECTION_TIMEOUT_MS,
        // A login goes over TLS only (smtps://, or STARTTLS, which smtp:// otherwise uses only
        // when the server offers it), except to a server on this host. `?requireTLS=false` in
        // SMTP_URL overrides this: the URL's settings come last.
        requireTLS: Boolean(url.username || url.password) && !isLoopback(url.hostname),
      });
    }
  }

  /** Whether mail is sent at all (SMTP_URL is set). */
  get enabled(): boolean {
    return this.transport !== undefined;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
    if (!this.transport) return;
    this.options.log.info({ smtp_server: this.server }, 'sending notification mail');
    this.options.store.wakeups.on(MAILS_QUEUED, this.onQueued);
    this.loop = this.run();
  }

  /** Look at the outbox now (a mail was queued). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.pruneTimer);
    this.options.store.wakeups.off(MAILS_QUEUED, this.onQueued);
    this.wakeUp?.();
    // Sends in flight have SHUTDOWN_GRACE, as deliveries do.
    if (
      !(await settledWithin(this.loop ?? Promise.resolve(), this.options.config.delivery.shutdownGraceMs))
    ) {
      this.cutOff.abort(new Error('the mailer is stopping'));
      await settledWithin(this.loop ?? Promise.resolve(), 2_000);
    }
    await settledWithin(this.pruning ?? Promise.resolve(), 2_000);
    this.transport?.close();
  }

  private async run(): Promise<void> {
    while (this.running) {
      this.woken = false;
      let full = false;
      try {
        full = await this.sendDue();
      } catch (error) {
        // The database away: the next round tries again.
        this.options.log.warn({ err: error }, 'looking for mails to send failed; trying again later');
      }
      if (!this.running) break;
      if (full || this.woken) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** One claim and its sends; true when the batch was full (more may be due). */
  private async sendDue(): Promise<boolean> {
    const mails = await claimMails(this.options.store, {
      mailerId: this.id,
      now: Date.now(),
      limit: CLAIM_BATCH,
      leaseMs: LEASE_MS,
    });
    await Promise.all(
      mails.map((mail) =>
        // A result that could not be written: the lease expires and the mail is tried again.
        this.send(mail).catch((error) =>
          this.options.log.warn({ err: error, mail_id: mail.id }, 'recording a mail failed'),
        ),
      ),
    );
    return mails.length === CLAIM_BATCH;
  }

  private async send(mail: ClaimedMail): Promise<void> {
    const { store, metrics, log, config } = this.options;
    const transport = this.transport as Transporter;
    const mailerId = this.id;
    if (Date.now() - mail.created_at >= GIVE_UP_AFTER_MS) {
      await markMailFailed(store, {
        id: mail.id,
        mailerId,
        now: Date.now(),
        error: 'not sent within a day of being queued',
        retryAt: null,
        countsAsTry: false,
      });
      metrics.mails.inc({ outcome: 'failed' });
      log.error({ mail_id: mail.id, tenant_id: mail.tenant_id }, 'mail given up: too old to send');
      return;
    }
    try {
      await transport.sendMail({
        from: config.mail.from,
        to: mail.recipient,
        subject: mail.subject,
        text: mail.body,
        // RFC 3834: sent by a program; out-of-office replies are not sent back to it.
        headers: { 'Auto-Submitted': 'auto-generated' },
        signal: AbortSignal.any([this.cutOff.signal, AbortSignal.timeout(SEND_BOUND_MS)]),
      });
    } catch (error) {
      await this.failed(mail, error as NodemailerError);
      return;
    }
    await markMailSent(store, { id: mail.id, mailerId, now: Date.now() });
    metrics.mails.inc({ outcome: 'sent' });
  }

  private async failed(mail: ClaimedMail, error: NodemailerError): Promise<void> {
    const { store, metrics, log } = this.options;
    const now = Date.now();
    const message = this.redacted(error.message);
    if (this.cutOff.signal.aborted) {
      // Cut off by stop(), not the server's doing: due again at once, in whichever process.
      await markMailFailed(store, {
        id: mail.id,
        mailerId: this.id,
        now,
        error: message,
        retryAt: now,
        countsAsTry: false,
      });
      return;
    }
    const attempt = mail.attempts + 1;
    const refused = error.permanent === true && MESSAGE_REJECTIONS.has(error.code ?? '');
    const next = now + plannedDelay(this.schedule, attempt);
    const retryAt = refused || next - mail.created_at > GIVE_UP_AFTER_MS ? null : next;
    await markMailFailed(store, { id: mail.id, mailerId: this.id, now, error: message, retryAt });
    metrics.mails.inc({ outcome: retryAt === null ? 'failed' : 'retrying' });
    const details = {
      mail_id: mail.id,
      tenant_id: mail.tenant_id,
      attempt,
      smtp_server: this.server,
      code: error.code,
      response_code: error.responseCode,
      error: message,
    };
    if (retryAt === null) log.error(details, 'mail not sent; given up');
    else
      log.warn(
        { ...details, retry_at: new Date(retryAt).toISOString() },
        'mail not sent; trying again later',
      );
  }

  /** An error's text as it may be logged and stored: the password never, should a server echo it. */
  private redacted(text: string): string {
    return this.passwords.reduce((redacted, password) => redacted.split(password).join('***'), text);
  }

  private prune(): void {
    if (this.pruning) return;
    const { store, log, config } = this.options;
    this.pruning = (async () => {
      const now = Date.now();
      if (!this.transport) {
        const abandoned = await abandonPendingMails(store, now, 'SMTP_URL is not set');
        if (abandoned > 0) {
          this.options.metrics.mails.inc({ outcome: 'failed' }, abandoned);
          log.warn({ mails: abandoned }, 'notification mails given up: SMTP_URL is not set');
        }
      }
      await pruneMails(store, now - config.retentionDays * DAY_MS);
    })()
      .catch((error) => log.warn({ err: error }, 'pruning old mails failed; trying again later'))
      .finally(() => {
        this.pruning = undefined;
      });
  }
}

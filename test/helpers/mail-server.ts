import { createServer } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** A mail as the test SMTP server took it: the envelope, the login, the headers and the body. */
export interface ReceivedMail {
  /** MAIL FROM */
  from: string;
  /** RCPT TO */
  to: string[];
  /** The user that logged in. */
  user: string | undefined;
  /** Header names in lower case, folded lines joined, encoded words (RFC 2047) decoded. */
  headers: Map<string, string>;
  body: string;
}

export const MAIL_USER = 'mailer';
/** With characters that the SMTP_URL must escape: the URL's decoding is part of the test. */
export const MAIL_PASSWORD = 's3cret/p@ss';

/**
 * A real SMTP server on 127.0.0.1 (the `smtp-server` package), for tests: it asks for a login
 * (MAIL_USER, MAIL_PASSWORD; plain text is allowed on this loopback test server, which offers no
 * STARTTLS), keeps every mail it accepts, and refuses recipients as told (550).
 */
export class MailServer {
  readonly received: ReceivedMail[] = [];
  private server: SMTPServer | undefined;

  constructor(private readonly options: { refuse?: (recipient: string) => boolean } = {}) {}

  /** The SMTP_URL that reaches a server on `port` with the test login. */
  static url(port: number): string {
    return `smtp://${MAIL_USER}:${encodeURIComponent(MAIL_PASSWORD)}@127.0.0.1:${port}`;
  }

  async start(port = 0): Promise<number> {
    const server = new SMTPServer({
      logger: false,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth: (auth, _session, callback) => {
        if (auth.username === MAIL_USER && auth.password === MAIL_PASSWORD) {
          callback(null, { user: auth.username });
        } else {
          callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
        }
      },
      onRcptTo: (address, _session, callback) => {
        if (this.options.refuse?.(address.address)) {
          callback(Object.assign(new Error('No such mailbox'), { responseCode: 550 }));
        } else {
          callback();
        }
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const split = raw.search(/\r?\n\r?\n/);
          const head = raw.slice(0, split).replace(/\r?\n[ \t]+/g, ' ');
          const headers = new Map<string, string>();
          for (const line of head.split(/\r?\n/)) {
            const colon = line.indexOf(':');
            headers.set(line.slice(0, colon).trim().toLowerCase(), decodeWords(line.slice(colon + 1).trim()));
          }
          const mailFrom = session.envelope.mailFrom;
          this.received.push({
            from: mailFrom ? mailFrom.address : '',
            to: session.envelope.rcptTo.map((a) => a.address),
            user: session.user,
            headers,
            body: raw.slice(split).trim(),
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return (server.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * `=?UTF-8?Q?Your_webhook_=22ERP=22?=` -> `Your webhook "ERP"`, as a mail program shows a header
 * (RFC 2047: Q and B encodings; the space between two encoded words is not part of the text).
 */
export function decodeWords(value: string): string {
  return value
    .replace(/(\?=)\s+(=\?)/g, '$1$2')
    .replace(
      /=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g,
      (_word, charset: string, encoding: string, text: string) => {
        const bytes =
          encoding.toUpperCase() === 'B'
            ? Buffer.from(text, 'base64')
            : Buffer.from(
                text
                  .replace(/_/g, ' ')
                  .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
                'latin1',
              );
        return new TextDecoder(charset).decode(bytes);
      },
    );
}

/** A port on 127.0.0.1 where nothing listens (a mail server that is down), free to listen on later. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

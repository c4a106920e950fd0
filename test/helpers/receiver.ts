import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { Webhook as SvixWebhook } from 'svix';

/** One request as the receiver got it. */
export interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

/** What to answer: a status, headers, a body; or hang, or drop the connection. */
export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  delayMs?: number;
  /** Answers once this settles: a request held in flight until the test lets it go. */
  after?: Promise<unknown>;
  hang?: boolean;
  destroy?: boolean;
}

export type Responder = (request: Received, count: number) => Answer;

export interface TestCertificate {
  cert: string;
  key: string;
}

/** A certificate for the test host names, made in the test; trust `cert` as a CA. */
export async function makeCertificate(): Promise<TestCertificate> {
  const result = await generate([{ name: 'commonName', value: 'receiver.test' }], {
    keyType: 'ec',
    curve: 'P-256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'receiver.test' },
          { type: 2, value: 'loopback.test' },
          { type: 2, value: 'v6-loopback.test' },
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: result.cert, key: result.private };
}

/**
 * A real HTTPS server that records what arrives and answers as each path is told to
 * (200 by default).
 */
export class Receiver {
  readonly requests: Received[] = [];
  private readonly responders = new Map<string, Responder>();
  private readonly counts = new Map<string, number>();
  private readonly hanging = new Set<ServerResponse>();
  private server: Server | undefined;
  port = 0;
  /** TLS connections accepted so far. */
  connections = 0;

  constructor(private readonly certificate: TestCertificate) {}

  async start(port = 0, host = '127.0.0.1'): Promise<this> {
    this.server = createServer({ ...this.certificate, keepAliveTimeout: 60_000 }, (req, res) =>
      this.handle(req, res),
    );
    this.server.on('secureConnection', () => {
      this.connections += 1;
    });
    await new Promise<void>((resolve) => this.server?.listen(port, host, resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Closes the listener and every connection; the port then refuses. */
  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  url(path: string, host = 'receiver.test'): string {
    return `https://${host}:${this.port}${path}`;
  }

  on(path: string, responder: Responder): void {
    this.responders.set(path, responder);
  }

  at(path: string): Received[] {
    return this.requests.filter((r) => r.path === path);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = req.url ?? '/';
      const received: Received = {
        path,
        headers: Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]),
        ),
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      this.requests.push(received);
      const count = (this.counts.get(path) ?? 0) + 1;
      this.counts.set(path, count);
      const answer = this.responders.get(path)?.(received, count) ?? {};
      if (answer.hang) {
        this.hanging.add(res);
        return;
      }
      if (answer.destroy) {
        req.socket.destroy();
        return;
      }
      const reply = () => {
        res.writeHead(answer.status ?? 200, answer.headers ?? { 'content-type': 'application/json' });
        res.end(answer.body ?? '{"ok":true}');
      };
      if (answer.after) answer.after.then(reply, reply);
      else if (answer.delayMs) setTimeout(reply, answer.delayMs);
      else reply();
    });
  }
}

/** PlanDocket's documented receiver check, ported: `v1=` prefix, 300-second window, constant-time compare. */
export function plandocketDocsVerify(secret: string, headers: Record<string, string>, body: string): boolean {
  const signature = headers['x-webhook-signature'];
  const timestamp = headers['x-webhook-timestamp'];
  if (!signature?.startsWith('v1=') || !timestamp) return false;
  if (Math.abs(Math.floor(Date.now() / 1000) - Number(timestamp)) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  const given = signature.slice(3);
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/**
 * The same check run by a receiver that still holds the secret being replaced during a rotation:
 * it reads `X-Webhook-Signature-Previous` instead of `X-Webhook-Signature`.
 */
export function plandocketDocsVerifyPrevious(
  secret: string,
  headers: Record<string, string>,
  body: string,
): boolean {
  const previous = headers['x-webhook-signature-previous'];
  return (
    previous !== undefined &&
    plandocketDocsVerify(secret, { ...headers, 'x-webhook-signature': previous }, body)
  );
}

/** Checks a received request three ways; throws when any of them rejects it. */
export function verifyAllWays(secret: string, received: Received): void {
  new StandardWebhook(secret).verify(received.body, received.headers);
  new SvixWebhook(secret).verify(received.body, received.headers);
  if (!plandocketDocsVerify(secret, received.headers, received.body)) {
    throw new Error('the PlanDocket docs check rejected the request');
  }
}

import { type Agent, request } from 'undici';
import type { AddressPolicy } from '../domain/address-policy.js';
import { signatureHeaders } from '../domain/signing.js';
import type { AttemptRecord } from '../store/deliveries.js';
import { VERSION } from '../version.js';

/** Only this much of a response body is read and kept; the rest is not read. */
export const RESPONSE_CAPTURE_BYTES = 16 * 1024;
export const USER_AGENT = `PlanDocket-Webhooks/${VERSION}`;

/** Custom header values that look like credentials are masked in the stored attempt. */
const SENSITIVE_HEADER = /authorization|token|secret|api[-_]?key|cookie|password|signature/i;
const MASK = '********';

export interface Outgoing {
  deliveryId: string;
  eventId: string;
  eventType: string;
  url: string;
  body: string;
  customHeaders: Record<string, string>;
  /** Newest first; more than one during a secret rotation. */
  secrets: string[];
  timeoutMs: number;
}

export interface SenderOptions {
  agent: Agent;
  policy: AddressPolicy;
  allowHttp: boolean;
}

export interface SendResult extends AttemptRecord {
  retryAfter: string | undefined;
}

/** Why a URL may not be called at all, before any connection is made. */
function urlRefusal(url: URL, options: SenderOptions): string | null {
  const schemes = options.allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(url.protocol)) return `The URL scheme ${url.protocol} is not allowed`;
  const refusal = options.policy.hostRefusal(url.hostname);
  return refusal && `${url.hostname} is a ${refusal}, which webhooks may not reach`;
}

/** A readable reason for a failed attempt. */
export function describeError(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; code?: string; message?: string; cause?: unknown };
  if (
    e.name === 'TimeoutError' ||
    e.code === 'UND_ERR_HEADERS_TIMEOUT' ||
    e.code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return `Timed out after ${timeoutMs / 1000} s`;
  }
  if (e.cause && (e.code === undefined || e.code === 'UND_ERR_SOCKET'))
    return describeError(e.cause, timeoutMs);
  switch (e.code) {
    case 'E_REFUSED_ADDRESS':
      return `Refused: ${e.message}`;
    case 'ECONNREFUSED':
      return 'Connection refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'Connection reset by the receiver';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return `Connection timed out after ${timeoutMs / 1000} s`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `DNS lookup failed: ${e.message}`;
    default:
      if (e.code && /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED/.test(e.code)) {
        return (
          `TLS error: ${e.message}. The receiver's certificate is not signed by a trusted authority; ` +
          "for a self-signed or private one, the service's operator adds its CA to NODE_EXTRA_CA_CERTS."
        );
      }
      if (e.code && /CERT|TLS|SSL/.test(e.code)) return `TLS error: ${e.message}`;
      return `${e.code ? `${e.code}: ` : ''}${e.message ?? String(error)}`;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bodies are kept as text; one that is not UTF-8 is kept as `base64:...`. */
function bodyText(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return `base64:${bytes.toString('base64')}`;
  }
}

function flatHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

/**
 * Sends one delivery: a signed POST of the event body, no redirects followed, one time limit
 * for connecting, headers and the captured body together.
 */
export async function send(
  outgoing: Outgoing,
  options: SenderOptions,
  shutdown?: AbortSignal,
): Promise<SendResult> {
  const timestamp = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    ...outgoing.customHeaders,
    'Content-Type': 'application/json',
    'User-Agent': USER_AGENT,
    'X-Webhook-Event': outgoing.eventType,
    'X-Webhook-Delivery': outgoing.deliveryId,
    ...signatureHeaders(outgoing.secrets, outgoing.eventId, timestamp, outgoing.body),
  };
  const recordedHeaders = Object.fromEntries(
    Object.entries(headers).map(([name, value]) =>
      name in outgoing.customHeaders && SENSITIVE_HEADER.test(name) ? [name, MASK] : [name, value],
    ),
  );
  const startedAt = Date.now();
  const result = (fields: Partial<SendResult>): SendResult => ({
    startedAt,
    durationMs: Date.now() - startedAt,
    requestHeaders: recordedHeaders,
    statusCode: null,
    responseHeaders: null,
    responseBody: null,
    error: null,
    retryAfter: undefined,
    ...fields,
  });

  const url = new URL(outgoing.url);
  const refusal = urlRefusal(url, options);
  if (refusal) return result({ error: `Refused: ${refusal}` });

  // One controller and one timer: AbortSignal.timeout with AbortSignal.any cost about 3 % of a
  // worker's time at full speed.
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException('The delivery timed out', 'TimeoutError')),
    outgoing.timeoutMs,
  );
  const stop = () => controller.abort(shutdown?.reason);
  if (shutdown?.aborted) stop();
  else shutdown?.addEventListener('abort', stop, { once: true });
  try {
    const response = await request(url, {
      method: 'POST',
      headers,
      body: outgoing.body,
      dispatcher: options.agent,
      signal: controller.signal,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      chunks.push(buffer.subarray(0, RESPONSE_CAPTURE_BYTES - size));
      size += buffer.length;
      if (size >= RESPONSE_CAPTURE_BYTES) break;
    }
    if (size >= RESPONSE_CAPTURE_BYTES) response.body.destroy();
    const responseHeaders = flatHeaders(response.headers);
    return result({
      statusCode: response.statusCode,
      responseHeaders,
      responseBody: bodyText(Buffer.concat(chunks)),
      retryAfter: responseHeaders['retry-after'],
    });
  } catch (error) {
    return result({ error: describeError(error, outgoing.timeoutMs) });
  } finally {
    clearTimeout(timer);
    shutdown?.removeEventListener('abort', stop);
  }
}

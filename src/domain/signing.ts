import { createHmac } from 'node:crypto';

/**
 * Both signature families go on every delivery:
 * - PlanDocket's documented one: `X-Webhook-Timestamp` and `X-Webhook-Signature: v1=<hex>`, an
 *   HMAC-SHA256 of `{timestamp}.{body}` keyed with the secret string exactly as shown to the tenant;
 * - Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>`, an
 *   HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the base64-decoded part after `whsec_`.
 * During a secret rotation a delivery is signed with each secret given, newest first.
 */

export function plandocketSignature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function standardSignature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The signature headers of one delivery request. */
export function signatureHeaders(
  secrets: readonly string[],
  eventId: string,
  timestamp: number,
  body: string,
): Record<string, string> {
  const [current, ...previous] = secrets;
  if (current === undefined) throw new Error('a delivery needs a secret to sign with');
  return {
    'webhook-id': eventId,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((s) => standardSignature(s, eventId, timestamp, body)).join(' '),
    'X-Webhook-Timestamp': String(timestamp),
    'X-Webhook-Signature': plandocketSignature(current, timestamp, body),
    ...(previous[0] !== undefined && {
      'X-Webhook-Signature-Previous': plandocketSignature(previous[0], timestamp, body),
    }),
  };
}

#!/usr/bin/env node
// A small HTTPS receiver for trying webhooks on your own machine. It checks both signatures of
// each delivery, prints the event, and answers 204 (400 when a signature does not match).
//
//   WEBHOOK_SECRET=whsec_... node examples/receiver.mjs
//
// It listens on https://localhost:9443/ (RECEIVER_PORT changes the port), on the loopback
// addresses only, with the certificate data/localhost.pem and its key data/localhost-key.pem
// (RECEIVER_CERT and RECEIVER_KEY name other files).
// See docs/receiving-webhooks.md, "See an event arrive on your machine".
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { Webhook } from 'standardwebhooks';

const secret = process.env.WEBHOOK_SECRET ?? '';
if (!secret.startsWith('whsec_')) {
  console.error('Set WEBHOOK_SECRET to the webhook secret (whsec_...).');
  process.exit(1);
}
const port = Number(process.env.RECEIVER_PORT ?? 9443);
const tls = {
  cert: readFileSync(process.env.RECEIVER_CERT ?? 'data/localhost.pem'),
  key: readFileSync(process.env.RECEIVER_KEY ?? 'data/localhost-key.pem'),
};

// The Standard Webhooks signature: webhook-id, webhook-timestamp, webhook-signature.
const standard = new Webhook(secret);

// PlanDocket's own signature: X-Webhook-Signature is v1= and the hex HMAC-SHA256 of
// "{X-Webhook-Timestamp}.{body}", keyed with the whole secret string (whsec_ included).
function plandocketSignatureOk(headers, body) {
  const timestamp = headers['x-webhook-timestamp'] ?? '';
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  const expected = Buffer.from(`v1=${mac}`);
  // During a secret rotation the old secret's signature comes in X-Webhook-Signature-Previous.
  return [headers['x-webhook-signature'], headers['x-webhook-signature-previous']].some((value) => {
    const given = Buffer.from(value ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

// Retries and recoveries send a delivery again: remember what was handled.
const handled = new Set();

async function handle(request, response) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  const body = Buffer.concat(chunks).toString('utf8');
  let event;
  try {
    event = standard.verify(body, request.headers);
  } catch (error) {
    console.log(`\nRefused a request: ${error.message}`);
    return response.writeHead(400).end();
  }
  if (!plandocketSignatureOk(request.headers, body)) {
    console.log('\nRefused a request: X-Webhook-Signature does not match');
    return response.writeHead(400).end();
  }
  const delivery = request.headers['x-webhook-delivery'];
  const again = handled.has(delivery) ? ' (again: already handled)' : '';
  handled.add(delivery);
  console.log(`\nVerified ${event.type} ${event.id}, delivery ${delivery}${again}`);
  console.log(JSON.stringify(event, null, 2));
  response.writeHead(204).end();
}

let listening = 0;
for (const host of ['127.0.0.1', '::1']) {
  const server = createServer(tls, (request, response) => {
    handle(request, response).catch((error) => {
      console.error(error);
      response.writeHead(500).end();
    });
  });
  // A machine without IPv6 has no ::1: the IPv4 loopback is enough then.
  server.on('error', (error) => {
    if (host === '::1') return;
    console.error(`Cannot listen on ${host}:${port}: ${error.message}`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    if (listening++ === 0) console.log(`Listening on https://localhost:${port}/`);
  });
}

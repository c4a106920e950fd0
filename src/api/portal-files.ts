import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Where `npm run build` puts the portal (the same place from `src/api/` and `dist/api/`). */
export const PORTAL_DIR = path.resolve(import.meta.dirname, '../../dist/portal');

/**
 * The portal's own policy: its scripts and styles come from this origin only (no inline script),
 * it talks only to this origin's API, and no other site may frame it.
 */
export const PORTAL_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function securityHeaders(reply: FastifyReply): void {
  reply.headers({
    'content-security-policy': PORTAL_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  });
}

/** A path whose last part has a dot names a file; anything else is one of the portal's own pages. */
const namesFile = (url: string) => /\.[^/]*$/.test(url.split(/[?#]/, 1)[0] ?? '');

/**
 * Serves the portal's built files under `/portal/`. The portal's pages (`/portal/webhooks/12`)
 * all answer its `index.html`, and the browser-side router shows the page; a missing file is a
 * 404. Hashed assets are cached for good, `index.html` never. Register it with the prefix `/portal`.
 */
export function portalFiles(root = PORTAL_DIR) {
  return async (app: FastifyInstance): Promise<void> => {
    app.addHook('onRequest', async (_request, reply) => securityHeaders(reply));
    const schema = { hide: true };

    if (!existsSync(path.join(root, 'index.html'))) {
      const notBuilt = async (_request: unknown, reply: FastifyReply) =>
        reply
          .code(503)
          .type('text/plain; charset=utf-8')
          .send('The portal has not been built. Run `npm run build`, then start the service again.\n');
      app.get('/', { schema }, notBuilt);
      app.get('/*', { schema }, notBuilt);
      return;
    }

    await app.register(fastifyStatic, {
      root,
      prefix: '/',
      index: false,
      cacheControl: false,
      setHeaders: (reply, file) => {
        reply.header(
          'cache-control',
          file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
        );
      },
    });
    const page = async (_request: unknown, reply: FastifyReply) => reply.sendFile('index.html');
    app.get('/', { schema }, page);
    app.setNotFoundHandler((request, reply) => {
      if ((request.method === 'GET' || request.method === 'HEAD') && !namesFile(request.url)) {
        return reply.sendFile('index.html');
      }
      return reply.code(404).type('text/plain; charset=utf-8').send('Not found\n');
    });
  };
}

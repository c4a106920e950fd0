import { defineConfig } from 'vite';

/** The portal: built into dist/portal and served by the service under /portal/. */
export default defineConfig({
  root: import.meta.dirname,
  base: '/portal/',
  publicDir: 'public',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  // `npm run dev:portal`: the portal with live reload, talking to the service on port 8080.
  server: { proxy: { '/api': 'http://localhost:8080' } },
  build: {
    outDir: '../dist/portal',
    emptyOutDir: true,
    target: 'es2022',
    // No inline script or style may reach the page: the Content-Security-Policy forbids them.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});

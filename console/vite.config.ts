// Builds the web console (docs/console.md) into dist/src/service/console_static/, beside the module
// that serves it (src/service/console_http.ts), so a checkout and the installed package find it the
// same way. Everything is bundled: the page loads nothing from any other origin.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/console/',
  plugins: [preact()],
  build: {
    outDir: here('../dist/src/service/console_static'),
    emptyOutDir: true,
    // No inline module-preload helper or data: URLs: the Content-Security-Policy allows 'self' only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
});

// The web console's static files on the API port (docs/console.md): `GET /console/…` and `HEAD`
// serve the bundle that `npm run build` writes beside this module (console/vite.config.ts puts it
// in `console_static/`), so a checkout and the installed package find it the same way. Everything
// else goes to the API handler untouched.
//
// The console is only a client of the public API: these routes serve files, never data, and take no
// credential. What they refuse: any method but GET and HEAD (405), a path that leaves the bundle's
// directory once decoded (`..`, encoded slashes or backslashes, NUL: 404 without touching the
// disk), a file type not in the table below (404), a file larger than CONSOLE_FILE_BYTES_MAX.
// Every answer carries a strict Content-Security-Policy: scripts, styles and fetches only from the
// page's own origin, no inline script, no framing; the bundle needs nothing else (no CDN).

import { createReadStream, realpathSync, statSync, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the console lives on the API port. */
export const CONSOLE_PATH = '/console/';
/** The built bundle: beside this module in dist/src/service/ (console/vite.config.ts writes it). */
export const CONSOLE_DIR_DEFAULT = fileURLToPath(new URL('./console_static/', import.meta.url));
/** Largest file served: the bundle's JavaScript is about 150 kB; anything near this is not ours. */
export const CONSOLE_FILE_BYTES_MAX = 8 * 1024 * 1024;
/** Longest request path considered: the bundle's names are short and hashed. */
const CONSOLE_PATH_CHARS_MAX = 512;

/** Only these file types are served, each with its content type. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

/** connect-src 'self': the SDK in the page signs and sends its calls to the origin it came from. */
export const CONSOLE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self' data:",
  "font-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** The API handler with the console's routes in front of it. `dir` overrides the bundle's place. */
export function withConsole(api: Handler, dir: string = CONSOLE_DIR_DEFAULT): Handler {
  const root = resolve(dir);
  return (req, res) => {
    const url = req.url ?? '';
    const path = url.split('?')[0] ?? '';
    if (path === '/console') {
      answer(res, 308, 'text/plain; charset=utf-8', 'Moved to /console/\n', { Location: CONSOLE_PATH });
      return;
    }
    if (!path.startsWith(CONSOLE_PATH)) {
      api(req, res);
      return;
    }
    serve(root, req, res, path.slice(CONSOLE_PATH.length));
  };
}

function serve(root: string, req: IncomingMessage, res: ServerResponse, rest: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    answer(res, 405, 'text/plain; charset=utf-8', 'The console takes GET and HEAD only\n', { Allow: 'GET, HEAD' });
    return;
  }
  // The request body of a GET is not ours to read; drop it so the connection can be reused.
  req.resume();
  const file = fileOf(root, rest === '' ? 'index.html' : rest);
  const type = file === undefined ? undefined : CONTENT_TYPES[extname(file).toLowerCase()];
  let stats: Stats | undefined;
  try {
    stats = file === undefined || type === undefined ? undefined : statSync(file);
  } catch {
    stats = undefined;
  }
  if (file === undefined || type === undefined || stats === undefined || !stats.isFile() || stats.size > CONSOLE_FILE_BYTES_MAX) {
    const built = existsDir(root);
    answer(res, 404, 'text/plain; charset=utf-8', built ? 'Not found\n' : 'The console is not built: run npm run build\n');
    return;
  }
  // Hashed asset names never change content; the page itself is revalidated every time.
  const cache = rest.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
  res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': stats.size, 'Cache-Control': cache });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

/** The file `rest` names under `root`, or undefined when it is not plainly inside it. */
function fileOf(root: string, rest: string): string | undefined {
  if (rest.length > CONSOLE_PATH_CHARS_MAX) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\') || decoded.split('/').some((part) => part === '..' || part === '.' || part === '')) return undefined;
  const file = resolve(join(root, decoded));
  if (!file.startsWith(root + sep)) return undefined;
  // A symbolic link inside the bundle must not lead out of it either.
  try {
    return realpathSync(file).startsWith(realpathSync(root) + sep) ? file : undefined;
  } catch {
    return undefined;
  }
}

function existsDir(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function answer(res: ServerResponse, status: number, type: string, text: string, extra: Record<string, string> = {}): void {
  const body = Buffer.from(text, 'utf8');
  res.writeHead(status, { ...SECURITY_HEADERS, ...extra, 'Content-Type': type, 'Content-Length': body.length });
  res.end(body);
}

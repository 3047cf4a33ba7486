// The console's static route (src/service/console_http.ts) on a real node:http server over a
// bundle directory made here: content types and security headers, GET and HEAD only, the API
// reached for every other path, and every way out of the bundle refused without reading it — `..`
// plain and percent-encoded, backslashes, NUL, a symbolic link that leads out, an unknown file type.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONSOLE_CSP, withConsole } from '../../src/service/console_http.js';

const dir = mkdtempSync(join(tmpdir(), 'coffer-console-route-'));
const bundle = join(dir, 'bundle');
let server: Server;
let port = 0;

before(async () => {
  mkdirSync(join(bundle, 'assets'), { recursive: true });
  writeFileSync(join(bundle, 'index.html'), '<!doctype html><title>console</title>');
  writeFileSync(join(bundle, 'assets', 'app-1234.js'), 'export const app = 1;');
  writeFileSync(join(bundle, 'assets', 'app-1234.css'), 'body{}');
  writeFileSync(join(bundle, 'notes.txt'), 'not a served type');
  writeFileSync(join(dir, 'secret.js'), 'outside the bundle');
  symlinkSync(join(dir, 'secret.js'), join(bundle, 'assets', 'link.js'));
  // The API stand-in answers 418 so that a test sees which side of the route a request reached.
  server = createServer(withConsole((_req, res) => {
    res.writeHead(418, { 'Content-Type': 'text/plain' });
    res.end('api');
  }, bundle));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function send(method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the page and its assets, with their content types and the CSP', async () => {
  const page = await send('GET', '/console/');
  assert.equal(page.status, 200);
  assert.equal(page.body, '<!doctype html><title>console</title>');
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(page.headers['content-security-policy'], CONSOLE_CSP);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.headers['cache-control'], 'no-cache');
  const js = await send('GET', '/console/assets/app-1234.js?v=1');
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.match(String(js.headers['cache-control']), /immutable/);
  assert.equal((await send('GET', '/console/assets/app-1234.css')).headers['content-type'], 'text/css; charset=utf-8');
  const head = await send('HEAD', '/console/index.html');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(head.headers['content-length'], String('<!doctype html><title>console</title>'.length));
});

test('GET and HEAD only; /console redirects; every other path is the API', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const answer = await send(method, '/console/index.html');
    assert.equal(answer.status, 405, method);
    assert.equal(answer.headers['allow'], 'GET, HEAD');
  }
  const redirect = await send('GET', '/console');
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers['location'], '/console/');
  for (const path of ['/', '/consoles/', '/metrics', '/Console/']) assert.equal((await send('GET', path)).status, 418, path);
});

test('nothing outside the bundle, and no type outside the table', async () => {
  const refused = [
    '/console/../secret.js', '/console/assets/../../secret.js', '/console/%2e%2e/secret.js', '/console/assets/%2E%2E%2F%2E%2E%2Fsecret.js',
    '/console/..%5csecret.js', '/console/assets/link.js', '/console/%00index.html', '/console/index.html%00.js', '/console/./index.html',
    '/console/assets//app-1234.js', '/console/notes.txt', '/console/missing.js', '/console/%E0%A4%A', `/console/${'a'.repeat(600)}.js`,
  ];
  for (const path of refused) {
    const answer = await send('GET', path);
    assert.equal(answer.status, 404, path);
    assert.equal(answer.body, 'Not found\n', path);
    assert.equal(answer.headers['content-security-policy'], CONSOLE_CSP, path);
  }
});

test('a service whose console is not built says so, and its API still answers', async () => {
  const bare = createServer(withConsole((_req, res) => {
    res.writeHead(418);
    res.end();
  }, join(dir, 'not-built')));
  await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
  const barePort = (bare.address() as AddressInfo).port;
  try {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      request({ host: '127.0.0.1', port: barePort, path: '/console/' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject).end();
    });
    assert.equal(answer.status, 404);
    assert.equal(answer.body, 'The console is not built: run npm run build\n');
  } finally {
    await new Promise<void>((resolve) => bare.close(() => resolve()));
  }
});

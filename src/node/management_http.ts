// HTTP plumbing of the management interface (docs/node.md "Management interface"): bounded request
// bodies (JSON in memory, sealed backups spooled to a 0600 file), JSON replies, and errors as
// `{ code, message, detail }` (ErrorAnswer, src/formats/management.ts) with the registry's HTTP
// status (src/errors.ts). An over-limit body is
// the one exception to "the registry's status": it is answered 413 (COFFER_FORMAT_LIMIT), as HTTP
// clients and proxies expect, and the connection is closed so the rest of the upload is not read.

import { createWriteStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CofferError, ERRORS, fail, isCofferError } from '../errors.js';
import type { ErrorAnswer } from '../formats/management.js';

/** HTTP status for a body over its limit (RFC 9110 §15.5.14). */
export const STATUS_CONTENT_TOO_LARGE = 413;

/** Refuses a request whose declared Content-Length is already over `bytesMax`. */
export function checkDeclaredLength(req: IncomingMessage, bytesMax: number, limit: string): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > bytesMax) fail('COFFER_FORMAT_LIMIT', { limit, bytesMax });
}

/**
 * Reads a JSON body of at most `bytesMax` bytes (its shape is checked by the route's decoder,
 * src/formats/management.ts). The bytes are gathered into one buffer of our own and zeroised once
 * parsed (a body may carry a one-time credential); the parsed strings are JavaScript strings,
 * which cannot be zeroised (documented).
 */
export async function readJsonBody(req: IncomingMessage, bytesMax: number): Promise<unknown> {
  const body = await readWholeBody(req, bytesMax, 'jsonBodyBytes');
  try {
    return parseJson(body);
  } finally {
    body.fill(0);
  }
}

/** Reads a binary body of at most `bytesMax` bytes into one buffer (journal frames: sealed bytes). */
export function readBinaryBody(req: IncomingMessage, bytesMax: number): Promise<Uint8Array> {
  return readWholeBody(req, bytesMax, 'binaryBodyBytes');
}

/** The whole body in one buffer, refused past `bytesMax` (by its declared length first); the
 * chunks it was read in are wiped. */
async function readWholeBody(req: IncomingMessage, bytesMax: number, limit: string): Promise<Uint8Array> {
  checkDeclaredLength(req, bytesMax, limit);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      req.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > bytesMax) {
          req.pause();
          reject(new CofferError('COFFER_FORMAT_LIMIT', { limit, bytesMax }));
          return;
        }
        chunks.push(chunk);
      });
      req.once('end', resolve);
      req.once('error', reject);
      req.once('close', () => reject(new CofferError('COFFER_FORMAT_TRUNCATED', { field: 'body' })));
    });
    const body = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      body.set(c, offset);
      offset += c.length;
    }
    return body;
  } finally {
    for (const c of chunks) c.fill(0);
  }
}

function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as unknown;
  } catch {
    return fail('COFFER_MANAGEMENT_REQUEST', { reason: 'body-not-json' });
  }
}

/**
 * Streams the request body into a new file (mode 0600, created exclusively) and resolves with its
 * length once the file is closed. Over `bytesMax` it stops reading and rejects with
 * COFFER_FORMAT_LIMIT; a body cut short rejects with COFFER_FORMAT_TRUNCATED. Memory: the stream's
 * buffers only (backpressure pauses the request while the disk catches up).
 */
export function spoolBody(req: IncomingMessage, path: string, bytesMax: number): Promise<number> {
  checkDeclaredLength(req, bytesMax, 'restoreBytes');
  return new Promise<number>((resolve, reject) => {
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    let total = 0;
    let settled = false;
    const settle = (error: Error | undefined): void => {
      if (settled) return;
      settled = true;
      req.pause();
      if (error === undefined) {
        out.once('close', () => resolve(total));
        out.end();
      } else {
        out.once('close', () => reject(error));
        out.destroy();
      }
    };
    out.on('error', settle);
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      total += chunk.length;
      if (total > bytesMax) {
        settle(new CofferError('COFFER_FORMAT_LIMIT', { limit: 'restoreBytes', bytesMax }));
        return;
      }
      if (!out.write(chunk)) {
        req.pause();
        out.once('drain', () => req.resume());
      }
    });
    req.once('end', () => settle(undefined));
    req.once('error', (e) => settle(e));
    req.once('close', () => settle(new CofferError('COFFER_FORMAT_TRUNCATED', { field: 'body' })));
  });
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * Answers a failed request. A CofferError goes out as its code, fixed message and non-secret detail
 * with the registry's status (413 for an over-limit body); anything else is a bug: reported to
 * `onBug`, answered 500 with no description. When the request body was not consumed the connection
 * is closed after the reply, so an unread upload is never parsed as the next request.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, e: unknown, onBug: (e: unknown) => void): void {
  if (res.headersSent) {
    res.destroy(); // mid-stream: the client sees a truncated body, which the backup format detects
    return;
  }
  const bodyUnread = !req.complete;
  if (bodyUnread) res.setHeader('connection', 'close');
  if (isCofferError(e)) {
    const status = e.code === 'COFFER_FORMAT_LIMIT' && bodyUnread ? STATUS_CONTENT_TOO_LARGE : ERRORS[e.code].http;
    sendJson(res, status, { code: e.code, message: e.message, detail: e.detail } satisfies ErrorAnswer);
  } else {
    onBug(e);
    sendJson(res, 500, { code: null, message: 'Internal error', detail: {} } satisfies ErrorAnswer);
  }
  if (bodyUnread) res.once('finish', () => req.socket.destroySoon());
}

// Streamed routes on the API's port (docs/api.md "Streamed routes"): a request whose body is too
// large to read whole — a sealed backup a peer region's service sends (src/service/copy_http.ts) —
// is taken here, before the JSON path's readBody and its 256 KiB limit. It passes, in this order:
//
//   1. SigV4 on the headers alone (sigv4.ts), the payload hash being the one the client declares in
//      `x-amz-content-sha256` (as S3 takes large bodies); `host`, `x-amz-date`,
//      `x-amz-content-sha256` and the route's own headers must be signed;
//   2. the key's permission for the route's action;
//   3. the declared hash: 64 hex digits (`UNSIGNED-PAYLOAD` and other S3 forms are refused);
//   4. a declared Content-Length within the route's byte bound (no chunked bodies), and a free
//      place among the route's bodies in flight;
//   5. the body, streamed to a fresh file (0600) under the route's work directory, counted, hashed
//      on the way, cut off when no byte arrives for STREAMED_BODY_IDLE_MS;
//   6. its SHA-256, which must equal the signed hash.
//
// Only then does the route's handler see the file; the file is removed whatever happens. Answers
// and errors are JSON in the JSON path's form (`{"__type","Message"}`). A request refused before its
// body was read is answered at once; the body is then read and dropped up to
// STREAMED_DISCARD_BYTES_MAX so that the client can read the answer, and beyond that the
// connection closes.

import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { ApiError, apiFail, type Caller } from './operations.js';
import { INTERNAL_FAILURE_MESSAGE, ProtocolError, apiErrorStatus, protocolFail, type AnyErrorType } from './api_errors.js';
import { SIGNING_NAME, authorizeAction, headerPairs, headerValue, verifySigV4, type AccessKey, type RawRequest } from './sigv4.js';

/** No byte of a streamed body for this long: the client has stalled, and its connection is cut. */
export const STREAMED_BODY_IDLE_MS = 30_000;
/** Body still read and dropped after an early refusal, so the client sees the answer (as the JSON
 * path does past its limit); beyond it the connection closes. */
export const STREAMED_DISCARD_BYTES_MAX = 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const CONTENT_LENGTH = /^[0-9]{1,16}$/;

export interface StreamedRoute {
  /** For the log line, in place of an operation name. */
  readonly name: string;
  readonly method: string;
  /** The exact request target (no query). */
  readonly path: string;
  /** The action the signing key must be granted (or `*`). */
  readonly action: string;
  /** Headers the route reads, which must therefore be signed. */
  readonly signedHeaders: readonly string[];
  /** The largest Content-Length accepted. */
  readonly bodyBytesMax: number;
  /** Bodies of this route being received or handled at once; one more is refused. */
  readonly inFlightMax: number;
  /** Where bodies are spooled: a directory of the service's own. */
  readonly workDir: string;
  /** Takes a verified body; answers with the JSON of a 200. */
  handle(upload: Upload, caller: Caller): Promise<Record<string, unknown>>;
}

/** A body that arrived whole and matched its signed hash. */
export interface Upload {
  readonly path: string;
  readonly bytes: number;
  readonly headers: RawRequest['headers'];
}

export interface StreamedAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly outcome: 'ok' | AnyErrorType;
  readonly key?: AccessKey;
  /** Refused before the body was read: what is left of it is to be dropped. */
  readonly bodyUnread: boolean;
}

export interface StreamedContext {
  readonly keys: ReadonlyMap<string, AccessKey>;
  readonly region: string;
  readonly nowMs: number;
  readonly requestId: string;
  readonly logger: Logger;
}

const inFlight = new WeakMap<StreamedRoute, number>();

/** Receives one request of `route` (the method and path already matched); never throws. */
export async function receiveStreamed(route: StreamedRoute, req: IncomingMessage, context: StreamedContext): Promise<StreamedAnswer> {
  let key: AccessKey | undefined;
  let bodyUnread = true;
  let counted = false;
  try {
    const raw: RawRequest = { method: req.method ?? '', target: req.url ?? '', headers: headerPairs(req), body: new Uint8Array(0) };
    const declared = headerValue(raw.headers, 'x-amz-content-sha256') ?? '';
    key = verifySigV4(raw, {
      region: context.region, service: SIGNING_NAME, keys: context.keys, nowMs: context.nowMs, payloadHashHex: declared,
      requiredSignedHeaders: ['host', 'x-amz-content-sha256', 'x-amz-date', ...route.signedHeaders],
    });
    authorizeAction(key, route.action);
    if (!SHA256_HEX.test(declared)) protocolFail('IncompleteSignatureException', "'x-amz-content-sha256' must be the hex SHA-256 of the body");
    const bytes = declaredLength(raw, route.bodyBytesMax);
    if ((inFlight.get(route) ?? 0) >= route.inFlightMax) apiFail('CloudHsmResourceLimitExceededException', `More than ${route.inFlightMax} such requests at once; retry later.`);
    inFlight.set(route, (inFlight.get(route) ?? 0) + 1);
    counted = true;
    const caller: Caller = { accountId: key.accountId, accessKeyId: key.accessKeyId, region: context.region, requestId: context.requestId };
    bodyUnread = false;
    const body = await spool(route, req, bytes, declared, (path) => route.handle({ path, bytes, headers: raw.headers }, caller));
    return { status: 200, body, outcome: 'ok', key, bodyUnread };
  } catch (e) {
    const context_ = key === undefined ? {} : { key };
    if (e instanceof ProtocolError) return { ...context_, status: e.status, body: { __type: e.type, Message: e.message }, outcome: e.type, bodyUnread };
    if (e instanceof ApiError) return { ...context_, status: apiErrorStatus(e.type), body: { __type: e.type, Message: e.message }, outcome: e.type, bodyUnread };
    context.logger.error({ requestId: context.requestId, route: route.name, err: e }, 'internal failure');
    return { ...context_, status: 500, body: { __type: 'CloudHsmInternalFailureException', Message: INTERNAL_FAILURE_MESSAGE }, outcome: 'CloudHsmInternalFailureException', bodyUnread };
  } finally {
    if (counted) inFlight.set(route, (inFlight.get(route) ?? 1) - 1);
  }
}

/** What is left of a refused body, read and dropped up to STREAMED_DISCARD_BYTES_MAX. */
export function discardBody(req: IncomingMessage): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > STREAMED_DISCARD_BYTES_MAX) req.destroy();
  });
  req.on('error', () => req.destroy());
  req.resume();
}

function declaredLength(raw: RawRequest, bytesMax: number): number {
  const text = headerValue(raw.headers, 'content-length');
  if (text === undefined || headerValue(raw.headers, 'transfer-encoding') !== undefined) protocolFail('SerializationException', 'The body must be sent with a Content-Length (not chunked)');
  if (!CONTENT_LENGTH.test(text)) protocolFail('SerializationException', 'Content-Length must be a number of bytes');
  const bytes = Number(text);
  if (bytes > bytesMax) protocolFail('RequestEntityTooLargeException', `Request body exceeds ${bytesMax} bytes`);
  return bytes;
}

/** Streams the body to a fresh file, checks its length and hash, and runs `use` on it; the file
 * is removed afterwards whatever happens. */
async function spool<T>(route: StreamedRoute, req: IncomingMessage, bytes: number, sha256Hex: string, use: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(route.workDir, 'upload-'));
  const path = join(dir, 'body.bin');
  const hash = createHash('sha256');
  let received = 0;
  const idle = new AbortController();
  let timer = setTimeout(() => idle.abort(), STREAMED_BODY_IDLE_MS);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      clearTimeout(timer);
      timer = setTimeout(() => idle.abort(), STREAMED_BODY_IDLE_MS);
      received += chunk.length;
      // Node frames the body by Content-Length; the count is checked all the same.
      if (received > bytes) done(new ProtocolError('RequestEntityTooLargeException', `Request body exceeds ${bytes} bytes`));
      else {
        hash.update(chunk);
        done(null, chunk);
      }
    },
  });
  try {
    try {
      await pipeline(req, meter, createWriteStream(path, { mode: 0o600 }), { signal: idle.signal });
    } catch (e) {
      if (e instanceof ProtocolError) throw e;
      if (idle.signal.aborted) protocolFail('RequestTimeoutException', 'Request body was not received in time');
      protocolFail('SerializationException', 'The request body ended before its Content-Length');
    } finally {
      clearTimeout(timer);
    }
    if (received !== bytes) protocolFail('SerializationException', 'The request body ended before its Content-Length');
    if (hash.digest('hex') !== sha256Hex) protocolFail('InvalidSignatureException', "The provided 'x-amz-content-sha256' header does not match the body.");
    return await use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

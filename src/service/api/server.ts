// The CloudHSMv2 API over HTTP (docs/api.md): AWS JSON 1.1 on node:http, so that the AWS CLI and
// the AWS SDKs reach Coffer's control plane unmodified. One request is one call:
//
//   POST /   Content-Type: application/x-amz-json-1.1   X-Amz-Target: BaldrApiService.<Operation>
//
// and it passes, in this order: the body, read whole within a byte limit and a time limit; method
// and path; SigV4 (sigv4.ts) with the configured access keys, the service's region and its
// injected clock; the operation named by X-Amz-Target; the key's permission for that action; the
// content type; JSON; the service model (validate.ts). Only then does the operation's handler run.
// Coffer's own fleet operations (coffer_operations.ts) take the same path under their own
// X-Amz-Target prefix, with their own actions, when the service is given them.
// Every answer carries `x-amzn-RequestId`; every error is `{"__type", "Message"}` with AWS's
// type and status. A handler's ApiError keeps its type and message; anything else a handler throws
// becomes CloudHsmInternalFailureException with a generic message, and is logged.
//
// A streamed route (streamed.ts: a body too large to read whole, such as a backup copy from a peer
// region) is matched by method and path before the body is read, and takes its own way in.
//
// One log line per call: request id, operation, caller account and access key id, outcome (`ok`
// or the error type), HTTP status, latency. Never the secret key, the Authorization header or the
// body.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { isCofferError } from '../../errors.js';
import {
  fleetActionOf, fleetOperationOf, monitoringOperationOf, FLEET_TARGET_PREFIX, MONITORING_TARGET_PREFIX, type FleetOperationHandler, type FleetOperations, type MonitoringOperations,
} from './coffer_operations.js';
import { ApiError, OPERATION_NAMES, type Caller, type OperationName, type Operations } from './operations.js';
import { INTERNAL_FAILURE_MESSAGE, ProtocolError, apiErrorStatus, protocolFail, type AnyErrorType } from './api_errors.js';
import { SIGNING_NAME, authorize, authorizeAction, headerPairs, headerValue, verifySigV4, type AccessKey, type RawRequest } from './sigv4.js';
import { serializeOutput, validateInput } from './validate.js';
import { CLOUDHSMV2_MODEL } from './model.js';
import { discardBody, receiveStreamed, type StreamedRoute } from './streamed.js';

/** Largest request body accepted. The largest modelled request is InitializeCluster with two
 * certificates of up to 20,000 characters; even written entirely as six-byte `\uXXXX` escapes that
 * is 240,000 bytes, under 256 KiB. */
export const API_BODY_BYTES_MAX = 256 * 1024;
/** Past the limit the service still reads (and drops) up to this much, so that a client that sent
 * a whole oversize body gets its RequestEntityTooLargeException; beyond it, the connection closes. */
export const API_BODY_DISCARD_BYTES_MAX = 4 * API_BODY_BYTES_MAX;
/** Time allowed for the body once the headers are in: a body of at most 256 KiB needs far less on
 * any link a control plane is used over; a client that trickles bytes is cut off. */
export const API_BODY_TIMEOUT_MS = 10_000;
/** Time allowed for the request headers (Node's `headersTimeout`). */
export const API_HEADERS_TIMEOUT_MS = 10_000;
/** Node's backstop for a whole request (`requestTimeout`); above the two limits above. */
export const API_REQUEST_TIMEOUT_MS = 30_000;
/** How long an idle keep-alive connection stays open. */
export const API_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Open connections at once: each may hold a body of up to API_BODY_BYTES_MAX while it is read,
 * so this bounds the memory bodies take (256 × 256 KiB = 64 MiB). Node closes a connection beyond
 * it at once. A control plane serves operators and SDK discovery, not bulk traffic. */
export const API_CONNECTIONS_MAX = 256;
/** The JSON 1.1 media type, and the target prefix of CloudHSM V2 (model metadata). */
export const API_CONTENT_TYPE = 'application/x-amz-json-1.1';
export const TARGET_PREFIX = String(CLOUDHSMV2_MODEL.metadata.targetPrefix);

/** Wall-clock time for SigV4's date check (the same shape as the device's Clock port). */
export interface ApiClock {
  nowMs(): number;
}

export interface ApiServiceOptions {
  readonly operations: Operations;
  readonly accessKeys: readonly AccessKey[];
  /** The region this service is (e.g. `us-east-1`): requests must be signed for it. */
  readonly region: string;
  readonly clock: ApiClock;
  readonly logger: Logger;
  /** Overrides API_BODY_TIMEOUT_MS (tests use a short one to see the timeout without waiting). */
  readonly bodyTimeoutMs?: number;
  /** Overrides API_CONNECTIONS_MAX. */
  readonly connectionsMax?: number;
  /** Routes whose bodies are streamed to disk rather than read whole (streamed.ts). */
  readonly streamedRoutes?: readonly StreamedRoute[];
  /** Coffer's fleet operations (a service on a remote fleet); absent: their targets are unknown. */
  readonly fleet?: FleetOperations;
  /** Coffer's monitoring operations (the console's live figures); absent: their targets are unknown. */
  readonly monitoring?: MonitoringOperations;
  /** Told of every call answered: its operation (or streamed route, or `none` when the target was
   * not known), outcome and seconds taken (the service's metrics). */
  readonly onCall?: (operation: string, outcome: string, seconds: number) => void;
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  /** `ok`, the AWS error type, or a fleet operation's CofferError code. */
  readonly outcome: string;
  /** A CloudHSMv2 operation, or `CofferFleetService.<Operation>`. */
  readonly operation?: string;
  /** A streamed route's name, logged as the operation. */
  readonly route?: string;
  readonly key?: AccessKey;
}

const OPERATIONS: ReadonlySet<string> = new Set(OPERATION_NAMES);

function errorAnswer(type: AnyErrorType, status: number, message: string, context: Partial<Answer>): Answer {
  return { ...context, status, body: { __type: type, Message: message }, outcome: type };
}

/** One of Coffer's own operations: SigV4 already verified; its own action; JSON in, JSON out; CofferErrors answered (coffer_operations.ts). */
async function answerCoffer(handler: FleetOperationHandler, prefix: string, name: string, raw: RawRequest, body: Buffer, caller: Caller, key: AccessKey): Promise<Answer> {
  const context = { operation: `${prefix}.${name}`, key };
  authorizeAction(key, fleetActionOf(name));
  checkContentType(headerValue(raw.headers, 'content-type'));
  try {
    return { ...context, status: 200, body: await handler(parseJson(body), caller), outcome: 'ok' };
  } catch (e) {
    if (!isCofferError(e)) throw e;
    return { ...context, status: e.http, body: { __type: e.code, Message: e.message, Detail: e.detail }, outcome: e.code };
  }
}

/** The request handler of the API (for node:http's createServer). */
export function createApiHandler(options: ApiServiceOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const keys = new Map(options.accessKeys.map((k) => [k.accessKeyId, k]));
  return (req, res) => {
    const started = performance.now();
    const requestId = randomUUID();
    // A client that goes away mid-call is not an error of the service: nothing to answer.
    res.on('error', (err) => options.logger.debug({ requestId, err }, 'api connection lost'));
    const route = options.streamedRoutes?.find((r) => r.method === req.method && r.path === req.url);
    if (route !== undefined) {
      receiveStreamed(route, req, { keys, region: options.region, nowMs: options.clock.nowMs(), requestId, logger: options.logger }).then((a) => {
        if (a.bodyUnread) discardBody(req);
        send(res, requestId, a);
        logCall(options, requestId, { ...a, route: route.name }, performance.now() - started);
      }).catch((e: unknown) => {
        options.logger.warn({ requestId, err: e }, 'api response not sent');
        res.destroy();
      });
      return;
    }
    readBody(req, options.bodyTimeoutMs ?? API_BODY_TIMEOUT_MS, (body) => {
      answer(options, keys, req, body, requestId).then((a) => {
        send(res, requestId, a);
        logCall(options, requestId, a, performance.now() - started);
      }).catch((e: unknown) => {
        // Only a broken connection gets here (answer() itself never throws): nothing left to tell.
        options.logger.warn({ requestId, err: e }, 'api response not sent');
        res.destroy();
      });
    }, (failure) => {
      const a = failure === 'too-large'
        ? errorAnswer('RequestEntityTooLargeException', 413, `Request body exceeds ${API_BODY_BYTES_MAX} bytes`, {})
        : errorAnswer('RequestTimeoutException', 408, 'Request body was not received in time', {});
      res.setHeader('Connection', 'close');
      send(res, requestId, a);
      res.once('finish', () => req.destroy());
      logCall(options, requestId, a, performance.now() - started);
    });
  };
}

/** Reads the whole body within API_BODY_BYTES_MAX and API_BODY_TIMEOUT_MS. */
function readBody(req: IncomingMessage, timeoutMs: number, done: (body: Buffer) => void, refused: (why: 'too-large' | 'timeout') => void): void {
  const declared = Number(req.headers['content-length'] ?? '0');
  let finished = false;
  const finish = (then: () => void): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    then();
  };
  const timer = setTimeout(() => finish(() => refused('timeout')), timeoutMs);
  if (declared > API_BODY_DISCARD_BYTES_MAX) {
    finish(() => refused('too-large'));
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received <= API_BODY_BYTES_MAX) chunks.push(chunk);
    else if (received > API_BODY_DISCARD_BYTES_MAX) finish(() => refused('too-large'));
  });
  req.on('end', () => finish(() => (received > API_BODY_BYTES_MAX ? refused('too-large') : done(Buffer.concat(chunks)))));
  req.on('error', () => finish(() => req.destroy()));
}

async function answer(options: ApiServiceOptions, keys: ReadonlyMap<string, AccessKey>, req: IncomingMessage, body: Buffer, requestId: string): Promise<Answer> {
  let operation: string | undefined;
  let key: AccessKey | undefined;
  try {
    const raw = rawRequest(req, body);
    const path = raw.target;
    if (raw.method !== 'POST' || path !== '/') protocolFail('UnknownOperationException', 'The API takes POST / only');
    key = verifySigV4(raw, { region: options.region, service: SIGNING_NAME, keys, nowMs: options.clock.nowMs() });
    const target = headerValue(raw.headers, 'x-amz-target');
    const fleetOperation = options.fleet === undefined ? undefined : fleetOperationOf(target);
    if (options.fleet !== undefined && fleetOperation !== undefined) {
      operation = `${FLEET_TARGET_PREFIX}.${fleetOperation}`;
      return await answerCoffer(options.fleet[fleetOperation], FLEET_TARGET_PREFIX, fleetOperation, raw, body, { accountId: key.accountId, accessKeyId: key.accessKeyId, region: options.region, requestId }, key);
    }
    const monitoringOperation = options.monitoring === undefined ? undefined : monitoringOperationOf(target);
    if (options.monitoring !== undefined && monitoringOperation !== undefined) {
      operation = `${MONITORING_TARGET_PREFIX}.${monitoringOperation}`;
      const caller = { accountId: key.accountId, accessKeyId: key.accessKeyId, region: options.region, requestId };
      return await answerCoffer(options.monitoring[monitoringOperation], MONITORING_TARGET_PREFIX, monitoringOperation, raw, body, caller, key);
    }
    const modelled = operationOf(target);
    operation = modelled;
    authorize(key, modelled);
    checkContentType(headerValue(raw.headers, 'content-type'));
    const input = validateInput(modelled, parseJson(body));
    const caller: Caller = { accountId: key.accountId, accessKeyId: key.accessKeyId, region: options.region, requestId };
    const output = await options.operations[modelled](input, caller);
    return { status: 200, body: serializeOutput(modelled, output), outcome: 'ok', operation, key };
  } catch (e) {
    const context = { ...(operation === undefined ? {} : { operation }), ...(key === undefined ? {} : { key }) };
    if (e instanceof ProtocolError) return errorAnswer(e.type, e.status, e.message, context);
    if (e instanceof ApiError) return errorAnswer(e.type, apiErrorStatus(e.type), e.message, context);
    options.logger.error({ requestId, operation, err: e }, 'internal failure');
    return errorAnswer('CloudHsmInternalFailureException', 500, INTERNAL_FAILURE_MESSAGE, context);
  }
}

function rawRequest(req: IncomingMessage, body: Buffer): RawRequest {
  return { method: req.method ?? '', target: req.url ?? '', headers: headerPairs(req), body };
}

function operationOf(target: string | undefined): OperationName {
  const prefix = `${TARGET_PREFIX}.`;
  const name = target?.startsWith(prefix) === true ? target.slice(prefix.length) : undefined;
  if (name === undefined || !OPERATIONS.has(name)) protocolFail('UnknownOperationException', `X-Amz-Target must be ${prefix}<Operation> with a CloudHSM V2 operation`);
  return name as OperationName;
}

function checkContentType(value: string | undefined): void {
  const mediaType = value?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== API_CONTENT_TYPE) protocolFail('SerializationException', `Content-Type must be ${API_CONTENT_TYPE}`);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(body: Buffer): unknown {
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    protocolFail('SerializationException', 'Request body is not UTF-8');
  }
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    protocolFail('SerializationException', 'Request body is not valid JSON');
  }
}

function send(res: ServerResponse, requestId: string, a: Answer): void {
  const payload = Buffer.from(JSON.stringify(a.body), 'utf8');
  res.writeHead(a.status, { 'Content-Type': API_CONTENT_TYPE, 'Content-Length': payload.length, 'x-amzn-RequestId': requestId });
  res.end(payload);
}

function logCall(options: ApiServiceOptions, requestId: string, a: Answer, latencyMs: number): void {
  const logger = options.logger;
  options.onCall?.(a.operation ?? a.route ?? 'none', a.outcome, latencyMs / 1000);
  const line = {
    requestId,
    operation: a.operation ?? a.route,
    account: a.key?.accountId,
    accessKeyId: a.key?.accessKeyId,
    outcome: a.outcome,
    status: a.status,
    latencyMs: Math.round(latencyMs * 1000) / 1000,
  };
  if (a.status >= 500) logger.error(line, 'api call');
  else logger.info(line, 'api call');
}

export interface RunningApiServer {
  readonly host: string;
  readonly port: number;
  /** `http://host:port` (IPv6 hosts in brackets), for `--endpoint-url` and SDK `endpoint`. */
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** Starts the API on host:port (port 0: any free port) and resolves once it listens. */
export async function startApiServer(options: ApiServiceOptions & { readonly host: string; readonly port: number }): Promise<RunningApiServer> {
  const server = createServer({ headersTimeout: API_HEADERS_TIMEOUT_MS, requestTimeout: API_REQUEST_TIMEOUT_MS, keepAliveTimeout: API_KEEP_ALIVE_TIMEOUT_MS }, createApiHandler(options));
  server.maxConnections = options.connectionsMax ?? API_CONNECTIONS_MAX;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.address;
  options.logger.info({ host, port: address.port }, 'api listening');
  return {
    host,
    port: address.port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    server,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

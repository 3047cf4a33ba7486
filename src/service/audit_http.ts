// The audit endpoint on the API port (docs/audit.md "Endpoint"), for the console and for export:
//
//   GET /audit                    one JSON line per HSM serial with archived audit records
//   GET /audit/<serial>?from=N    the archived records of that HSM from the chunk holding seq N on
//                                 (at most AUDIT_EXPORT_CHUNKS_MAX chunks), as JSON lines
//                                 (formats/audit_json.ts), verified against the service's roots
//                                 and ending with the verification line
//
// SigV4 like the JSON API (signing name `cloudhsm`, the service's region and access keys; `host` and
// `x-amz-date` signed, empty body), and the key must be granted `coffer:GetAuditLog` (or `*`).
// Whose logs: a key granted `coffer:GetAuditLog` reads the logs of the devices now serving its
// account's HSMs (each listed with its HSM and cluster); a key granted `*` (the region's operator)
// reads every archived log. Another serial is not found, as another account's cluster is.
// Errors are the API's `{"__type","Message"}`. The records hold no secret; the answer says what the
// verifier found, and carries each record's bytes so that `coffer audit verify` can check it again
// offline rather than trust this service.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { auditJsonLines } from '../formats/audit_json.js';
import { verifyAuditBundles } from '../formats/audit_verify.js';
import type { BackupRoots } from '../formats/backup.js';
import { GET_AUDIT_LOG_ACTION } from './api/access_keys.js';
import { ProtocolError, protocolFail } from './api/api_errors.js';
import { SIGNING_NAME, authorizeAction, headerPairs, verifySigV4, type AccessKey, type RawRequest } from './api/sigv4.js';
import type { AuditCollector } from './audit_collector.js';

export const AUDIT_HTTP_PATH = '/audit';
/** The action an access key needs (docs/api.md "Access keys"). */
export const AUDIT_ACTION = GET_AUDIT_LOG_ACTION;
/** Chunks in one answer (each at most AUDIT_BUNDLE_RECORDS_MAX records): a caller pages on with
 * `from` = the verification line's lastSeq + 1. */
export const AUDIT_EXPORT_CHUNKS_MAX = 16;
const SERIAL = /^CFR-[0-9A-F]{16}$/;
const SEQ = /^(0|[1-9][0-9]{0,19})$/;

/** A device now serving one of an account's HSMs. */
export interface AuditDevice {
  readonly serial: string;
  readonly hsmId: string;
  readonly clusterId: string;
}

export interface AuditHttpOptions {
  readonly collector: AuditCollector;
  /** The devices now serving `accountId`'s HSMs. */
  readonly devicesOf: (accountId: string) => Promise<readonly AuditDevice[]>;
  readonly accessKeys: readonly AccessKey[];
  readonly region: string;
  readonly roots: BackupRoots;
  readonly clock: { nowMs(): number };
  readonly logger: Logger;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** `next` with the audit routes in front of it. */
export function withAuditLog(next: Handler, o: AuditHttpOptions): Handler {
  const keys = new Map(o.accessKeys.map((k) => [k.accessKeyId, k]));
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (path !== AUDIT_HTTP_PATH && !path.startsWith(`${AUDIT_HTTP_PATH}/`)) return next(req, res);
    answer(req, res, o, keys).catch((e: unknown) => {
      o.logger.error({ event: 'audit.http.failed', err: e instanceof Error ? e.name : 'error' }, 'audit endpoint failed');
      if (!res.headersSent) sendError(res, 500, 'CloudHsmInternalFailureException', 'The request was rejected because of an internal failure. The request can be retried.');
      else res.destroy();
    });
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, o: AuditHttpOptions, keys: ReadonlyMap<string, AccessKey>): Promise<void> {
  req.resume(); // no body is read
  let operator = false;
  let accountId = '';
  try {
    if (req.method !== 'GET') protocolFail('SerializationException', 'The audit endpoint answers GET only');
    const raw: RawRequest = { method: 'GET', target: req.url ?? '', headers: headerPairs(req), body: new Uint8Array(0) };
    const key = verifySigV4(raw, { region: o.region, service: SIGNING_NAME, keys, nowMs: Date.now(), requiredSignedHeaders: ['host', 'x-amz-date'] });
    authorizeAction(key, AUDIT_ACTION);
    operator = key.actions.includes('*');
    accountId = key.accountId;
  } catch (e) {
    if (e instanceof ProtocolError) return sendError(res, e.status, e.type, e.message);
    throw e;
  }
  const url = new URL(req.url ?? '/', 'http://audit');
  const serial = url.pathname.slice(AUDIT_HTTP_PATH.length + 1);
  const devices = new Map((await o.devicesOf(accountId)).map((d) => [d.serial, d]));
  const archived = await o.collector.serials();
  if (serial === '') {
    const listed = archived.filter((s) => operator || devices.has(s));
    const lines = listed.map((s) => {
      const d = devices.get(s);
      return JSON.stringify({ serial: s, ...(d === undefined ? {} : { hsmId: d.hsmId, clusterId: d.clusterId }) });
    });
    return sendLines(res, lines);
  }
  const from = url.searchParams.get('from') ?? '0';
  if (!SERIAL.test(serial) || !SEQ.test(from)) return sendError(res, 400, 'ValidationException', 'The path must be /audit/<HSM serial> and from a decimal sequence number');
  if (!operator && !devices.has(serial)) return sendError(res, 400, 'CloudHsmResourceNotFoundException', 'No audit records are archived for this HSM from that position');
  const bundles = await o.collector.read(serial, BigInt(from), AUDIT_EXPORT_CHUNKS_MAX);
  if (bundles.length === 0) return sendError(res, 400, 'CloudHsmResourceNotFoundException', 'No audit records are archived for this HSM from that position');
  const report = verifyAuditBundles({ bundles, ...o.roots, expectedSerial: serial, atMs: o.clock.nowMs() });
  return sendLines(res, auditJsonLines(bundles, report));
}

function sendLines(res: ServerResponse, lines: readonly string[]): void {
  const body = lines.map((l) => l + '\n').join('');
  res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  const body = JSON.stringify({ __type: type, Message: message });
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

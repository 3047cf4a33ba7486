// AWS Signature Version 4 verification (the AWS General Reference, "Signature Version 4 signing
// process": canonical request, string to sign, signing key, signature), as the CloudHSMv2 API's
// only way in (docs/api.md "Authentication"). A request is accepted only when:
//   - it has `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` (no
//     query-string signing: the API takes POST / with a body only);
//   - `host`, `x-amz-date` and `x-amz-target` are among the signed headers, so that nobody can send a
//     captured signature to another host, at another time, or to another operation with the same
//     body (stricter than SigV4 requires; the AWS SDKs and CLI sign all three);
//   - its credential scope names the service's region and the signing name `cloudhsm`, and the
//     date of `X-Amz-Date`;
//   - `X-Amz-Date` is within SIGV4_CLOCK_SKEW_MS of the service's clock (injected);
//   - the payload hash is that of the body actually received (and equals `x-amz-content-sha256`
//     when a client sends one); for a body streamed to disk (server.ts `StreamedRoute`) it is the
//     declared `x-amz-content-sha256`, which the receiver checks against the body once it is in;
//   - the access key is configured, and the signature recomputed with its secret is equal
//     (compared in constant time).
// Temporary credentials (`X-Amz-Security-Token`) are refused: the API issues none.
// Failures are ProtocolErrors with AWS's common error types; nothing of the secret, the expected
// signature or the canonical request appears in a message.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { protocolFail } from './api_errors.js';
import { SIGV4_ALGORITHM, canonicalRequest, credentialScope, headerValue, sha256Hex, signatureHex, signingKey, stringToSign, type RawRequest } from '../../formats/sigv4.js';

export { SIGV4_ALGORITHM, canonicalQuery, canonicalRequest, canonicalUri, credentialScope, headerValue, sha256Hex, signatureHex, signingKey, stringToSign, uriEncode, type RawRequest } from '../../formats/sigv4.js';

/** The signing name of CloudHSM V2 (service model metadata `signingName`). */
export const SIGNING_NAME = 'cloudhsm';
/** How far `X-Amz-Date` may be from the service's clock, either way: AWS allows 5 minutes. */
export const SIGV4_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Headers a request must sign (see the module header). */
export const REQUIRED_SIGNED_HEADERS: readonly string[] = ['host', 'x-amz-date', 'x-amz-target'];
/** Bound on the Authorization header: a real one is under 400 bytes even with many signed headers. */
export const AUTHORIZATION_BYTES_MAX = 4096;
/** Bound on the number of signed headers. */
export const SIGNED_HEADERS_MAX = 32;

/** A configured access key: who it belongs to and which actions it may call. */
export interface AccessKey {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly accountId: string;
  /** `cloudhsm:<Operation>` and `coffer:<Operation>` entries, or `*` for every operation. */
  readonly actions: readonly string[];
}

export interface VerifyOptions {
  readonly region: string;
  readonly service: string;
  readonly keys: ReadonlyMap<string, AccessKey>;
  readonly nowMs: number;
  readonly requiredSignedHeaders?: readonly string[];
  /** A streamed body's hash, as its `x-amz-content-sha256` header declares it: the signature is
   * checked against it, and the caller checks the body against it once the body has arrived. */
  readonly payloadHashHex?: string;
}

// ── the Authorization header ──────────────────────────────────────────────────────────────────────

export interface ParsedAuthorization {
  readonly accessKeyId: string;
  readonly date: string;
  readonly region: string;
  readonly service: string;
  readonly terminator: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export function parseAuthorization(header: string): ParsedAuthorization {
  if (header.length > AUTHORIZATION_BYTES_MAX) protocolFail('IncompleteSignatureException', 'Authorization header is too long');
  const space = header.indexOf(' ');
  const algorithm = space < 0 ? header : header.slice(0, space);
  if (algorithm !== SIGV4_ALGORITHM) protocolFail('IncompleteSignatureException', `Unsupported authorization algorithm: only ${SIGV4_ALGORITHM} is accepted`);
  const params = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (params.has(name)) protocolFail('IncompleteSignatureException', 'Authorization header repeats a parameter');
    params.set(name, part.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((p) => !params.get(p));
  if (missing.length > 0) protocolFail('IncompleteSignatureException', `Authorization header requires ${missing.map((p) => `'${p}'`).join(', ')} parameter`);
  const credential = (params.get('Credential') ?? '').split('/');
  if (credential.length !== 5 || credential.some((c) => c === '')) {
    protocolFail('IncompleteSignatureException', "Authorization header requires a 'Credential' of the form <access key>/<date>/<region>/<service>/aws4_request");
  }
  const [accessKeyId = '', date = '', region = '', service = '', terminator = ''] = credential;
  const signedHeaders = (params.get('SignedHeaders') ?? '').split(';');
  if (signedHeaders.length > SIGNED_HEADERS_MAX) protocolFail('IncompleteSignatureException', `Authorization header signs more than ${SIGNED_HEADERS_MAX} headers`);
  const sorted = [...signedHeaders].sort();
  if (signedHeaders.some((h, i) => h === '' || h !== h.toLowerCase() || h !== sorted[i] || (i > 0 && h === signedHeaders[i - 1]))) {
    protocolFail('IncompleteSignatureException', "'SignedHeaders' must be lower-case header names, sorted, each once");
  }
  return { accessKeyId, date, region, service, terminator, signedHeaders, signature: params.get('Signature') ?? '' };
}

/** Milliseconds since the epoch of an `X-Amz-Date` (basic ISO 8601), or undefined. */
export function parseAmzDate(value: string): number | undefined {
  const m = AMZ_DATE.exec(value);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  const back = new Date(ms);
  // Refuse dates that Date.UTC rolls over (20150231 is not 3 March).
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || back.getUTCHours() !== h || back.getUTCMinutes() !== mi || back.getUTCSeconds() !== s) return undefined;
  return ms;
}

// ── verification ──────────────────────────────────────────────────────────────────────────────────

const SIGNATURE_MISMATCH = 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** Verifies a request's SigV4 signature; returns the access key that signed it. */
export function verifySigV4(request: RawRequest, options: VerifyOptions): AccessKey {
  const authorization = headerValue(request.headers, 'authorization');
  if (authorization === undefined || authorization === '') protocolFail('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const auth = parseAuthorization(authorization);
  const amzDate = headerValue(request.headers, 'x-amz-date');
  if (amzDate === undefined) protocolFail('IncompleteSignatureException', "Authorization requires an 'X-Amz-Date' header");
  const dateMs = parseAmzDate(amzDate);
  if (dateMs === undefined) protocolFail('IncompleteSignatureException', "'X-Amz-Date' must be of the form YYYYMMDDTHHMMSSZ");
  for (const name of options.requiredSignedHeaders ?? REQUIRED_SIGNED_HEADERS) {
    if (!auth.signedHeaders.includes(name)) protocolFail('IncompleteSignatureException', `'${name}' must be a signed header`);
  }
  for (const name of auth.signedHeaders) {
    if (headerValue(request.headers, name) === undefined) protocolFail('IncompleteSignatureException', 'A signed header is missing from the request');
  }
  const key = options.keys.get(auth.accessKeyId);
  if (key === undefined) protocolFail('UnrecognizedClientException', 'The security token included in the request is invalid.');
  if (headerValue(request.headers, 'x-amz-security-token') !== undefined) {
    protocolFail('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  if (auth.terminator !== 'aws4_request') protocolFail('InvalidSignatureException', "Credential should be scoped with a valid terminator: 'aws4_request'.");
  if (auth.date !== amzDate.slice(0, 8)) protocolFail('InvalidSignatureException', "Date in Credential scope does not match YYYYMMDD from 'X-Amz-Date'.");
  if (auth.region !== options.region) protocolFail('InvalidSignatureException', `Credential should be scoped to a valid region: '${options.region}'.`);
  if (auth.service !== options.service) protocolFail('InvalidSignatureException', `Credential should be scoped to correct service: '${options.service}'.`);
  if (dateMs < options.nowMs - SIGV4_CLOCK_SKEW_MS) protocolFail('InvalidSignatureException', 'Signature expired: X-Amz-Date is more than 5 minutes earlier than the service clock.');
  if (dateMs > options.nowMs + SIGV4_CLOCK_SKEW_MS) protocolFail('InvalidSignatureException', 'Signature not yet current: X-Amz-Date is more than 5 minutes later than the service clock.');
  const payloadHash = options.payloadHashHex ?? sha256Hex(request.body);
  const claimed = headerValue(request.headers, 'x-amz-content-sha256');
  if (claimed !== undefined && claimed !== payloadHash) protocolFail('InvalidSignatureException', "The provided 'x-amz-content-sha256' header does not match the body.");
  const canonical = canonicalRequest(request, auth.signedHeaders, payloadHash);
  const scope = credentialScope(auth.date, auth.region, auth.service);
  const expected = Buffer.from(signatureHex(signingKey(key.secretAccessKey, auth.date, auth.region, auth.service), stringToSign(amzDate, scope, canonical)), 'utf8');
  const given = Buffer.from(auth.signature, 'utf8');
  // Constant time over the expected length: a signature of another length is compared against
  // itself-sized zeros so that the work does not depend on where the first difference is.
  const same = given.length === expected.length ? timingSafeEqual(given, expected) : (timingSafeEqual(expected, Buffer.alloc(expected.length)), false);
  if (!same) protocolFail('InvalidSignatureException', SIGNATURE_MISMATCH);
  return key;
}

/** The IAM-style action name of an operation. */
export function actionOf(operation: string): string {
  return `${SIGNING_NAME}:${operation}`;
}

/** Refuses an operation the key may not call. */
export function authorize(key: AccessKey, operation: string): void {
  authorizeAction(key, actionOf(operation));
}

/** Refuses an action (`cloudhsm:<Operation>`, or one of Coffer's own `coffer:<Name>`) the key may not take; `*` grants every one. */
export function authorizeAction(key: AccessKey, action: string): void {
  if (key.actions.includes('*') || key.actions.includes(action)) return;
  protocolFail('AccessDeniedException', `The access key is not authorized to perform: ${action}`);
}

/** A request's headers as sent, in order, as (name, value) pairs (what RawRequest.headers holds). */
export function headerPairs(req: IncomingMessage): [string, string][] {
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '']);
  return headers;
}

// AWS Signature Version 4 (the AWS General Reference, "Signature Version 4 signing process"): the
// canonical request, the string to sign, the signing key and the signature — the one implementation
// both sides use: the control plane's API verifies with it (src/service/api/sigv4.ts) and the SDK
// signs its DescribeClusters calls with it (src/client/control_plane.ts). Held to the AWS SigV4 test
// suite (test/vectors/aws-sig-v4-test-suite/).

import { createHash, createHmac } from 'node:crypto';

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';

/** A request as received, before anything is trusted. */
export interface RawRequest {
  readonly method: string;
  /** The request target as sent on the wire: path and optional `?query`. */
  readonly target: string;
  /** Header lines in the order received, names as sent (Node's `rawHeaders` in pairs). */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
}

// ── canonical request (SigV4 "Create a canonical request") ───────────────────────────────────────

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** RFC 3986 percent-encoding of every byte but the unreserved characters, upper-case hex. */
export function uriEncode(text: string): string {
  let out = '';
  for (const ch of text) {
    if (UNRESERVED.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The canonical URI of a path as the signer was given it: dot segments and empty segments removed
 * (RFC 3986 §5.2.4), each segment URI-encoded (which encodes an already-encoded path a second time,
 * as SigV4 does for every service but S3). */
export function canonicalUri(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  if (segments.length === 0) return '/';
  return `/${segments.map(uriEncode).join('/')}${path.endsWith('/') ? '/' : ''}`;
}

function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The canonical query string: parameters decoded, re-encoded, sorted by name then value. */
export function canonicalQuery(query: string): string {
  const pairs = query.split('&').filter((p) => p !== '').map((p) => {
    const eq = p.indexOf('=');
    const name = eq < 0 ? p : p.slice(0, eq);
    const value = eq < 0 ? '' : p.slice(eq + 1);
    return [uriEncode(percentDecode(name)), uriEncode(percentDecode(value))] as const;
  });
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/** A header's canonical value: every value of that name in order, each trimmed with inner runs of
 * spaces collapsed, joined by commas; undefined when the request has none. */
export function headerValue(headers: RawRequest['headers'], lowerName: string): string | undefined {
  const values = headers.filter(([n]) => n.toLowerCase() === lowerName).map(([, v]) => v.trim().replace(/\s+/g, ' '));
  return values.length === 0 ? undefined : values.join(',');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function canonicalRequest(request: RawRequest, signedHeaders: readonly string[], payloadHashHex: string): string {
  const q = request.target.indexOf('?');
  const path = q < 0 ? request.target : request.target.slice(0, q);
  const query = q < 0 ? '' : request.target.slice(q + 1);
  const headerLines = signedHeaders.map((name) => `${name}:${headerValue(request.headers, name) ?? ''}\n`).join('');
  return [request.method, canonicalUri(path), canonicalQuery(query), headerLines, signedHeaders.join(';'), payloadHashHex].join('\n');
}

export function credentialScope(date: string, region: string, service: string): string {
  return `${date}/${region}/${service}/aws4_request`;
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [SIGV4_ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest();
  const kRegion = createHmac('sha256', kDate).update(region).digest();
  const kService = createHmac('sha256', kRegion).update(service).digest();
  return createHmac('sha256', kService).update('aws4_request').digest();
}

export function signatureHex(key: Uint8Array, toSign: string): string {
  return createHmac('sha256', key).update(toSign).digest('hex');
}

// ── signing ───────────────────────────────────────────────────────────────────────────────────────

export interface SigningCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** `YYYYMMDD'T'HHMMSS'Z'` of a time. */
export function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * The Authorization header of `request` (which must already carry every header named in
 * `signedHeaders`, among them `x-amz-date` with `date`): signed for `region` and `service`. A body
 * streamed rather than held is signed by its hash, given as `payloadHashHex` (and sent in
 * `x-amz-content-sha256`, as S3 does); `request.body` is then not read.
 */
export function authorization(
  request: RawRequest, signedHeaders: readonly string[], credentials: SigningCredentials, region: string, service: string, date: string, payloadHashHex?: string,
): string {
  const day = date.slice(0, 8);
  const scope = credentialScope(day, region, service);
  const canonical = canonicalRequest(request, signedHeaders, payloadHashHex ?? sha256Hex(request.body));
  const signature = signatureHex(signingKey(credentials.secretAccessKey, day, region, service), stringToSign(date, scope, canonical));
  return `${SIGV4_ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders.join(';')}, Signature=${signature}`;
}

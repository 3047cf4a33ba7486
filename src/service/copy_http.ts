// CopyBackupToRegion between `coffer service` processes (docs/control-plane.md "Copies to other
// regions"): the source sends the sealed blob to the destination's API port, and the destination
// takes it in through copy.ts `receiveCopy`, the one receiving path.
//
//   PUT /coffer/peer/backups  HTTP/1.1
//   Host, X-Amz-Date, X-Amz-Content-Sha256 (hex SHA-256 of the blob), Content-Length,
//   Content-Type: application/octet-stream,
//   X-Coffer-Copy: base64url of the copy's metadata (JSON, below),
//   Authorization: SigV4, the destination's region, signing name `cloudhsm`, every header above signed
//
//   body: the sealed blob, byte for byte as the source archived it
//
// The route is not a CloudHSMv2 operation: the signing key needs the action
// `coffer:ReceiveBackupCopy` (or `*`) in the destination's access keys. The body is streamed to a
// file (api/streamed.ts) and must match its signed hash before anything else looks at it. The
// metadata — `{"v":1,"accountId","hsmType","sourceRegion","sourceBackup","sourceCluster",
// "bodySha256","tags"}` — is checked member by member (the tags against the service model) and
// never trusted for the blob: the destination checks the blob's provenance itself. A key granted the
// action may name any account as the copy's owner, so it belongs to peer services only.
//
// The answer is 200 with `{"BackupId","CreateTimestamp","CopyTimestamp","SourceRegion",
// "SourceBackup","SourceCluster"}` (timestamps in epoch seconds), or an error in the API's form.
// The source turns every refusal into a CloudHsm* error of its own CopyBackupToRegion.

import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { amzDate, authorization, headerValue, type RawRequest } from '../formats/sigv4.js';
import { ARCHIVE_OBJECT_BYTES_MAX, type Archive } from '../storage/archive_port.js';
import { RECEIVE_BACKUP_COPY_ACTION } from './api/access_keys.js';
import { apiFail, type ApiExceptionType, type ApiOutput } from './api/operations.js';
import { protocolFail } from './api/api_errors.js';
import { REGION_PATTERN, isId } from './api/resources.js';
import { SIGNING_NAME } from './api/sigv4.js';
import type { StreamedRoute, Upload } from './api/streamed.js';
import { validateInput } from './api/validate.js';
import { checkUniqueTagKeys } from './cluster_operations.js';
import { HSM_TYPES } from './config.js';
import type { CopyToRegion } from './control_plane.js';
import { copyMetadata, destinationBackup, receiveCopy, type CopyMetadata, type RegionPeer } from './copy.js';
import type { PeerEndpoint } from './peer_config.js';
import type { BackupDoc, Tag } from './records.js';

export const PEER_COPY_PATH = '/coffer/peer/backups';
export const PEER_COPY_METHOD = 'PUT';
export const COPY_METADATA_HEADER = 'x-coffer-copy';
/** The metadata header, base64url: Node accepts 16 KiB of headers in all, and the signature, date and
 * host need well under 1 KiB. About 60 bytes per tag plus its key and value; tags that do not fit
 * are refused at the source before anything is sent. */
export const COPY_METADATA_CHARS_MAX = 12 * 1024;
/** A copy's blob: the archive holds nothing larger (ARCHIVE_OBJECT_BYTES_MAX). */
export const PEER_COPY_BYTES_MAX = ARCHIVE_OBJECT_BYTES_MAX;
/** Copies a destination receives at once: each spools a blob to disk and checks it. */
export const PEER_COPIES_IN_FLIGHT_MAX = 4;
/** The source gives up when the destination is silent this long: while it receives or while it
 * checks and archives a blob (a check reads the whole blob once, well under a minute at 4 GiB). */
export const PEER_COPY_IDLE_MS = 120_000;
/** The destination's answer is a small JSON object (or an error of the API's form). */
export const PEER_ANSWER_BYTES_MAX = 64 * 1024;
/** Peer messages relayed to the caller are cut to this. */
const PEER_MESSAGE_CHARS_MAX = 512;
const COPY_METADATA_VERSION = 1;
const METADATA_MEMBERS = ['v', 'accountId', 'hsmType', 'sourceRegion', 'sourceBackup', 'sourceCluster', 'bodySha256', 'tags'];
const ACCOUNT_ID = /^[0-9]{12}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

// ── the destination ───────────────────────────────────────────────────────────────────────────

/** The streamed route through which `target` takes in copies from peer services. */
export function backupCopyRoute(target: RegionPeer): StreamedRoute {
  return {
    name: 'coffer:ReceiveBackupCopy', method: PEER_COPY_METHOD, path: PEER_COPY_PATH, action: RECEIVE_BACKUP_COPY_ACTION,
    signedHeaders: [COPY_METADATA_HEADER], bodyBytesMax: PEER_COPY_BYTES_MAX, inFlightMax: PEER_COPIES_IN_FLIGHT_MAX, workDir: target.workDir,
    handle: async (upload: Upload) => {
      const meta = parseCopyMetadata(headerValue(upload.headers, COPY_METADATA_HEADER), target.region);
      const doc = await receiveCopy(target, upload.path, meta);
      return {
        BackupId: doc.backupId, CreateTimestamp: doc.createdMs / 1000, CopyTimestamp: (doc.copyMs ?? doc.createdMs) / 1000,
        SourceRegion: doc.sourceRegion, SourceBackup: doc.sourceBackup, SourceCluster: doc.sourceCluster,
      };
    },
  };
}

function badMetadata(why: string): never {
  return protocolFail('SerializationException', `${COPY_METADATA_HEADER}: ${why}`);
}

/** The metadata header, checked member by member; messages name the member, never its value. */
export function parseCopyMetadata(header: string | undefined, destinationRegion: string): CopyMetadata {
  if (header === undefined || header.length > COPY_METADATA_CHARS_MAX || !BASE64URL.test(header)) badMetadata(`must be base64url of at most ${COPY_METADATA_CHARS_MAX} characters`);
  let m: Record<string, unknown>;
  try {
    const parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(header, 'base64url'))) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    m = parsed as Record<string, unknown>;
  } catch {
    return badMetadata('is not a JSON object');
  }
  const unknown = Object.keys(m).find((k) => !METADATA_MEMBERS.includes(k));
  if (unknown !== undefined) badMetadata('has a member it should not');
  if (m['v'] !== COPY_METADATA_VERSION) badMetadata(`version must be ${COPY_METADATA_VERSION}`);
  const text = (name: string, ok: (s: string) => boolean): string => {
    const v = m[name];
    if (typeof v !== 'string' || !ok(v)) badMetadata(`${name} is missing or malformed`);
    return v;
  };
  const accountId = text('accountId', (s) => ACCOUNT_ID.test(s));
  const hsmType = text('hsmType', (s) => (HSM_TYPES as readonly string[]).includes(s));
  const sourceRegion = text('sourceRegion', (s) => REGION_PATTERN.test(s) && s !== destinationRegion);
  const sourceBackup = text('sourceBackup', (s) => isId('backup', s));
  const sourceCluster = text('sourceCluster', (s) => isId('cluster', s));
  const digest = m['bodySha256'];
  if (digest !== null && (typeof digest !== 'string' || !SHA256_HEX.test(digest))) badMetadata('bodySha256 is missing or malformed');
  const given = m['tags'];
  if (!Array.isArray(given)) badMetadata('tags is missing or malformed');
  // The tags are held to the model's TagList rules, as the source's CopyBackupToRegion was (a
  // TagList is absent there rather than empty).
  const input = validateInput('CopyBackupToRegion', { DestinationRegion: destinationRegion, BackupId: sourceBackup, ...(given.length === 0 ? {} : { TagList: given }) });
  const tags = (input['TagList'] as Tag[] | undefined) ?? [];
  checkUniqueTagKeys(tags);
  return { accountId, hsmType, sourceRegion, sourceBackup, sourceCluster, bodySha256: digest, tags: tags.map((t) => ({ Key: t.Key, Value: t.Value })) };
}

// ── the source ────────────────────────────────────────────────────────────────────────────────

export interface CopySource {
  readonly region: string;
  readonly archive: Archive;
  /** A directory of the service's own: the blob is spooled there to hash it before sending. */
  readonly workDir: string;
  readonly logger: Logger;
}

/** The CopyToRegion of `source`, sending to the peer services configured (docs/control-plane.md). */
export function httpCopy(source: CopySource, peers: readonly PeerEndpoint[]): CopyToRegion {
  const byRegion = new Map(peers.map((p) => [p.region, p]));
  return async (region: string, backup: BackupDoc, tags: readonly Tag[]): Promise<ApiOutput> => {
    const peer = byRegion.get(region) ?? apiFail('CloudHsmInvalidRequestException', `Region ${region} is not a peer of this service.`);
    if (backup.archiveKey === null) apiFail('CloudHsmInvalidRequestException', `Backup ${backup.backupId} has no archived blob.`);
    const meta = copyMetadata(source.region, backup, tags);
    const header = Buffer.from(JSON.stringify({ v: COPY_METADATA_VERSION, ...meta }), 'utf8').toString('base64url');
    if (header.length > COPY_METADATA_CHARS_MAX) apiFail('CloudHsmInvalidRequestException', `The TagList is too large to travel with a copy (${COPY_METADATA_CHARS_MAX} characters of metadata).`);
    const dir = mkdtempSync(join(source.workDir, 'send-'));
    try {
      const path = join(dir, 'backup.bin');
      const hash = createHash('sha256');
      let bytes = 0;
      const meter = new Transform({ transform(chunk: Buffer, _e, done) { hash.update(chunk); bytes += chunk.length; done(null, chunk); } });
      await pipeline(await source.archive.get(backup.archiveKey), meter, createWriteStream(path, { mode: 0o600 }));
      const answer = await send(peer, path, bytes, hash.digest('hex'), header);
      const copy = acceptedCopy(peer.region, answer, meta);
      source.logger.info({ event: 'backup.copied', backupId: backup.backupId, region, destinationBackupId: copy.backupId, bytes }, 'backup copied to a peer region');
      return destinationBackup(copy);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

interface PeerAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** PUTs the blob in `path` to the peer, signed; resolves with its answer, or fails as unreachable. */
async function send(peer: PeerEndpoint, path: string, bytes: number, sha256Hex: string, metadata: string): Promise<PeerAnswer> {
  const url = new URL(PEER_COPY_PATH, peer.endpoint);
  const date = amzDate(Date.now());
  const headers: [string, string][] = [
    ['content-length', String(bytes)], ['content-type', 'application/octet-stream'], ['host', url.host],
    ['x-amz-content-sha256', sha256Hex], ['x-amz-date', date], [COPY_METADATA_HEADER, metadata],
  ];
  const raw: RawRequest = { method: PEER_COPY_METHOD, target: PEER_COPY_PATH, headers, body: new Uint8Array(0) };
  const signature = authorization(raw, headers.map(([n]) => n), peer, peer.region, SIGNING_NAME, date, sha256Hex);
  try {
    return await put(url, { ...Object.fromEntries(headers), authorization: signature }, path);
  } catch {
    // What went wrong on the way is the operator's to find in the peer's log; the caller learns where.
    return apiFail('CloudHsmServiceException', `The service of region ${peer.region} could not be reached or did not answer; the copy did not complete.`);
  }
}

function put(url: URL, headers: Record<string, string>, path: string): Promise<PeerAnswer> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: PEER_COPY_METHOD, headers });
    let answered = false;
    req.setTimeout(PEER_COPY_IDLE_MS, () => req.destroy(new Error('peer silent')));
    // An early answer (a refusal before the body was read) ends the upload; errors of the
    // unfinished upload after it are expected.
    req.on('error', (e) => { if (!answered) reject(e); });
    req.on('response', (res: IncomingMessage) => {
      answered = true;
      readAnswer(res).then((a) => resolve(a), reject).finally(() => req.destroy());
    });
    const file = createReadStream(path);
    file.on('error', (e) => req.destroy(e));
    file.pipe(req);
  });
}

function readAnswer(res: IncomingMessage): Promise<PeerAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > PEER_ANSWER_BYTES_MAX) res.destroy(new Error('answer too large'));
      else chunks.push(chunk);
    });
    res.on('error', reject);
    res.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      resolve({ status: res.statusCode ?? 0, body });
    });
  });
}

const RELAYED: ReadonlySet<string> = new Set<ApiExceptionType>([
  'CloudHsmAccessDeniedException', 'CloudHsmInvalidRequestException', 'CloudHsmResourceLimitExceededException', 'CloudHsmResourceNotFoundException',
  'CloudHsmServiceException', 'CloudHsmTagException',
]);

/** The copy the peer recorded, or the CloudHsm* error its refusal becomes here. */
function acceptedCopy(region: string, answer: PeerAnswer, sent: CopyMetadata): Pick<BackupDoc, 'backupId' | 'createdMs' | 'sourceRegion' | 'sourceBackup' | 'sourceCluster'> {
  const body = typeof answer.body === 'object' && answer.body !== null ? (answer.body as Record<string, unknown>) : {};
  if (answer.status === 200) {
    const ok = typeof body['BackupId'] === 'string' && isId('backup', body['BackupId']) && typeof body['CreateTimestamp'] === 'number'
      && body['SourceRegion'] === sent.sourceRegion && body['SourceBackup'] === sent.sourceBackup && body['SourceCluster'] === sent.sourceCluster;
    if (!ok) apiFail('CloudHsmServiceException', `The service of region ${region} answered the copy in a form this service does not know.`);
    return {
      backupId: body['BackupId'] as string, createdMs: Math.round((body['CreateTimestamp'] as number) * 1000),
      sourceRegion: sent.sourceRegion, sourceBackup: sent.sourceBackup, sourceCluster: sent.sourceCluster,
    };
  }
  const type = typeof body['__type'] === 'string' && /^[A-Za-z]{1,64}$/.test(body['__type']) ? body['__type'] : 'unknown';
  const message = typeof body['Message'] === 'string' ? body['Message'].replace(/[^\x20-\x7e]/g, ' ').slice(0, PEER_MESSAGE_CHARS_MAX) : '';
  if (answer.status === 403) apiFail('CloudHsmAccessDeniedException', `The service of region ${region} refused this service's peer key (${type}); nothing was copied.`);
  if (answer.status >= 500) apiFail('CloudHsmServiceException', `The service of region ${region} failed to take the copy (${type}); nothing was copied. The request can be retried.`);
  if (RELAYED.has(type)) apiFail(type as ApiExceptionType, `The service of region ${region} refused the copy: ${message}`);
  return apiFail('CloudHsmServiceException', `The service of region ${region} refused the copy (${type}); nothing was copied.`);
}

// The S3 archive (src/storage/archive_port.ts; docs/archive.md): objects in one bucket of an
// S3-compatible service through @aws-sdk/client-s3, under `<keyPrefix><key>`.
//
// Write-once is the server's own check: every put is one PutObject with `If-None-Match: *`, which
// the server refuses with 412 Precondition Failed when the name exists. Measured on Ceph's RADOS
// Gateway 16.2 (Pacific, Debian 12): PutObject honours the condition, also between concurrent puts;
// CompleteMultipartUpload ignores it and replaces the object. So this adapter never uses multipart:
// a body of unknown length is first copied to an unlinked temporary file (bounded by the object
// limit, which stays under S3's 5 GiB single-PUT maximum), then sent with its length and its
// Content-MD5, which the server checks (RFC 1864). A failed or refused put leaves no object: the
// server makes an object visible only once its PUT has completed.
//
// The SDK does not retry puts here (a stream cannot be sent twice); this module does, from the
// file. A retry answered 412 may mean that the earlier attempt landed and only its answer was
// lost: the put then succeeds if the object under the key has this body's length and MD5 ETag.
// Open proves the condition on the server itself: it puts a probe object twice with
// `If-None-Match: *` and refuses to run (COFFER_ARCHIVE_UNAVAILABLE) unless the second put is
// refused, so a server that ignores the header cannot silently void write-once.
// Delete is HEAD then DELETE (S3 deletes of missing keys succeed silently), so two concurrent
// deletes of one key may both succeed.

import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import {
  DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand,
  S3Client, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { assert } from '../assert.js';
import { fail, isCofferError } from '../errors.js';
import {
  byKey, checkKey, checkPrefix, errorCode, isArchiveKey, overListBound, overObjectBound, resolveBounds, spoolBody,
  type ArchiveBounds, type ArchiveBoundsOptions, type SpooledBody,
} from './archive_common.js';
import type { Archive, ArchivedObject } from './archive_port.js';

export interface S3ArchiveOptions extends ArchiveBoundsOptions {
  /** e.g. `http://127.0.0.1:7480`; absent: AWS's endpoint for `region`. */
  readonly endpoint?: string;
  readonly region: string;
  readonly bucket: string;
  /** Absent: the SDK's default chain (environment, shared files, instance role). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string };
  /** Path-style addressing (`endpoint/bucket/key`), which most self-hosted servers want. */
  readonly forcePathStyle?: boolean;
  /** Prepended to every key, e.g. `coffer/`: several archives can share a bucket. */
  readonly keyPrefix?: string;
  /** Where bodies of unknown length are copied before they are sent; default the system's. */
  readonly spoolDirectory?: string;
}

/** S3 refuses a single PUT over 5 GiB; the port's object bound (4 GiB) stays below it. */
const S3_SINGLE_PUT_BYTES_MAX = 5 * 1024 ** 3;
/** One first attempt and two retries of a put, then the archive is reported unavailable. */
const PUT_ATTEMPTS_MAX = 3;
/** Pause before retry n is n times this: long enough for a restarting gateway, short for a caller. */
const PUT_RETRY_STEP_MS = 250;
/** Connecting should be quick on the service's network; a stuck endpoint fails instead of hanging. */
const CONNECT_TIMEOUT_MS = 10_000;
/** A socket idle this long fails the request (large objects stream, so this is idleness, not size). */
const SOCKET_IDLE_TIMEOUT_MS = 120_000;
const KEY_PREFIX_PATTERN = /^[A-Za-z0-9._/-]*$/;
/** Network failures after which an attempt may be repeated (the SDK's transient codes). */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN']);

function statusOf(e: unknown): number | undefined {
  const status = (e as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function nameOf(e: unknown): string {
  return e instanceof Error ? e.name : 'error';
}

function unavailable(e: unknown): never {
  if (isCofferError(e)) throw e;
  const status = statusOf(e);
  const detail = status === undefined ? { reason: errorCode(e) ?? nameOf(e) } : { reason: nameOf(e), status };
  return fail('COFFER_ARCHIVE_UNAVAILABLE', detail, e);
}

/** A failure a repeated attempt may not meet: the network, a busy or failing server, a damaged body. */
function transient(e: unknown): boolean {
  const status = statusOf(e);
  if (status === undefined) return TRANSIENT_CODES.has(errorCode(e) ?? '') || nameOf(e) === 'TimeoutError';
  return status >= 500 || status === 429 || nameOf(e) === 'BadDigest' || nameOf(e) === 'ConditionalRequestConflict';
}

const notFound = (e: unknown): boolean => nameOf(e) === 'NoSuchKey' || (statusOf(e) === 404 && nameOf(e) === 'NotFound');

/** Connects to the bucket (HeadBucket) and returns the archive; COFFER_ARCHIVE_UNAVAILABLE if it cannot. */
export async function openS3Archive(options: S3ArchiveOptions): Promise<Archive> {
  const bounds = resolveBounds(options);
  assert(bounds.objectBytesMax <= S3_SINGLE_PUT_BYTES_MAX, 'objects fit one PutObject');
  const keyPrefix = options.keyPrefix ?? '';
  assert(KEY_PREFIX_PATTERN.test(keyPrefix) && keyPrefix.length <= 512, 'keyPrefix of key characters');
  const config = (maxAttempts: number | undefined): S3ClientConfig => ({
    region: options.region,
    forcePathStyle: options.forcePathStyle ?? false,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
    // Content-MD5 is sent instead of the SDK's newer checksum headers, which older servers (RGW 16)
    // do not know and whose streaming form (a trailer) they cannot read.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: SOCKET_IDLE_TIMEOUT_MS },
  });
  const archive = new S3Archive(new S3Client(config(undefined)), new S3Client(config(1)), options.bucket, keyPrefix,
    options.spoolDirectory ?? tmpdir(), bounds);
  try {
    await archive.client.send(new HeadBucketCommand({ Bucket: options.bucket }));
    await archive.probeWriteOnce();
  } catch (e) {
    await archive.close();
    unavailable(e);
  }
  return archive;
}

class S3Archive implements Archive {
  #closed = false;

  constructor(
    /** Reads, lists and deletes, with the SDK's retries. */
    readonly client: S3Client,
    /** Puts, one attempt per send: retries are this module's. */
    private readonly putClient: S3Client,
    private readonly bucket: string,
    private readonly keyPrefix: string,
    private readonly spoolDirectory: string,
    private readonly bounds: ArchiveBounds,
  ) {}

  async put(key: string, body: Readable | Uint8Array): Promise<ArchivedObject> {
    this.#open();
    checkKey(key);
    if (body instanceof Uint8Array) {
      if (body.byteLength > this.bounds.objectBytesMax) overObjectBound(this.bounds);
      return this.#send(key, { bytes: body.byteLength, md5: createHash('md5').update(body).digest() }, () => body);
    }
    return this.#spooled(body, (spooled, file) =>
      this.#send(key, spooled, () => (spooled.bytes === 0 ? new Uint8Array(0) : file.createReadStream({ start: 0, end: spooled.bytes - 1, autoClose: false }))));
  }

  /** Copies `body` into an unlinked temporary file (nothing to clean up after a crash) and runs `use` on it. */
  async #spooled<T>(body: Readable, use: (spooled: SpooledBody, file: FileHandle) => Promise<T>): Promise<T> {
    const path = join(this.spoolDirectory, `.coffer-archive-put-${randomBytes(8).toString('hex')}`);
    const file = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600).catch(unavailable);
    try {
      await unlink(path).catch(unavailable);
      return await use(await spoolBody(body, file, this.bounds), file);
    } finally {
      await file.close().catch(() => undefined);
    }
  }

  async #send(key: string, spooled: SpooledBody, body: () => Readable | Uint8Array): Promise<ArchivedObject> {
    for (let attempt = 1; ; attempt++) {
      const payload = body();
      try {
        await this.putClient.send(new PutObjectCommand({
          Bucket: this.bucket, Key: this.keyPrefix + key, Body: payload, ContentLength: spooled.bytes,
          ContentMD5: spooled.md5.toString('base64'), ContentType: 'application/octet-stream', IfNoneMatch: '*',
        }));
        return { key, bytes: spooled.bytes };
      } catch (e) {
        if (statusOf(e) === 412) {
          if (attempt > 1 && (await this.#holds(key, spooled))) return { key, bytes: spooled.bytes };
          fail('COFFER_ARCHIVE_EXISTS');
        }
        if (!transient(e) || attempt === PUT_ATTEMPTS_MAX) unavailable(e);
      } finally {
        if (payload instanceof Readable) payload.destroy();
      }
      await delay(PUT_RETRY_STEP_MS * attempt);
    }
  }

  /** Whether the object under `key` is this body: its length and its single-part ETag (the MD5). */
  async #holds(key: string, spooled: SpooledBody): Promise<boolean> {
    const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key })).catch(unavailable);
    return out.ContentLength === spooled.bytes && out.ETag === `"${spooled.md5.toString('hex')}"`;
  }

  /**
   * Puts a probe object (its name starts with `.`, so it is never an archive key and list skips
   * it) twice with `If-None-Match: *`; the second put must be refused with 412. Then deletes it.
   */
  async probeWriteOnce(): Promise<void> {
    const probe = { Bucket: this.bucket, Key: `${this.keyPrefix}.write-once-probe-${randomBytes(8).toString('hex')}` };
    await this.putClient.send(new PutObjectCommand({ ...probe, Body: 'first', IfNoneMatch: '*' }));
    try {
      const second = await this.putClient.send(new PutObjectCommand({ ...probe, Body: 'second', IfNoneMatch: '*' })).then(() => 200, (e: unknown) => {
        if (statusOf(e) === 412) return 412;
        throw e;
      });
      if (second !== 412) fail('COFFER_ARCHIVE_UNAVAILABLE', { reason: 'the server ignores If-None-Match on PutObject' });
    } finally {
      await this.client.send(new DeleteObjectCommand(probe)).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Readable> {
    this.#open();
    checkKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      assert(out.Body instanceof Readable, 'the Node SDK answers with a stream');
      return out.Body;
    } catch (e) {
      if (notFound(e)) fail('COFFER_ARCHIVE_NOT_FOUND');
      return unavailable(e);
    }
  }

  async head(key: string): Promise<ArchivedObject | undefined> {
    this.#open();
    checkKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      assert(out.ContentLength !== undefined, 'HEAD answers with the length');
      return { key, bytes: out.ContentLength };
    } catch (e) {
      if (notFound(e)) return undefined;
      return unavailable(e);
    }
  }

  async delete(key: string): Promise<void> {
    if ((await this.head(key)) === undefined) fail('COFFER_ARCHIVE_NOT_FOUND');
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key })).catch(unavailable);
  }

  async list(prefix: string): Promise<ArchivedObject[]> {
    this.#open();
    checkPrefix(prefix);
    const found: ArchivedObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({
        Bucket: this.bucket, Prefix: this.keyPrefix + prefix, ...(token === undefined ? {} : { ContinuationToken: token }),
      })).catch(unavailable);
      for (const entry of page.Contents ?? []) {
        const key = entry.Key?.slice(this.keyPrefix.length);
        if (key === undefined || !isArchiveKey(key) || entry.Size === undefined) continue; // not an object of this archive
        if (found.length === this.bounds.listKeysMax) overListBound(this.bounds);
        found.push({ key, bytes: entry.Size });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return found.sort(byKey);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.client.destroy();
    this.putClient.destroy();
    return Promise.resolve();
  }

  #open(): void {
    if (this.#closed) fail('COFFER_ARCHIVE_UNAVAILABLE', { reason: 'closed' });
  }
}

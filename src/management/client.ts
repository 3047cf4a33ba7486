// The client of a node's management interface (docs/node.md "Management interface"): HTTPS, TLS 1.3,
// with a client certificate issued by the operator root (mutual TLS).
//
// A node presents a fresh self-signed TLS leaf each start, so the client cannot pin it in advance.
// It authenticates the node by channel binding instead: on a new connection it asks only for
// GET /v1/identity, checks the device and operator certificates with the device-chain rule
// (src/formats/device_chain.ts) against the manufacturer and operator roots it was configured with
// (and the serial it expects, when it names one), and checks that the device key's attestation
// covers the public key of THIS connection's peer leaf (src/formats/attestation.ts). Only then is
// that leaf pinned (it becomes the only trusted certificate, compared by fingerprint as well), and
// every other request goes over pinned connections; a handshake that fails the pin (the node
// restarted with a new leaf) is verified afresh once.
//
// This client can ask for health, a sealed backup, a restore, the cluster CSR, cluster
// initialisation and zeroisation: the interface offers nothing else (no key use, no users). The
// shapes of requests and answers are src/formats/management.ts, the node's own.
// Imports only crypto and formats (docs/architecture.md §10).

import type { X509Certificate } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Agent, request, type RequestOptions } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import { CofferError, ERRORS, fail, isCofferError, type ErrorCode } from '../errors.js';
import { tlsAttestationHolds } from '../formats/attestation.js';
import { checkDeviceChain } from '../formats/device_chain.js';
import { MANAGEMENT_CLIENT_IDLE_TIMEOUT_MS, MANAGEMENT_RESPONSE_JSON_BYTES_MAX } from '../formats/limits.js';
import { encodeJournalFrames, type JournalFrame } from '../formats/journal_frames.js';
import { AUDIT_BUNDLE_BYTES_MAX, JOURNAL_ENTRY_SEALED_BYTES_MAX } from '../formats/limits.js';
import {
  AUDIT_FROM_PARAM, AUDIT_MAX_PARAM,
  BACKUP_CLUSTER_ID_PARAM, BACKUP_ID_HEADER, HEALTH_DIGEST_PARAM, JOURNAL_OFFER_WAIT_PARAM, RESTORE_CLONE_CLUSTER_ID_PARAM, JOURNAL_SEQ_HEADER, MANAGEMENT_ROUTES, decodeClusterCsrResponse, decodeEmptyAnswer,
  decodeErrorAnswer, decodeJournalDelivery, decodeNodeHealth, decodeNodeIdentity, decodeRestoreSummary, type ClusterCsrRequest, type ClusterInitialisation,
  type JournalDelivery, type NodeHealth, type NodeIdentity, type RestoreSummary,
} from '../formats/management.js';
import { parseCertificate, spkiOf } from '../formats/x509.js';

export type { ClusterInitialisation, JournalDelivery, JournalFrame, NodeHealth, RestoreSummary };
/** TLS errors that mean "this peer's certificate is not the one pinned". */
const PIN_FAILURES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_SIGNATURE_FAILURE', 'ERR_COFFER_PIN']);

export interface ManagementClientOptions {
  readonly host: string;
  readonly port: number;
  /** Client certificate and key, PEM: issued by the operator root, EKU clientAuth. */
  readonly certificatePem: string;
  readonly keyPem: string;
  /** The roots a node's device and operator certificates must chain to. */
  readonly manufacturerRootPem: string;
  readonly operatorRootPem: string;
  /** The serial of the device this client means to talk to (the control plane knows it): any
   * other device, however genuine, is refused. Absent: any device of these roots. */
  readonly expectedSerial?: string;
  /** A request fails with COFFER_REQUEST_TIMEOUT when its connection is silent this long. */
  readonly idleTimeoutMs?: number;
}

/** What a verified node is. */
export interface VerifiedNode {
  readonly serial: string;
  readonly deviceCertificatePem: string;
  readonly operatorCertificatePem: string;
  /** The management TLS leaf now pinned, and its SHA-256 fingerprint (node:crypto's colon form). */
  readonly leafPem: string;
  readonly leafFingerprint256: string;
}

interface Call {
  readonly method: 'GET' | 'PUT' | 'POST';
  readonly path: string;
  readonly json?: unknown;
  /** A file to upload as the body. */
  readonly uploadPath?: string;
  /** Bytes to send as the body (application/octet-stream). */
  readonly bytes?: Uint8Array;
}

export class ManagementClient {
  readonly #options: ManagementClientOptions;
  #pinned: VerifiedNode | undefined;
  #agent: Agent | undefined;

  constructor(options: ManagementClientOptions) {
    this.#options = options;
  }

  /** The verified node (verifying it on a fresh connection when nothing is pinned yet). */
  async identity(): Promise<VerifiedNode> {
    return this.#pinned ?? (await this.#verify());
  }

  /** The node's health. A node answers it while it receives or applies a restore or makes a backup,
   * and says so (`restoring`, `backingUp`; null from a node too old to say): docs/node.md "Endpoints". */
  async health(options: { readonly digest?: boolean } = {}): Promise<NodeHealth> {
    const { method, path } = MANAGEMENT_ROUTES.health;
    return answer(decodeNodeHealth, await this.#json({ method, path: options.digest === true ? `${path}?${HEALTH_DIGEST_PARAM}=1` : path }));
  }

  /** Streams a sealed backup into a new file (0600, refused if it exists). Default cluster id: the node's. */
  async backupToFile(path: string, clusterId?: string): Promise<{ readonly backupId: string; readonly bytes: number }> {
    const query = clusterId === undefined ? '' : `?${BACKUP_CLUSTER_ID_PARAM}=${encodeURIComponent(clusterId)}`;
    const res = await this.#call({ method: MANAGEMENT_ROUTES.backup.method, path: MANAGEMENT_ROUTES.backup.path + query });
    if (res.statusCode !== 200) return errorOf(res);
    try {
      await pipeline(res, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
    } catch (e) {
      rmSync(path, { force: true });
      throw isCofferError(e) ? e : new CofferError('COFFER_CONNECTION_LOST', { phase: 'backup' }, { cause: e });
    }
    return { backupId: String(res.headers[BACKUP_ID_HEADER] ?? ''), bytes: statSync(path).size };
  }

  /** Uploads a sealed backup file; the node restores it (all or nothing) and answers its summary.
   * `cloneClusterId`: the node becomes the first HSM of that cluster, created from the backup, and
   * starts its own journal (docs/journal-format.md "A cluster created from a backup"). */
  async restoreFromFile(path: string, options: { readonly cloneClusterId?: string } = {}): Promise<RestoreSummary> {
    const query = options.cloneClusterId === undefined ? '' : `?${RESTORE_CLONE_CLUSTER_ID_PARAM}=${encodeURIComponent(options.cloneClusterId)}`;
    return answer(decodeRestoreSummary, await this.#json({ method: MANAGEMENT_ROUTES.restore.method, path: MANAGEMENT_ROUTES.restore.path + query, uploadPath: path }));
  }

  async clusterCsr(clusterId: string): Promise<string> {
    const body: ClusterCsrRequest = { clusterId };
    return answer(decodeClusterCsrResponse, await this.#json({ ...MANAGEMENT_ROUTES.clusterCsr, json: body })).csrPem;
  }

  async initialiseCluster(input: ClusterInitialisation): Promise<void> {
    answer(decodeEmptyAnswer, await this.#json({ ...MANAGEMENT_ROUTES.clusterInitialise, json: input }));
  }

  async zeroise(): Promise<void> {
    answer(decodeEmptyAnswer, await this.#json({ ...MANAGEMENT_ROUTES.zeroise }));
  }

  /**
   * Takes the sealed entry waiting in the node's journal outbox: at once, or as soon as one is
   * sealed within `waitMs` (a long-poll; ≤ MANAGEMENT_JOURNAL_OFFER_WAIT_MS_MAX), else undefined.
   * Each entry is offered once: the caller must append it or lose it (the device then times it out).
   */
  async takeJournalOffer(waitMs: number): Promise<JournalFrame | undefined> {
    const { method, path } = MANAGEMENT_ROUTES.journalOffer;
    const res = await this.#call({ method, path: `${path}?${JOURNAL_OFFER_WAIT_PARAM}=${waitMs}` });
    if (res.statusCode === 204) {
      res.resume();
      return undefined;
    }
    if (res.statusCode !== 200) return errorOf(res);
    const seqText = res.headers[JOURNAL_SEQ_HEADER];
    const entry = await readBytes(res, JOURNAL_ENTRY_SEALED_BYTES_MAX);
    if (typeof seqText !== 'string' || !/^[1-9][0-9]{0,19}$/.test(seqText)) return fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-response', field: JOURNAL_SEQ_HEADER });
    return { seq: BigInt(seqText), entry };
  }

  /** Delivers journal entries to the node's device, in order; answers what the delivery did. */
  async deliverJournal(frames: readonly JournalFrame[]): Promise<JournalDelivery> {
    return answer(decodeJournalDelivery, await this.#json({ ...MANAGEMENT_ROUTES.journalEntries, bytes: encodeJournalFrames(frames) }));
  }

  /**
   * A page of the node's audit log from `fromSeq` (docs/audit.md "Collection"): an audit bundle,
   * ending on a signed checkpoint, verified by its reader (formats/audit_verify.ts), not here.
   */
  async auditPage(fromSeq: bigint, recordsMax: number): Promise<Uint8Array> {
    const { method, path } = MANAGEMENT_ROUTES.audit;
    const res = await this.#call({ method, path: `${path}?${AUDIT_FROM_PARAM}=${fromSeq.toString(10)}&${AUDIT_MAX_PARAM}=${recordsMax}` });
    if (res.statusCode !== 200) return errorOf(res);
    return new Uint8Array(await readBounded(res, AUDIT_BUNDLE_BYTES_MAX, 'auditBundleBytes'));
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  // ── verification ──────────────────────────────────────────────────────────────────────────

  /** Asks a fresh, unpinned connection for its identity and checks it against that connection's leaf. */
  async #verify(): Promise<VerifiedNode> {
    this.close();
    this.#pinned = undefined;
    const res = await this.#send({ ...MANAGEMENT_ROUTES.identity }, { rejectUnauthorized: false, agent: false });
    const peer = (res.socket as TLSSocket).getPeerX509Certificate();
    const body = await readJson(res);
    if (res.statusCode !== 200) return errorOf(res, body);
    if (peer === undefined) return fail('COFFER_NODE_UNTRUSTED', { reason: 'no-certificate' });
    const node = this.#checkIdentity(identityOf(body), peer);
    this.#pinned = node;
    return node;
  }

  /** The device-chain rule against the configured roots (and serial), then the channel binding. */
  #checkIdentity(doc: NodeIdentity, peer: X509Certificate): VerifiedNode {
    const { deviceCertificatePem, operatorCertificatePem, attestation } = doc;
    if (operatorCertificatePem === null) return fail('COFFER_NODE_UNTRUSTED', { reason: 'incomplete-identity' });
    const o = this.#options;
    let chain;
    try {
      chain = checkDeviceChain({
        manufacturerRoot: o.manufacturerRootPem, deviceCertificate: deviceCertificatePem, operatorRoot: o.operatorRootPem, operatorCertificate: operatorCertificatePem,
        atMs: Date.now(), ...(o.expectedSerial === undefined ? {} : { expectedSerial: o.expectedSerial }),
      });
    } catch (e) {
      if (!isCofferError(e, 'COFFER_CERT_INVALID')) throw e;
      return fail('COFFER_NODE_UNTRUSTED', { reason: String(e.detail['reason']), certificate: String(e.detail['certificate']) });
    }
    if (!tlsAttestationHolds(chain.publicKey, leafSpki(peer), attestation)) fail('COFFER_NODE_UNTRUSTED', { reason: 'attestation' });
    return { serial: chain.serial, deviceCertificatePem, operatorCertificatePem, leafPem: peer.toString(), leafFingerprint256: peer.fingerprint256 };
  }

  // ── requests ──────────────────────────────────────────────────────────────────────────────

  async #json(call: Call): Promise<unknown> {
    const res = await this.#call(call);
    const body = await readJson(res);
    return res.statusCode === 200 ? body : errorOf(res, body);
  }

  /** A request on a pinned connection; verifies first when needed, and once more if the pin fails. */
  async #call(call: Call): Promise<IncomingMessage> {
    const pinned = await this.identity();
    try {
      return await this.#send(call, this.#pinnedOptions(pinned));
    } catch (e) {
      if (e instanceof StaleSocket) return await this.#send(call, this.#pinnedOptions(pinned));
      if (!(e instanceof PinFailure)) throw e;
      return await this.#send(call, this.#pinnedOptions(await this.#verify()));
    }
  }

  #pinnedOptions(pinned: VerifiedNode): RequestOptions {
    this.#agent ??= new Agent({ keepAlive: true });
    return {
      agent: this.#agent,
      ca: pinned.leafPem,
      rejectUnauthorized: true,
      // The trust anchor is the leaf itself, so its name does not matter; its fingerprint must match.
      checkServerIdentity: (_host: string, cert: PeerCertificate) =>
        cert.fingerprint256 === pinned.leafFingerprint256 ? undefined : Object.assign(new Error('pinned leaf differs'), { code: 'ERR_COFFER_PIN' }),
    };
  }

  /** One HTTPS exchange; resolves with the response (body unread). */
  #send(call: Call, tls: RequestOptions): Promise<IncomingMessage> {
    const o = this.#options;
    const json = call.json === undefined ? undefined : Buffer.from(JSON.stringify(call.json), 'utf8');
    const body = json ?? call.bytes;
    const length = body?.length ?? (call.uploadPath === undefined ? 0 : statSync(call.uploadPath).size);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({
        host: o.host, port: o.port, method: call.method, path: call.path, minVersion: 'TLSv1.3', cert: o.certificatePem, key: o.keyPem, ...tls,
        headers: {
          'content-length': length,
          ...(json !== undefined ? { 'content-type': 'application/json' } : call.bytes !== undefined ? { 'content-type': 'application/octet-stream' } : {}),
        },
      });
      // Whether the TLS handshake completed, so that a handshake failure can be told from a lost
      // connection. A pooled socket finished its handshake long ago and never emits secureConnect
      // again: listening on it would add a listener per request (MaxListenersExceededWarning).
      let secure = false;
      req.once('socket', (s) => {
        if (req.reusedSocket) secure = true;
        else s.once('secureConnect', () => (secure = true));
      });
      req.setTimeout(o.idleTimeoutMs ?? MANAGEMENT_CLIENT_IDLE_TIMEOUT_MS, () => req.destroy(new CofferError('COFFER_REQUEST_TIMEOUT')));
      req.once('response', resolve);
      req.once('error', (e: NodeJS.ErrnoException) => reject(requestError(e, secure, req.reusedSocket)));
      if (call.uploadPath === undefined) req.end(body);
      else createReadStream(call.uploadPath).on('error', (e) => req.destroy(e)).pipe(req);
    });
  }
}

/** Raised when a handshake fails the pin; #call verifies afresh and retries once. Nothing was sent. */
class PinFailure extends CofferError {}
/** A pooled keep-alive connection the node had just closed (the race every HTTP/1.1 client has);
 * the request did not reach the node, and #call retries it once on a new connection. */
class StaleSocket extends CofferError {}

function requestError(e: NodeJS.ErrnoException, secure: boolean, reused: boolean): CofferError {
  if (isCofferError(e)) return e;
  if (reused && e.code === 'ECONNRESET') return new StaleSocket('COFFER_CONNECTION_LOST', { reason: 'stale-keep-alive' });
  if (!secure && e.code !== undefined && PIN_FAILURES.has(e.code)) return new PinFailure('COFFER_NODE_UNTRUSTED', { reason: 'pin' });
  return new CofferError('COFFER_CONNECTION_LOST', { reason: (e.code ?? 'error').slice(0, 64) }, { cause: e });
}

/** The identity document, or COFFER_NODE_UNTRUSTED: a node that cannot say who it is is not trusted. */
function identityOf(body: unknown): NodeIdentity {
  try {
    return decodeNodeIdentity(body);
  } catch (e) {
    if (!isCofferError(e)) throw e;
    return fail('COFFER_NODE_UNTRUSTED', { reason: 'incomplete-identity' });
  }
}

/** The SPKI of the connection's peer leaf (what the attestation must cover). */
function leafSpki(peer: X509Certificate): Uint8Array {
  try {
    return spkiOf(parseCertificate(new Uint8Array(peer.raw)));
  } catch {
    return fail('COFFER_NODE_UNTRUSTED', { reason: 'certificate' });
  }
}

/** A node's 200 answer decoded with the shared shape; a shape it does not have is a bad response. */
function answer<T>(decode: (json: unknown) => T, body: unknown): T {
  try {
    return decode(body);
  } catch (e) {
    if (!isCofferError(e)) throw e;
    const field = e.detail['field'];
    return fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-response', ...(field === undefined ? {} : { field }) });
  }
}

/** Reads a JSON response body of at most MANAGEMENT_RESPONSE_JSON_BYTES_MAX. */
async function readJson(res: IncomingMessage): Promise<unknown> {
  const body = await readBounded(res, MANAGEMENT_RESPONSE_JSON_BYTES_MAX, 'managementResponseBytes');
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return fail('COFFER_MANAGEMENT_REQUEST', { reason: 'response-not-json', status: res.statusCode ?? 0 });
  }
}

/** Reads a binary response body of at most `bytesMax` bytes (a sealed journal entry). */
async function readBytes(res: IncomingMessage, bytesMax: number): Promise<Uint8Array> {
  return new Uint8Array(await readBounded(res, bytesMax, 'journalEntryBytes'));
}

/** A whole response body; past `bytesMax` the response is dropped and COFFER_FORMAT_LIMIT names `limit`. */
async function readBounded(res: IncomingMessage, bytesMax: number, limit: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > bytesMax) {
      res.destroy();
      return fail('COFFER_FORMAT_LIMIT', { limit });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The typed error a non-200 answer carries (its registry code when it names one). */
async function errorOf(res: IncomingMessage, body?: unknown): Promise<never> {
  const b = decodeErrorAnswer(body ?? (await readJson(res).catch(() => ({}))));
  const code = b.code !== null && Object.hasOwn(ERRORS, b.code) ? (b.code as ErrorCode) : 'COFFER_MANAGEMENT_REQUEST';
  throw new CofferError(code, { status: res.statusCode ?? 0, ...b.detail });
}

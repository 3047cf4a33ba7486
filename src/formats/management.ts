// The messages of a node's management interface (docs/node.md "Management interface"): the method,
// path and JSON shape of every route, in one place for the node that answers
// (src/node/management_routes.ts) and for the clients that ask (src/management/client.ts, and the
// control plane after it). Each shape has a typed form, the JSON form it travels as, an encoder
// (typed → JSON) and a decoder (untrusted JSON → typed, or a typed refusal naming the field).
//
// Fields added after the first version are optional on the wire: a decoder gives null for a field
// an older node does not send ("the node does not say"), and an older client ignores fields it does
// not know. A new node always sends them.
//
// A u64 (the journal position) travels as a decimal string: a JSON number is an IEEE double and
// loses integers above 2^53. Byte strings travel as base64.
//
// Decoders refuse with COFFER_MANAGEMENT_REQUEST (`reason` missing-field or bad-field, and `field`)
// and COFFER_FORMAT_LIMIT for a string over its bound; a client that decodes a node's answer maps
// these to its own words (src/management/client.ts: reason bad-response).

import { assert } from '../assert.js';
import { fail } from '../errors.js';
import { TLS_ATTESTATION_BYTES } from './attestation.js';
import { CERTIFICATE_BYTES_MAX, PASSWORD_CHARS_MAX } from './limits.js';

/** Every route: method and path. */
export const MANAGEMENT_ROUTES = {
  identity: { method: 'GET', path: '/v1/identity' },
  health: { method: 'GET', path: '/v1/health' },
  backup: { method: 'GET', path: '/v1/backup' },
  restore: { method: 'PUT', path: '/v1/restore' },
  clusterCsr: { method: 'POST', path: '/v1/cluster/csr' },
  clusterInitialise: { method: 'POST', path: '/v1/cluster/initialise' },
  zeroise: { method: 'POST', path: '/v1/zeroise' },
  journalOffer: { method: 'GET', path: '/v1/journal/offer' },
  journalEntries: { method: 'POST', path: '/v1/journal/entries' },
  audit: { method: 'GET', path: '/v1/audit' },
} as const;

/** GET /v1/audit (docs/audit.md "Collection"): the first seq wanted and the most records in the
 * page; the answer is an audit bundle (src/formats/audit_record.ts), application/octet-stream. */
export const AUDIT_FROM_PARAM = 'from';
export const AUDIT_MAX_PARAM = 'max';

/** The `from` of an audit page: a decimal u64 (absent: 0). */
export function decodeAuditFrom(value: string | null): bigint {
  if (value === null) return 0n;
  if (!/^(0|[1-9][0-9]{0,19})$/.test(value) || BigInt(value) >= 2n ** 64n) fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-parameter', field: AUDIT_FROM_PARAM });
  return BigInt(value);
}

/** The `max` of an audit page: 1 to `recordsMax` (absent: `recordsMax`). */
export function decodeAuditMax(value: string | null, recordsMax: number): number {
  if (value === null) return recordsMax;
  const n = Number(value);
  if (!/^[1-9][0-9]{0,9}$/.test(value) || n > recordsMax) fail('COFFER_FORMAT_LIMIT', { field: AUDIT_MAX_PARAM, max: recordsMax });
  return n;
}

/** GET /v1/journal/offer: the query parameter bounding the long-poll (ms), and the response header
 * giving the offered entry's position (the body is the sealed entry, application/octet-stream). */
export const JOURNAL_OFFER_WAIT_PARAM = 'waitMs';
/** `GET /v1/health?digest=1` also answers the state digest (a scan of the whole state after a write). */
export const HEALTH_DIGEST_PARAM = 'digest';
export const JOURNAL_SEQ_HEADER = 'x-coffer-journal-seq';

/** GET /v1/backup: the optional query parameter naming the cluster, and the response header naming the backup. */
export const BACKUP_CLUSTER_ID_PARAM = 'clusterId';
export const BACKUP_ID_HEADER = 'x-coffer-backup-id';

/** PUT /v1/restore: the optional query parameter that makes the restored HSM the first of a cluster
 * created from the backup (docs/node.md "Endpoints"): after the restore, the node starts that
 * cluster's own journal (a fresh sync key, genesis of the cluster named). */
export const RESTORE_CLONE_CLUSTER_ID_PARAM = 'cloneClusterId';

/** CloudHSM's cluster id shape (docs/architecture.md §6). */
/** A cluster id, as the CloudHSMv2 model's pattern (cluster-[2-7a-zA-Z]{11,16}) matched whole. */
export const CLUSTER_ID = /^cluster-[2-7a-zA-Z]{11,16}$/;
/** PEM text of a certificate or CSR: base64 (4/3 of the DER) plus armour and line breaks. */
export const PEM_CHARS_MAX = 2 * CERTIFICATE_BYTES_MAX;
/** Ids, serials, modes and states: short names (a backup header holds its strings in 256 bytes too). */
const NAME_CHARS_MAX = 256;
/** A SHA-256 digest in lower-case hex. */
const DIGEST_HEX = /^[0-9a-f]{64}$/;
/** A u64 in decimal: no sign, no leading zero, at most 20 digits (2^64 − 1 has 20). */
const U64_DECIMAL = /^(0|[1-9][0-9]{0,19})$/;
const U64_MAX = (1n << 64n) - 1n;
/** The largest TCP port (RFC 9293 §3.1: 16 bits). */
const TCP_PORT_MAX = 65535;
/** Base64 characters of an attestation (96 bytes). */
const ATTESTATION_BASE64_CHARS = 4 * Math.ceil(TLS_ATTESTATION_BYTES / 3);

// ── shapes ──────────────────────────────────────────────────────────────────────────────────

/** GET /v1/identity. The roots the node reports are informative only. */
export interface NodeIdentity {
  readonly deviceCertificatePem: string;
  readonly manufacturerRootPem: string;
  /** Null before the device is commissioned. */
  readonly operatorCertificatePem: string | null;
  readonly operatorRootPem: string | null;
  /** The device key's attestation of the management TLS leaf (src/formats/attestation.ts). */
  readonly attestation: Uint8Array;
}
export type NodeIdentityJson = Omit<NodeIdentity, 'attestation'> & { readonly attestation: string };

/** GET /v1/health. */
export interface NodeHealth {
  readonly provisioning: string;
  readonly serial: string | null;
  readonly mode: string | null;
  readonly cluster: string;
  readonly clusterId: string | null;
  readonly usersInitialised: boolean;
  readonly activated: boolean;
  readonly tokenObjects: number;
  readonly sessions: number;
  readonly inFlight: number;
  readonly inFlightMax: number;
  readonly connections: number;
  readonly capacityOpsPerSecond: number;
  readonly loadPermille: number;
  /** The last cluster journal entry applied (docs/architecture.md §5), a u64. */
  readonly journalPosition: bigint;
  /** The device's state digest, hex (treat it like a KCV); null unless asked for (HEALTH_DIGEST_PARAM). */
  readonly stateDigest: string | null;
  /** A restore is being received or applied right now (null: an older node does not say). A node
   * that answers this is alive, however long the restore takes. */
  readonly restoring: boolean | null;
  /** A sealed backup is being made or streamed out right now (null: an older node does not say). */
  readonly backingUp: boolean | null;
  /** Where the data plane listens: the address it is bound to and its TCP port (null: an older
   * node does not say). A wildcard address (0.0.0.0, ::) means every address of the machine. */
  readonly dataPlaneHost: string | null;
  readonly dataPlanePort: number | null;
  /** The journal head's chain hash, hex (null: an older node does not say). With journalPosition,
   * the head: two HSMs at one position with different hashes are a fork. */
  readonly journalHeadHash: string | null;
  /** The refusal that halted the device's journal, if any (null: none, or an older node). */
  readonly journalFault: JournalFaultReport | null;
  /** The journal entry the device has waited for past its bound (docs/journal-format.md "Detecting a
   * bad journal"): not a fault; null when none is missing, or an older node. */
  readonly journalMissing: JournalMissingReport | null;
  /** 'relayed' or 'solo' (docs/node.md "Journal endpoints"); null: an older node does not say. */
  readonly journalMode: 'relayed' | 'solo' | null;
  /** The data plane's running totals since the node started (null: metrics are off, or an older
   * node): the control plane turns two of them into rates and a p99 (docs/console.md "Live figures"). */
  readonly figures: NodeFigures | null;
}

/** Running totals of the data plane since the node started (docs/node.md "Health"). */
export interface NodeFigures {
  /** Operations answered, whatever their outcome (a batch counts its items); BUSY answers are not in it. */
  readonly operations: number;
  /** Requests answered BUSY (over the connection or node in-flight limit). */
  readonly busy: number;
  /** Upper bounds (seconds) of the request latency buckets, ascending; a last bucket has no bound. */
  readonly latencyBoundsS: readonly number[];
  /** Requests per latency bucket (not cumulative; a batch is one request): one more entry than latencyBoundsS. */
  readonly latencyCounts: readonly number[];
}
export type NodeHealthJson = Omit<NodeHealth, 'journalPosition' | 'journalFault' | 'journalMissing'> & {
  readonly journalPosition: string;
  readonly journalFault: JournalFaultJson | null;
  readonly journalMissing: JournalMissingJson | null;
};

/** A journal fault as reported: the refusal's code, the position, its reason (all non-secret). */
export interface JournalFaultReport {
  readonly code: string;
  readonly seq: bigint;
  readonly reason: string;
}
export type JournalFaultJson = Omit<JournalFaultReport, 'seq'> & { readonly seq: string };

/** A missing journal entry as reported: its position and how long the device has waited for it (ms). */
export interface JournalMissingReport {
  readonly seq: bigint;
  readonly waitedMs: number;
}
export type JournalMissingJson = Omit<JournalMissingReport, 'seq'> & { readonly seq: string };

/** POST /v1/journal/entries: what the delivery did (src/hsm/state/journal.ts DeliverResult). */
export interface JournalDelivery {
  readonly headSeq: bigint;
  /** The head's chain hash, hex. */
  readonly headHash: string;
  readonly applied: number;
  readonly ignored: number;
  /** The position the device waits for when an entry came ahead of its head; null otherwise. */
  readonly waitingFor: bigint | null;
  readonly fault: JournalFaultReport | null;
  /** The entry the device has waited for past its bound (health's journalMissing); null: none, or an older node. */
  readonly missing: JournalMissingReport | null;
}
export type JournalDeliveryJson = Omit<JournalDelivery, 'headSeq' | 'waitingFor' | 'fault' | 'missing'> & {
  readonly headSeq: string;
  readonly waitingFor: string | null;
  readonly fault: JournalFaultJson | null;
  readonly missing: JournalMissingJson | null;
};

/** PUT /v1/restore: the restore summary. */
export interface RestoreSummary {
  readonly backupId: string;
  readonly bytes: number;
  readonly records: number;
  readonly users: number;
  readonly objects: number;
}

/** POST /v1/cluster/csr. */
export interface ClusterCsrRequest {
  readonly clusterId: string;
}
export interface ClusterCsrResponse {
  readonly csrPem: string;
}

/** POST /v1/cluster/initialise. The two credentials are secrets: the node zeroises its byte copies. */
export interface ClusterInitialisation {
  readonly certificatePem: string;
  readonly trustAnchorPem: string;
  readonly preCoPassword: string;
  readonly applianceCredential: string;
}

/** Every failed request: the registry code (null for an internal error), its message, non-secret detail. */
export interface ErrorAnswer {
  readonly code: string | null;
  readonly message: string;
  readonly detail: Readonly<Record<string, string | number | boolean>>;
}

// ── field reading ───────────────────────────────────────────────────────────────────────────

function objectOf(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('COFFER_MANAGEMENT_REQUEST', { reason: 'body-not-object' });
  return value as Record<string, unknown>;
}

/** Reads fields of a JSON object; every refusal names the field. */
class Fields {
  readonly #o: Record<string, unknown>;

  constructor(value: unknown) {
    this.#o = objectOf(value);
  }

  #bad(name: string, present: boolean): never {
    return fail('COFFER_MANAGEMENT_REQUEST', { reason: present ? 'bad-field' : 'missing-field', field: name });
  }

  /** A non-empty string of at most `charsMax` characters. */
  string(name: string, charsMax: number): string {
    const v = this.#o[name];
    if (typeof v !== 'string' || v.length === 0) return this.#bad(name, v !== undefined);
    if (v.length > charsMax) fail('COFFER_FORMAT_LIMIT', { field: name, charsMax });
    return v;
  }

  nullableString(name: string, charsMax: number): string | null {
    return this.#o[name] === null ? null : this.string(name, charsMax);
  }

  boolean(name: string): boolean {
    const v = this.#o[name];
    return typeof v === 'boolean' ? v : this.#bad(name, v !== undefined);
  }

  /** A non-negative safe integer. */
  count(name: string): number {
    const v = this.#o[name];
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : this.#bad(name, v !== undefined);
  }

  /** A u64 as a decimal string (see the header). */
  u64(name: string): bigint {
    const v = this.#o[name];
    if (typeof v !== 'string' || !U64_DECIMAL.test(v) || BigInt(v) > U64_MAX) return this.#bad(name, v !== undefined);
    return BigInt(v);
  }

  /** An attestation: canonical base64 of exactly TLS_ATTESTATION_BYTES. */
  attestation(name: string): Uint8Array {
    const s = this.string(name, ATTESTATION_BASE64_CHARS);
    const b = Buffer.from(s, 'base64');
    if (b.length !== TLS_ATTESTATION_BYTES || b.toString('base64') !== s) this.#bad(name, true);
    return new Uint8Array(b);
  }

  /** A boolean, or null when the field is absent or null (a field added after the first version). */
  optionalBoolean(name: string): boolean | null {
    return this.#o[name] === undefined || this.#o[name] === null ? null : this.boolean(name);
  }

  /** A string, or null when absent or null (a field added after the first version). */
  optionalString(name: string, charsMax: number): string | null {
    return this.#o[name] === undefined ? null : this.nullableString(name, charsMax);
  }

  /** A TCP port 1–65535, or null when absent or null (a field added after the first version). */
  optionalPort(name: string): number | null {
    const v = this.#o[name];
    if (v === undefined || v === null) return null;
    return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= TCP_PORT_MAX ? v : this.#bad(name, true);
  }

  /** A journal fault object, or null when absent or null (a field added after the first version). */
  optionalFault(name: string): JournalFaultReport | null {
    const v = this.#o[name];
    if (v === undefined || v === null) return null;
    try {
      return decodeJournalFault(v);
    } catch {
      return this.#bad(name, true);
    }
  }

  /** A missing-entry report, or null when absent or null (a field added after the first version). */
  optionalMissing(name: string): JournalMissingReport | null {
    const v = this.#o[name];
    if (v === undefined || v === null) return null;
    try {
      return decodeJournalMissing(v);
    } catch {
      return this.#bad(name, true);
    }
  }

  /** Data-plane figures, or null when absent or null (a field added after the first version). */
  optionalFigures(name: string): NodeFigures | null {
    const v = this.#o[name];
    if (v === undefined || v === null) return null;
    try {
      return decodeNodeFigures(v);
    } catch {
      return this.#bad(name, true);
    }
  }

  /** An array of at most `max` finite non-negative numbers (`integers`: safe integers only). */
  numbers(name: string, max: number, integers: boolean): number[] {
    const v = this.#o[name];
    if (!Array.isArray(v)) return this.#bad(name, v !== undefined);
    if (v.length > max) fail('COFFER_FORMAT_LIMIT', { field: name, max });
    const ok = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0 && (!integers || Number.isSafeInteger(x));
    return v.every(ok) ? [...v] : this.#bad(name, true);
  }

  /** A u64, or null when absent or null. */
  optionalU64(name: string): bigint | null {
    return this.#o[name] === undefined || this.#o[name] === null ? null : this.u64(name);
  }

  matching(name: string, pattern: RegExp, charsMax: number): string {
    const s = this.string(name, charsMax);
    return pattern.test(s) ? s : this.#bad(name, true);
  }
}

/** A u64 as it travels (see the header). */
export function encodeU64(value: bigint): string {
  assert(value >= 0n && value <= U64_MAX, 'a u64 is in [0, 2^64)');
  return value.toString(10);
}

/** A well-formed cluster id, or COFFER_MANAGEMENT_REQUEST (reason bad-cluster-id). */
export function checkClusterId(value: string | null): string {
  if (value === null || !CLUSTER_ID.test(value)) fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-cluster-id' });
  return value;
}

// ── encoders and decoders ───────────────────────────────────────────────────────────────────

export function encodeNodeIdentity(v: NodeIdentity): NodeIdentityJson {
  return { ...v, attestation: Buffer.from(v.attestation).toString('base64') };
}

export function decodeNodeIdentity(json: unknown): NodeIdentity {
  const f = new Fields(json);
  return {
    deviceCertificatePem: f.string('deviceCertificatePem', PEM_CHARS_MAX),
    manufacturerRootPem: f.string('manufacturerRootPem', PEM_CHARS_MAX),
    operatorCertificatePem: f.nullableString('operatorCertificatePem', PEM_CHARS_MAX),
    operatorRootPem: f.nullableString('operatorRootPem', PEM_CHARS_MAX),
    attestation: f.attestation('attestation'),
  };
}

export function encodeNodeHealth(v: NodeHealth): NodeHealthJson {
  return {
    ...v, journalPosition: encodeU64(v.journalPosition), journalFault: v.journalFault === null ? null : encodeJournalFault(v.journalFault),
    journalMissing: v.journalMissing === null ? null : encodeJournalMissing(v.journalMissing),
  };
}

export function encodeJournalMissing(v: JournalMissingReport): JournalMissingJson {
  return { seq: encodeU64(v.seq), waitedMs: v.waitedMs };
}

export function decodeJournalMissing(json: unknown): JournalMissingReport {
  const f = new Fields(json);
  return { seq: f.u64('seq'), waitedMs: f.count('waitedMs') };
}

export function encodeJournalFault(v: JournalFaultReport): JournalFaultJson {
  return { code: v.code, seq: encodeU64(v.seq), reason: v.reason };
}

export function decodeJournalFault(json: unknown): JournalFaultReport {
  const f = new Fields(json);
  return { code: f.string('code', NAME_CHARS_MAX), seq: f.u64('seq'), reason: f.string('reason', NAME_CHARS_MAX) };
}

export function encodeJournalDelivery(v: JournalDelivery): JournalDeliveryJson {
  return {
    headSeq: encodeU64(v.headSeq), headHash: v.headHash, applied: v.applied, ignored: v.ignored,
    waitingFor: v.waitingFor === null ? null : encodeU64(v.waitingFor), fault: v.fault === null ? null : encodeJournalFault(v.fault),
    missing: v.missing === null ? null : encodeJournalMissing(v.missing),
  };
}

export function decodeJournalDelivery(json: unknown): JournalDelivery {
  const f = new Fields(json);
  return {
    headSeq: f.u64('headSeq'), headHash: f.matching('headHash', DIGEST_HEX, 64), applied: f.count('applied'), ignored: f.count('ignored'),
    waitingFor: f.optionalU64('waitingFor'), fault: f.optionalFault('fault'), missing: f.optionalMissing('missing'),
  };
}

/** The offer long-poll's bound, from its query parameter (absent: 0, answer at once). */
export function decodeOfferWaitMs(value: string | null, waitMsMax: number): number {
  if (value === null) return 0;
  const n = Number(value);
  if (!/^(0|[1-9][0-9]{0,9})$/.test(value) || n > waitMsMax) fail('COFFER_FORMAT_LIMIT', { field: JOURNAL_OFFER_WAIT_PARAM, max: waitMsMax });
  return n;
}

export function decodeNodeHealth(json: unknown): NodeHealth {
  const f = new Fields(json);
  return {
    provisioning: f.string('provisioning', NAME_CHARS_MAX), serial: f.nullableString('serial', NAME_CHARS_MAX), mode: f.nullableString('mode', NAME_CHARS_MAX),
    cluster: f.string('cluster', NAME_CHARS_MAX), clusterId: f.nullableString('clusterId', NAME_CHARS_MAX),
    usersInitialised: f.boolean('usersInitialised'), activated: f.boolean('activated'),
    tokenObjects: f.count('tokenObjects'), sessions: f.count('sessions'), inFlight: f.count('inFlight'), inFlightMax: f.count('inFlightMax'),
    connections: f.count('connections'), capacityOpsPerSecond: f.count('capacityOpsPerSecond'), loadPermille: f.count('loadPermille'),
    journalPosition: f.u64('journalPosition'), stateDigest: f.optionalString('stateDigest', 64) === null ? null : f.matching('stateDigest', DIGEST_HEX, 64),
    restoring: f.optionalBoolean('restoring'), backingUp: f.optionalBoolean('backingUp'),
    dataPlaneHost: f.optionalString('dataPlaneHost', NAME_CHARS_MAX), dataPlanePort: f.optionalPort('dataPlanePort'),
    journalHeadHash: f.optionalString('journalHeadHash', 64) === null ? null : f.matching('journalHeadHash', DIGEST_HEX, 64),
    journalFault: f.optionalFault('journalFault'), journalMissing: f.optionalMissing('journalMissing'), journalMode: journalModeOf(f.optionalString('journalMode', NAME_CHARS_MAX)),
    figures: f.optionalFigures('figures'),
  };
}

/** The longest latency bucket list a health answer may carry. */
const LATENCY_BUCKETS_MAX = 64;

export function decodeNodeFigures(json: unknown): NodeFigures {
  const f = new Fields(json);
  const latencyBoundsS = f.numbers('latencyBoundsS', LATENCY_BUCKETS_MAX, false);
  const latencyCounts = f.numbers('latencyCounts', LATENCY_BUCKETS_MAX + 1, true);
  const ascending = latencyBoundsS.every((b, i) => b > 0 && (i === 0 || b > (latencyBoundsS[i - 1] as number)));
  if (!ascending || latencyCounts.length !== latencyBoundsS.length + 1) fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'figures' });
  return { operations: f.count('operations'), busy: f.count('busy'), latencyBoundsS, latencyCounts };
}

function journalModeOf(value: string | null): 'relayed' | 'solo' | null {
  if (value === null || value === 'relayed' || value === 'solo') return value;
  return fail('COFFER_MANAGEMENT_REQUEST', { reason: 'bad-field', field: 'journalMode' });
}

export function decodeRestoreSummary(json: unknown): RestoreSummary {
  const f = new Fields(json);
  return { backupId: f.string('backupId', NAME_CHARS_MAX), bytes: f.count('bytes'), records: f.count('records'), users: f.count('users'), objects: f.count('objects') };
}

export function decodeClusterCsrRequest(json: unknown): ClusterCsrRequest {
  return { clusterId: checkClusterId(new Fields(json).string('clusterId', NAME_CHARS_MAX)) };
}

export function decodeClusterCsrResponse(json: unknown): ClusterCsrResponse {
  return { csrPem: new Fields(json).string('csrPem', PEM_CHARS_MAX) };
}

export function decodeClusterInitialisation(json: unknown): ClusterInitialisation {
  const f = new Fields(json);
  return {
    certificatePem: f.string('certificatePem', PEM_CHARS_MAX), trustAnchorPem: f.string('trustAnchorPem', PEM_CHARS_MAX),
    preCoPassword: f.string('preCoPassword', PASSWORD_CHARS_MAX), applianceCredential: f.string('applianceCredential', PASSWORD_CHARS_MAX),
  };
}

/** The answer of initialise and zeroise: an empty object. */
export function decodeEmptyAnswer(json: unknown): Record<string, never> {
  objectOf(json);
  return {};
}

/** An error answer; anything unusable in it is dropped (an error must still be reported). */
export function decodeErrorAnswer(json: unknown): ErrorAnswer {
  const o = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : {};
  const detail: Record<string, string | number | boolean> = {};
  if (typeof o['detail'] === 'object' && o['detail'] !== null) {
    for (const [k, v] of Object.entries(o['detail'])) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') detail[k] = v;
  }
  return { code: typeof o['code'] === 'string' ? o['code'] : null, message: typeof o['message'] === 'string' ? o['message'] : '', detail };
}

// The audit log as JSON lines (docs/audit.md "Export"): what the control plane's audit endpoint
// answers and `coffer audit verify` reads back. One JSON object per line:
//
//   {"type":"certificates","deviceCertificate":B64,"operatorCertificate":B64}   opens each bundle
//   {"type":"event","seq":"12","time":ISO,"kind":"login","outcome":"failed","user":"alice",
//    "session":"…","code":"COFFER_AUTH_FAILED","detail":"","handles":[],"status":"signed","record":B64}
//   {"type":"checkpoint","seq":"13","time":ISO,"serial":"CFR-…","status":"signed","record":B64}
//   {"type":"verification","ok":true,"serial":"CFR-…","firstSeq":"0","lastSeq":"13","records":14,
//    "checkpoints":1,"failure":null}                                              last line
//
// The readable fields are for people and tools; `record` holds the record's exact bytes, which are
// what a verifier checks (the readable fields and the status are recomputed from them, never
// trusted). seq values are decimal strings: they are u64.

import { fail } from '../errors.js';
import { decodeAuditRecord, type AuditBundle, type AuditRecord } from './audit_record.js';
import type { AuditEntry, AuditReport } from './audit_verify.js';
import { AUDIT_BUNDLE_RECORDS_MAX, AUDIT_RECORD_BYTES_MAX, CERTIFICATE_BYTES_MAX } from './limits.js';

/** A line: a certificates line is the longest (two certificates in base64). */
export const AUDIT_JSON_LINE_CHARS_MAX = 4 * CERTIFICATE_BYTES_MAX + 1024;
/** Bundles in one export a reader accepts: about a million records at AUDIT_BUNDLE_RECORDS_MAX each. */
export const AUDIT_JSON_BUNDLES_MAX = 256;

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** The lines of `bundles` with each record's status from `report` (verifyAuditBundles of the same bundles). */
export function auditJsonLines(bundles: readonly AuditBundle[], report: AuditReport): string[] {
  const status = new Map<string, AuditEntry['status']>(report.entries.map((e) => [`${e.bundle}:${e.index}`, e.status]));
  const lines: string[] = [];
  for (const [b, bundle] of bundles.entries()) {
    lines.push(JSON.stringify({ type: 'certificates', deviceCertificate: b64(bundle.deviceCertificateDer), operatorCertificate: b64(bundle.operatorCertificateDer) }));
    for (const [i, bytes] of bundle.records.entries()) {
      const s = status.get(`${b}:${i}`);
      if (s === undefined) continue; // a record read twice (pages overlapping) is listed once
      lines.push(JSON.stringify({ ...readable(bytes), status: s, record: b64(bytes) }));
    }
  }
  const f = report.failure;
  lines.push(JSON.stringify({
    type: 'verification', ok: report.ok, serial: report.serial ?? null, firstSeq: report.firstSeq?.toString() ?? null, lastSeq: report.lastSeq?.toString() ?? null,
    records: report.records, checkpoints: report.checkpoints,
    failure: f === undefined ? null : { reason: f.reason, seq: f.seq?.toString() ?? null, bundle: f.bundle, index: f.index, detail: f.detail ?? null },
  }));
  return lines;
}

function readable(bytes: Uint8Array): Record<string, unknown> {
  let r: AuditRecord;
  try {
    r = decodeAuditRecord(bytes);
  } catch {
    return { type: 'unreadable' };
  }
  const common = { seq: r.seq.toString(), time: new Date(r.timeMs).toISOString() };
  if (r.type === 'checkpoint') return { type: 'checkpoint', ...common, serial: r.serial };
  return { type: 'event', ...common, ...r.event };
}

/** Reads an export back into bundles (the record bytes only; everything else is recomputed). */
export function parseAuditJsonLines(text: string): AuditBundle[] {
  const bundles: Array<{ deviceCertificateDer: Uint8Array; operatorCertificateDer: Uint8Array; records: Uint8Array[] }> = [];
  for (const [n, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    if (line.length > AUDIT_JSON_LINE_CHARS_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'line', line: n + 1, max: AUDIT_JSON_LINE_CHARS_MAX });
    const o = parseLine(line, n + 1);
    if (o['type'] === 'certificates') {
      if (bundles.length >= AUDIT_JSON_BUNDLES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'bundles', max: AUDIT_JSON_BUNDLES_MAX });
      bundles.push({ deviceCertificateDer: bytesOf(o['deviceCertificate'], CERTIFICATE_BYTES_MAX, n + 1), operatorCertificateDer: bytesOf(o['operatorCertificate'], CERTIFICATE_BYTES_MAX, n + 1), records: [] });
    } else if (o['type'] === 'verification') {
      continue;
    } else {
      const bundle = bundles.at(-1) ?? fail('COFFER_FORMAT_MALFORMED', { field: 'certificates', line: n + 1 });
      if (bundle.records.length >= AUDIT_BUNDLE_RECORDS_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'records', max: AUDIT_BUNDLE_RECORDS_MAX });
      bundle.records.push(bytesOf(o['record'], AUDIT_RECORD_BYTES_MAX, n + 1));
    }
  }
  return bundles;
}

function parseLine(line: string, n: number): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return fail('COFFER_FORMAT_MALFORMED', { field: 'json', line: n });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('COFFER_FORMAT_MALFORMED', { field: 'line', line: n });
  return v as Record<string, unknown>;
}

function bytesOf(v: unknown, bytesMax: number, n: number): Uint8Array {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) fail('COFFER_FORMAT_MALFORMED', { field: 'base64', line: n });
  if ((v.length / 4) * 3 > bytesMax + 2) fail('COFFER_FORMAT_LIMIT', { field: 'base64', line: n, bytesMax });
  return new Uint8Array(Buffer.from(v, 'base64'));
}
